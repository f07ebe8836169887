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


def fifo_ledger(fills, close, *, borrow_rate=0.0, periods_per_year=252.0):
    """Rebuild a run's trade ledger from its fills, in plain Python (FIFO lots).

    The rules are those of :mod:`engine._core.broker` (its module docstring),
    written again apart from the compiled core so that tests can compare the two:
    a fill that opens or adds to a position opens a lot; a fill that reduces it
    closes the oldest lots first, splitting the last one it reaches (the part
    closed keeps the row, the part still held goes on as a new row at the end);
    a fill that flattens or flips the position closes every lot. Commissions are
    shared by quantity over the rows a fill touches, a lot's costs are split with
    it by quantity, and the borrow charged on a short at each close is shared by
    its open lots by quantity.

    Parameters
    ----------
    fills : iterable of dict
        The fills in the order they were executed, each with ``bar`` (index),
        ``symbol`` (column index), ``qty`` (signed), ``price``, ``commission``,
        ``order`` (the order id) and ``reason`` (the exit reason it gives).
    close : sequence of sequence of float
        Closes, one row per bar and one column per symbol; NaN where a symbol has
        no bar (its last close holds).
    borrow_rate, periods_per_year : float
        Borrow on shorts: ``|qty| * close * borrow_rate / periods_per_year`` per close.

    Returns
    -------
    rows : list of dict
        The trade rows in the engine's order: ``symbol, direction, entry_bar,
        exit_bar`` (None while open), ``entry_order, entry_price, exit_price``
        (None while open), ``qty`` (unsigned), ``pnl`` (None while open),
        ``costs, exit_reason`` (None while open).
    last : list of float
        Each symbol's last close, to mark the open rows.
    """
    by_bar = {}
    for f in fills:
        by_bar.setdefault(f["bar"], []).append(f)
    n_symbols = len(close[0]) if len(close) else 0
    rows = []
    lots = [[] for _ in range(n_symbols)]       # row indices of each symbol's open lots
    position = [0.0] * n_symbols
    last = [math.nan] * n_symbols
    rate = borrow_rate / periods_per_year

    def open_lot(f, qty, costs):
        rows.append({"symbol": f["symbol"], "direction": 1 if f["qty"] > 0 else -1,
                     "entry_bar": f["bar"], "exit_bar": None, "entry_order": f["order"],
                     "entry_price": f["price"], "exit_price": None, "qty": qty, "pnl": None,
                     "costs": costs, "exit_reason": None})
        lots[f["symbol"]].append(len(rows) - 1)

    def close_row(row, f, exit_costs):
        row["costs"] += exit_costs
        row["pnl"] = row["direction"] * row["qty"] * (f["price"] - row["entry_price"]) \
            - row["costs"]
        row.update(exit_bar=f["bar"], exit_price=f["price"], exit_reason=f["reason"])

    for i in range(len(close)):
        for f in by_bar.get(i, ()):
            s, qty, fee = f["symbol"], f["qty"], f["commission"]
            size = abs(qty)
            pos = position[s]
            if pos == 0 or (pos > 0) == (qty > 0):
                open_lot(f, size, fee)
                position[s] = pos + qty
                continue
            closing = min(size, abs(pos))
            new = pos + qty
            if abs(new) <= 1e-9 * max(abs(pos), size):
                new = 0.0
            whole = new == 0.0 or size > closing          # flat or flipped: every lot
            left = closing
            queue = lots[s]
            while queue:
                row = rows[queue[0]]
                lot = row["qty"]
                if whole or lot - left <= 1e-9 * max(lot, left):
                    queue.pop(0)
                    close_row(row, f, fee * lot / size)
                    left -= lot
                    if not whole and left <= 1e-9 * closing:
                        break
                    continue
                share = row["costs"] * (left / lot)
                rows.append(dict(row, qty=lot - left, costs=row["costs"] - share))
                queue[0] = len(rows) - 1
                row.update(qty=left, costs=share)
                close_row(row, f, fee * left / size)
                break
            if size > closing and new != 0.0:
                open_lot(f, size - closing, fee * ((size - closing) / size))
            position[s] = new
        for s in range(n_symbols):
            if not math.isnan(close[i][s]):
                last[s] = close[i][s]
            if position[s] < 0 and rate:
                cost = -position[s] * last[s] * rate
                rest = cost
                for k, index in enumerate(lots[s]):
                    row = rows[index]
                    part = rest if k == len(lots[s]) - 1 else cost * (row["qty"] / -position[s])
                    row["costs"] += part
                    rest -= part
    return rows, last
