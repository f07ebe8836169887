"""A strategy that fails on its fourth bar: it reads an attribute it never set."""

from engine import Strategy


class StopWithoutEntry(Strategy):
    def on_bar(self, bar):
        if bar.index == 3:
            stop = self.entry_price * 0.95  # entry_price is set nowhere
            self.sell(size=1, stop=stop)
