"""engine.workers / WorkerPool: worker processes kept across sweeps, searches and
walk-forwards, set up again for each call, and never left running."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.data.synthetic import random_walk
from engine.errors import ParameterError
from engine.research import pool as pool_module
from engine.research.sweep import SweepWarning

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
GRID = {"fast": [3, 5, 8], "slow": [20, 30, 40, 50]}

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(),
                                reason="reads the child processes from /proc (Linux)")


def children() -> set[int]:
    """The live child processes of this process (zombies count: not yet reaped)."""
    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def bars():
    return random_walk(400, seed=11)


@pytest.fixture
def started(monkeypatch):
    """The pids of the worker processes started during the test, in order."""
    pids: list[int] = []
    original = pool_module._Worker.__init__

    def counting(self):
        original(self)
        pids.append(self.process.pid)

    monkeypatch.setattr(pool_module._Worker, "__init__", counting)
    return pids


def test_one_pool_runs_several_sweeps_and_a_walk_forward_then_stops(bars, started):
    before = children()
    with engine.workers(n_jobs=2) as pool:
        assert pool.pids == []                                  # started lazily
        first = engine.sweep(SMA, GRID, data=bars, pool=pool, progress=False)
        workers = sorted(pool.pids)
        assert len(workers) == 2 and set(workers) <= children()
        other = engine.sweep(SMA, {"fast": [4, 6], "slow": [25, 35]}, data=bars, pool=pool,
                             progress=False)
        wf = engine.walk_forward(SMA, {"fast": [3, 5], "slow": [20, 30]}, train=150,
                                 test=100, data=bars, pool=pool, progress=False)
        assert sorted(pool.pids) == workers                     # the same two processes
        assert sorted(started) == workers
    assert pool.closed and pool.pids == []
    assert children() - before == set()                         # none left, none a zombie
    assert first.equals(engine.sweep(SMA, GRID, data=bars, n_jobs=1, progress=False),
                        null_equal=True)
    assert other.equals(engine.sweep(SMA, {"fast": [4, 6], "slow": [25, 35]}, data=bars,
                                     n_jobs=1, progress=False), null_equal=True)
    alone = engine.walk_forward(SMA, {"fast": [3, 5], "slow": [20, 30]}, train=150,
                                test=100, data=bars, n_jobs=1, progress=False)
    assert wf.windows.equals(alone.windows, null_equal=True)
    with pytest.raises(ParameterError, match="closed"):
        engine.sweep(SMA, GRID, data=bars, pool=pool, progress=False)


def test_an_exception_in_the_block_stops_the_workers(bars):
    before = children()
    with pytest.raises(RuntimeError, match="the script failed"):
        with engine.workers(n_jobs=2) as pool:
            engine.sweep(SMA, GRID, data=bars, pool=pool, progress=False)
            assert len(pool.pids) == 2
            raise RuntimeError("the script failed")
    assert pool.closed and children() - before == set()


def test_a_search_starts_its_workers_once_and_writes_the_data_once(started):
    tent = random_walk(300, seed=2)
    with engine.workers(n_jobs=2) as pool:
        rows = engine.sweep(SMA, {"fast": list(range(2, 30)), "slow": [40, 60, 80]},
                            method="optuna", trials=24, seed=3, data=tent, pool=pool,
                            progress=False)                     # three rounds of 8
        assert len(started) == 2 and sorted(pool.pids) == sorted(started)
        assert len(pool.shared) == 1                            # one panel, written once
    alone = engine.sweep(SMA, {"fast": list(range(2, 30)), "slow": [40, 60, 80]},
                         method="optuna", trials=24, seed=3, data=tent, n_jobs=1,
                         progress=False)
    assert rows.equals(alone, null_equal=True)
    # without pool=, a search makes its own pool: two workers for every round
    started.clear()
    engine.sweep(SMA, {"fast": list(range(2, 30)), "slow": [40, 60, 80]}, method="optuna",
                 trials=24, seed=3, data=tent, n_jobs=2, progress=False)
    assert len(started) == 2


CRASH = textwrap.dedent("""
    import os

    from engine import Signals, Strategy, param
    from engine.strategy.indicators import crossover, crossunder, sma

    class Crash(Strategy):
        window: int = param(10, min=1)

        def signals(self, data):
            if self.window == 4:
                os._exit(3)
            fast = sma(data.close, self.window)
            return Signals(entries=crossover(fast, sma(data.close, 30)),
                           exits=crossunder(fast, sma(data.close, 30)))
