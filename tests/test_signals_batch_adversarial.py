"""Adversarial checks of Strategy.signals_batch in sweeps (commit a81ba2f).

The reference is the per-set path (ENGINE_SWEEP_BATCHED=0: engine.run per set). The
promise under test: a sweep's frame is the reference bit for bit whether or not the
strategy defines signals_batch; a hook that disagrees with signals, raises or returns
malformed arrays gives error rows saying what and where; never silent wrong numbers.
"""

from __future__ import annotations

import textwrap

import numpy as np
import polars as pl
import pytest

import engine
from engine.data.panel import Panel
from engine.data.synthetic import random_walk
from engine.research import batched

HEAD = '''
import numpy as np

from engine import Signals, Strategy, param
from engine.errors import ParameterError
from engine.indicators import crossings, sma
'''

#: SMA cross with sizes, directions and parameters of every type; ``layout`` changes
#: only how signals_batch hands its arrays over (signals ignores it).
RICH = HEAD + '''

class Rich(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)
    size_type: str = param("all_cash", choices=("all_cash", "shares", "cash", "percent",
                                                "target_percent"))
    amount: float = param(0.5)
    direction: str = param("long", choices=("long", "short"))
    per_bar: bool = param(False)
    layout: str = param("c", choices=("c", "f", "strided", "uint8", "int64", "list",
                                      "size_per_set", "size_per_bar"))

    def validate(self):
        if self.fast >= self.slow:
            raise ParameterError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")

    def signals(self, data):
        entries, exits = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
        if self.direction == "short":
            entries, exits = exits, entries
        size = self.amount
        if self.per_bar:
            every = np.arange(len(data)) % 3 == 0
            size = np.where(every if data.close.ndim == 1 else every[:, None], np.nan,
                            np.full(data.close.shape, self.amount))
        return Signals(entries=entries, exits=exits, size=size, size_type=self.size_type,
                       direction=self.direction)

    @classmethod
    def signals_batch(cls, data, sets):
        close = data.close
        up, down = crossings(sets.map(sma, close, sets.fast), sets.map(sma, close, sets.slow))
        per_set = (1, len(sets)) + ((1,) if close.ndim == 2 else ())
        short = np.asarray(sets.direction == "short").reshape(per_set)
        entries, exits = np.where(short, down, up), np.where(short, up, down)
        amount = np.asarray(sets.amount, dtype=float)
        every = (np.arange(len(data)) % 3 == 0).reshape((-1,) + (1,) * (len(per_set) - 1))
        per_bar = np.asarray(sets.per_bar, dtype=bool).reshape(per_set)
        size = np.where(per_bar & every, np.nan, np.broadcast_to(amount.reshape(per_set),
                                                                 entries.shape))
        layout = sets.layout[0]
        if layout == "f":
            entries, exits, size = (np.asfortranarray(a) for a in (entries, exits, size))
        elif layout == "strided":
            entries = np.repeat(entries, 2, axis=0)[::2]
            exits = np.repeat(exits, 2, axis=0)[::2]
        elif layout == "uint8":
            entries, exits = entries.astype(np.uint8), exits.astype(np.uint8)
        elif layout == "int64":
            entries, exits = entries.astype(np.int64), exits.astype(np.int64)
        elif layout == "size_per_set" and not per_bar.any():
            size = amount
        elif layout == "size_per_bar":
            size = np.ascontiguousarray(size)
        return Signals(entries=entries, exits=exits, size=size,
                       size_type=list(sets.size_type), direction=list(sets.direction))
'''

#: Rich without signals_batch: what each set gives alone.
PLAIN = RICH.split("    @classmethod")[0].replace("class Rich", "class Plain")


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    path = tmp_path_factory.mktemp("adv") / "rich.py"
    path.write_text(RICH)
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    path = tmp_path_factory.mktemp("adv") / "plain.py"
    path.write_text(PLAIN)
    return path


def _write(tmp_path, source: str, name: str = "strat"):
    path = tmp_path / f"{name}.py"
    path.write_text(HEAD + textwrap.dedent(source))
    return path


def _sweep(strategy, grid, data, monkeypatch, batched_on: bool, **options):
    monkeypatch.setenv(batched.ENV, "1" if batched_on else "0")
    options.setdefault("n_jobs", 1)
    return engine.sweep(strategy, grid, data=data, progress=False, **options)


def _assert_same(strategy, grid, data, monkeypatch, **options):
    """The batched frame equals the per-set path's (bit for bit, nulls and NaNs)."""
    before = dict(batched.COUNTS)
    on = _sweep(strategy, grid, data, monkeypatch, True, **options)
    used = batched.COUNTS["signals_batch"] - before["signals_batch"]
    off = _sweep(strategy, grid, data, monkeypatch, False, **options)
    assert off.columns == on.columns and off.dtypes == on.dtypes
    if not off.equals(on, null_equal=True):
        bad = [c for c in off.columns if not off[c].equals(on[c], null_equal=True)]
        raise AssertionError(f"columns differ: {bad}\n{off.select(bad[:4])}\n"
                             f"{on.select(bad[:4])}")
    return off, on, used


def _ties(panel: Panel) -> Panel:
    fields = {k: np.array(v) for k, v in panel.fields.items()}
    for a in range(30, fields["close"].shape[0], 71):
        for f in ("open", "high", "low", "close"):
            fields[f][a:a + 15] = fields["close"][a]
    return Panel(ts=np.array(panel.ts), symbols=panel.symbols, fields=fields,
                 source="ties", meta=dict(panel.meta))


