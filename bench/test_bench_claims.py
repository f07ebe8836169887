"""What the claims' intervals cost: one ``rate_evidence`` resampling on 9,000 bars (the VIX
bands' window) with the block-sum stationary bootstrap of ``engine.analysis.stats``
(``stationary_block_sums``, a compiled kernel), against
the same resampling drawn by ``arch.bootstrap.StationaryBootstrap`` index by index, and
the whole claims audit (``measure_all``: some sixty intervals beside the runs).

Run: ``python -m pytest bench/test_bench_claims.py -q``; compare the rows of one run
(bars per second: the 9,000 bars times 1,000 resamples for the bootstrap rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import record

N, REPS, BLOCK = 9_000, 1_000, 42.0


@pytest.fixture(scope="module")
def columns():
    rng = np.random.default_rng(5)
    signal = rng.random(N) < 0.3
    success = rng.random(N) < 0.6
    return np.column_stack([signal, signal & success, np.ones(N), success]).astype(float)


def test_block_sums(benchmark, columns):
    from engine.analysis.stats import stationary_block_sums

    sums = benchmark.pedantic(stationary_block_sums, args=(columns, BLOCK, REPS, 0), rounds=3,
                              iterations=1)
    assert sums.shape == (REPS, 4)
    record(benchmark, "rate interval, block sums (engine)", N * REPS)


def test_arch_indices(benchmark, columns):
    from arch.bootstrap import StationaryBootstrap

    def resample():
        sampler = StationaryBootstrap(BLOCK, np.arange(N), seed=np.random.default_rng(0))
        return np.array([columns[i].sum(axis=0) for (i,), _ in sampler.bootstrap(REPS)])

    sums = benchmark.pedantic(resample, rounds=3, iterations=1)
    assert sums.shape == (REPS, 4)
    record(benchmark, "rate interval, arch StationaryBootstrap indices", N * REPS)


def test_claims_audit(benchmark):
    from engine.research.claims import measure_all

    table = benchmark.pedantic(measure_all, rounds=1, iterations=1)
    assert table.height == 35
    record(benchmark, "claims audit (measure_all)", 35)
