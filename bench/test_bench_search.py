"""Bayesian search (``engine.sweep(method="optuna")``) throughput: 40 trials of
sma_cross over ten years of daily bars (2,520 bars of a seeded random walk), in one
process and on every core (workers started for each round of 8 trials), against a
grid sweep of 40 sets in one process, measured in the same run.

Run: ``python -m pytest bench/test_bench_search.py -q``. Compare the means: the
search's own cost (the TPE sampler between rounds) is the gap between the first
and the grid; the workers' start-up, once per round, the gap between the first two.
"""

from __future__ import annotations

import pytest

import engine

pytest.importorskip("optuna")

ROUNDS = 3
SPACE = {"fast": list(range(2, 50)), "slow": list(range(50, 251, 10))}
GRID = {"fast": list(range(2, 42)), "slow": [100]}


@pytest.fixture(scope="module")
def ten_years():
    from engine.data.synthetic import random_walk

    return random_walk(2520, seed=7)


def test_grid_40_sets_one_process(benchmark, ten_years, sma_cross):
    rows = benchmark.pedantic(lambda: engine.sweep(sma_cross, GRID, data=ten_years, n_jobs=1,
                                                   progress=False), rounds=ROUNDS, iterations=1)
    assert rows.height == 40


@pytest.mark.parametrize("n_jobs", [1, -1])
def test_optuna_40_trials(benchmark, ten_years, sma_cross, n_jobs):
    rows = benchmark.pedantic(
        lambda: engine.sweep(sma_cross, SPACE, method="optuna", trials=40, data=ten_years,
                             n_jobs=n_jobs, progress=False), rounds=ROUNDS, iterations=1)
    assert 0 < rows.height <= 40
