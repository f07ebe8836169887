"""Batched sweeps (engine.research.batched, engine._core.batch): every set's row equals
the set's own engine.run, bit for bit, and the sweep's frame equals the per-set path's."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from engine._core.batch import numpy_sum

import engine
from engine.data.panel import Panel
from engine.data.synthetic import random_walk
from engine.research import batched
from engine.research.sweep_plan import parameter_sets, prepare, run_batch, run_each

FLEX = textwrap.dedent('''
    import numpy as np

    from engine import Signals, Strategy, param
    from engine.errors import ParameterError
    from engine.indicators import crossings, sma


    class Flex(Strategy):
        """SMA cross with every Signals option as a parameter."""

        fast: int = param(5, min=1)
        slow: int = param(20, min=2)
        size_type: str = param("all_cash", choices=("all_cash", "shares", "cash", "percent",
                                                    "target_percent"))
        amount: float = param(0.5)
        direction: str = param("long", choices=("long", "short"))
        per_bar: bool = param(False)
        fail: bool = param(False)

        def validate(self):
            if self.fast >= self.slow:
                raise ParameterError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")

        def signals(self, data):
            if self.fail:
                raise RuntimeError("this set fails inside signals")
            close = data.close
            entries, exits = crossings(sma(close, self.fast), sma(close, self.slow))
            if self.direction == "short":
                entries, exits = exits, entries
            size = self.amount
            if self.per_bar:
                every = np.arange(len(data)) % 4 == 0
                size = np.where(every if close.ndim == 1 else every[:, None], np.nan,
                                np.full(close.shape, self.amount))
            return Signals(entries=entries, exits=exits, size=size, size_type=self.size_type,
                           direction=self.direction)
''')


#: Flex with signals_batch: the same signals for a batch of sets (set j is column j).
#: A set with fail=True gets ordinary columns here; its own signals raise, and the
#: sweep's check of the hook sends it to the per-set path, which gives its error row.
FLEX_BATCH = FLEX + textwrap.indent(textwrap.dedent('''

    @classmethod
    def signals_batch(cls, data, sets):
        close = data.close
        fast = sets.map(sma, close, sets.fast)
        slow = sets.map(sma, close, sets.slow)
        up, down = crossings(fast, slow)
        per_set = (1, len(sets)) + ((1,) if close.ndim == 2 else ())
        short = np.asarray(sets.direction == "short").reshape(per_set)
        entries, exits = np.where(short, down, up), np.where(short, up, down)
        amount = np.asarray(sets.amount, dtype=float).reshape(per_set)
        per_bar = np.asarray(sets.per_bar, dtype=bool).reshape(per_set)
        every = (np.arange(len(data)) % 4 == 0).reshape((-1,) + (1,) * (len(per_set) - 1))
        size = np.where(per_bar & every, np.nan, np.broadcast_to(amount, entries.shape))
        return Signals(entries=entries, exits=exits, size=size,
                       size_type=list(sets.size_type), direction=list(sets.direction))
'''), "    ")


@pytest.fixture(scope="module", params=["signals", "signals_batch"])
def flex(request, tmp_path_factory):
    """Flex, whose batched sweeps call signals per set, or signals_batch per batch: one
    suite checks both against engine.run."""
    path = tmp_path_factory.mktemp("batched") / f"flex_{request.param}.py"
    path.write_text(FLEX if request.param == "signals" else FLEX_BATCH)
    return path


def _with_ties(panel: Panel) -> Panel:
    """The walk with flat stretches (equal closes: moving averages tie) and missing opens."""
    fields = {k: np.array(v) for k, v in panel.fields.items()}
    for a in range(40, fields["close"].shape[0], 97):
        fields["close"][a:a + 25] = fields["close"][a]
        fields["open"][a:a + 25] = fields["close"][a]
        fields["high"][a:a + 25] = fields["close"][a]
        fields["low"][a:a + 25] = fields["close"][a]
    fields["open"][7::53] = np.nan
    return Panel(ts=np.array(panel.ts), symbols=panel.symbols, fields=fields,
                 source="ties", meta=dict(panel.meta))


def _same_metrics(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if math.isnan(x) and math.isnan(y):
            continue
        if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
            return False
    return True


def _compare(strategy, grid, data, **options):
    """The batched rows against engine.run per set (the per-set path), row by row."""
    plan = prepare(strategy, parameter_sets(grid), data, options)
    alone = [tuple(r[:3]) for r in run_each(plan.cls, plan.panels, plan.options, plan.tasks)]
    before = dict(batched.COUNTS)
    together = run_batch(plan.cls, plan.panels, plan.options, plan.tasks)
    ran = {k: batched.COUNTS[k] - before[k] for k in before}
    # every set that succeeds alone ran batched, unless its account left the model
    succeeded = sum(m is not None for _, m, _ in alone)
    assert ran["batched"] >= succeeded * 0.8, ran
    if plan.cls.has_batch_path():  # signals_batch gave the signals of every batched set
        assert ran["signals_batch"] >= ran["batched"] > 0, ran
    else:
        assert ran["signals_batch"] == 0
    assert [r[0] for r in together] == [r[0] for r in alone]
    for (row, m1, e1), (_, m2, e2, *_) in zip(alone, together, strict=True):
        assert e1 == e2, (row, e1, e2)
        if m1 is None:
            assert m2 is None
        else:
            assert _same_metrics(m1, m2), (row, {k: (m1[k], m2[k]) for k in m1
                                                 if not _same_metrics({k: m1[k]}, {k: m2[k]})})
    return alone


def test_pairwise_sum_is_numpys():
    rng = np.random.default_rng(3)
    for n in [*range(0, 140), 255, 256, 257, 1000, 2520, 65536]:
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6)
        assert numpy_sum(x) == np.sum(x)


GRID = {"fast": [2, 3, 5, 8, 20], "slow": [3, 5, 10, 21, 5000]}  # fast >= slow raises


@pytest.mark.parametrize("options", [
    {},
    {"fill": "close"},
    {"commission": 0.001, "slippage_bps": 3.0, "commission_fixed": 1.0},
    {"commission_minimum": 5.0, "commission_per_share": 0.01, "slippage_fixed": 0.02},
    {"fractional": True, "cash": 12_345.678},
    {"risk_free": 0.03, "periods_per_year": 365},
])
def test_rows_equal_runs_alone_single_symbol(flex, options):
    data = _with_ties(random_walk(700, seed=11))
    rows = _compare(flex, GRID, data, audit="off", **options)
    errors = [e for _, _, e in rows if e]
    assert errors and all("must be shorter" in e for e in errors)
    never = [m for _, m, _ in rows if m and m["trades"] == 0]
    assert never  # slow=5000 never fires: a row of a flat account
    assert any(m and m["trades"] > 3 for _, m, _ in rows)


@pytest.mark.parametrize("size_type,amount", [
    ("shares", 7.0), ("cash", 2_500.0), ("percent", 0.3), ("target_percent", 0.4),
    ("shares", 0.0),                                           # every entry rejected
])
@pytest.mark.parametrize("direction", ["long", "short"])
def test_rows_equal_runs_alone_size_types_and_shorts(flex, size_type, amount, direction):
    data = _with_ties(random_walk(500, 3, seed=5))
    grid = {"fast": [2, 4, 9], "slow": [6, 30], "per_bar": [False, True],
            "size_type": size_type, "amount": amount, "direction": direction}
    rows = _compare(flex, grid, data, shorting=True, borrow_rate=0.05, commission=0.0005,
                    fill="close" if direction == "short" else "open")
    if amount == 0.0:
        assert all(m["rejected"] > 0 for _, m, _ in rows if m and m["trades"] == 0)


def test_sets_that_raise_and_short_without_shorting(flex):
    data = random_walk(400, 2, seed=2)
    grid = {"fast": [3, 30], "slow": [10], "fail": [False, True], "direction": ["short"]}
    rows = _compare(flex, grid, data)  # shorting off: every short entry is rejected
    assert any(e and "fails inside signals" in e for _, _, e in rows)
    assert any(m and m["rejected"] > 0 for _, m, _ in rows)


def test_sweep_frames_identical_batched_or_not(flex, monkeypatch):
    data = _with_ties(random_walk(600, seed=4))
    grid = {"fast": [2, 5, 10, 20], "slow": [5, 10, 20, 40], "commission": [0.0, 0.002]}
    monkeypatch.setenv(batched.ENV, "0")
    off = engine.sweep(flex, grid, data=data, n_jobs=1, progress=False, sort_by="sharpe")
    monkeypatch.setenv(batched.ENV, "1")
    on = engine.sweep(flex, grid, data=data, n_jobs=1, progress=False, sort_by="sharpe")
    assert off.columns == on.columns and off.dtypes == on.dtypes
    assert off.equals(on, null_equal=True)
    assert off["error"].is_not_null().sum() == 12  # fast >= slow
    assert pl.Series(off["trades"]).drop_nulls().max() > 0


def test_sma_cross_on_sp500_equals_runs_alone():
    _compare("strategies/sma_cross.py", {"fast": [2, 10, 50], "slow": [20, 100, 200]},
             None, start="2015-01-01")


def test_event_strategy_and_unsupported_options_take_the_per_set_path(flex, monkeypatch):
    data = random_walk(200, seed=1)
    calls = []
    monkeypatch.setattr(batched, "_start_group", lambda *a: calls.append(a) or (lambda: []))
    plan = prepare("strategies/fear_contrarian.py", [{}], None, {})
    assert not plan.cls.has_vector_path()        # an event-path strategy
    run_batch(plan.cls, plan.panels, plan.options, plan.tasks)
    for options in ({"mode": "event"},):
        plan = prepare(flex, parameter_sets({"fast": [2]}), data, options)
        rows = run_batch(plan.cls, plan.panels, plan.options, plan.tasks)
        assert rows[0][2] is not None  # Flex has no on_bar: the per-set path's error
    assert calls == []


def test_indicator_memo_reuses_and_never_keys_writeable_arrays():
    from engine.strategy.indicators import sma

    panel = random_walk(300, seed=9)
    memo = batched.IndicatorMemo().for_panel(panel)
    close = panel.fields["close"][:, 0]
    memoised = memo.wrap(sma)
    first = memoised(close, 10)
    second = memoised(close, 10)
    assert memo.hits == 1 and np.array_equal(first, second, equal_nan=True)
    first[:] = 0.0  # a caller writing into its copy changes no other caller's
    assert np.array_equal(memoised(close, 10), sma(close, 10), equal_nan=True)
    mine = np.array(close)
    memoised(mine, 10)
    mine[:] = 1.0
    assert np.array_equal(memoised(mine, 10), sma(mine, 10), equal_nan=True)
    assert memo.hits == 2  # the writeable array was never looked up
    assert memoised(close[:100], 10).shape == (100,)  # a prefix is its own key
    memo.for_panel(object())
    assert memo.results == {}


def test_instance_factory_builds_what_the_class_builds(flex):
    from engine.strategy.plugins import load_strategy

    cls = load_strategy(flex)
    make = batched.instance_factory(cls)
    for given in ({}, {"fast": 3, "slow": "40"}, {"size_type": "cash", "amount": 7}):
        assert vars(make(**given)) == vars(cls(**given))
    for bad in ({"fast": 9, "slow": 4}, {"nope": 1}, {"size_type": "all"}):
        with pytest.raises(Exception) as mine:
            make(**bad)
        with pytest.raises(Exception) as theirs:
            cls(**bad)
        assert type(mine.value) is type(theirs.value) and str(mine.value) == str(theirs.value)


def test_plain_signal_settings_match_the_runs():
    from engine.backtest.run import SIZE_TYPES

    assert batched.SIZE_TYPES == SIZE_TYPES
    assert set(batched.SIZE_TYPES) == set(__import__("engine._core.batch").
                                          _core.batch.SIZE_MODES)


LEAKY = textwrap.dedent('''
    import numpy as np

    from engine import Signals, Strategy, param


    class Leaky(Strategy):
        """Buys the day before a rise: it reads tomorrow's close."""

        hold: int = param(1, min=1)
        scale: int = param(1, min=1)

        def signals(self, data):
            close = np.asarray(data.close, dtype=float)
            tomorrow = np.append(close[1:], close[-1])
            entries = tomorrow > close
            exits = np.roll(entries, self.hold)
            return Signals(entries=entries, exits=exits)