# ----------------------------------------------------------------- wrong numbers


COMBO = '''
class Combo(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)

    def signals(self, data):
        e, x = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
        return Signals(entries=e, exits=x)

    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        wrong = (np.asarray(sets.fast) == 5) & (np.asarray(sets.slow) == 30)
        return Signals(entries=np.where(wrong[None, :], x, e), exits=x)
'''


def test_a_hook_wrong_only_for_a_combination_of_checked_values_is_found_by_the_check(
        tmp_path, monkeypatch):
    # fast=5 and slow=30 are each checked against signals (in (5, 20) and (2, 30)), so
    # the sweep does not compare the set (5, 30), wrong in the hook: its row is the
    # hook's (the documented limit: every value is checked, not every combination).
    # check_signals_batch compares every set and names it.
    from engine.errors import StrategyError

    path = _write(tmp_path, COMBO)
    data = random_walk(400, seed=3)
    grid = {"fast": [2, 5], "slow": [20, 30]}
    on = _sweep(path, grid, data, monkeypatch, True)
    off = _sweep(path, grid, data, monkeypatch, False)
    for fast, slow in ((2, 20), (2, 30), (5, 20)):
        pick = (pl.col("fast") == fast) & (pl.col("slow") == slow)
        assert on.filter(pick).equals(off.filter(pick), null_equal=True)
    with pytest.raises(StrategyError, match=r"disagrees with Combo.signals for the set "
                                            r"fast=5, slow=30: entries differ at bar"):
        engine.check_signals_batch(path, grid, data=data)
    assert engine.check_signals_batch(path, {"fast": [2], "slow": [20, 30]}, data=data) == 2


# ----------------------------------------------------------------- equality battery


@pytest.mark.parametrize("layout", ["c", "f", "strided", "uint8", "int64",
                                    "size_per_set", "size_per_bar"])
def test_three_symbols_every_layout_equals_runs_alone(rich, layout, monkeypatch):
    # 3 symbols, mixed size types and directions per set, NaN sizes on some bars, and
    # the hook's arrays F-ordered, strided, uint8/int64 or sizes per set / per bar.
    data = _ties(random_walk(260, 3, seed=7))
    grid = {"fast": [2, 4, 9], "slow": [6, 30], "size_type": ["shares", "percent"],
            "amount": [0.3, 5.0], "direction": ["long", "short"], "per_bar": [False, True],
            "layout": [layout]}
    _, on, used = _assert_same(rich, grid, data, monkeypatch, shorting=True,
                               commission=0.001)
    assert used > 0 and on["error"].null_count() < on.height


def test_with_or_without_the_hook_the_batched_frames_are_equal(rich, plain, monkeypatch):
    # the same class without signals_batch, both batched: the same frame
    data = _ties(random_walk(260, 3, seed=23))
    grid = {"fast": [2, 4, 9], "slow": [6, 30], "size_type": ["shares", "target_percent"],
            "amount": [0.3, 5.0], "direction": ["long", "short"], "per_bar": [False, True]}
    with_hook = _sweep(rich, grid, data, monkeypatch, True, shorting=True)
    without = _sweep(plain, grid, data, monkeypatch, True, shorting=True)
    assert with_hook.equals(without, null_equal=True)


def test_symbol_order_of_the_panel_is_kept(rich, monkeypatch):
    # the same bars with the symbols in reverse order: still equal to runs alone
    walk = _ties(random_walk(200, 3, seed=2))
    order = [2, 0, 1]
    data = Panel(ts=np.array(walk.ts), symbols=tuple(f"Z{9 - i}" for i in range(3)),
                 fields={k: np.ascontiguousarray(np.array(v)[:, order])
                         for k, v in walk.fields.items()},
                 source="shuffled", meta=dict(walk.meta))
    _assert_same(rich, {"fast": [2, 3, 5], "slow": [8, 13]}, data, monkeypatch)


def test_run_options_in_the_grid_with_the_hook(rich, monkeypatch):
    # commission and fill are run options: groups per value, the hook per group
    grid = {"fast": [2, 3, 8], "slow": [5, 21], "commission": [0.0, 0.003],
            "fill": ["open", "close"], "size_type": ["all_cash", "cash"], "amount": [900.0]}
    _assert_same(rich, grid, _ties(random_walk(300, seed=5)), monkeypatch)


def test_validate_rejecting_most_sets_and_a_single_set(rich, monkeypatch):
    data = random_walk(150, seed=8)
    off, _, _ = _assert_same(rich, {"fast": list(range(2, 30)), "slow": [3, 12]}, data,
                             monkeypatch)
    assert off["error"].null_count() < off.height // 4
    _assert_same(rich, {"fast": [9], "slow": [4]}, data, monkeypatch)   # one set, invalid
    _assert_same(rich, {"fast": [3], "slow": [40]}, data, monkeypatch)  # one set, valid


