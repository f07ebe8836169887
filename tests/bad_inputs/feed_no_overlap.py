"""A feed that ends years before the bars start: no value is ever visible."""

from engine import Feed, Strategy


class FearFrom2001(Strategy):
    feeds = {"fear_greed": Feed("fear_greed_2001.csv")}

    def on_bar(self, bar):
        pass