''')


def test_a_leak_found_in_a_batch_is_reported_and_every_later_set_audited(tmp_path):
    path = tmp_path / "leaky.py"
    path.write_text(LEAKY)
    data = random_walk(300, seed=3)
    frame = engine.sweep(path, {"hold": [1, 2, 3], "scale": [1, 2, 3]}, data=data, n_jobs=1,
                         progress=False)
    errors = frame["error"].to_list()
    assert errors[0] and "reads the future" in errors[0]
    # after the first leak every set is audited, as one set alone would be
    assert all(e and "reads the future" in e for e in errors)


def test_set_summaries_equal_the_per_set_paths(flex):
    from engine.research.sweep_plan import SUMMARY_OPTION

    assert batched.SUMMARY_OPTION == SUMMARY_OPTION
    data = _with_ties(random_walk(400, 2, seed=8))
    plan = prepare(flex, parameter_sets({"fast": [2, 5, 9], "slow": [4, 20]}), data, {})
    plan.options[SUMMARY_OPTION] = True
    alone = run_each(plan.cls, plan.panels, plan.options, plan.tasks)
    before = batched.COUNTS["batched"]
    together = run_batch(plan.cls, plan.panels, plan.options, plan.tasks)
    assert batched.COUNTS["batched"] - before == 4
    assert sum(o.extra is not None for o in together) == 4  # fast 5 and 9 >= slow 4 fail
    for one, many in zip(alone, together, strict=True):
        assert (one.error, one.extra is None) == (many.error, many.extra is None)
        if one.extra is not None:
            assert _bits(one.extra) == _bits(many.extra)


def test_set_summaries_in_threads_equal_the_per_set_path(flex):
    from engine.research.sweep_plan import SUMMARY_OPTION, THREADS_OPTION

    data = random_walk(300, seed=9)
    plan = prepare(flex, parameter_sets({"fast": list(range(2, 10)),
                                         "slow": list(range(12, 21))}), data, {})
    plan.options[SUMMARY_OPTION] = True
    alone = run_each(plan.cls, plan.panels, plan.options, plan.tasks)
    before = batched.COUNTS["batched"]
    together = run_batch(plan.cls, plan.panels, {**plan.options, THREADS_OPTION: 2},
                         plan.tasks)
    assert batched.COUNTS["batched"] - before == 72 >= 2 * batched.SETS_PER_THREAD
    for one, many in zip(alone, together, strict=True):
        assert one.error is None and many.error is None
        assert _bits(one.extra) == _bits(many.extra)


def _bits(values) -> list:
    """Each float's bit pattern (so -0.0 differs from 0.0), every NaN as one value."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), -1, values.view(np.int64)).tolist()


def test_compiled_summaries_equal_set_summaries_bit_for_bit():
    from engine._core.batch import returns_summaries

    from engine.analysis.stats import block_edges, set_summaries

    rng = np.random.default_rng(5)
    r = rng.normal(0.0003, 0.012, size=(6, 997))
    r[0, ::37] = np.nan                           # no return on those bars
    r[1, :50] = 0.0                               # flat at the start
    r[2, ::3] = -1e-110                           # cubes underflow to -0.0
    r[3, :70] = -1e-110                           # the first block's sum of cubes is -0.0
    r[4, 10:500] = rng.normal(0.0, 40.0, 490)     # wild values: the order of sums shows
    r[5, -1] = np.inf
    for n_blocks in (16, 2, 1):
        edges = block_edges(r.shape[1], n_blocks)
        expected = set_summaries(r, n_blocks)
        if n_blocks == 16:
            assert math.copysign(1.0, expected[3, 1 + 3 * n_blocks]) == -1.0
        assert _bits(returns_summaries(r, edges)) == _bits(expected)
        # a set's row does not depend on the others (nor does NumPy's)
        assert _bits(returns_summaries(r[3:4].copy(), edges)) == _bits(expected[3:4])
    short = r[:, :5].copy()                       # fewer bars than blocks: counts only
    found = returns_summaries(short, block_edges(5, 16))
    assert _bits(found) == _bits(set_summaries(short, 16))
    assert found[1, 0] == 5 and np.isnan(found[:, 1:]).all()
    with pytest.raises(ValueError, match="summary_edges must run from 0"):
        returns_summaries(r, block_edges(100, 16))
    with pytest.raises(ValueError, match="must not decrease"):
        returns_summaries(r, np.array([0, 600, 500, 997], dtype=np.intp))


STOPS = textwrap.dedent('''
    from engine import Signals, Strategy, param
    from engine.indicators import crossings, sma


    class Stops(Strategy):
        fast: int = param(3, min=1)
        stop: float = param(0.0)

        def signals(self, data):
            entries, exits = crossings(sma(data.close, self.fast), sma(data.close, 20))
            if self.stop > 0:  # an exit option the batched pass does not model
                return Signals(entries=entries, exits=exits, stop_loss=self.stop)
            return Signals(entries=entries, exits=exits)
