"""A strategy that defines neither on_bar nor signals: it can never trade."""

from engine import Strategy


class Idle(Strategy):
    fast = 10