def test_more_sets_than_a_thread_takes_equal_runs_alone(rich):
    # one batch of 600 sets with 4 threads: simulate runs on column ranges (_in_threads)
    from engine.research.sweep_plan import (
        THREADS_OPTION,
        parameter_sets,
        prepare,
        run_batch,
        run_each,
    )

    grid = {"fast": list(range(2, 22)), "slow": list(range(25, 40)),
            "direction": ["long", "short"]}
    plan = prepare(rich, parameter_sets(grid), _ties(random_walk(120, seed=9)),
                   {"shorting": True})
    before = batched.COUNTS["signals_batch"]
    split = run_batch(plan.cls, plan.panels, {**plan.options, THREADS_OPTION: 4}, plan.tasks)
    assert batched.COUNTS["signals_batch"] - before == 600
    alone = run_each(plan.cls, plan.panels, plan.options, plan.tasks)
    for a, b in zip(alone, split, strict=True):
        assert a[0] == b[0] and a[2] == b[2]
        assert repr(a[1]) == repr(b[1]), a[0]


def test_stats_summaries_equal_with_and_without_hook(rich, monkeypatch):
    grid = {"fast": [2, 3, 5, 8], "slow": [13, 21, 34]}
    off, on, used = _assert_same(rich, grid, random_walk(300, seed=10), monkeypatch,
                                 stats=True)
    assert used > 0
    assert "dsr" in on.columns and repr(off.pbo) == repr(on.pbo)


# ----------------------------------------------------------------- look-ahead

CROSS = '''
class Leaky(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)

    def signals(self, data):
        e, x = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
        return Signals(entries=e, exits=x)
'''


def test_signals_that_read_the_future_are_refused_even_when_the_hook_does_not(
        tmp_path, monkeypatch):
    # signals changes its past when the data is cut short (engine.run's audit refuses it
    # with a LookAheadError); the hook gives the same arrays on the whole data without
    # reading len(data). The sweep audits the hook, never signals: it gives numbers.
    path = _write(tmp_path, CROSS.replace(
        "        return Signals(entries=e, exits=x)\n",
        "        if len(data) < 250:\n            e = np.zeros_like(e)\n"
        "        return Signals(entries=e, exits=x)\n", 1) + CROSS_HOOK)
    data = random_walk(300, seed=4)
    with pytest.raises(engine.errors.LookAheadError):
        engine.run(path, data=data, fast=3, slow=10)
    off = _sweep(path, {"fast": [3], "slow": [10, 20]}, data, monkeypatch, False)
    assert off["error"].str.contains("future|look-ahead|reads").all()
    on = _sweep(path, {"fast": [3], "slow": [10, 20]}, data, monkeypatch, True)
    assert on["error"].to_list() == off["error"].to_list(), on.select("slow", "sharpe", "error")


@pytest.mark.parametrize("leak_when", ["fast == 7", "True"])
def test_a_hook_whose_past_changes_with_the_future_still_gives_the_rows_of_signals(
        tmp_path, monkeypatch, leak_when):
    # The hook changes its signals on shorter data (for fast=7 only, or always); signals
    # does not. The rows come from the hook's columns on the whole data, which the sweep
    # checks equal to signals' (audited by cuts): they are engine.run's.
    path = _write(tmp_path, CROSS + f'''
    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        fast = np.asarray(sets.fast)
        if len(data) < 300 and np.any({leak_when}):
            e = np.zeros_like(e)   # its past changes when the future is missing
        return Signals(entries=e, exits=x)
''')
    data = random_walk(300, seed=4)
    grid = {"fast": [2, 3, 7], "slow": [10, 20]}
    off, on, used = _assert_same(path, grid, data, monkeypatch)
    assert on["error"].null_count() == on.height and used > 0


# ----------------------------------------------------------------- malformed hooks

@pytest.mark.parametrize("returned,expected", [
    ("Signals(entries=e[:, :1], exits=x)", r"entries has shape \(300, 1\); expected \(300, 8\)"),
    ("Signals(entries=e.T, exits=x)", r"entries has shape \(8, 300\)"),
    ("Signals(entries=e, exits=None)", r"exits has shape None"),
    ("Signals(entries=e.astype(float), exits=x)", r"entries must be boolean; got dtype float64"),
    ("Signals(entries=e, exits=x, size=np.ones(3))", r"size has shape \(3,\)"),
    ("Signals(entries=e, exits=x, size_type=['shares'])", r"size_type must be one of"),
    ("Signals(entries=e, exits=x, direction='sideways')", r"direction must be one of"),
    ("(e, x)", r"must return engine.Signals.*got tuple"),
    ("Signals(entries=e, exits=x, stop_loss=0.05)", r"sets stop_loss"),
])
def test_malformed_hook_results_are_error_rows_saying_what(tmp_path, monkeypatch, returned,
                                                           expected):
    path = _write(tmp_path, CROSS + f'''
    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return {returned}
''')
    # 64 sets: batches of 8 (a small sweep gives the hook one set at a time)
    grid = {"fast": list(range(2, 10)), "slow": list(range(20, 28))}
    on = _sweep(path, grid, random_walk(300, seed=1), monkeypatch, True)
    errors = on["error"].to_list()
    assert all(e is not None for e in errors), on.select("fast", "slow", "sharpe", "error")
    assert all("Leaky.signals_batch" in e for e in errors), errors[0]
    import re
    assert re.search(expected, errors[0]), errors[0]


