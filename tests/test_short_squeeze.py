"""Rule A2, short-squeeze entries above 10 days-to-cover, on a hand-built universe."""

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
ShortSqueeze = load_strategy(ROOT / "strategies" / "short_squeeze.py")
N = 30
DAYS = pd.date_range("2024-01-01", periods=N, freq="D")
# no exits unless a test asks for one; confirmation off; 3-bar average volume
QUIET = dict(adv_window=3, confirm="none", dtc_exit=0.0, trail_pct=0.0, max_hold=0)


def universe(closes: dict, highs: dict | None = None, volumes: dict | None = None):
    """Long-format bars: open = close, high = close unless given, volume 1000 unless given."""
    frames = []
    for sym, close in closes.items():
        close = np.broadcast_to(np.asarray(close, dtype=float), (N,))
        high = np.maximum(close, (highs or {}).get(sym, close))
        frames.append(pd.DataFrame({
            "ts": DAYS, "symbol": sym, "open": close, "high": high, "low": close,
            "close": close, "volume": (volumes or {}).get(sym, 1000.0),
        }))
    return pd.concat(frames).sort_values(["ts", "symbol"]).reset_index(drop=True)


def short_interest(rows):
    """``(symbol, settlement day, first-seen timestamp, shares short)`` rows."""
    return pd.DataFrame({
        "symbol": [r[0] for r in rows],
        "settlement_date": [DAYS[r[1]] for r in rows],
        "first_seen": pd.to_datetime([r[2] for r in rows], utc=True),
        "shares_sold_short": [float(r[3]) for r in rows],
    })


def fed(rows, max_age="60D"):
    """ShortSqueeze reading a hand-built short-interest feed (its own settings apply, but
    max_age: one settlement date is no publication schedule for max_age="auto")."""
    base = ShortSqueeze.feeds["short_interest"]
    return type("HandFed", (ShortSqueeze,), {"feeds": {"short_interest": base.replace(
        source=short_interest(rows), max_age=max_age)}})


def trades_by_symbol(result):
    out = {}
    for row in result.trades.iter_rows(named=True):
        entry = int(np.searchsorted(DAYS, pd.Timestamp(row["entry_ts"])))
        exit_ = None if row["exit_ts"] is None else int(np.searchsorted(
            DAYS, pd.Timestamp(row["exit_ts"])))
        out.setdefault(row["symbol"], []).append((entry, exit_, row["exit_reason"]))
    return out


def test_days_to_cover_must_be_above_10_and_is_used_only_from_first_seen():
    rows = [("A", 0, "2024-01-04 00:00", 10_000),   # exactly 10 days: no entry
            ("B", 0, "2024-01-04 00:00", 10_001),   # 10.001: entry from bar 3 (its first_seen)
            ("C", 0, "2024-01-07 07:38", 50_000)]   # seen after bar 6's stamp: bar 7
    strategy = fed(rows)
    result = engine.run(strategy, universe({"A": 10, "B": 10, "C": 10}), **QUIET)
    assert trades_by_symbol(result) == {"B": [(4, None, None)], "C": [(8, None, None)]}
    dtc = result.panel.fields["shares_sold_short"] / 1000.0
    assert np.isnan(dtc[:3]).all() and dtc[3, 0] == 10.0 and dtc[3, 1] == 10.001
    assert np.isnan(dtc[:7, 2]).all() and dtc[7, 2] == 50.0
    condition = strategy(**QUIET).entry_condition(VectorData(result.panel))
    assert np.argwhere(condition).tolist() == (
        [[t, 1] for t in range(3, 7)] + [p for t in range(7, N) for p in ([t, 1], [t, 2])])
    labels = strategy(**QUIET).entry_labels(VectorData(result.panel))
    assert labels[3].tolist() == ["5-10", "> 10", None]


def test_settlement_date_plus_a_lag_instead_of_first_seen():
    rows = [("B", 0, "2024-01-02", 20_000), ("C", 2, "2024-01-03", 20_000)]
    result = engine.run(fed(rows), universe({"B": 10, "C": 10}), si_lag_days=5, **QUIET)
    # settlement day 0 + 5 days -> bar 5; day 2 + 5 -> bar 7; fills one bar later
    assert trades_by_symbol(result) == {"B": [(6, None, None)], "C": [(8, None, None)]}


