"""What the look-ahead audit costs: ``engine.run`` of the SMA cross with ``audit="off"``,
``"cuts"`` (the default) and ``"full"``, on the bundled S&P 500 (24,777 daily bars) and
on a seeded 1,000,000-bar random walk, on both paths.

Run: ``python -m pytest bench/test_bench_lookahead.py -q``; the summary lists bars per
second of each whole run, so the overhead of a mode is the ratio of its time to the
``off`` row's in the same run. ``"full"`` (a prefix ending at every bar, quadratic) is
timed on the S&P data only: on 1M bars it would take hours.
"""

from __future__ import annotations

import pytest

import engine
from bench.conftest import ROOT, record

ROUNDS = 3


@pytest.fixture(scope="module")
def sp500():
    return engine.load_bars(ROOT / "datasets" / "sp500_daily.parquet")


@pytest.mark.parametrize("path", ["vector", "event"])
@pytest.mark.parametrize("audit", ["off", "cuts", "full"])
def test_audit_sp500(benchmark, sp500, sma_cross, audit, path):
    result = benchmark.pedantic(engine.run, args=(sma_cross, sp500),
                                kwargs={"mode": path, "audit": audit},
                                rounds=1 if audit == "full" else ROUNDS, iterations=1)
    assert result.settings["audit"] == audit
    record(benchmark, f"S&P 24k, {path} path, audit={audit}", sp500.n_bars)


@pytest.mark.parametrize("path", ["vector", "event"])
@pytest.mark.parametrize("audit", ["off", "cuts"])
def test_audit_walk_1m(benchmark, walk_1m, sma_cross, audit, path):
    result = benchmark.pedantic(engine.run, args=(sma_cross, walk_1m),
                                kwargs={"mode": path, "audit": audit},
                                rounds=ROUNDS, iterations=1)
    assert result.metrics["trades"] > 1000
    record(benchmark, f"walk 1M, {path} path, audit={audit}", walk_1m.n_bars)
