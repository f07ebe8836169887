"""The benchmark: buy-and-hold of the same data.

Two forms, for two uses:

* :func:`benchmark_equity` -- the frictionless reference curve the metrics
  (``benchmark_return``, ``beta``) and the plots measure a run against: the
  starting cash split equally over the symbols, each part invested at that
  symbol's first close (fractional quantity, no commission, no slippage) and
  held to the end, marked at every close (a missing close keeps the last one).
  A part whose symbol has not traded yet stays in cash. For one symbol this is
  ``cash * close_t / close_first``.
* :class:`BuyAndHold` -- the same rule as a strategy run through the simulator
  (whole shares, filled at the next open, with the run's costs), the row that
  :func:`engine.compare` always adds. It is built in, so that it is available
  after a ``pip install`` (the ``strategies/`` folder is not installed); it
  behaves like ``strategies/buy_and_hold.py``.
"""

from __future__ import annotations

import numpy as np

from engine._core.kernels import hold_curve
from engine.data.panel import Panel
from engine.strategy.base import Signals, Strategy


def benchmark_equity(panel: Panel, cash: float) -> np.ndarray | None:
    """Equal-weight, frictionless buy-and-hold of every symbol, one value per bar.

    Parameters
    ----------
    panel : Panel
        The run's bars.
    cash : float
        The starting cash.

    Returns
    -------
    numpy.ndarray or None
        ``sum_j (cash / k) * c_j(t) / c_j(first_j)`` over the ``k`` symbols,
        where ``c_j`` is symbol ``j``'s close carried forward and ``first_j``
        its first bar with a close; before ``first_j`` that part counts as cash.
        None when no symbol has a single close.
    """
    close = panel.fields["close"]
    if close.size == 0 or not np.isfinite(close).any():
        return None
    k = close.shape[1]
    total = np.empty(close.shape[0])
    hold_curve(np.ascontiguousarray(close, dtype=np.float64), float(cash) / k,
               np.full(k, np.nan), np.full(k, np.nan), total)
    return total


class BuyAndHold(Strategy):
    """Put the cash into every symbol in equal parts at the first bar and hold.

    One symbol: all the cash (whole shares). Several: ``cash / k`` each. Orders
    are placed at the first bar and fill at the next open like any market order.
    """

    def on_bar(self, bar):
        if bar.index != 0:
            return
        symbols = self.data.symbols
        if len(symbols) == 1:
            self.buy()
            return
        budget = self.cash / len(symbols)
        for symbol in symbols:
            self.buy(cash=budget, symbol=symbol)

    def signals(self, data):
        shape = (len(data), len(data.symbols))
        entries = np.zeros(shape, dtype=bool)
        entries[0] = True
        exits = np.zeros(shape, dtype=bool)
        if len(data.symbols) == 1:
            return Signals(entries=entries, exits=exits)
        return Signals(entries=entries, exits=exits, size=self.cash / len(data.symbols),
                       size_type="cash")
