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
    "median_return", "claimed_rate", "avg_return",
})
COUNTS = frozenset({
    "trades", "open_trades", "max_drawdown_duration", "same_bar_exits", "bars", "rejected",
    "rank",
    "length", "bars_to_trough", "count", "hits", "cases", "window", "sets", "episodes",
})
PLAIN = frozenset({"year", "horizon"})
MONEY = frozenset({
    "final_equity", "expectancy", "avg_win", "avg_loss", "commissions", "borrow_costs",
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

