"""Lean runs: ``engine.run`` computes the metrics from the broker's arrays and builds
the trades, orders and equity frames only when they are read; what depends on the
bars alone is computed once per panel."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.analysis.metrics import compute_metrics
from engine.backtest.result import equity_frame, orders_frame, trades_frame
from engine.data.synthetic import random_walk

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")


@pytest.fixture(scope="module")
def bars():
    return random_walk(800, seed=11)


def test_frames_are_built_on_first_access_and_match_the_broker_tables(bars):
    result = engine.run(SMA, bars, fast=5, slow=20, commission=0.001)
    assert result._source is not None  # nothing built yet
    broker = result.instance._broker
    assert result.trades.equals(trades_frame(broker.trades_table(), bars), null_equal=True)
    assert result.orders.equals(orders_frame(broker.orders_table(), bars), null_equal=True)
    assert result.equity.equals(equity_frame(bars, broker.equity_curve, broker.cash_curve))
    assert result.trades is result.trades  # built once
    assert result._source is None  # every frame built: the tables are let go


def test_metrics_from_the_arrays_equal_the_metrics_from_the_frames(bars):
    result = engine.run(SMA, bars, fast=5, slow=20, commission=0.001)
    closed = result.trades.filter(pl.col("exit_ts").is_not_null())
    assert closed.height > 5 and result.trades.height > closed.height - 1
    expected = compute_metrics(
        result.equity["equity"].to_numpy(), starting_cash=100_000.0,
        trade_pnl=closed["pnl"].to_numpy(), trade_return=closed["return_pct"].to_numpy(),
        in_market=result.instance._broker.exposure, benchmark_equity=result.benchmark,
        benchmark_start=100_000.0, periods_per_year=result.settings["periods_per_year"])
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, nan_ok=True, rel=0, abs=0), name
    assert result.metrics["open_trades"] == result.trades.height - closed.height


def test_a_lean_result_pickles_writes_its_files_and_tables(bars, tmp_path):
    result = engine.run(SMA, bars, fast=5, slow=20)
    back = pickle.loads(pickle.dumps(result))
    assert back.metrics == result.metrics
    assert back.trades.equals(result.trades, null_equal=True)
    assert back.orders.equals(result.orders, null_equal=True)
    assert back.equity.equals(result.equity)
    assert set(back.tables()) == {"drawdowns", "yearly", "hit_rates", "event_study"}
    out = engine.run(SMA, bars, fast=5, slow=20).to_dir(tmp_path / "run", report=False)
    assert pl.read_parquet(out / "trades.parquet").equals(result.trades, null_equal=True)


def test_values_read_off_the_bars_are_kept_per_panel_but_follow_the_options(bars):
    first = engine.run(SMA, bars, fast=5, slow=20)
    weekly = engine.run(SMA, bars, fast=5, slow=20, periods_per_year=52)
    assert first.settings["periods_per_year_from"] != "given"
    assert weekly.settings["periods_per_year"] == 52
    small = engine.run(SMA, bars, fast=5, slow=20, cash=1_000.0)
    assert first.benchmark[0] == 100_000.0 and small.benchmark[0] == 1_000.0
    again = engine.run(SMA, bars, fast=5, slow=20)
    assert again.benchmark is first.benchmark and not again.benchmark.flags.writeable
    assert np.allclose(first.benchmark * 0.01, small.benchmark, rtol=1e-12, atol=0)
