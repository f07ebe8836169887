"""A plain-Python SMA-cross backtest, written apart from the compiled core.

It serves twice: tests compare the engine's trades and equity with it, and
``bench/`` times it as the "bare Python loop" baseline that the compiled engine
must beat. It implements exactly the rules of ``strategies/sma_cross.py`` under
the engine's defaults: next-open market fills (the close when the open is
missing), all the cash in whole shares, no costs.
"""

from __future__ import annotations

import math


def sma_cross_reference(open_, close, fast_ma, slow_ma, cash=100_000.0):
    """Run the SMA cross over lists of floats and return ``(trades, equity)``.

    Parameters
    ----------
    open_, close : sequence of float
        Bars of one instrument (NaN open allowed).
    fast_ma, slow_ma : sequence of float
        The two moving averages (NaN during warm-up).
    cash : float
        Starting cash.

    Returns
    -------
    trades : list of tuple
        ``(entry_bar, entry_price, exit_bar or None, exit_price or None, size)``.
    equity : list of float
        Equity at each close.
    """
    position = 0.0
    last_sign = 0
    pending = None  # "buy" or "sell", to fill at the next bar
    trades = []
    equity = []
    entry = None
    for i in range(len(close)):
        if pending is not None:
            price = open_[i] if not math.isnan(open_[i]) else close[i]
            if pending == "buy":
                size = math.floor(cash / price)
                if size > 0:
                    cash -= size * price
                    position = size
                    entry = (i, price, size)
            else:
                cash += position * price
                trades.append((entry[0], entry[1], i, price, entry[2]))
                position = 0.0
                entry = None
            pending = None
        diff = fast_ma[i] - slow_ma[i]
        sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if sign != 0:
            if last_sign == -1 and sign == 1 and position == 0:
                pending = "buy"
            elif last_sign == 1 and sign == -1 and position > 0:
                pending = "sell"
            last_sign = sign
        equity.append(cash + position * close[i])
    if entry is not None:
        trades.append((entry[0], entry[1], None, None, entry[2]))
    return trades, equity
