"""The cost of the sweep statistics (deflated Sharpe ratios and PBO) on a batched sweep:
1,000 sma_cross sets on 2,520 bars of a seeded random walk, in one process, with the
statistics off and on (measured in the same run), and their parts alone.

Run: ``python -m pytest bench/test_bench_sweep_stats.py -q``; the summary at the end
gives each case's best time and its ratio to the sweep without statistics. With
them on, each set's returns summary (:func:`engine.analysis.stats.set_summary`) comes
out of the compiled pass of the batch (:func:`engine._core.batch.simulate`), and the
sweep adds the deflated Sharpe ratios and the probability of overfitting
(:func:`engine.analysis.stats.overfitting_from_summaries`: 12,870 splits of the
1,000 sets). ``set_summaries in NumPy`` times the same summaries computed from the
sets' returns in NumPy (what the batched sweep did before), for scale.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from bench.conftest import STATS_BASELINE, record_stats

ROUNDS = 7
GRID = {"fast": list(range(2, 22)), "slow": list(range(30, 130, 2))}  # 20 x 50, all valid


@pytest.fixture(scope="module")
def ten_years():
    from engine.data.synthetic import random_walk

    return random_walk(2520, seed=7)


@pytest.fixture(scope="module")
def summaries(ten_years, sma_cross):
    """The 1,000 sets' summaries, as the sweep collects them."""
    from engine.analysis.metrics import bar_returns
    from engine.analysis.stats import set_summaries

    rows = [engine.run(sma_cross, ten_years, fast=fast, slow=slow).equity_values
            for fast in GRID["fast"] for slow in GRID["slow"]]
    returns = np.array([bar_returns(equity, 100_000.0) for equity in rows])
    return returns, set_summaries(returns)


def _sweep(benchmark, data, strategy, stats: bool, name: str):
    def sweep():
        return engine.sweep(strategy, GRID, data=data, n_jobs=1, progress=False, stats=stats)

    sweep()  # warm: the indicator memo and the audit of each parameter value
    frame = benchmark.pedantic(sweep, rounds=ROUNDS, iterations=1)
    assert frame.height == 1000 and frame["error"].null_count() == 1000
    assert ("dsr" in frame.columns) == stats
    record_stats(benchmark, name)


def test_batched_sweep_without_statistics(benchmark, ten_years, sma_cross):
    _sweep(benchmark, ten_years, sma_cross, False, STATS_BASELINE)


def test_batched_sweep_with_statistics(benchmark, ten_years, sma_cross):
    _sweep(benchmark, ten_years, sma_cross, True,
           "batched sweep, 1,000 sets, stats on (DSR + PBO)")


def test_probability_of_overfitting(benchmark, summaries):
    from engine.analysis.stats import overfitting_from_summaries

    found = benchmark.pedantic(overfitting_from_summaries, args=(summaries[1],),
                               rounds=ROUNDS, iterations=1)
    assert found["splits"] == 12_870 and 0 <= found["pbo"] <= 1
    record_stats(benchmark, "PBO alone (1,000 sets, 12,870 splits)")


def test_deflated_sharpes(benchmark, summaries):
    from engine.analysis.stats import deflated_sharpes_from_summaries

    dsr = benchmark.pedantic(deflated_sharpes_from_summaries, args=(summaries[1],),
                             rounds=ROUNDS, iterations=1)
    assert np.isfinite(dsr).all()
    record_stats(benchmark, "DSR alone (1,000 sets)")


def test_summaries_in_numpy(benchmark, summaries):
    from engine.analysis.stats import set_summaries

    found = benchmark.pedantic(set_summaries, args=(summaries[0],), rounds=ROUNDS,
                               iterations=1)
    assert np.array_equal(found, summaries[1])
    record_stats(benchmark, "set_summaries in NumPy (1,000 x 2,520 returns)")
