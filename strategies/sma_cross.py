"""SMA cross: the reference rule used to compare the engine with its peers.

Long with all the cash (whole shares, ``floor(cash / fill price)``) when the fast
simple moving average of the close crosses above the slow one; flat when it
crosses below. A cross is a change of the sign of ``fast - slow`` against its last
non-zero sign, so a tie neither crosses nor resets the sign.

Both paths are written here and must make identical trades (a test checks it):
``on_bar`` for the event path, ``signals`` for the vectorised one. ``lookback``
lets ``engine.stream_run`` feed the vectorised path a file in chunks.
"""

import numpy as np

from engine import Signals, Strategy, param
from engine.errors import ParameterError
from engine.indicators import crossings, sma


class SmaCross(Strategy):
    default_data = "../datasets/sp500_daily.parquet"

    fast: int = param(10, min=1, help="fast moving-average window, in bars")
    slow: int = param(20, min=2, help="slow moving-average window, in bars")

    def validate(self):
        if self.fast >= self.slow:
            raise ParameterError(
                f"fast ({self.fast}) must be shorter than slow ({self.slow})"
            )

    # -- event path ---------------------------------------------------------------
    def on_start(self):
        self.fast_ma = self.I(sma, self.data.close, self.fast)
        self.slow_ma = self.I(sma, self.data.close, self.slow)
        self.last_sign = 0

    def on_bar(self, bar):
        diff = self.fast_ma[-1] - self.slow_ma[-1]
        sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if sign == 0:  # a tie (or the warm-up's NaN) keeps the last sign
            return
        previous, self.last_sign = self.last_sign, sign
        if previous == -1 and sign == 1 and self.position == 0:
            self.buy()
        elif previous == 1 and sign == -1 and self.position > 0:
            self.close()

    # -- vectorised path --------------------------------------------------------
    def signals(self, data):
        fast = sma(data.close, self.fast)
        slow = sma(data.close, self.slow)
        entries, exits = crossings(fast, slow)
        return Signals(entries=entries, exits=exits,
                       indicators={f"SMA {self.fast}": fast, f"SMA {self.slow}": slow})

    # -- sweeps: many parameter sets in one call --------------------------------
    @classmethod
    def signals_batch(cls, data, sets):
        """``signals`` for a batch of parameter sets: column ``j`` is set ``j``.

        Each distinct window's average is computed once per sweep worker
        (``sets.map``), and the crossings of every set come from one call.
        """
        fast = sets.map(sma, data.close, sets.fast)
        slow = sets.map(sma, data.close, sets.slow)
        entries, exits = crossings(fast, slow)
        return Signals(entries=entries, exits=exits)

    # -- streaming (engine.stream_run) -------------------------------------------
    def lookback(self, data):
        """Bars at the end of ``data`` that the next bars' signals depend on.

        A cross at bar ``t`` compares the sign of ``fast - slow`` at ``t`` with the
        last non-zero sign before it, at some bar ``p``; that sign needs the
        ``slow - 1`` bars before ``p``. Usually ``p`` is the last bar and this is
        ``slow`` bars, but a run of ties (or of NaN, a gap in the data) moves ``p``
        back, so the count is measured: from ``slow - 1`` bars before the last bar
        with a non-zero sign to the end. With no such bar yet, every bar is kept.
        Exact for prices with at most 8 decimals, whose moving averages depend on
        their window only (see ``engine.indicators.sma``).
        """
        close = np.asarray(data.close, dtype=np.float64)
        n = close.shape[0]
        span = min(n, 2 * self.slow + 64)
        while True:
            tail = close[n - span:]
            with np.errstate(invalid="ignore"):
                diff = sma(tail, self.fast) - sma(tail, self.slow)
            signed = (diff > 0) | (diff < 0)          # NaN is neither
            if signed.ndim == 1:
                signed = signed.reshape(-1, 1)
            found = signed.any(axis=0)
            if found.all() or span == n:
                break
            span = min(n, 2 * span)
        if not found.all():
            return n
        # rows from the end back to the last signed bar of the column that reaches furthest
        last = span - 1 - np.argmax(signed[::-1], axis=0)
        return int(span - last.min()) + self.slow - 1
