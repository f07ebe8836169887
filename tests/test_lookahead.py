"""Look-ahead is refused: sealed views on the event path, the prefix audit everywhere.

Two guards, tested against the escapes found by reading strategies adversarially:

* what a strategy receives (``self.data`` fields, indicators, ``Bar``, the arrays of
  ``visible()`` and ``np.asarray(...)``, ``VectorData`` in ``signals``) is sealed:
  no ``.base`` chain leads to a later bar, and no array can be made writeable, so
  the prices the broker fills at cannot be rewritten;
* ``signals`` and ``self.I`` indicators, computed over the whole data, are recomputed
  on prefixes ending at cuts spread over all of it (``audit="cuts"``), or at every
  bar (``audit="full"``), and refused at the first bar that differs.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engine
from engine.data.panel import Panel
from engine.data.synthetic import random_walk
from engine.errors import LookAheadError, ParameterError, StrategyError
from engine.strategy.indicators import crossover, crossunder, sma
from engine.strategy.lookahead import EVERY_BAR_UP_TO, GAP_CUTS, cut_points, gap_rows

ROOT = Path(__file__).resolve().parents[1]
N = 2000
#: The leak of the second-half strategies starts here: after the first half, the
#: only prefix the audit used to recompute.
LEAK_FROM = 1400
#: A stretch of missing values of the feature ``sentiment``.
GAP = slice(1303, 1311)


# --------------------------------------------------------------------------- data


def _walk(n: int = N, symbols: int = 1, seed: int = 3) -> Panel:
    return random_walk(n, symbols, seed=seed)


def _with_gap(panel: Panel) -> Panel:
    """``panel`` with a feature ``sentiment`` that is missing over ``GAP``."""
    rng = np.random.default_rng(5)
    values = rng.normal(0.0, 1.0, (panel.n_bars, panel.n_symbols))
    # a short panel gets its gap in its last third
    gap = GAP if panel.n_bars > GAP.stop else slice(panel.n_bars * 2 // 3, panel.n_bars - 3)
    values[gap] = np.nan
    values[gap.stop] = 1.0  # positive after the gap: a fill back over it turns it positive
    return panel.with_fields({"sentiment": values})


def _with_weekly(panel: Panel) -> Panel:
    """``panel`` with a feature ``weekly`` known on Fridays only (NaN on other days),
    the way a weekly series lands on daily bars."""
    ts = pd.DatetimeIndex(panel.ts)
    values = np.where(ts.day_of_week == 4, 1.0 + np.arange(panel.n_bars) % 13, np.nan)
    return panel.with_fields({"weekly": values.reshape(-1, 1)})


# --------------------------------------------------------------------------- leaks


def _second_half_leak(close: np.ndarray) -> np.ndarray:
    """Tomorrow's close from bar ``LEAK_FROM`` on, today's before: a leak the first
    half of the data never shows."""
    ahead = np.append(close[1:], close[-1])
    at = np.arange(len(close)) >= LEAK_FROM
    return np.where(at, ahead, close)


def _bfill(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).bfill().to_numpy()


def _weekly_close_filled_back(close: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each week's last close, filled back onto the days of its week."""
    series = pd.Series(close, index=pd.DatetimeIndex(ts))
    weekly = series.resample("W-FRI").last()
    return weekly.reindex(series.index, method="bfill").to_numpy()


