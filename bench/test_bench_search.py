"""Bayesian search (``engine.sweep(method="optuna")``) and walk-forward throughput on
local workers: 40 trials of sma_cross over ten years of daily bars (2,520 bars of a
seeded random walk), in one process, on two workers started once for the search
(today's :class:`~engine.research.pool.WorkerPool`), and on two workers started
again for every round of 8 trials (how searches ran before the pool was kept:
:class:`FreshEachRound`), against a grid sweep of 40 sets in one process, all
measured in the same run. Walk-forward: 12 sets over 9 windows, in one process, on
two workers started for the call, and on the two workers of a pool kept across
calls (a script running several walk-forwards).

Run: ``python -m pytest bench/test_bench_search.py -q``. Compare the means: the
search's own cost (the TPE sampler between rounds) is the gap between the one-process
search and the grid; the workers' start-up the gap between the one-process search
and two workers (once per search, or once per round for ``FreshEachRound``).
"""

from __future__ import annotations

import pytest

import engine
from engine.research.pool import WorkerPool

pytest.importorskip("optuna")

ROUNDS = 5
SPACE = {"fast": list(range(2, 50)), "slow": list(range(50, 251, 10))}
GRID = {"fast": list(range(2, 42)), "slow": [100]}
WALK_GRID = {"fast": [5, 10, 20, 40], "slow": [50, 100, 200]}


class FreshEachRound(WorkerPool):
    """A pool whose workers are stopped after every run: each round of a search starts
    its own, as before the pool lived across rounds (the baseline of the figures)."""

    def run(self, *args, **kwargs):
        try:
            super().run(*args, **kwargs)
        finally:
            self._kill()


@pytest.fixture(scope="module")
def ten_years():
    from engine.data.synthetic import random_walk

    return random_walk(2520, seed=7)


def test_grid_40_sets_one_process(benchmark, ten_years, sma_cross):
    rows = benchmark.pedantic(lambda: engine.sweep(sma_cross, GRID, data=ten_years, n_jobs=1,
                                                   progress=False), rounds=ROUNDS, iterations=1)
    assert rows.height == 40


@pytest.mark.parametrize("workers", ["one process", "two, started once",
                                     "two, started each round"])
def test_optuna_40_trials(benchmark, ten_years, sma_cross, workers):
    def search():
        pool = None
        if workers == "two, started each round":
            pool = FreshEachRound(2)
        try:
            return engine.sweep(sma_cross, SPACE, method="optuna", trials=40,
                                data=ten_years, n_jobs=1 if workers == "one process" else 2,
                                pool=pool, progress=False)
        finally:
            if pool is not None:
                pool.close()

    rows = benchmark.pedantic(search, rounds=ROUNDS, iterations=1)
    assert 0 < rows.height <= 40


@pytest.mark.parametrize("workers", ["one process", "two, started for the call",
                                     "two, of a pool kept across calls"])
def test_walk_forward_9_windows(benchmark, ten_years, sma_cross, workers):
    kept = engine.workers(n_jobs=2) if workers.endswith("across calls") else None
    n_jobs = 1 if workers == "one process" else 2
    try:
        result = benchmark.pedantic(
            lambda: engine.walk_forward(sma_cross, WALK_GRID, train=500, test=250,
                                        data=ten_years, n_jobs=-1 if kept else n_jobs,
                                        pool=kept, progress=False),
            rounds=ROUNDS, iterations=1, warmup_rounds=1 if kept else 0)
    finally:
        if kept is not None:
            kept.close()
    assert result.windows.height == 9
