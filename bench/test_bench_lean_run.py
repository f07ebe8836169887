"""Lean runs: one ``engine.run`` of ``strategies/sma_cross.py`` on 2,520 daily bars (ten
years of a seeded random walk), on the vectorised path, as a sweep runs it (the
frames never read) against the same run that also builds its trades, orders and
equity frames, which ``engine.run`` did before they became lazy (measured in the
same run). With the look-ahead audit off (a sweep of audited code) and on (the
default, ``audit="cuts"``).

Run: ``python -m pytest bench/test_bench_lean_run.py -q``; the summary gives each
run's best time and its speed relative to the eager run. Target: at most 1 ms for
the lean run with the audit off.
"""

from __future__ import annotations

import pytest

import engine
from bench.conftest import RUN_BASELINE, record_run

ROUNDS = 200


@pytest.fixture(scope="module")
def ten_years():
    from engine.data.synthetic import random_walk

    return random_walk(2520, seed=7)


def _eager(sma_cross, bars, audit):
    result = engine.run(sma_cross, bars, fast=10, slow=50, audit=audit)
    result.trades, result.orders, result.equity  # noqa: B018 - what run built before
    return result


@pytest.mark.parametrize("audit", ["off", "cuts"])
def test_run_with_frames(benchmark, ten_years, sma_cross, audit):
    result = benchmark.pedantic(_eager, args=(sma_cross, ten_years, audit), rounds=ROUNDS,
                                iterations=1, warmup_rounds=5)
    assert result.trades.height == result.metrics["trades"] + result.metrics["open_trades"]
    name = RUN_BASELINE if audit == "off" else f"run + frames (eager), audit {audit}"
    record_run(benchmark, name)


@pytest.mark.parametrize("audit", ["off", "cuts"])
def test_lean_run(benchmark, ten_years, sma_cross, audit):
    result = benchmark.pedantic(engine.run, args=(sma_cross, ten_years),
                                kwargs={"fast": 10, "slow": 50, "audit": audit},
                                rounds=ROUNDS, iterations=1, warmup_rounds=5)
    assert result.metrics["trades"] > 0
    record_run(benchmark, f"lean run (metrics only), audit {audit}")
