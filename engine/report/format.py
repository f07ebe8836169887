"""How numbers are shown to people (terminal tables and the HTML report).

Files (CSV, JSON, Parquet) keep full precision; only displays use this.
"""

from __future__ import annotations

import datetime
import math
import numbers

PERCENT = frozenset({
    "total_return", "cagr", "volatility", "max_drawdown", "hit_rate", "exposure", "best_trade",
    "worst_trade", "benchmark_return", "depth", "return", "share_positive", "mean_return",
    "median_return", "claimed_rate", "avg_return", "rate_low", "rate_high", "base_rate",
    "difference", "difference_low", "difference_high", "hit_rate_low", "hit_rate_high",
    "tracking_error", "alpha",
})
COUNTS = frozenset({
    "trades", "open_trades", "max_drawdown_duration", "same_bar_exits", "bars", "rejected",
    "margin_calls",
    "rank",
    "length", "bars_to_trough", "count", "hits", "cases", "window", "sets", "episodes",
})
PLAIN = frozenset({"year", "horizon"})
MONEY = frozenset({
    "final_equity", "expectancy", "avg_win", "avg_loss", "commissions", "borrow_costs",
    "margin_interest",
    "peak_equity", "trough_equity", "total_pnl", "cash",
})
ONE_DECIMAL = frozenset({"avg_bars_held"})

#: Shown for a missing value (None, NaN).
MISSING = "—"


def fmt(name: str, value) -> str:
    """``value`` of the column/metric ``name`` as text: 12.34%, 1,234, 1,234.56, 0.123.

    Integers (Python or NumPy) always show as integers, and so do the counts of
    :data:`COUNTS` whatever their type; other numbers show three decimals.
    """
    if value is None:
        return MISSING
    if isinstance(value, (datetime.date, datetime.datetime)):
        if isinstance(value, datetime.datetime) and value.time() == datetime.time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and name not in PERCENT and name not in MONEY:
        return f"{int(value):,}" if name not in PLAIN else str(int(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return MISSING
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if name in PERCENT:
        return f"{number:.2%}"
    if name in COUNTS:
        return f"{number:,.0f}"
    if name in PLAIN:
        return f"{number:.0f}"
    if name in MONEY:
        return f"{number:,.2f}"
    if name in ONE_DECIMAL:
        return f"{number:.1f}"
    return f"{number:.3f}"



def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def rate_with_interval(value, low, high) -> str:
    """A rate and its interval, compactly: ``55.5% [51.8, 59.2]`` (percent)."""
    if not _finite(value):
        return MISSING
    if not (_finite(low) and _finite(high)):
        return f"{value:.1%} [{MISSING}]"
    return f"{value:.1%} [{low * 100:.1f}, {high * 100:.1f}]"


def points_with_interval(value, low, high) -> str:
    """A difference of rates in percentage points with its interval: ``-0.8 [-4.2, +2.6]``."""
    if not _finite(value):
        return MISSING
    if not (_finite(low) and _finite(high)):
        return f"{value * 100:+.1f} [{MISSING}]"
    return f"{value * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"


def _evidence_columns(frame, rate: str, low: str, high: str, rate_header: str,
                      diff_header: str):
    """``frame`` with its rate and difference columns joined to their intervals as text."""
    import polars as pl

    if low not in frame.columns:
        return frame
    rows = frame.select(rate, low, high, "difference", "difference_low",
                        "difference_high").rows() if "difference_low" in frame.columns else [
        (*r, None, None) for r in frame.select(rate, low, high, "difference").rows()]
    shown = frame.with_columns(
        pl.Series(rate_header, [rate_with_interval(r[0], r[1], r[2]) for r in rows]),
        pl.Series(diff_header, [points_with_interval(r[3], r[4], r[5]) if r[4] is not None
                                else _points(r[3]) for r in rows]),
    )
    moved = (low, high, "difference", "difference_low", "difference_high", "base_rate",
             "episodes", "p_value")
    order = [c for c in frame.columns if c not in moved]
    at = order.index(rate)
    order[at:at + 1] = [rate_header, diff_header] + (["p_value"] if "p_value" in frame.columns
                                                     else [])
    if "episodes" in frame.columns:
        order.insert(order.index("count") + 1, "episodes")
    return shown.select(order)


def _points(value) -> str:
    return MISSING if value is None else f"{value * 100:+.1f}"


def hit_rate_display(frame):
    """The hit-rate table as shown: the rate with its interval, the gap to all trades."""
    return _evidence_columns(frame.drop("hits"), "hit_rate", "hit_rate_low", "hit_rate_high",
                             "hit rate [95%]", "vs all (pts)")


def event_study_display(frame):
    """The event-study table as shown: share > 0 with its interval, the gap to the base."""
    return _evidence_columns(frame, "share_positive", "rate_low", "rate_high",
                             "share > 0 [95%]", "vs base (pts) [95%]")


def margin_call_note(metrics: dict) -> str:
    """The warning a run with margin calls prints (terminal and HTML report)."""
    count = metrics.get("margin_calls") or 0
    return (f"{count:.0f} margin call(s): equity fell below maintenance_margin x the gross "
            f"position value at a close, and positions were closed at the next open, largest "
            f"first (exit reason margin_call in the trades); lower leverage or the positions' "
            f"size")