def _centred_mean(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rolling(21, center=True).mean().to_numpy()


#: name → (leaky value over the whole data, the panel it runs on, the first bar that
#: leaks if known, what a signal compares the value with: the close or zero)
LEAKS = {
    "second_half": (lambda d: _second_half_leak(d["close"]), _walk, LEAK_FROM, "close"),
    "bfill_over_gap": (lambda d: _bfill(d["sentiment"]), lambda: _with_gap(_walk()),
                       GAP.start, "zero"),
    "weekly_feature_filled_back": (lambda d: _bfill(d["weekly"]),
                                   lambda: _with_weekly(_walk()), None, "zero"),
    "weekly_resample_filled_back": (lambda d: _weekly_close_filled_back(d["close"], d["ts"]),
                                    _walk, None, "close"),
    "centred_window": (lambda d: _centred_mean(d["close"]), _walk, None, "close"),
}
FEATURES = ("sentiment", "weekly")


def _vector_strategy(leak, reference):
    class Leaky(engine.Strategy):
        def signals(self, data):
            fields = {"close": data.close, "ts": data.ts}
            for name in FEATURES:
                try:
                    fields[name] = getattr(data, name)
                except AttributeError:
                    pass
            value = np.nan_to_num(leak(fields), nan=-np.inf)
            up = value > (data.close if reference == "close" else 0.0)
            return engine.Signals(entries=up, exits=~up)

    return Leaky


def _event_strategy(leak, reference=None):
    class Leaky(engine.Strategy):
        timestamps = None  # of the whole data, for the weekly resample: set by the test

        def on_start(self):
            names = ["close"] + [f for f in FEATURES if f in self.data.fields]

            def indicator(*columns):
                fields = dict(zip(names, columns, strict=True))
                fields["ts"] = self.timestamps[: len(columns[0])]
                return leak(fields)

            self.leak = self.I(indicator, *(getattr(self.data, f) for f in names),
                               name="leaky")

        def on_bar(self, bar):
            pass

    return Leaky


def _strategy(case, path, panel):
    leak, _, _, reference = LEAKS[case]
    cls = (_vector_strategy if path == "vector" else _event_strategy)(leak, reference)
    cls.timestamps = panel.ts
    return cls


@pytest.mark.parametrize("path", ["vector", "event"])
@pytest.mark.parametrize("case", sorted(LEAKS))
def test_each_leak_is_refused_naming_the_bar(case, path):
    _, data, first_bad, _ = LEAKS[case]
    panel = data()
    cls = _strategy(case, path, panel)
    with pytest.raises(LookAheadError) as info:
        engine.run(cls, data=panel, mode=path)
    message = str(info.value)
    assert "reads the future" in message
    match = re.search(r"at bar (\d+) \((\d{4}-\d\d-\d\d), symbol asset\) is "
                                    r"(\S+) with all 2000 bars but (\S+) when the data stops "
                                    r"at bar (\d+) \((\d{4}-\d\d-\d\d)\)", message)
    assert match, message
    bar, day, whole, prefix, stop, stop_day = match.groups()
    bar, stop = int(bar), int(stop)
    assert day == str(panel.ts[bar])[:10] and stop_day == str(panel.ts[stop])[:10]
    assert bar <= stop and whole != prefix
    if first_bad is not None:
        assert bar >= first_bad
    assert "Fix:" in message and "audit='off'" in message


@pytest.mark.parametrize("path", ["vector", "event"])
def test_the_second_half_leak_is_recomputed_exactly_as_reported(path):
    panel = _walk()
    cls = _strategy("second_half", path, panel)
    with pytest.raises(LookAheadError) as info:
        engine.run(cls, data=panel, mode=path)
    message = str(info.value)
    bar = int(message.split("at bar ")[1].split(" ")[0])
    stop = int(message.split("the data stops at bar ")[1].split(" ")[0])
    close = panel.fields["close"][:, 0]
    # the value named is the one at the last bar of the prefix: tomorrow's close,
    # which the prefix does not have
    assert bar == stop and bar >= LEAK_FROM
    if path == "event":
        assert f"is {float(close[bar + 1])!r} with all" in message
        assert f"but {float(close[bar])!r} when" in message


class Causal(engine.Strategy):
    fast: int = 10
    slow: int = 30

    def on_start(self):
        self.f = self.I(sma, self.data.close, self.fast)
        self.s = self.I(sma, self.data.close, self.slow)
        self.gap = self.I(lambda x: pd.Series(x).ffill().to_numpy(), self.data.sentiment,
                          name="ffill")

    def on_bar(self, bar):
        if self.f[-1] > self.s[-1] and self.position == 0:
            self.buy()
        elif self.f[-1] < self.s[-1] and self.position > 0:
            self.close()

    def signals(self, data):
        f, s = sma(data.close, self.fast), sma(data.close, self.slow)
        held = pd.Series(data.sentiment).ffill().to_numpy()  # a forward fill is causal
        return engine.Signals(entries=crossover(f, s) & (held > -9), exits=crossunder(f, s))


@pytest.mark.parametrize("audit", ["cuts", "full"])
def test_a_causal_strategy_passes_on_both_paths(audit):
    panel = _with_gap(_walk(600 if audit == "full" else N))
    vector = engine.run(Causal, data=panel, mode="vector", audit=audit)
    event = engine.run(Causal, data=panel, mode="event", audit=audit)
    assert vector.metrics["trades"] > 5 and event.metrics["trades"] > 5
    assert vector.settings["audit"] == event.settings["audit"] == audit


@pytest.mark.parametrize("path", ["vector", "event"])
def test_audit_off_lets_a_leak_through_and_says_so(path):
    panel = _walk()
    result = engine.run(_strategy("second_half", path, panel), data=panel, mode=path,
                        audit="off")
    assert result.settings["audit"] == "off"


def test_an_indicator_can_opt_out_alone():
    class OptOut(engine.Strategy):
        def on_start(self):
            self.nxt = self.I(_second_half_leak, self.data.close, audit=False)

        def on_bar(self, bar):
            pass

    assert engine.run(OptOut, data=_walk()).settings["audit"] == "cuts"


def test_full_checks_every_bar_where_cuts_sample():
    """A leak at one bar only: the cuts miss it (they sample), the full audit does not."""
    panel = _walk()
    cuts = set(cut_points(N, "cuts", gaps=gap_rows(panel.fields.values()), seed=(1,)))

    close = panel.fields["close"][:, 0]
    bar = next(b for b in range(1500, 1900)
               if b + 1 not in cuts and close[b + 1] <= close[b])

    class OneBar(engine.Strategy):
        def signals(self, data):
            close = data.close
            up = np.zeros(len(close), dtype=bool)
            if len(close) > bar:
                # at one bar: whether tomorrow closes higher, True when there is no tomorrow
                up[bar] = close[bar + 1] > close[bar] if len(close) > bar + 1 else True
            return engine.Signals(entries=up, exits=np.zeros_like(up))

    assert engine.run(OneBar, data=panel, audit="cuts").settings["audit"] == "cuts"
    with pytest.raises(LookAheadError, match=rf"entries at bar {bar} .* when the data stops "
                                             rf"at bar {bar} "):
        engine.run(OneBar, data=panel, audit="full")


def test_signals_are_refused_when_their_size_or_direction_reads_ahead():
    class LeakySize(engine.Strategy):
        def signals(self, data):
            up = np.arange(len(data.close)) % 50 == 0
            scale = data.close / data.close.max()  # the maximum of the whole data
            return engine.Signals(entries=up, exits=~up, size=scale, size_type="percent")

    with pytest.raises(LookAheadError, match=r"size at bar \d+ .* symbol asset"):
        engine.run(LeakySize, data=_walk())

    class LeakyDirection(engine.Strategy):
        def signals(self, data):
            up = np.arange(len(data.close)) % 50 == 0
            ends_lower = data.close[-1] < data.close[0]
            return engine.Signals(entries=up, exits=~up,
                                  direction="short" if ends_lower else "long")

    panel = _walk(seed=11)
    close = panel.fields["close"][:, 0]
    assert (close < close[0]).any() and (close > close[0]).any()
    with pytest.raises(LookAheadError, match="direction is"):
        engine.run(LeakyDirection, data=panel, shorting=True)


def test_a_multi_symbol_message_names_the_symbol():
    panel = _walk(300, symbols=3)

    class PeeksAtOne(engine.Strategy):
        def signals(self, data):
            close = data.close
            ahead = np.vstack([close[1:], close[-1:]])
            up = close > close[0]
            up[:, 2] = ahead[:, 2] > close[:, 2]
            return engine.Signals(entries=up, exits=~up)

    with pytest.raises(LookAheadError, match=r"symbol S0002\) is"):
        engine.run(PeeksAtOne, data=panel, audit="full")


def test_a_zoned_message_names_the_local_time():
    """Data with a time zone holds UTC instants; the message shows the bar's local time,
    as every other message of the run does."""
    stamps = pd.date_range("2024-01-02 09:00", periods=N, freq="h", tz="Asia/Tokyo")
    close = 100 + np.cumsum(np.random.default_rng(2).normal(0, 0.1, N))
    frame = pd.DataFrame({"ts": stamps, "open": close, "high": close + 1, "low": close - 1,
                          "close": close, "volume": 1.0})
    with pytest.raises(LookAheadError) as info:
        engine.run(_strategy("second_half", "event", _walk()), data=frame)
    message = str(info.value)
    bar = int(message.split("at bar ")[1].split(" ")[0])
    local = stamps[bar].strftime("%Y-%m-%d %H:%M:%S")
    assert f"at bar {bar} ({local}, symbol" in message


# --------------------------------------------------------------------------- cut plan


def test_the_cut_plan_spreads_over_the_data_and_is_deterministic():
    n = 24_000
    cuts = cut_points(n, "cuts", seed=(1,))
    assert len(cuts) >= 8
    assert (cuts >= 1).all() and (cuts <= n - 1).all() and (np.diff(cuts) > 0).all()
    assert cuts[-1] - 1 >= n - n // 10  # a prefix ending in the last tenth
    # one in each seventh of the first nine tenths: nowhere is a long stretch unaudited
    assert np.diff(np.r_[0, cuts]).max() < 2 * (0.9 * n / 7)
    assert (cut_points(n, "cuts", seed=(1,)) == cuts).all()  # the same run, the same cuts
    assert not np.array_equal(cut_points(n + 1, "cuts", seed=(1,)), cuts)
    assert cut_points(n, "off").size == 0
    assert (cut_points(300, "full") == np.arange(1, 300)).all()
    small = EVERY_BAR_UP_TO + 1
    assert (cut_points(small, "cuts") == np.arange(1, small)).all()


def test_gaps_of_the_data_get_a_cut_inside():
    panel = _with_gap(_walk())
    gaps = gap_rows(panel.fields.values())
    assert list(gaps) == [GAP.start]  # one gap, followed by a value
    assert GAP.start + 1 in cut_points(N, "cuts", gaps=gaps)
    many = np.arange(100, 1900, 7)
    assert len(np.setdiff1d(cut_points(N, "cuts", gaps=many), cut_points(N, "cuts"))) <= GAP_CUTS
    trailing = np.ones((10, 1))
    trailing[7:] = np.nan  # nothing after it to fill back from: no gap
    assert gap_rows([trailing]).size == 0


def test_a_bad_audit_mode_is_refused_with_the_choices():
    with pytest.raises(ParameterError, match=r"audit must be one of 'cuts', 'full', 'off' "
                                             r"\(CLI --audit\); got 'ful'. Did you mean 'full'"):
        engine.run(Causal, data=_with_gap(_walk(100)), audit="ful")
    with pytest.raises(ParameterError, match="Use audit='off'"):
        engine.run(Causal, data=_with_gap(_walk(100)), audit=False)


# --------------------------------------------------------------------------- streaming, sweeps, CLI


def test_streaming_audits_every_chunk(tmp_path):
    from engine.data.bars import save_bars

    path = save_bars(_walk(), tmp_path / "walk.parquet")

    leak_from = _walk().ts[LEAK_FROM]

    class LateLeak(engine.Strategy):
        def signals(self, data):
            close = data.close
            # tomorrow's close, from a bar in the third chunk on: the first is clean
            ahead = np.append(close[1:], close[-1])
            up = (data.ts >= leak_from) & (ahead > close)
            return engine.Signals(entries=up, exits=~up)

        def lookback(self, data):
            return 1

    with pytest.raises(LookAheadError, match=r"reads the future: entries at bar (\d+)"):
        engine.stream_run(LateLeak, path, chunk_bars=500)
    result = engine.stream_run(LateLeak, path, chunk_bars=500, audit="off")
    assert result.settings["audit"] == "off"


def test_sweeps_pass_the_audit_option_through():
    panel = _walk()
    cls = _strategy("second_half", "vector", panel)
    audited = engine.sweep(cls, grid=None, data=panel, n_jobs=1, progress=False)
    assert "reads the future" in audited["error"][0]
    trusted = engine.sweep(cls, grid=None, data=panel, n_jobs=1, progress=False, audit="off")
    assert trusted["error"][0] is None


def test_cli_audit_option(tmp_path):
    from engine.data.bars import save_bars

    data = save_bars(_walk(300), tmp_path / "walk.parquet")
    strategy = tmp_path / "leaky.py"
    strategy.write_text(
        "import numpy as np\nimport engine\n\n\nclass Leaky(engine.Strategy):\n"
        "    def signals(self, data):\n"
        "        up = np.append(data.close[1:], data.close[-1]) > data.close\n"
        "        return engine.Signals(entries=up, exits=~up)\n"
    )

    def cli(*extra):
        return subprocess.run([sys.executable, "-m", "engine", "run", str(strategy), "--data",
                               str(data), "--json", *extra], capture_output=True, text=True,
                              cwd=ROOT)

    refused = cli()
    assert refused.returncode == 2 and "reads the future" in refused.stderr
    assert cli("--audit", "full").returncode == 2
    trusted = cli("--audit", "off")
    assert trusted.returncode == 0, trusted.stderr
    assert '"audit": "off"' in trusted.stdout
    bad = cli("--audit", "some")
    assert bad.returncode == 2 and "--audit" in bad.stderr


# --------------------------------------------------------------------------- sealed views


def _chain(array):
    """``array`` and its ``.base`` chain: the arrays, then the object at the end."""
    arrays = []
    obj = array
    while isinstance(obj, np.ndarray):
        arrays.append(obj)
        obj = obj.base
    return arrays, obj


def _assert_sealed(array, most: int):
    """No array of ``array``'s base chain holds more than ``most`` values or can be made
    writeable, and the chain ends at an object that hands out nothing."""
    arrays, end = _chain(array)
    for a in arrays:
        assert a.size <= most, f"{a.shape} reaches beyond the {most} visible values"
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
    if end is not None:
        with pytest.raises(TypeError):
            memoryview(end)
        with pytest.raises(TypeError):
            pickle.dumps(end)
        assert not [name for name in dir(end) if not name.startswith("__")]


def test_everything_the_event_path_hands_out_is_sealed():
    panel = _with_gap(_walk(60, symbols=3))
    seen = []

    class Collects(engine.Strategy):
        def on_start(self):
            self.avg = self.I(sma, self.data.close, 5)      # every symbol: rows
            self.one = self.I(sma, self.data["S0001"].close, 5)

        def on_bar(self, bar):
            k = 3
            visible = (bar.index + 1) * k
            one = self.data["S0001"]
            for array, most in [
                (np.asarray(self.data.close), visible),
                (self.data.close.visible(), visible),
                (self.data.open[:], visible),
                (self.data.sentiment.visible(), visible),
                (np.asarray(self.avg), visible),
                (np.asarray(one.close), bar.index + 1),
                (one.volume.visible(), bar.index + 1),
                (np.asarray(self.one), bar.index + 1),
                (self.data.ts, bar.index + 1),
                (one.ts, bar.index + 1),
                (bar.close, k),                 # the bar's row over symbols
                (self.data.high[-1], k),
                (self.avg[-1], k),
            ]:
                _assert_sealed(array, most)
            seen.append(bar.index)

    engine.run(Collects, data=panel)
    assert seen == list(range(60))


def test_everything_signals_receives_is_sealed():
    panel = _with_gap(_walk(50))
    checked = []

    class Collects(engine.Strategy):
        def signals(self, data):
            assert not hasattr(data, "panel")
            for name in ("open", "high", "low", "close", "volume", "sentiment", "ts"):
                _assert_sealed(getattr(data, name), len(data))
                checked.append(name)
            flat = np.zeros(len(data), dtype=bool)
            return engine.Signals(entries=flat, exits=flat)

    engine.run(Collects, data=panel, audit="off")
    assert len(checked) == 7


def _fill_close_peeker(reach):
    """The measured escape: with ``--fill close``, buy today when tomorrow closes higher."""

    class Peeks(engine.Strategy):
        def on_bar(self, bar):
            future = reach(self.data.close)
            if bar.index + 1 < len(future) and future[bar.index + 1] > bar.close:
                if self.position == 0:
                    self.buy()
            elif self.position > 0:
                self.close()

    return Peeks


@pytest.mark.parametrize("reach", [
    lambda s: np.asarray(s).base,
    lambda s: s.visible().base,
    lambda s: np.asarray(s).base.base,
], ids=["asarray.base", "visible.base", "asarray.base.base"])
def test_base_chains_reach_no_later_bar(reach):
    with pytest.raises(StrategyError, match=r"Peeks.on_bar at bar 0 .* raised (TypeError|"
                                            r"AttributeError)"):
        engine.run(_fill_close_peeker(reach), data=_walk(200), fill="close")


def test_the_base_of_a_slice_is_the_visible_bars_only():
    result = engine.run(_fill_close_peeker(lambda s: s[:].base), data=_walk(200), fill="close")
    assert result.metrics["trades"] == 0


def test_a_strategy_cannot_rewrite_the_prices_on_the_vector_path():
    panel = _walk(200)
    before = panel.fields["open"].copy()

    class Rewrites(engine.Strategy):
        def signals(self, data):
            arrays, _ = _chain(data.open)
            for arr in reversed(arrays):  # the root first: numpy lets an owner flip back
                arr.flags.writeable = True
            arrays[-1][:] = 0.01
            up = np.ones(len(data), dtype=bool)
            return engine.Signals(entries=up, exits=~up)

    with pytest.raises(StrategyError, match=r"raised ValueError: cannot set WRITEABLE flag .*"
                                            r"Fix: the bars, timestamps and indicators a "
                                            r"strategy reads are read-only"):
        engine.run(Rewrites, data=panel)
    assert np.array_equal(panel.fields["open"], before)


@pytest.mark.parametrize("write", [
    lambda self, bar: np.asarray(self.data.open).__setitem__(-1, 0.01),
    lambda self, bar: self.data.open.visible().__setitem__(slice(None), 0.01),
    lambda self, bar: setattr(np.asarray(self.data.open).flags, "writeable", True),
    lambda self, bar: setattr(self.data.open[:].flags, "writeable", True),
], ids=["asarray", "visible", "flag", "slice-flag"])
def test_a_strategy_cannot_write_on_the_event_path(write):
    class Writes(engine.Strategy):
        def on_bar(self, bar):
            write(self, bar)

    with pytest.raises(StrategyError, match=r"Writes.on_bar at bar 0 .* raised ValueError: "
                                            r".*(read-only|WRITEABLE).* Fix: the bars"):
        engine.run(Writes, data=_walk(20))


def test_copies_stay_writeable_and_the_cursor_cannot_be_moved():
    seen = {}

    class Copies(engine.Strategy):
        def on_bar(self, bar):
            mine = np.array(self.data.close)
            mine[-1] = 0.0  # a copy: the strategy's own
            seen["copy"] = mine.flags.writeable and self.data.close[-1] > 0
            seen["asarray-copy"] = np.asarray(self.data.close, copy=True).flags.writeable
            with pytest.raises(AttributeError):
                self.data._cursor.index = 5  # only the loop moves the cursor

    engine.run(Copies, data=_walk(10))
    assert seen == {"copy": True, "asarray-copy": True}