@pytest.mark.filterwarnings("ignore:.*column 'volume' is missing")
def test_a_missing_volume_gives_no_days_to_cover_and_no_entry():
    volume = np.full(N, 1000.0)
    volume[4] = np.nan  # the 3-bar average is unknown on bars 4, 5 and 6
    rows = [("B", 0, "2024-01-02", 20_000)]
    result = engine.run(fed(rows), universe({"B": 10}, volumes={"B": volume}),
                        max_positions=1, **{**QUIET, "max_hold": 1})
    entries = [e for e, _, _ in trades_by_symbol(result)["B"]]
    # bar 2 signals (fill 3, out at 4); bars 4-6 have no ratio; bar 7 signals again
    assert entries[:2] == [3, 8]


def test_confirmation_close_above_the_previous_high():
    close = np.full(N, 10.0)
    close[9], close[12] = 10.5, 10.51  # the previous 3 highs are 10.5 (high of every bar)
    high = np.full(N, 10.5)
    rows = [("B", 0, "2024-01-02", 20_000)]
    result = engine.run(fed(rows), universe({"B": close}, highs={"B": high}),
                        **{**QUIET, "confirm": "high", "confirm_window": 3})
    assert trades_by_symbol(result) == {"B": [(13, None, None)]}


def test_exits_trailing_stop_days_to_cover_falling_back_and_time():
    b = np.full(N, 10.0)
    b[5:8] = [11.0, 12.0, 11.0]
    b[8:] = 10.0  # under 0.85 x 12 = 10.2: the trailing stop is hit at bar 8
    rows = [("B", 0, "2024-01-02", 20_000),
            ("C", 0, "2024-01-02", 20_000), ("C", 4, "2024-01-07", 4_000),  # 4 days at bar 6
            ("D", 0, "2024-01-02", 20_000)]
    params = dict(adv_window=3, confirm="none", dtc_exit=5.0, trail_pct=0.15, max_hold=6)
    result = engine.run(fed(rows), universe({"B": b, "C": 10, "D": 10}), **params)
    trades = trades_by_symbol(result)
    assert trades["B"][0] == (3, 9, "trailing_stop")
    assert trades["C"][0] == (3, 7, "dtc_fell")
    assert trades["D"][0] == (3, 9, "time")  # held 6 bars
    # D enters again at once (the ratio is still above 10); B too, at its lower price
    assert trades["D"][1][0] == 10 and trades["B"][1][0] == 10
    assert "C" not in {s for s, ts in trades.items() for t in ts[1:]}


def test_positions_are_sized_from_equity_and_capped_highest_ratio_first():
    rows = [("A", 0, "2024-01-02", 11_000), ("B", 0, "2024-01-02", 30_000),
            ("C", 0, "2024-01-02", 20_000), ("D", 0, "2024-01-02", 30_000)]
    result = engine.run(fed(rows), universe({"A": 10, "B": 10, "C": 10, "D": 20}),
                        size=0.25, max_positions=3, **QUIET)
    trades = result.trades.sort("symbol")
    assert trades["symbol"].to_list() == ["B", "C", "D"]  # ties (B, D) in symbol order
    assert trades["size"].to_list() == [2500.0, 2500.0, 1250.0]
    assert (result.orders["status"] == "filled").all()


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="dtc_exit .* must be below dtc_threshold"):
        ShortSqueeze(dtc_exit=12)
    with pytest.raises(ParameterError, match="confirm.* must be one of"):
        ShortSqueeze(confirm="volume")


def test_short_interest_expires_and_no_signal_fires_on_stale_figures():
    rows = [("B", 0, "2024-01-02", 20_000), ("C", 0, "2024-01-02", 20_000),
            ("C", 14, "2024-01-16", 20_000)]
    strategy = fed(rows, max_age="auto")
    # two settlements (days 0 and 14), seen a day later: auto = 14 + 1 + 7 = 22 days
    result = engine.run(strategy, universe({"B": 10, "C": 10}), **QUIET)
    assert result.panel.meta["feeds"]["short_interest"]["max_age"] == "22D"
    condition = strategy(**QUIET).entry_condition(VectorData(result.panel))
    # B's only figure (settled day 0) is stale after day 22; C's second lasts to day 36
    assert np.flatnonzero(condition[:, 0]).tolist() == list(range(2, 23))
    assert np.flatnonzero(condition[:, 1]).tolist() == list(range(2, N))
    # si_max_age_days sets the age in days instead
    short = engine.run(strategy, universe({"B": 10, "C": 10}), si_max_age_days=5, **QUIET)
    assert short.panel.meta["feeds"]["short_interest"]["max_age"] == "5D"
    assert np.isnan(short.panel.fields["shares_sold_short"][6:14, 1]).all()
    # one settlement date is no schedule: the error names the feed and the fix
    with pytest.raises(engine.errors.DataError, match="short_interest.*two distinct"):
        engine.run(fed(rows[:1], max_age="auto"), universe({"B": 10}), **QUIET)
