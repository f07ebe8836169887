"""engine.walk_forward: windows, in-sample choice, stitched out-of-sample equity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.data.synthetic import random_walk
from engine.errors import ParameterError

SMA = str(Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py")
GRID = {"fast": [3, 5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def bars():
    return random_walk(1000, seed=11)


@pytest.fixture(scope="module")
def wf(bars):
    return engine.walk_forward(SMA, GRID, train=300, test=200, data=bars, n_jobs=1,
                               progress=False)


def test_windows_tile_the_bars_after_the_first_training_window(wf, bars):
    w = wf.windows
    assert w["window"].to_list() == [0, 1, 2, 3]  # test windows 300-500-700-900-1000
    assert wf.equity.height == 700
    ts = bars.ts.astype("datetime64[us]")
    assert w["test_start"].to_list() == [ts[i].item() for i in (300, 500, 700, 900)]
    assert w["train_start"].to_list() == [ts[i].item() for i in (0, 200, 400, 600)]
    assert w["test_end"][-1] == ts[-1].item()
    assert np.array_equal(wf.equity["ts"].to_numpy(), bars.ts[300:])
    assert w["error"].is_null().all()


def test_each_window_picks_the_best_training_set(wf, bars):
    for row in wf.windows.iter_rows(named=True):
        start = row["window"] * 200
        sweep = engine.sweep(SMA, GRID, data=bars.slice(start, start + 300), n_jobs=1,
                             progress=False, sort_by="sharpe")
        best = sweep.row(0, named=True)
        assert (row["fast"], row["slow"]) == (best["fast"], best["slow"])
        assert row["in_sample"] == best["sharpe"]


def test_out_of_sample_equity_chains_the_test_bars_returns(wf, bars):
    level = 100_000.0
    for row in wf.windows.iter_rows(named=True):
        start = row["window"] * 200
        stop = min(start + 500, bars.n_bars)
        result = engine.run(SMA, bars.slice(start, stop), fast=row["fast"], slow=row["slow"])
        eq = result.equity["equity"].to_numpy()
        expected = level * eq[300:] / eq[299]
        got = wf.equity.filter(pl.col("window") == row["window"])["equity"].to_numpy()
        assert np.allclose(got, expected, rtol=1e-12)
        level = expected[-1]
    assert math.isclose(wf.metrics["final_equity"], level, rel_tol=1e-12)
    summary = wf.summary()
    assert summary.columns == ["metric", "in_sample", "out_of_sample"]
    assert "sharpe" in summary["metric"].to_list()


def test_same_result_with_two_workers(wf, bars):
    two = engine.walk_forward(SMA, GRID, train=300, test=200, data=bars, n_jobs=2,
                              progress=False)
    assert two.windows.equals(wf.windows)
    assert two.equity.equals(wf.equity)


def test_a_window_with_no_usable_set_stays_flat(bars):
    wf = engine.walk_forward(SMA, {"fast": [5], "slow": [400]}, train=300, test=300,
                             data=bars, n_jobs=1, progress=False)
    first = wf.windows.row(0, named=True)
    assert first["error"] is not None and first["fast"] is None
    flat = wf.equity.filter(pl.col("window") == 0)["equity"]
    assert (flat == 100_000.0).all()


def test_bad_windows_are_refused(bars):
    with pytest.raises(ParameterError, match="not enough"):
        engine.walk_forward(SMA, GRID, train=1000, test=10, data=bars, progress=False)
    with pytest.raises(ParameterError, match="test must be"):
        engine.walk_forward(SMA, GRID, train=100, test=0, data=bars, progress=False)
    with pytest.raises(ParameterError, match="not a metric"):
        engine.walk_forward(SMA, GRID, train=100, test=50, metric="sharp", data=bars,
                            progress=False)