def test_a_hook_raising_leaves_the_rows_of_signals_and_says_so(tmp_path, monkeypatch):
    # The batch whose hook call raises runs signals one by one (its rows are engine.run's),
    # the others keep the hook; a SweepWarning names the error, once, with a count.
    from engine.research.sweep import SweepWarning

    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        if 7 in sets.fast.tolist():
            raise ValueError("no sevens")
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=x)
''')
    grid = {"fast": list(range(2, 12)), "slow": list(range(20, 25))}  # batches of 7
    with pytest.warns(SweepWarning, match=r"Leaky.signals_batch raised ValueError: no sevens "
                                          r"\(.*strat.py, line \d+, in signals_batch\)"):
        off, on, used = _assert_same(path, grid, random_walk(300, seed=3), monkeypatch)
    assert on["error"].is_null().all() and 0 < used < on.height


# ----------------------------------------------------------------- backends


def test_two_worker_processes_give_the_frame_of_one(rich, monkeypatch):
    grid = {"fast": list(range(2, 10)), "slow": list(range(5, 30, 3)),
            "direction": ["long", "short"]}
    data = _ties(random_walk(250, 3, seed=12))
    one = _sweep(rich, grid, data, monkeypatch, True, shorting=True)
    two = _sweep(rich, grid, data, monkeypatch, True, shorting=True, n_jobs=2)
    assert one.equals(two, null_equal=True)


def test_a_correct_hook_gives_the_same_rows_however_the_sets_are_split(rich, tmp_path):
    # Which sets a worker compares with signals depends on the batches it got; with a
    # hook that keeps its contract that changes nothing. Two worker processes emulated
    # in this one (their state cleared between them), deterministic. (A hook wrong for
    # unchecked combinations would give split-dependent rows: check_signals_batch,
    # tested above, is how to rule that out.)
    from engine.research.sweep_plan import batch_limit, batches, parameter_sets, prepare, run_batch

    grid = {"fast": list(range(2, 10)), "slow": list(range(20, 40, 2))}
    plan = prepare(rich, parameter_sets(grid), random_walk(300, seed=3), {})

    def rows(workers: int) -> dict:
        out = {}
        parts = batches(plan.tasks, workers, batch_limit(plan))
        for w in range(workers):
            batched._AUDITED.clear()            # a fresh worker process
            for part in parts[w::workers]:
                for row, metrics, error, *_ in run_batch(plan.cls, plan.panels,
                                                         plan.options, part):
                    out[row] = (repr(metrics), error)
        return out

    one, two = rows(1), rows(2)
    differ = [plan.tasks[r][2] for r in one if one[r] != two[r]]
    assert not differ, differ[:3]


# ----------------------------------------------------------------- other entry points


def test_walk_forward_with_the_hook_equals_the_per_set_path(rich, monkeypatch):
    grid = {"fast": [2, 3, 5, 8], "slow": [10, 21, 30], "direction": ["long", "short"]}
    data = _ties(random_walk(500, 3, seed=13))
    out = []
    for on in (False, True):
        monkeypatch.setenv(batched.ENV, "1" if on else "0")
        wf = engine.walk_forward(rich, grid, train=150, test=70, data=data, n_jobs=1,
                                 progress=False, shorting=True)
        out.append(wf)
    off, on = out
    assert off.windows.equals(on.windows, null_equal=True)
    assert repr(off.in_sample) == repr(on.in_sample) and repr(off.metrics) == repr(on.metrics)
    assert off.equity.equals(on.equity, null_equal=True)


def test_optuna_with_the_hook_gives_the_per_set_rows(rich, monkeypatch):
    pytest.importorskip("optuna")
    data = random_walk(300, seed=14)
    kw = dict(method="optuna", trials=24, sort_by="total_return", seed=3, n_jobs=1,
              progress=False, data=data)
    grid = {"fast": [2, 3, 4, 5, 6, 7], "slow": [8, 12, 20, 30], "amount": [0.5]}
    monkeypatch.setenv(batched.ENV, "0")
    off = engine.sweep(rich, grid, **kw)
    monkeypatch.setenv(batched.ENV, "1")
    on = engine.sweep(rich, grid, **kw)
    assert off.equals(on, null_equal=True)


def test_stream_run_of_a_hook_strategy_equals_run(tmp_path):
    data = random_walk(400, seed=15)
    path = tmp_path / "bars.parquet"
    frame = pl.DataFrame({"date": data.ts, **{f: data.fields[f][:, 0] for f in
                                              ("open", "high", "low", "close", "volume")
                                              if f in data.fields}})
    frame.write_parquet(path)
    whole = engine.run("strategies/sma_cross.py", path, fast=3, slow=12)
    streamed = engine.stream_run("strategies/sma_cross.py", path, chunk_bars=97, fast=3,
                                 slow=12)
    assert streamed.metrics["final_equity"] == whole.metrics["final_equity"]


# ----------------------------------------------------------------- bookkeeping per worker

WHOLE_MEAN = '''
class Mean(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)

    def signals(self, data):
        # reads the future: the mean of the whole data (engine.run's audit refuses it)
        e, x = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
        return Signals(entries=e & (data.close > np.nanmean(data.close)), exits=x)

    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        above = (data.close > np.nanmean(data.close))[:, None]
        return Signals(entries=e & above, exits=x)
