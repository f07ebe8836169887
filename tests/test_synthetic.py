"""The seeded random walk used by tests and benchmarks."""

import numpy as np
import pytest

from engine.data.synthetic import random_walk


def test_same_seed_same_bars_and_valid_ranges():
    a, b = random_walk(500, 3, seed=4), random_walk(500, 3, seed=4)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(a.fields[name], b.fields[name])
    f = a.fields
    assert (f["low"] <= np.minimum(f["open"], f["close"])).all()
    assert (f["high"] >= np.maximum(f["open"], f["close"])).all()


def test_timestamps_increase_and_never_wrap_past_2262():
    walk = random_walk(200_000, seed=1, freq="m")
    assert (np.diff(walk.ts.astype(np.int64)) == 60 * 10**9).all()
    with pytest.raises(ValueError, match="pass freq='m'"):
        random_walk(200_000, seed=1)  # daily stamps from 2000 would pass 2262
