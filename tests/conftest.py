"""Shared test helpers: hand-built bars (``from conftest import make_bars``)."""

import numpy as np
import pandas as pd


def make_bars(rows, start="2024-01-01", symbol=None):
    """A DataFrame of daily bars from ``(open, high, low, close)`` tuples (NaN allowed)."""
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    df = pd.DataFrame({
        "ts": pd.date_range(start, periods=len(arr), freq="D"),
        "open": arr[:, 0], "high": arr[:, 1], "low": arr[:, 2], "close": arr[:, 3],
        "volume": 1000.0,
    })
    if symbol is not None:
        df.insert(1, "symbol", symbol)
    return df