'''


def test_audit_in_the_grid_still_audits_the_cuts_sets(tmp_path, monkeypatch):
    # audit="off" sets mark their values as checked against signals; the audit="cuts"
    # group then audits nothing and a look-ahead strategy gets numbers
    path = _write(tmp_path, WHOLE_MEAN)
    data = random_walk(300, seed=6)
    grid = {"audit": ["off", "cuts"], "fast": [2, 3], "slow": [10, 20]}
    off, on, _ = _assert_same(path, grid, data, monkeypatch)
    assert off.filter(pl.col("audit") == "cuts")["error"].null_count() == 0


def test_a_second_sweep_on_the_same_data_audits_again(tmp_path, monkeypatch):
    path = _write(tmp_path, WHOLE_MEAN)
    data = random_walk(300, seed=6)
    grid = {"fast": [2, 3], "slow": [10, 20]}
    _sweep(path, grid, data, monkeypatch, True, audit="off")
    on = _sweep(path, grid, data, monkeypatch, True)        # audit="cuts", the default
    assert on["error"].null_count() == 0, on.select("fast", "slow", "sharpe", "error")


def test_a_hook_failure_does_not_leak_into_the_next_sweep(tmp_path, monkeypatch):
    # the hook is wrong for fast=9 only; the next sweep in this process, on the same
    # data and without fast=9, must not inherit the error rows (naming a set it lacks)
    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=np.where((np.asarray(sets.fast) == 9)[None, :], e, x))
''')
    data = random_walk(300, seed=3)
    first = _sweep(path, {"fast": [9], "slow": [20, 30]}, data, monkeypatch, True)
    assert first["error"].str.contains("disagrees").all()
    _assert_same(path, {"fast": [2, 3], "slow": [20, 30]}, data, monkeypatch)


def test_a_disagreement_names_the_set_bar_and_symbol(tmp_path, monkeypatch):
    # the hook flips one entry of the third symbol at bar 150 for slow=20
    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        e = e.copy()
        wrong = np.flatnonzero(np.asarray(sets.slow) == 20)
        if len(data) > 150:     # the audit's shorter prefixes have no bar 150
            e[150, wrong, 2] = ~e[150, wrong, 2]
        return Signals(entries=e, exits=x)
''')
    data = random_walk(300, 3, seed=3)
    on = _sweep(path, {"fast": [2, 3, 4, 5], "slow": [10, 20, 30, 40]}, data, monkeypatch,
                True)
    # (once a set disagrees, every later row of the worker is that error: by design)
    message = on.filter((pl.col("fast") == 2) & (pl.col("slow") == 20))["error"][0]
    day = str(np.datetime64(data.ts[150], "D"))
    assert "slow=20" in message and "bar 150" in message and day in message \
        and data.symbols[2] in message, message


# ----------------------------------------------------------------- ParameterSets.map


def test_map_does_not_mistake_true_for_1_or_1_0():
    # map's cache keys per-set values by ==, so True, 1 and 1.0 share one column
    from engine.strategy.base import VectorData
    from engine.strategy.parameter_sets import ParameterSets

    close = VectorData(random_walk(50, seed=1)).close

    def kind(x, v):
        return np.full(x.shape, {bool: 1.0, int: 2.0, float: 3.0}[type(v)])

    sets = ParameterSets([{"flag": True, "n": 1, "f": 1.0}], cache={})
    got = [sets.map(kind, close, sets[name])[0, 0] for name in ("flag", "n", "f")]
    assert got == [1.0, 2.0, 3.0]


def test_map_with_positional_and_keyword_per_set_values():
    from engine.strategy.parameter_sets import ParameterSets

    x = np.zeros(20)
    sets = ParameterSets([{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 1, "b": 4}], cache={})

    def g(x, a, b=0):
        return x + a * 10 + b

    assert sets.map(g, x, sets.a, b=sets.b)[0].tolist() == [12, 34, 14]
    assert sets.map(g, x, a=sets.a, b=sets.b)[0].tolist() == [12, 34, 14]
    assert sets.map(g, x, sets.b, b=sets.a)[0].tolist() == [21, 43, 41]
    assert sets.map(g, x, sets.a, 5)[0].tolist() == [15, 35, 15]


def test_crossings_on_sets_equal_crossings_per_column():
    from engine.indicators import crossings, sma
    from engine.strategy.parameter_sets import ParameterSets

    close = random_walk(200, 3, seed=2).fields["close"]
    sets = ParameterSets([{"f": f, "s": s} for f in (2, 5) for s in (7, 20)])
    fast, slow = sets.map(sma, close, sets.f), sets.map(sma, close, sets.s)
    up, down = crossings(fast, slow)
    for j in range(len(sets)):
        e, x = crossings(fast[:, j, :], slow[:, j, :])
        assert np.array_equal(up[:, j, :], e) and np.array_equal(down[:, j, :], x)
    up, _ = crossings(fast, 100.0)
    assert np.array_equal(up[:, 1, :], crossings(fast[:, 1, :], 100.0)[0])
    with pytest.raises(engine.errors.ParameterError, match="same shape"):
        crossings(fast, slow[:, :2])


def test_the_map_cache_does_not_keep_functions_made_per_call(tmp_path, monkeypatch):
    # sets.map(lambda w: sma(close, w), ...) makes a new function per batch: its results
    # can never be reused, yet each batch's columns stay in the worker's memo
    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        close = data.close
        e, x = crossings(sets.map(lambda w: sma(close, w), sets.fast),
                         sets.map(lambda w: sma(close, w), sets.slow))
        return Signals(entries=e, exits=x)
''')
    data = random_walk(500, seed=3)
    _sweep(path, {"fast": list(range(2, 42)), "slow": list(range(50, 80))}, data,
           monkeypatch, True)
    kept = batched._MEMO.columns
    assert len(kept) <= 4, f"{len(kept)} stores, " \
        f"{sum(m.nbytes for s in kept.values() for m in s.parts) / 1e6:.1f} MB"