""")


@pytest.mark.parametrize("sets", [8, 40])   # one set per task; three, split on the crash
def test_a_crash_replaces_a_worker_and_the_pool_goes_on(tmp_path, bars, started, sets):
    path = tmp_path / "crash.py"
    path.write_text(CRASH)
    before = children()
    with engine.workers(n_jobs=2) as pool:
        with pytest.warns(SweepWarning, match=rf"1 of {sets} parameter sets killed"):
            frame = engine.sweep(str(path), {"window": list(range(1, sets + 1))}, data=bars,
                                 pool=pool, progress=False)
        assert frame.filter(pl.col("window") == 4)["error"].to_list() == [
            "the worker process running this set died (exited with status 3); set: window=4"]
        assert frame["error"].null_count() == sets - 1
        # the batch holding window 4 ran again one set at a time: it killed one more
        assert len(started) == (3 if sets == 8 else 4) and len(pool.pids) == 2
        replaced = len(started)
        again = engine.sweep(SMA, GRID, data=bars, pool=pool, progress=False)
        assert again["error"].null_count() == 12 and len(started) == replaced
    assert children() - before == set()


def test_workers_map_a_panel_once_while_its_spec_is_sent_again(bars):
    from engine.research.sweep import _start_worker, shared_panel
    from engine.research.sweep_plan import prepare

    plan = prepare(SMA, [{"fast": 3}], bars, {})
    with engine.workers(n_jobs=2) as pool:
        spec = shared_panel(pool, plan.panels[0])
        assert shared_panel(pool, plan.panels[0]) is spec       # written once
        first, _ = _start_worker(lambda: (plan.ref, [spec], plan.options))
        again, _ = _start_worker(lambda: (plan.ref, [spec], {"cash": 5.0}))
        assert again["panels"][0] is first["panels"][0] and again["options"] == {"cash": 5.0}
        other = shared_panel(pool, bars_panel := prepare(SMA, [{}], random_walk(50), {})
                             .panels[0])
        third, _ = _start_worker(lambda: (plan.ref, [other], {}))
        assert third["panels"][0] is not first["panels"][0]
        assert third["panels"][0].n_bars == bars_panel.n_bars == 50


@pytest.mark.parametrize(("kw", "match"), [
    (dict(n_jobs=3), r"n_jobs=3 and pool= disagree: the pool was made with "
                     r"engine.workers\(n_jobs=2\)"),
    (dict(backend="dask", address="tcp://127.0.0.1:1"), "pool= is for backend='local'"),
])
def test_pool_arguments_that_disagree(bars, kw, match):
    with engine.workers(n_jobs=2) as pool:
        with pytest.raises(ParameterError, match=match):
            engine.sweep(SMA, GRID, data=bars, pool=pool, progress=False, **kw)
    with pytest.raises(ParameterError, match="pool must be a pool from engine.workers"):
        engine.sweep(SMA, GRID, data=bars, pool=2, progress=False)
    with pytest.raises(ParameterError, match="n_jobs must be a positive integer"):
        engine.workers(n_jobs=0)


def test_ctrl_c_kills_the_workers_keeps_the_answers_and_the_pool_starts_afresh(bars, started):
    from engine.research.sweep import _start_worker, shared_panel
    from engine.research.sweep_plan import batches, prepare

    plan = prepare(SMA, [{"fast": f, "slow": 40} for f in range(2, 22)], bars, {})
    answers = []

    def on_answer(batch, outcomes):
        answers.extend(outcomes)
        if len(answers) >= 4:
            raise KeyboardInterrupt

    before = children()
    with engine.workers(n_jobs=2) as pool:
        argument = (plan.ref, [shared_panel(pool, plan.panels[0])], plan.options)
        with pytest.raises(KeyboardInterrupt):
            pool.run(_start_worker, argument, batches(plan.tasks, 2), on_answer,
                     lambda task, how: None)
        assert pool.pids == [] and children() - before == set()   # killed, reaped
        assert 4 <= len(answers) < 20 and all(a.error is None for a in answers)
        done = []
        pool.run(_start_worker, argument, batches(plan.tasks, 2),
                 lambda batch, outcomes: done.extend(outcomes), lambda task, how: None)
        assert sorted(o.row for o in done) == list(range(20)) and len(started) == 4
    assert children() - before == set()


def test_a_search_that_fails_midway_stops_its_own_workers(monkeypatch, started):
    import engine.research.search as search

    real = search._trials

    def fails_after_a_round(study, dims, space, trials, rounds, bar, metric):
        real(study, dims, space, 8, rounds, bar, metric)       # one round, on workers
        raise RuntimeError("the sampler failed")

    monkeypatch.setattr(search, "_trials", fails_after_a_round)
    before = children()
    with pytest.raises(RuntimeError, match="the sampler failed"):
        engine.sweep(SMA, {"fast": list(range(2, 30)), "slow": [40, 60, 80]},
                     method="optuna", trials=24, data=random_walk(300, seed=2), n_jobs=2,
                     progress=False)
    assert len(started) == 2 and children() - before == set()