''')


def test_signals_with_exit_options_take_the_per_set_path(tmp_path):
    path = tmp_path / "stops.py"
    path.write_text(STOPS)
    data = random_walk(400, seed=6)
    plan = prepare(path, parameter_sets({"fast": [2, 5], "stop": [0.0, 0.02]}), data, {})
    alone = run_each(plan.cls, plan.panels, plan.options, plan.tasks)
    before = dict(batched.COUNTS)
    together = run_batch(plan.cls, plan.panels, plan.options, plan.tasks)
    assert batched.COUNTS["batched"] - before["batched"] == 2
    assert batched.COUNTS["alone"] - before["alone"] == 2
    for one, many in zip(alone, together, strict=True):
        assert one.error is None and many.error is None
        assert _same_metrics(one.metrics, many.metrics)


def test_small_batched_sweeps_run_in_this_process_unless_workers_are_asked(monkeypatch):
    import engine.research.pool as pool

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(pool.WorkerPool, "run", no_pool)
    sma = str(Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py")
    bars = random_walk(300, seed=4)
    grid = {"fast": [3, 5, 8], "slow": [20, 30, 40, 50]}
    # Every core asked for (-1): 12 batched sets are fewer than one worker's worth.
    table = engine.sweep(sma, grid, data=bars, n_jobs=-1, progress=False)
    assert table["error"].is_null().all() and table.height == 12
    with pytest.raises(AssertionError, match="worker pool was started"):
        engine.sweep(sma, grid, data=bars, n_jobs=2, progress=False)       # asked: 2
    with pytest.raises(AssertionError, match="worker pool was started"):
        engine.sweep(sma, grid, data=bars, n_jobs=-1, progress=False, mode="event")


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux")
                    or __import__("platform").libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_batch_memory_is_reused_instead_of_faulted_in_again():
    import subprocess
    import sys

    script = textwrap.dedent('''
        import resource, sys
        import engine
        from engine.data.synthetic import random_walk
        from engine.research import batched
        bars = random_walk(2520, seed=1)
        grid = {"fast": list(range(2, 22)), "slow": list(range(30, 60, 2))}
        sweep = lambda: engine.sweep("strategies/sma_cross.py", grid, data=bars, n_jobs=1,
                                     progress=False, stats=False)
        sweep()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        sweep()
        print(batched.keep_freed_memory(),
              resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    ''')
    root = Path(__file__).resolve().parents[1]
    faults = {}
    for setting in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                             text=True, check=True,
                             env={**__import__("os").environ, batched.MALLOC_ENV: setting})
        made, count = out.stdout.split()
        assert made == ("True" if setting == "1" else "False")
        faults[setting] = int(count)
    # 300 sets: several megabytes of signals per batch, mapped afresh without the setting
    assert faults["1"] * 4 < faults["0"], faults


def test_sets_split_across_threads_give_the_rows_of_one_pass():
    from engine.research.sweep_plan import THREADS_OPTION

    data = _with_ties(random_walk(400, 2, seed=12))
    plan = prepare("strategies/sma_cross.py",
                   parameter_sets({"fast": list(range(2, 22)), "slow": list(range(23, 33))}),
                   data, {"commission": 0.001})
    one = run_batch(plan.cls, plan.panels, {**plan.options, THREADS_OPTION: 1}, plan.tasks)
    three = run_batch(plan.cls, plan.panels, {**plan.options, THREADS_OPTION: 3}, plan.tasks)
    assert len(plan.tasks) == 200 and 200 // batched.SETS_PER_THREAD >= 3
    for a, b in zip(one, three, strict=True):
        assert a.error is None and b.error is None
        assert _same_metrics(a.metrics, b.metrics)
