"""Two Strategy subclasses in one file: the engine cannot tell which to run."""

from engine import Strategy


class Fast(Strategy):
    def on_bar(self, bar):
        pass


class Slow(Strategy):
    def on_bar(self, bar):
        pass
