"""Rule A3, exit on a failed breakout, on hand-built bars (zone 100-102, target 110-112)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engine
from engine.errors import ParameterError
from engine.strategy.base import VectorData
from engine.strategy.plugins import load_strategy

ROOT = Path(__file__).resolve().parents[1]
BreakoutFailure = load_strategy(ROOT / "strategies" / "breakout_failure.py")
LEVELS = dict(zone_low=100.0, zone_high=102.0, target_low=110.0, target_high=112.0)
# long from the first bar; touch at a high of 99, rejection at a close of 98
STUDY = dict(LEVELS, entry="always", fail_window=3, approach_pct=0.01, reject_pct=0.02,
             max_hold=0, size=1.0)


def path(closes, highs=None, start="2024-01-01"):
    """Bars with open = low = close, and high = close unless a higher one is given."""
    closes = np.asarray(closes, dtype=float)
    n = 40
    closes = np.r_[closes, np.full(n - len(closes), closes[-1])]
    high = closes.copy()
    for bar, value in (highs or {}).items():
        high[bar] = max(high[bar], value)
    return pd.DataFrame({"ts": pd.date_range(start, periods=n, freq="D"), "open": closes,
                         "high": high, "low": closes, "close": closes, "volume": 1.0})


def trips(result):
    """(entry bar, exit bar, reason) of each trade."""
    ts = result.panel.ts
    out = []
    for row in result.trades.iter_rows(named=True):
        entry = int(np.searchsorted(ts, np.datetime64(row["entry_ts"], "ns")))
        exit_ = (None if row["exit_ts"] is None
                 else int(np.searchsorted(ts, np.datetime64(row["exit_ts"], "ns"))))
        out.append((entry, exit_, row["exit_reason"]))
    return out


BREAK_AND_FAIL = [95, 96, 97, 103, 101, 99.5, 99]  # above 102 at bar 3, under 100 at bar 5


def test_a_break_above_the_zone_then_a_close_under_it_exits_at_once():
    result = engine.run(BreakoutFailure, path(BREAK_AND_FAIL), **STUDY)
    assert trips(result) == [(1, 6, "failed_breakout")]  # always: filled at bar 1's open


def test_a_fall_back_after_the_fail_window_is_not_a_failure():
    held = [95, 96, 97, 103, 101, 101, 101, 99.5, 99]  # under 100 four bars after the break
    assert trips(engine.run(BreakoutFailure, path(held), **STUDY)) == [(1, None, None)]


def test_a_close_back_in_the_zone_is_not_a_failure():
    in_zone = [95, 96, 97, 103, 100.5, 100, 101]
    assert trips(engine.run(BreakoutFailure, path(in_zone), **STUDY)) == [(1, None, None)]


def test_a_rally_turned_back_at_the_zone_is_a_rejection():
    rally = [95, 96, 98.8, 98.5, 97.9, 97]
    result = engine.run(BreakoutFailure, path(rally, highs={2: 99.2}), **STUDY)
    assert trips(result) == [(1, 5, "rejection")]  # touched at bar 2, turned back at bar 4
    # touched and turned back within one bar
    reversal = engine.run(BreakoutFailure, path([95, 96, 97.5, 97], highs={2: 99.2}), **STUDY)
    assert trips(reversal) == [(1, 3, "rejection")]
    # a high short of 99 is no touch; a turn back after the window is no rejection
    short = engine.run(BreakoutFailure, path(rally, highs={2: 98.9}), **STUDY)
    assert trips(short) == [(1, None, None)]
    late = [95, 96, 98.8, 98.5, 98.5, 98.5, 97.9]
    assert trips(engine.run(BreakoutFailure, path(late, highs={2: 99.2}), **STUDY)) \
        == [(1, None, None)]


def test_fail_mode_chooses_the_reading():
    rally = path([95, 96, 98.8, 98.5, 97.9, 97], highs={2: 99.2})
    breaks = path(BREAK_AND_FAIL)
    only_break = {**STUDY, "fail_mode": "break_and_fail"}
    only_reject = {**STUDY, "fail_mode": "rejection"}
    assert trips(engine.run(BreakoutFailure, rally, **only_break)) == [(1, None, None)]
    assert trips(engine.run(BreakoutFailure, breaks, **only_reject)) == [(1, None, None)]
    assert trips(engine.run(BreakoutFailure, rally, **only_reject)) == [(1, 5, "rejection")]
    # touched, then a close above the zone: a breakout now, so its failure is not a rejection
    touched_then_broke = path([95, 96, 98.8, 102.5, 97.9], highs={2: 99.2})
    assert trips(engine.run(BreakoutFailure, touched_then_broke, **STUDY)) \
        == [(1, 5, "failed_breakout")]
    assert trips(engine.run(BreakoutFailure, touched_then_broke, **only_reject)) \
        == [(1, None, None)]


def test_a_breakout_that_holds_reaches_the_target():
    holds = [95, 101, 103, 104, 105, 106, 101, 108, 109.99, 110, 111]
    result = engine.run(BreakoutFailure, path(holds), **STUDY)
    assert trips(result) == [(1, 10, "target")]
    assert result.trades["exit_price"].to_list() == [111.0]


def test_stop_and_time_exits():
    stopped = engine.run(BreakoutFailure, path([95, 95, 90.5, 90.0, 89]), **STUDY)
    assert trips(stopped) == [(1, 4, "stop")]  # 5% under the 95 fill is 90.25
    timed = engine.run(BreakoutFailure, path([95] * 10), **{**STUDY, "max_hold": 4})
    assert trips(timed) == [(1, 5, "time")]
    assert timed.trades["bars_held"].to_list() == [4]


def test_position_size_is_limited():
    result = engine.run(BreakoutFailure, path([95] * 5), **{**STUDY, "size": 0.5})
    assert result.trades["size"].to_list() == [526.0]  # floor(50,000 / 95)


def test_rebound_entry_above_the_weekly_average_after_a_pull_back_under_the_zone():
    days = pd.bdate_range("2024-01-01", periods=15)  # three Monday-Friday weeks
    close = np.r_[np.full(5, 90.0), np.full(10, 95.0)]
    low = close.copy()
    low[7] = 93.0  # bar 7 dips to within 2% of the weekly average (90 + 95) / 2 = 92.5
    bars = pd.DataFrame({"ts": days, "open": close, "high": close, "low": low, "close": close,
                         "volume": 1.0})
    params = dict(LEVELS, weekly_window=2, rebound_window=2, support_pct=0.02, max_hold=2)
    strategy = BreakoutFailure(**params)
    result = engine.run(BreakoutFailure, bars, **params)
    condition = strategy.entry_condition(VectorData(result.panel))
    # bars 7 and 8 see the dip; from week 3 the average is 95 and the close is not above it
    assert np.flatnonzero(condition).tolist() == [7, 8]
    assert trips(result) == [(8, 10, "time")]
    week = __import__(BreakoutFailure.__module__).weekly_sma(days, close, 2)
    np.testing.assert_array_equal(week, [np.nan] * 5 + [92.5] * 5 + [95.0] * 5)


def test_weekly_average_matches_pandas_weekly_bars_at_each_week_end():
    panel = engine.load_bars(ROOT / "datasets" / "sp500_daily.parquet", start="2015-01-01")
    close = panel.fields["close"][:, 0]
    week = __import__(BreakoutFailure.__module__).weekly_sma(panel.ts, close, 20)
    series = pd.Series(close, index=pd.DatetimeIndex(panel.ts))
    weekly = series.resample("W-SUN").last().dropna()
    reference = weekly.rolling(20).mean()
    week_end = series.groupby(series.index.to_period("W-SUN")).tail(1).index
    ours = pd.Series(week, index=pd.DatetimeIndex(panel.ts))[week_end]
    expected = reference.reindex(week_end.to_period("W-SUN").to_timestamp("W-SUN", "end")
                                 .normalize()).to_numpy()
    np.testing.assert_allclose(ours.to_numpy(), expected, rtol=1e-12)
    # causal: on a prefix of the bars, the prefix of the values
    cut = len(close) // 2 + 3
    np.testing.assert_array_equal(
        __import__(BreakoutFailure.__module__).weekly_sma(panel.ts[:cut], close[:cut], 20),
        week[:cut])


def test_event_path_enters_exactly_where_the_entry_condition_holds_while_flat():
    result = engine.run(BreakoutFailure)
    condition = BreakoutFailure().entry_condition(VectorData(result.panel))
    placed = result.orders.filter(result.orders["tag"] == "rebound")["placed_ts"].to_numpy()
    placed = np.searchsorted(result.panel.ts, placed)
    held = np.zeros(result.panel.n_bars, dtype=bool)
    for entry, exit_, _ in trips(result):
        held[entry:exit_] = True
    assert placed.tolist() == np.flatnonzero(condition & ~held).tolist()


def test_labels_and_parameters():
    labels = BreakoutFailure(**LEVELS).entry_labels(VectorData(engine.load_bars(path(
        [95, 99.9, 100, 102, 102.1, 110, 112, 112.1]))))
    assert labels[:8].tolist() == ["under zone", "under zone", "in zone", "in zone",
                                   "above zone", "target zone", "target zone", "above target"]
    with pytest.raises(ParameterError, match="the levels must rise"):
        BreakoutFailure(zone_low=6200, zone_high=6180)
    with pytest.raises(ParameterError, match="fail_mode.* must be one of"):
        BreakoutFailure(fail_mode="both")
