"""SMA cross: the reference rule used to compare the engine with its peers.

Long with all the cash (whole shares, ``floor(cash / fill price)``) when the fast
simple moving average of the close crosses above the slow one; flat when it
crosses below. A cross is a change of the sign of ``fast - slow`` against its last
non-zero sign, so a tie neither crosses nor resets the sign.

Both paths are written here and must make identical trades (a test checks it):
``on_bar`` for the event path, ``signals`` for the vectorised one.
"""

from engine import Signals, Strategy, param
from engine.errors import ParameterError
from engine.indicators import crossover, crossunder, sma


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
        return Signals(entries=crossover(fast, slow), exits=crossunder(fast, slow))
