"""Event study: forward returns after signals, on series whose forward returns are known."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_bars

import engine
from engine.errors import StrategyError
from engine.event_study import EVENT_COLUMNS, episodes, event_table, forward_returns


def test_forward_returns_of_a_geometric_series():
    close = 100 * 1.01 ** np.arange(30)
    for h in (1, 5, 21):
        fr = forward_returns(close, h)
        np.testing.assert_allclose(fr[:-h], 1.01 ** h - 1, rtol=1e-12)
        assert np.isnan(fr[-h:]).all()


def test_forward_returns_count_each_symbols_own_bars():
    close = np.array([[10.0, 20.0], [11.0, np.nan], [12.0, 22.0], [13.0, 24.0]])
    fr = forward_returns(close, 1)
    np.testing.assert_allclose(fr[:, 0], [0.1, 1 / 11, 1 / 12, np.nan])
    # symbol 2 has no bar on row 1: its next bar after row 0 is row 2
    np.testing.assert_allclose(fr[:, 1], [0.1, np.nan, 24 / 22 - 1, np.nan])
    with pytest.raises(ValueError):
        forward_returns(close, 0)


def test_episodes_are_first_bars_of_runs():
    cond = np.array([True, True, False, True, False, False, True, True])
    assert np.flatnonzero(episodes(cond)).tolist() == [0, 3, 6]


def test_event_table_statistics_by_hand():
    close = np.array([100.0, 110.0, 99.0, 99.0, 120.0, 60.0])
    mask = np.array([True, True, True, False, True, True])
    table = event_table(close, {"sig": mask}, horizons=(1, 2), claims={})
    assert table.columns == list(EVENT_COLUMNS)
    h1, h2 = table.to_dicts()
    # h=1 forward returns at bars 0,1,2,4: +10%, -10%, 0%, -50%; bar 5 has none (the end).
    assert h1["count"] == 4
    assert h1["share_positive"] == 0.25          # a zero return is not a success
    assert h1["mean_return"] == pytest.approx((0.1 - 0.1 + 0.0 - 0.5) / 4)
    assert h1["median_return"] == pytest.approx(-0.05)
    assert h1["claimed_rate"] is None
    # h=2 at bars 0,1,2: -1%, -10%, 99->120
    assert h2["count"] == 3
    assert h2["share_positive"] == pytest.approx(1 / 3)
    assert h2["median_return"] == pytest.approx(-0.01)


def test_event_table_with_no_forward_return_counts_zero():
    table = event_table(np.array([1.0, 2.0, 3.0]), {"late": np.array([False, False, True])},
                        horizons=(5,))
    row = table.row(0, named=True)
    assert row["count"] == 0 and row["share_positive"] is None and row["mean_return"] is None


# --------------------------------------------------------------------------- from a run


def zigzag_closes(n=40):
    """Up 2% a bar for 10 bars, down 1% a bar for 10, and again."""
    steps = np.where((np.arange(1, n) // 10) % 2 == 0, 1.02, 0.99)
    return 100 * np.concatenate(([1.0], np.cumprod(steps)))


class Dips(engine.Strategy):
    """Condition: the close fell on this bar. Labels: "down"/"up". Buys the first dip."""

    claims = {"entry_condition": 0.85, "down": {5: 0.7}, "entries": 0.5}

    def on_bar(self, bar):
        if bar.index == 0:
            return
        if self.position == 0 and self.data.close[-1] < self.data.close[-2]:
            self.buy(size=1)
        elif self.position > 0 and bar.index % 10 == 5:
            self.close()

    def entry_condition(self, data):
        close = data.close
        fell = np.zeros(len(close), dtype=bool)
        fell[1:] = close[1:] < close[:-1]
        return fell

    def entry_labels(self, data):
        return np.where(self.entry_condition(data), "down", "up")


def run_dips():
    close = zigzag_closes()
    return close, engine.run(Dips, data=make_bars([(c, c, c, c) for c in close]), cash=1e6)


def test_event_study_of_a_run_matches_direct_forward_returns():
    close, result = run_dips()
    table = result.event_study(horizons=(2, 5))
    rows = {(r["signal"], r["horizon"]): r for r in table.to_dicts()}
    assert [s for s, h in rows if h == 2] == ["all_bars", "entries", "entry_condition",
                                              "entry_episode", "label:down", "label:up"]
    fell = np.zeros(close.size, dtype=bool)
    fell[1:] = close[1:] < close[:-1]
    first = fell & ~np.concatenate(([False], fell[:-1]))
    for h in (2, 5):
        fwd = np.full(close.size, np.nan)
        fwd[:-h] = close[h:] / close[:-h] - 1
        for name, mask in (("entry_condition", fell), ("entry_episode", first),
                           ("label:down", fell), ("label:up", ~fell),
                           ("all_bars", np.ones_like(fell))):
            values = fwd[mask]
            values = values[np.isfinite(values)]
            row = rows[name, h]
            assert row["count"] == values.size, (name, h)
            assert row["share_positive"] == pytest.approx((values > 0).mean()), (name, h)
            assert row["mean_return"] == pytest.approx(values.mean()), (name, h)
            assert row["median_return"] == pytest.approx(np.median(values)), (name, h)
    # claims: by "entry_condition" (episodes inherit it), by label and horizon, "entries"
    assert rows["entry_condition", 2]["claimed_rate"] == 0.85
    assert rows["entry_episode", 5]["claimed_rate"] == 0.85
    assert rows["label:down", 5]["claimed_rate"] == 0.7
    assert rows["label:down", 2]["claimed_rate"] is None
    assert rows["label:up", 2]["claimed_rate"] is None
    assert rows["entries", 2]["claimed_rate"] == 0.5


def test_entries_are_the_bars_orders_were_placed_on():
    close, result = run_dips()
    # Falls on bars 10-19 and 30-39. Buys when flat on a fall: placed at bars 10, 16
    # (after the exit placed at 15 filled at 16), 30 and 36; each fills a bar later.
    placed = [10, 16, 30, 36]
    assert [str(t)[:10] for t in result.trades["entry_ts"]] == [
        "2024-01-12", "2024-01-18", "2024-02-01", "2024-02-07"]
    table = result.event_study(horizons=(1,))
    entries = table.filter(table["signal"] == "entries").row(0, named=True)
    expected = [close[t + 1] / close[t] - 1 for t in placed]
    assert entries["count"] == 4
    assert entries["mean_return"] == pytest.approx(np.mean(expected))
    assert entries["share_positive"] == 0.0


def test_several_symbols_are_pooled():
    n = 12
    frames = []
    for symbol, growth in (("UP", 1.01), ("DOWN", 0.98)):
        close = 50 * growth ** np.arange(n)
        frame = make_bars([(c, c, c, c) for c in close], symbol=symbol)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)

    class EveryThird(engine.Strategy):
        def on_bar(self, bar):
            pass

        def entry_condition(self, data):
            cond = np.zeros((len(data), len(data.symbols)), dtype=bool)
            cond[::3] = True
            return cond

    result = engine.run(EveryThird, data=data)
    row = result.event_study(horizons=(3,)).filter(
        pl_col_eq("signal", "entry_condition")).row(0, named=True)
    # bars 0, 3, 6 of both symbols have a 3-bar forward return (bar 9 is too late)
    assert row["count"] == 6
    assert row["share_positive"] == 0.5
    assert row["mean_return"] == pytest.approx(((1.01 ** 3 - 1) + (0.98 ** 3 - 1)) / 2)


def pl_col_eq(name, value):
    import polars as pl

    return pl.col(name) == value


def test_a_hook_with_a_wrong_shape_is_a_strategy_error():
    class Bad(engine.Strategy):
        def on_bar(self, bar):
            pass

        def entry_condition(self, data):
            return np.ones(3, dtype=bool)

    result = engine.run(Bad, data=make_bars([(1, 1, 1, 1)] * 5))
    with pytest.raises(StrategyError, match=r"Bad.entry_condition has shape \(3,\)"):
        result.event_study()


def test_strategy_without_hooks_has_base_rate_and_entries_only():
    close = zigzag_closes(30)
    result = engine.run("strategies/sma_cross.py", data=make_bars([(c, c, c, c) for c in close]),
                        fast=2, slow=4)
    signals = set(result.event_study()["signal"])
    assert signals <= {"all_bars", "entries"} and "all_bars" in signals
    assert math.isnan(result.metrics["beta"]) or result.metrics["beta"] >= 0