# ----------------------------------------------------------------- parameter types

TYPED = HEAD + '''

class Typed(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)
    band: float = param(0.0)
    style: str = param("plain", choices=("plain", "banded"))
    invert: bool = param(False)
    cap: float = param(None, help="None or at most this many shares")

    def signals(self, data):
        gap = sma(data.close, self.fast) - sma(data.close, self.slow) * (1.0 + self.band)
        if self.style == "banded":
            gap = gap - self.band
        e, x = crossings(gap, 0.0)
        if self.invert:
            e, x = x, e
        size = 10.0 if self.cap is None else float(self.cap)
        return Signals(entries=e, exits=x, size=size, size_type="shares")

    @classmethod
    def signals_batch(cls, data, sets):
        close = data.close
        fast = sets.map(sma, close, sets.fast)
        slow = sets.map(sma, close, sets.slow)
        band = np.asarray(sets.band, dtype=float)[None, :]
        gap = fast - slow * (1.0 + band)
        gap = np.where(np.asarray(sets.style == "banded")[None, :], gap - band, gap)
        e, x = crossings(gap, 0.0)
        inv = np.asarray(sets.invert, dtype=bool)[None, :]
        e, x = np.where(inv, x, e), np.where(inv, e, x)
        size = np.array([10.0 if c is None else float(c) for c in sets.cap])
        return Signals(entries=e, exits=x, size=size, size_type="shares")
'''


def test_str_bool_float_and_none_parameters_equal_runs_alone(tmp_path, monkeypatch):
    path = tmp_path / "typed.py"
    path.write_text(TYPED)
    grid = {"fast": [2, 5], "slow": [9, 20], "band": [0.0, 0.01, -0.005],
            "style": ["plain", "banded"], "invert": [False, True], "cap": [None, 3, 7.5]}
    _, on, used = _assert_same(path, grid, _ties(random_walk(250, seed=16)), monkeypatch,
                               strict=True)
    assert used > 0 and on.height == 144


def test_sampled_grid_and_a_strategy_without_parameters(tmp_path, monkeypatch, rich):
    data = random_walk(250, seed=17)
    grid = {"fast": list(range(2, 12)), "slow": list(range(12, 40)),
            "size_type": ["all_cash", "percent"], "amount": [0.2, 0.9]}
    _assert_same(rich, grid, data, monkeypatch, samples=60, seed=4)
    bare = _write(tmp_path, '''
class Bare(Strategy):
    def signals(self, data):
        e, x = crossings(sma(data.close, 3), sma(data.close, 11))
        return Signals(entries=e, exits=x)

    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sma(data.close, 3), sma(data.close, 11))
        return Signals(entries=np.repeat(e[:, None], len(sets), axis=1),
                       exits=np.repeat(x[:, None], len(sets), axis=1))
''')
    _, _, used = _assert_same(bare, {"commission": [0.0, 0.001, 0.01],
                                     "slippage_bps": [0.0, 5.0]}, data, monkeypatch)
    assert used > 0


def test_dask_backend_gives_the_local_frame_with_the_hook(rich, monkeypatch):
    distributed = pytest.importorskip("distributed")
    grid = {"fast": [2, 3, 5, 8], "slow": [9, 21, 34], "direction": ["long", "short"]}
    data = random_walk(300, 2, seed=18)
    local = _sweep(rich, grid, data, monkeypatch, True, shorting=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=50) as cluster:
        remote = engine.sweep(rich, grid, data=data, backend="dask", progress=False,
                              address=cluster.scheduler_address, shorting=True)
    assert remote.equals(local, null_equal=True)


# ----------------------------------------------------------------- how users get it wrong


def test_a_hook_without_classmethod_says_so(tmp_path, monkeypatch):
    # def signals_batch(cls, data, sets) without @classmethod: the sets run signals one
    # by one (their rows are engine.run's) and the warning says what to add
    from engine.research.sweep import SweepWarning

    path = _write(tmp_path, CROSS + '''
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=x)
''')
    with pytest.warns(SweepWarning, match=r"Leaky.signals_batch is not a classmethod: add "
                                          r"@classmethod above"):
        on = _sweep(path, {"fast": [2, 3], "slow": [10, 20]}, random_walk(200, seed=1),
                    monkeypatch, True)
    assert on["error"].is_null().all()


