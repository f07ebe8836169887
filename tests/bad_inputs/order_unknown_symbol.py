"""Orders a symbol the data does not hold (a typo of AAPL)."""

from engine import Strategy


class TypoTicker(Strategy):
    def on_bar(self, bar):
        if bar.index == 1:
            self.buy(size=10, symbol="APPL")
