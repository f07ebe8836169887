"""Reads the bars of a symbol the data does not hold."""

from engine import Strategy


class ReadsMissingSymbol(Strategy):
    def on_bar(self, bar):
        if self.data["MSFT"].close[-1] > 100:
            self.buy(size=1)
