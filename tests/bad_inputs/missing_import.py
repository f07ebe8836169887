"""A strategy that imports a package that is not installed."""

import talib_not_installed  # noqa: F401

from engine import Strategy


class NeedsTalib(Strategy):
    def on_bar(self, bar):
        pass
