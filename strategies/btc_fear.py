"""Buy bitcoin at extreme fear on the crypto Fear & Greed index (rule A1 on bitcoin).

The claim, as RULES.md states it (sources ``004_*``, ``000_*``/``001_*`` §7):

    "Bitcoin Fear & Greed at 18 (extreme fear) matched the Jun 2022 and Mar 2023
    bottoms."

The index is alternative.me's Crypto Fear & Greed (0 extreme fear – 100 extreme
greed, ``datasets/crypto_fear_greed.parquet``), joined point-in-time onto the
Binance BTC/USDT daily bars (``datasets/btc_daily.parquet``, seven days a week) as
the feature ``crypto_fear_greed``: the value dated ``d`` is used at ``d``'s close
(``fg_lag`` 0 bars; ``feed_max_age`` 3 bars; the source misses four days).

What the strategy does (event path), A1's rule with the notes' bitcoin reading:

* flat, and the reading is at or under ``fear_threshold`` (18): buy ``size`` of
  equity at the next open;
* long, and the reading is at or above ``exit_threshold`` (55, greed): sell (exit
  reason ``"greed"``); or ``max_hold`` bars after the entry (30, a month of
  calendar days; ``"time"``).

The claim itself is checked on this run's data (``engine.claims``): the reading
around the lowest close of each named month.
"""

import numpy as np

from engine import Feed, Strategy, param
from engine.errors import ParameterError


class BtcFear(Strategy):
    default_data = "../datasets/btc_daily.parquet"
    feeds = {"crypto_fear_greed": Feed("../datasets/crypto_fear_greed.parquet",
                                       columns=["crypto_fear_greed"])}

    fear_threshold: float = param(18.0, min=0, max=100,
                                  help="enter when the crypto Fear & Greed is at or under this")
    exit_threshold: float = param(55.0, min=0, max=100,
                                  help="exit when it is at or above this (greed); open")
    max_hold: int = param(30, min=0, help="bars held at most (0: no limit); open")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity bought")
    fg_lag: int = param(0, min=0, help="bars after its date before a value is used")
    feed_max_age: int = param(3, min=0, help="a reading older than this many bars is missing")

    def validate(self):
        if self.exit_threshold <= self.fear_threshold:
            raise ParameterError(f"exit_threshold ({self.exit_threshold}) must be above "
                                 f"fear_threshold ({self.fear_threshold})")

    def feed_specs(self):
        feed = self.feeds["crypto_fear_greed"]
        return {"crypto_fear_greed": feed.replace(lag=self.fg_lag, max_age=self.feed_max_age)}

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        self.entry_bar = -1

    def on_fill(self, fill):
        if fill["side"] > 0:
            self.entry_bar = fill["done_bar"]

    def on_bar(self, bar):
        if self.open_orders():
            return
        value = self.data.crypto_fear_greed[-1]
        if self.position > 0:
            if self.max_hold and bar.index - self.entry_bar >= self.max_hold - 1:
                self.close(tag="time")
            elif value >= self.exit_threshold:
                self.close(tag="greed")
        elif value <= self.fear_threshold:
            self.buy(percent=self.size, tag="extreme_fear")

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        with np.errstate(invalid="ignore"):
            return np.asarray(data.crypto_fear_greed) <= self.fear_threshold
