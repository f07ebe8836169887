"""The SMA cross on both paths and against an independent plain-Python reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.backtest.reference import sma_cross_reference
from engine.data.synthetic import random_walk
from engine.errors import ParameterError
from engine.strategy.indicators import sma
from engine.strategy.plugins import load_strategy

ROOT = Path(__file__).resolve().parents[1]
SmaCross = load_strategy(ROOT / "strategies" / "sma_cross.py")


@pytest.fixture(scope="module")
def walk():
    return random_walk(200_000, seed=11, volatility=0.002, freq="m")


@pytest.fixture(scope="module")
def both_paths(walk):
    return engine.run(SmaCross, walk, mode="event"), engine.run(SmaCross, walk, mode="vector")


def test_event_and_vector_paths_make_identical_trades(both_paths):
    event, vector = both_paths
    assert event.trades.height > 1000
    assert event.trades.equals(vector.trades)
    assert event.orders.equals(vector.orders)
    assert event.equity.equals(vector.equity)
    assert event.metrics == pytest.approx(vector.metrics, nan_ok=True)


def test_engine_matches_the_plain_python_reference(walk, both_paths):
    event, _ = both_paths
    open_, close = walk.fields["open"][:, 0], walk.fields["close"][:, 0]
    trades, equity = sma_cross_reference(open_.tolist(), close.tolist(),
                                         sma(close, 10).tolist(), sma(close, 20).tolist())
    entry_bar = np.array([t[0] for t in trades])
    exit_bar = np.array([-1 if t[2] is None else t[2] for t in trades])
    exit_ts = np.where(exit_bar >= 0, walk.ts[exit_bar], np.datetime64("NaT", "ns"))
    expected = pl.DataFrame({
        "entry_ts": walk.ts[entry_bar],
        "entry_price": [t[1] for t in trades],
        "exit_ts": exit_ts,
        "exit_price": [t[3] for t in trades],
        "size": [float(t[4]) for t in trades],
    })
    got = event.trades.select(expected.columns)
    assert got.equals(expected)
    np.testing.assert_allclose(event.equity["equity"].to_numpy(), equity, rtol=1e-12)


def test_ties_keep_the_last_sign():
    # Fall (sign -1), flat (exact ties), rise (cross up: entry), flat (ties: no exit),
    # fall (cross down: exit), flat. Prices with two decimals make the SMAs tie
    # exactly on the flats; a rolling mean that drifts by 1e-12 would trade there.
    close = np.round(np.r_[np.linspace(12, 10, 20), np.full(30, 10.0), np.linspace(10, 12.3, 11),
                           np.full(40, 12.3), np.linspace(12.3, 9.1, 16), np.full(40, 9.1)], 2)
    frame = pl.DataFrame({
        "ts": np.datetime64("2020-01-01", "ns") + np.arange(len(close)) * np.timedelta64(1, "D"),
        "open": close, "high": close, "low": close, "close": close, "volume": 1.0,
    })
    event = engine.run(SmaCross, frame, mode="event", fast=3, slow=6)
    vector = engine.run(SmaCross, frame, mode="vector", fast=3, slow=6)
    assert event.trades.equals(vector.trades)
    assert event.trades.height == 1
    trade = event.trades.row(0, named=True)
    day = np.timedelta64(1, "D")
    start = np.datetime64("2020-01-01")
    # the ramp up starts at bar 50: fast > slow from bar 51, filled at bar 52's open
    assert np.datetime64(trade["entry_ts"], "D") == start + 52 * day
    # the fall starts at bar 101: fast < slow from bar 102, filled at bar 103's open
    assert np.datetime64(trade["exit_ts"], "D") == start + 103 * day


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="fast .* must be shorter than slow"):
        engine.run(SmaCross, random_walk(100), fast=30, slow=20)
    with pytest.raises(ParameterError, match="unknown parameter 'fsat'.*Did you mean 'fast'"):
        engine.run(SmaCross, random_walk(100), fsat=3)


def test_same_inputs_give_identical_outputs(walk):
    a = engine.run(SmaCross, walk.slice(0, 20_000), mode="event")
    b = engine.run(SmaCross, walk.slice(0, 20_000), mode="event")
    assert a.trades.equals(b.trades) and a.orders.equals(b.orders) and a.equity.equals(b.equity)
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True, rel=0, abs=0)


def test_runs_on_the_bundled_sp500():
    result = engine.run(SmaCross)
    assert result.settings["start"] == "1927-12-30"
    assert result.metrics["trades"] > 300
    # 1962-1982 has no opens: fills there happen at the close, never at an invented price
    trades = result.trades.filter(pl.col("entry_ts").dt.year().is_between(1963, 1981))
    assert trades.height > 0
    panel = engine.load_bars(ROOT / "datasets" / "sp500_daily.parquet")
    bars = pl.DataFrame({"entry_ts": panel.ts, "bar_open": panel.fields["open"][:, 0],
                         "bar_close": panel.fields["close"][:, 0]})
    joined = trades.join(bars, on="entry_ts", how="left")
    assert joined["bar_open"].is_nan().all()
    assert (joined["entry_price"] == joined["bar_close"]).all()
