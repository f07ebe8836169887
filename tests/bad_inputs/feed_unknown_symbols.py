"""A by-symbol feed whose symbols (GME, AMC) are not in the bars (AAPL)."""

from engine import Feed, Strategy


class ShortInterestElsewhere(Strategy):
    feeds = {"short_interest": Feed("short_interest_other_symbols.csv", by_symbol=True)}

    def on_bar(self, bar):
        pass
