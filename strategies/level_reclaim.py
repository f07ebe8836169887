"""Buy when the price reclaims a level it had lost (claim B6, ``RULES.md``).

The claim, as RULES.md states it (source ``000_*``/``001_*`` §7):

    "B6 Bitcoin: below the spot-ETF average cost (~$94,200); must reclaim
    93,000–94,000 (20-day average plus congestion)."

A **reclaim** at bar ``t``: the close is above ``level_high`` (94,000) and at least
one of the previous ``lookback`` closes (20) was under ``level_low`` (93,000): the
price came back up through the whole zone from below it. "Must reclaim" is read as
a bullish stance: after a reclaim the price should do better than usual, measured
on the first bar of each reclaim (``entry_episode`` of the event study) against
every bar (the base rate).

What the strategy does (event path): flat and a reclaim: buy ``size`` of equity at
the next open; long: sell when the close falls back under ``level_low`` (exit reason
``"lost"``) or ``max_hold`` bars after the entry (30, a month of calendar days for
bitcoin; ``"time"``).

Default data: bitcoin (``datasets/btc_daily.parquet``, Binance BTC/USDT, daily,
seven days a week). Any instrument and level work: set the levels.
"""

import numpy as np

from engine import Strategy, param
from engine.errors import ParameterError
from engine.indicators import rolling_min


def reclaimed(close, level_low, level_high, lookback):
    """Close above ``level_high`` with a close under ``level_low`` in the ``lookback`` before."""
    close = np.asarray(close, dtype=float)
    before = np.full(close.shape, np.nan)
    before[1:] = rolling_min(close, lookback)[:-1]
    with np.errstate(invalid="ignore"):
        return (close > level_high) & (before < level_low)


class LevelReclaim(Strategy):
    default_data = "../datasets/btc_daily.parquet"

    level_low: float = param(93_000.0, min=0, help="the zone's bottom: a close under it is "
                                                   "below the zone")
    level_high: float = param(94_000.0, min=0, help="the zone's top: a close above it "
                                                    "reclaims the zone")
    lookback: int = param(20, min=1, help="bars before in which a close under level_low "
                                          "must have come")
    max_hold: int = param(30, min=0, help="bars held at most (0: no limit)")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity bought")

    def validate(self):
        if self.level_low > self.level_high:
            raise ParameterError(f"level_low ({self.level_low}) must not exceed level_high "
                                 f"({self.level_high})")

    def _reclaim(self, close):
        return reclaimed(close, self.level_low, self.level_high, self.lookback)

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        self.signal = self.I(self._reclaim, self.data.close, name="reclaim")
        self.entry_bar = -1

    def on_fill(self, fill):
        if fill["side"] > 0:
            self.entry_bar = fill["done_bar"]

    def on_bar(self, bar):
        if self.open_orders():
            return
        if self.position > 0:
            if bar.close < self.level_low:
                self.close(tag="lost")
            elif self.max_hold and bar.index - self.entry_bar >= self.max_hold - 1:
                self.close(tag="time")
        elif self.signal[-1]:
            self.buy(percent=self.size, tag="reclaim")

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        return self._reclaim(data.close)
