"""Sweep throughput: 1,000 parameter sets of sma_cross over ten years of daily bars
(2,520 bars of a seeded random walk), on the local backend with every core, against
the same sets run one after another in one process (measured in the same run).

Run: ``python -m pytest bench/test_bench_sweep.py -q``; the summary at the end gives
backtests per second, the ratio to the sequential run, and the share of all cores
that were busy during the sweep (user + system time of this process and its workers
over wall time times cores). Target: 1,000 sets in under 5 s on two cores.

``sma_cross`` has a vectorised path, so ``engine.sweep`` runs its sets batched
(:mod:`engine.research.batched`) unless ``ENGINE_SWEEP_BATCHED=0``: the cases below
time both, and 10,000 sets on 2,520 bars (target: under 1 s on two cores). The peer
comparison on real data is ``bench/peers/sweep_compare.py``.
"""

from __future__ import annotations

import resource
import time

import pytest

import engine
from bench.conftest import ROOT, SWEEP_BASELINE, record_sweep
from engine.research.sweep import cpu_count
from engine.research.sweep_plan import parameter_sets

ROUNDS = 3
GRID = {"fast": list(range(2, 22)), "slow": list(range(30, 130, 2))}  # 20 x 50, all valid
GRID_10K = {"fast": list(range(2, 102)), "slow": list(range(105, 305, 2))}  # 100 x 100


@pytest.fixture(scope="module")
def ten_years():
    from engine.data.synthetic import random_walk

    return random_walk(2520, seed=7)


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def test_sequential_runs(benchmark, ten_years, sma_cross):
    sets = parameter_sets(GRID)
    assert len(sets) == 1000

    def sequential():
        return [engine.run(sma_cross, ten_years, **params).metrics for params in sets]

    rows = benchmark.pedantic(sequential, rounds=ROUNDS, iterations=1)
    assert len(rows) == 1000
    record_sweep(benchmark, SWEEP_BASELINE, len(sets))


def test_sweep_local_every_core(benchmark, ten_years, sma_cross):
    busy = []

    def sweep():
        cpu, wall = _cpu(), time.perf_counter()
        frame = engine.sweep(sma_cross, GRID, data=ten_years, n_jobs=-1, progress=False)
        busy.append((_cpu() - cpu) / ((time.perf_counter() - wall) * cpu_count()))
        return frame

    frame = benchmark.pedantic(sweep, rounds=ROUNDS, iterations=1)
    assert frame.height == 1000 and frame["error"].null_count() == 1000
    # n_jobs=-1 runs 1,000 batched sets in this process (threads), statistics on
    record_sweep(benchmark, "engine.sweep defaults (n_jobs=-1, statistics on)", frame.height,
                 min(busy))


def _timed_sweep(benchmark, data, strategy, grid, n_jobs, name, *, batched=True, rounds=ROUNDS,
                 first=False):
    """``first``: every round as a process's first sweep of this strategy and data (the
    batched path audits each parameter value then, and keeps the indicators it made);
    otherwise later rounds reuse them, as repeated sweeps in one session do."""
    import os

    from engine.research import batched as batched_path

    busy = []

    def sweep():
        if first:
            batched_path._AUDITED.clear()
            batched_path._MEMO.for_panel(None)
        os.environ["ENGINE_SWEEP_BATCHED"] = "1" if batched else "0"
        try:
            cpu, wall = _cpu(), time.perf_counter()
            frame = engine.sweep(strategy, grid, data=data, n_jobs=n_jobs, progress=False,
                                 stats=False)  # the sets alone, without DSR and PBO
            busy.append((_cpu() - cpu) / ((time.perf_counter() - wall) * cpu_count()))
        finally:
            os.environ.pop("ENGINE_SWEEP_BATCHED", None)
        return frame

    frame = benchmark.pedantic(sweep, rounds=rounds, iterations=1)
    assert frame["error"].null_count() == frame.height
    record_sweep(benchmark, name, frame.height, min(busy))


def test_sweep_per_set_every_core(benchmark, ten_years, sma_cross):
    _timed_sweep(benchmark, ten_years, sma_cross, GRID, -1,
                 f"per set (unbatched), {cpu_count()} workers", batched=False, rounds=1)


def test_sweep_batched_one_process(benchmark, ten_years, sma_cross):
    _timed_sweep(benchmark, ten_years, sma_cross, GRID, 1, "batched, one process")


def test_sweep_batched_one_process_first_sweep(benchmark, ten_years, sma_cross):
    _timed_sweep(benchmark, ten_years, sma_cross, GRID, 1,
                 "batched, one process, first sweep (audits every value)", first=True)


def test_sweep_10k_sets_batched_every_core(benchmark, ten_years, sma_cross):
    # n_jobs=-1: one process (threads for the compiled pass) below 15,000 sets per worker
    _timed_sweep(benchmark, ten_years, sma_cross, GRID_10K, -1,
                 "10,000 sets, batched, n_jobs=-1 (every core), first sweep", first=True)


def test_sweep_batched_one_process_signals_per_set(benchmark, ten_years, sma_cross):
    """The same sets with signals called per set (signals_batch removed): what the hook
    saves, in the same run."""
    from engine.strategy.base import Strategy

    class PerSet(sma_cross):
        signals_batch = Strategy.signals_batch   # back to the default: no hook

    PerSet.__module__ = sma_cross.__module__     # its indicator calls are memoised as well
    assert not PerSet.has_batch_path()
    _timed_sweep(benchmark, ten_years, PerSet, GRID, 1,
                 "batched, one process, signals per set (no signals_batch)")


def test_sweep_10k_sets_batched_two_workers(benchmark, ten_years, sma_cross):
    _timed_sweep(benchmark, ten_years, sma_cross, GRID_10K, 2,
                 "10,000 sets, batched, 2 worker processes")


def test_sweep_fear_contrarian_1000_sets_event_path(benchmark):
    """1,000 sets of an event-path strategy on its bundled data (fear 10-34 x exit
    45-84), every core: the per-set path with lean runs. Target: under 5 s on two cores."""
    grid = {"fear_threshold": list(range(10, 35)), "exit_threshold": list(range(45, 85))}

    def sweep():
        return engine.sweep(str(ROOT / "strategies" / "fear_contrarian.py"), grid, n_jobs=-1,
                            progress=False, stats=False)

    frame = benchmark.pedantic(sweep, rounds=1, iterations=1)
    assert frame.height == 1000 and frame["error"].null_count() == 1000
    record_sweep(benchmark, "fear_contrarian, 1,000 sets (event path), every core",
                 frame.height)
