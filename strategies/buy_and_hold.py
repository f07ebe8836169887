"""Buy and hold: the benchmark every other strategy is compared with.

At the first bar, buy every symbol with an equal share of the cash (all of it for
one symbol), filled at the next open, and hold to the end.
"""

import numpy as np

from engine import Signals, Strategy


class BuyAndHold(Strategy):
    default_data = "../datasets/sp500_daily.parquet"

    def on_bar(self, bar):
        if bar.index != 0:
            return
        symbols = self.data.symbols
        if len(symbols) == 1:
            self.buy()
            return
        for symbol in symbols:
            self.buy(percent=1.0 / len(symbols), symbol=symbol)

    def signals(self, data):
        shape = (len(data), len(data.symbols))
        entries = np.zeros(shape, dtype=bool)
        entries[0] = True
        if len(data.symbols) == 1:
            return Signals(entries=entries, exits=np.zeros(shape, dtype=bool))
        return Signals(entries=entries, exits=np.zeros(shape, dtype=bool),
                       size=1.0 / len(data.symbols), size_type="percent")