def test_a_subclass_that_changes_signals_does_not_inherit_the_parents_hook(tmp_path,
                                                                           monkeypatch):
    # SmaCross's hook was written for SmaCross.signals; a subclass with its own signals
    # (a trend filter) gets every row of the sweep as SmaCross-hook disagreement errors
    from pathlib import Path

    from engine import Signals
    from engine.indicators import sma
    from engine.strategy.plugins import load_strategy

    base = load_strategy(Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py")

    class Filtered(base):
        def signals(self, data):
            plain = super().signals(data)
            up = data.close > sma(data.close, 50)
            return Signals(entries=plain.entries & up, exits=plain.exits)

    data = random_walk(300, seed=19)
    _, on, _ = _assert_same(Filtered, {"fast": [2, 5, 9], "slow": [20, 30]},
                            data, monkeypatch)
    assert on["error"].null_count() == on.height


FAILS = '''
class Fails(Strategy):
    fast: int = param(5, min=1)
    slow: int = param(20, min=2)
    fail: bool = param(False)
    stop: float = param(0.0)

    def signals(self, data):
        if self.fail:
            raise RuntimeError("this set fails inside signals")
        e, x = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
        return Signals(entries=e, exits=x, stop_loss=self.stop or None)

    @classmethod
    def signals_batch(cls, data, sets):
        # like the test suite's Flex: ordinary columns for fail=True (its own signals
        # raise, and "the sweep's check sends it to the per-set path")
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=x)
'''


@pytest.mark.parametrize("grid", [
    {"fast": [2, 3], "slow": [10, 20], "fail": [False, True]},
    {"fast": [2, 3], "slow": [10, 20], "stop": [0.0, 0.03]},
], ids=["signals-raise", "signals-set-a-stop-loss"])
def test_sets_whose_own_signals_differ_never_get_the_hooks_numbers(tmp_path, monkeypatch,
                                                                   grid):
    # (2, 20, fail=True) has no value the worker has not checked yet: it is not compared
    # with its own signals (which raise, or set a stop-loss), and gets the hook's row
    path = _write(tmp_path, FAILS)
    data = random_walk(300, seed=20)
    off = _sweep(path, grid, data, monkeypatch, False)
    on = _sweep(path, grid, data, monkeypatch, True)
    flagged = pl.col("fail") if "fail" in grid else pl.col("stop") > 0
    mine, ref = on.filter(flagged), off.filter(flagged)
    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(
            a[k] == b[k] or (isinstance(a[k], float) and isinstance(b[k], float)
                             and a[k] != a[k] and b[k] != b[k]) for k in a)

    for a, b in zip(mine.iter_rows(named=True), ref.iter_rows(named=True), strict=True):
        assert (a["error"] is not None) or same(a, b), (
            f"set {a['fast'], a['slow']}: sweep gives total_return={a['total_return']}, "
            f"engine.run gives {b['total_return']} / {b['error']}")


#: The plain hook of CROSS (the same sets' signals, one column each).
CROSS_HOOK = '''
    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=x)
'''


def test_a_combination_signals_refuses_is_found_by_the_check(tmp_path, monkeypatch):
    # signals refuses fast >= slow itself (not in validate); (5, 4) comes after 5 and 4
    # were each checked in good sets, so the sweep gives it the hook's numbers (the
    # documented limit; validate() is where such a rule belongs: there the sweep sees
    # it). check_signals_batch names the set.
    from engine.errors import StrategyError

    path = _write(tmp_path, CROSS.replace(
        "    def signals(self, data):\n",
        "    def signals(self, data):\n        if self.fast >= self.slow:\n"
        "            raise ParameterError('fast must be shorter than slow')\n", 1) + CROSS_HOOK)
    data = random_walk(300, seed=21)
    grid = {"fast": [2, 5], "slow": [8, 4]}
    off = _sweep(path, grid, data, monkeypatch, False)
    assert off.filter((pl.col("fast") == 5) & (pl.col("slow") == 4))["error"][0]
    with pytest.raises(StrategyError, match=r"Leaky.signals raises ParameterError: fast must "
                                            r"be shorter than slow .* for the set fast=5, "
                                            r"slow=4, but signals_batch gives it columns"):
        engine.check_signals_batch(path, grid, data=data)


def test_threads_with_summaries_and_symbols_equal_one_thread(rich):
    # _in_threads joins statistics by columns and equity curves by rows: check both
    from engine.research.sweep_plan import (
        SUMMARY_OPTION,
        THREADS_OPTION,
        parameter_sets,
        prepare,
        run_batch,
    )

    grid = {"fast": list(range(2, 15)), "slow": list(range(16, 26)),
            "size_type": ["shares", "target_percent"], "amount": [0.4]}
    plan = prepare(rich, parameter_sets(grid), _ties(random_walk(90, 3, seed=22)), {})
    options = {**plan.options, SUMMARY_OPTION: True}
    one = run_batch(plan.cls, plan.panels, {**options, THREADS_OPTION: 1}, plan.tasks)
    three = run_batch(plan.cls, plan.panels, {**options, THREADS_OPTION: 3}, plan.tasks)
    assert len(one) == 260 and repr(one) == repr(three)


def test_batch_size_counts_the_symbols():
    # batch_limit caps bars x sets (BATCHED_CELLS) but not the symbols: on a 200-symbol
    # universe of 2,520 bars a batch is 512 sets, and every float array the hook makes
    # (one sets.map) is 2,520 x 512 x 200 x 8 bytes = 2 GB
    from engine.research.sweep_plan import (
        BATCHED_CELLS,
        MAX_BATCH,
        batch_limit,
        batches,
        parameter_sets,
        prepare,
    )

    universe = random_walk(2520, 200, seed=1)
    plan = prepare("strategies/sma_cross.py",
                   parameter_sets({"fast": list(range(2, 66)), "slow": list(range(100, 164))}),
                   universe, {})
    largest = max(len(b) for b in batches(plan.tasks, 1, batch_limit(plan)))
    cells = universe.n_bars * universe.n_symbols
    assert largest <= max(MAX_BATCH, BATCHED_CELLS // cells), largest


def test_a_hook_that_raises_is_located_like_signals_is(tmp_path, monkeypatch):
    # signals' error rows say "S.signals, FILE line N ... raised ..."; the hook's warning
    # names the file and line too
    from engine.research.sweep import SweepWarning

    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        raise KeyError("oops")
''')
    with pytest.warns(SweepWarning) as caught:
        _sweep(path, {"fast": [2, 3]}, random_walk(100, seed=1), monkeypatch, True)
    message = next(str(w.message) for w in caught if "signals_batch" in str(w.message))
    assert "KeyError" in message and str(path) in message and "line" in message, message


def test_a_hook_reusing_its_output_buffer_does_not_change_kept_signals(tmp_path,
                                                                      monkeypatch):
    # The hook returns rows of one buffer it refills on every call (a C-contiguous view:
    # batch_arrays keeps it without a copy). The audit then calls the hook on prefixes
    # for the checked sets only, which land in the first columns: an unchecked set's
    # kept entries are overwritten before simulate.
    path = _write(tmp_path, CROSS + '''
    _buffers = {}

    @classmethod
    def signals_batch(cls, data, sets):
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        n = len(data)
        out_e = cls._buffers.setdefault("e", np.zeros((5000, 8), dtype=bool))
        out_x = cls._buffers.setdefault("x", np.zeros((5000, 8), dtype=bool))
        out_e[:n, :len(sets)] = e
        out_x[:n, :len(sets)] = x
        if len(sets) != 8:
            return Signals(entries=e, exits=x)
        return Signals(entries=out_e[:n], exits=out_x[:n])
''')
    grid = {"slow": list(range(20, 27)), "fast": list(range(2, 11))}  # batches of 8
    _assert_same(path, grid, random_walk(300, seed=3), monkeypatch)


def test_sets_carry_what_validate_made_of_the_parameters(tmp_path, monkeypatch):
    # validate() widens slow when it is not longer than fast; signals sees the widened
    # value on self, sets.slow the grid's. (5, 4) is never compared (5 and 4 were
    # checked in good sets) and gets the hook's row for slow=4.
    path = _write(tmp_path, CROSS.replace(
        "    def signals(self, data):\n",
        "    def validate(self):\n        if self.slow <= self.fast:\n"
        "            self.slow = self.fast + 1\n\n    def signals(self, data):\n", 1) + CROSS_HOOK)
    _assert_same(path, {"fast": [2, 5], "slow": [8, 4]}, random_walk(300, seed=21),
                 monkeypatch)


def test_crossings_of_the_close_and_its_averages_on_several_symbols():
    # one symbol: crossings(close, sets.map(sma, close, sets.w)) works (a 1-D array pairs
    # with every column); with 3 symbols the same hook line raises
    from engine.indicators import crossings, sma
    from engine.strategy.parameter_sets import ParameterSets

    sets = ParameterSets([{"w": 3}, {"w": 5}])
    one = random_walk(100, seed=1).fields["close"][:, 0]
    assert crossings(one, sets.map(sma, one, sets.w))[0].shape == (100, 2)
    three = random_walk(100, 3, seed=1).fields["close"]
    up, _ = crossings(three, sets.map(sma, three, sets.w))
    assert up.shape == (100, 2, 3)
    assert np.array_equal(up[:, 1, :], crossings(three, sma(three, 5))[0])


def test_a_hook_that_fails_on_short_data_is_not_dropped_silently(tmp_path, monkeypatch):
    # The hook raises on the audit's short prefixes (len(data) < 100): every batch then
    # quietly takes the per-set path (right rows, the hook's speed lost, no word said)
    path = _write(tmp_path, CROSS + '''
    @classmethod
    def signals_batch(cls, data, sets):
        if len(data) < 100:
            raise ValueError("needs 100 bars")
        e, x = crossings(sets.map(sma, data.close, sets.fast),
                         sets.map(sma, data.close, sets.slow))
        return Signals(entries=e, exits=x)
''')
    import warnings
    grid = {"fast": list(range(2, 10)), "slow": list(range(20, 28))}
    before = batched.COUNTS["signals_batch"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, on, _ = _assert_same(path, grid, random_walk(300, seed=3), monkeypatch)
    used = batched.COUNTS["signals_batch"] - before
    said = [str(w.message) for w in caught if "signals_batch" in str(w.message)]
    assert used > 0 or said, "the hook was never used and nothing said why"


def test_dask_workers_with_several_threads_give_the_local_frame(monkeypatch):
    # a worker running 4 batches at once: the strategy file is loaded by 4 threads at
    # the same time on the first sweep, and many rows say "defines no Strategy subclass"
    # (also batched state shared by the threads: the memo, sets.map's cache, the audit)
    distributed = pytest.importorskip("distributed")
    sma_cross = "strategies/sma_cross.py"
    data = random_walk(300, 2, seed=5)
    grid = {"fast": list(range(2, 30)), "slow": list(range(31, 60))}
    local = _sweep(sma_cross, grid, data, monkeypatch, True, stats=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=50) as cluster:
        remote = engine.sweep(sma_cross, grid, data=data, backend="dask", progress=False,
                              address=cluster.scheduler_address, stats=False)
    errors = remote["error"].drop_nulls().unique().to_list()
    assert remote.equals(local, null_equal=True), errors[:2]
