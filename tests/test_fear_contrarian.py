"""Rule A1, buy at extreme fear, on hand-built bars and hand-built feeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_bars

import engine
from engine import Feed
from engine.errors import ParameterError
from engine.strategy.plugins import load_strategy

ROOT = Path(__file__).resolve().parents[1]
FearContrarian = load_strategy(ROOT / "strategies" / "fear_contrarian.py")
N = 20
DAYS = pd.date_range("2024-01-01", periods=N, freq="D")  # make_bars' calendar


def flat_bars(n=N, price=100.0):
    return make_bars([(price, price, price, price)] * n)


def with_feeds(fear_greed=None, vix=None):
    """FearContrarian reading hand-built feeds (so its own lag and max_age settings apply)."""
    feeds = {}
    if fear_greed is not None:
        feeds["fear_greed"] = Feed(pd.DataFrame({"ts": DAYS[: len(fear_greed)],
                                                 "fear_greed": fear_greed}))
    if vix is not None:
        feeds["vix"] = Feed(pd.DataFrame({"ts": DAYS[: len(vix)], "close": vix}),
                            columns={"close": "vix"})
    return type("HandFed", (FearContrarian,), {"feeds": feeds})


def bars_of(result, column):
    """Bar numbers of a datetime column of the trades."""
    return [int(np.searchsorted(DAYS, pd.Timestamp(ts))) for ts in result.trades[column]]


def readings(**at):
    values = np.full(N, 50.0)
    for bar, value in at.items():
        values[int(bar[1:])] = value
    return values


def test_extreme_fear_enters_at_and_below_25_and_not_just_above():
    # bar 2: 25.01 (just above: nothing); bar 5: 25 (at); bar 12: 24.99 (just below)
    fg = readings(b2=25.01, b5=25.0, b12=24.99)
    strategy = with_feeds(fear_greed=fg)
    result = engine.run(strategy, flat_bars(), max_hold=3)
    # a signal at bar t fills at bar t + 1's open; the time exit fills 3 bars later
    assert bars_of(result, "entry_ts") == [6, 13]
    assert bars_of(result, "exit_ts") == [9, 16]
    assert result.trades["exit_reason"].to_list() == ["time", "time"]
    assert result.trades["bars_held"].to_list() == [3, 3]
    entry_orders = result.orders.filter(result.orders["tag"] == "extreme_fear")
    assert [int(np.searchsorted(DAYS, pd.Timestamp(t))) for t in entry_orders["placed_ts"]] \
        == [5, 12]
    condition = strategy().entry_condition(engine.strategy.base.VectorData(result.panel))
    assert np.flatnonzero(condition).tolist() == [5, 12]


def test_greed_exit_at_the_exit_threshold_and_not_below_it():
    fg = readings(b1=20, b4=54.99, b7=55)
    result = engine.run(with_feeds(fear_greed=fg), flat_bars())
    assert bars_of(result, "entry_ts") == [2]
    assert bars_of(result, "exit_ts") == [8]
    assert result.trades["exit_reason"].to_list() == ["greed"]


def test_position_size_is_a_fraction_of_equity():
    fg = readings(b1=10)
    result = engine.run(with_feeds(fear_greed=fg), flat_bars(), size=0.3)
    assert result.trades["size"].to_list() == [300.0]  # 30% of 100,000 at 100


def test_a_fear_greed_value_is_never_used_before_its_date():
    fg = readings(b3=10)
    seen = {}

    class Spy(with_feeds(fear_greed=fg)):
        def on_bar(self, bar):
            seen[bar.index] = self.data.fear_greed[-1]
            super().on_bar(bar)

    result = engine.run(Spy, flat_bars(), max_hold=2)
    assert [seen[i] for i in range(5)] == [50, 50, 50, 10, 50]
    assert bars_of(result, "entry_ts") == [4]  # the value of day 3 acts at bar 3's close
    lagged = engine.run(with_feeds(fear_greed=fg), flat_bars(), fg_lag=1, max_hold=2)
    assert bars_of(lagged, "entry_ts") == [5]
    with pytest.raises(engine.errors.LookAheadError):
        class Peek(with_feeds(fear_greed=fg)):
            def on_bar(self, bar):
                self.data.fear_greed[bar.index + 1]

        engine.run(Peek, flat_bars())


def test_missing_and_stale_readings_neither_enter_nor_exit():
    fg = np.r_[50.0, 50.0, 10.0]  # the feed stops at bar 2
    result = engine.run(with_feeds(fear_greed=fg), flat_bars(), feed_max_age=3, max_hold=0)
    values = result.panel.fields["fear_greed"][:, 0]
    assert np.isfinite(values[:6]).all() and np.isnan(values[6:]).all()
    # 10 stays visible up to bar 5 (3 bars old): one entry, then no re-entry, no exit
    assert bars_of(result, "entry_ts") == [3]
    assert result.trades["exit_ts"].to_list() == [None]


def test_vix_signal_sizes_by_band_tops_up_at_panic_and_exits_when_calm():
    vix = np.full(N, 25.0)
    vix[[1, 2]] = [29.99, 30.0]  # 30 enters with vix_size
    vix[5] = 40.0                # panic while long: top up to size
    vix[9] = 20.0                # calm: exit
    vix[12] = 45.0               # flat at panic: enter with size at once
    vix[15] = 19.0
    result = engine.run(with_feeds(vix=vix), flat_bars(), signal="vix")
    # the top-up is a lot of its own (FIFO ledger): the calm exit closes both lots
    assert bars_of(result, "entry_ts") == [3, 6, 13]
    assert bars_of(result, "exit_ts") == [10, 10, 16]
    assert result.trades["exit_reason"].to_list() == ["vix_calm", "vix_calm", "vix_calm"]
    assert result.trades["size"].to_list() == [500.0, 500.0, 1000.0]
    orders = result.orders.filter(result.orders["status"] == "filled")
    assert orders["tag"].to_list() == ["vix_fear", "top_up", "vix_calm", "vix_panic", "vix_calm"]
    assert orders["fill_qty"].to_list() == [500.0, 500.0, -1000.0, 1000.0, -1000.0]


def test_labels_follow_the_glossary_bands_and_claims_quote_it():
    mod = __import__(FearContrarian.__module__)
    labels = mod.fear_greed_band([0, 25, 25.01, 45, 45.5, 55, 55.5, 75, 75.5, 100, np.nan])
    assert labels.tolist() == ["extreme fear", "extreme fear", "fear", "fear", "neutral",
                               "neutral", "greed", "greed", "extreme greed", "extreme greed",
                               None]
    vix = mod.vix_band([9, 15, 19.9, 20, 29.9, 30, 39.9, 40, 80, np.nan])
    assert vix.tolist() == ["extreme optimism", "optimistic", "optimistic", "anxiety", "anxiety",
                            "fear", "fear", "panic", "panic", None]
    # the glossary's sell claims (greed 70%, extreme greed 80%) as shares of rising prices
    assert FearContrarian().claims == pytest.approx(
        {"extreme fear": 0.85, "fear": 0.75, "neutral": 0.60, "greed": 1 - 0.70,
         "extreme greed": 1 - 0.80}, abs=1e-12)
    # the VIX bands claim no rates: its "fear" band must not borrow the F&G one's
    assert FearContrarian(signal="vix").claims == {}


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="exit_threshold .* must be above fear_threshold"):
        FearContrarian(exit_threshold=20)
    with pytest.raises(ParameterError, match="vix_size .* must not exceed size"):
        FearContrarian(signal="vix", size=0.3, vix_size=0.5)
    FearContrarian(size=0.3)  # vix_size only matters with signal="vix"
    with pytest.raises(ParameterError, match="must be one of 'fear_greed', 'vix'"):
        FearContrarian(signal="vxx")
