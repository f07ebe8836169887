"""Buy and hold: the benchmark every other strategy is compared with.

At the first bar, put the cash into every symbol in equal parts (all of it for one
symbol), filled at the next open in whole shares, and hold to the end.
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
