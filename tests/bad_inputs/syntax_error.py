"""A strategy file with a syntax error: a missing colon."""

from engine import Strategy


class Broken(Strategy):
    def on_bar(self, bar)
        pass
