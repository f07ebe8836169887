"""Step aside when the VIX is low and the CBOE SKEW high (claim B8, ``RULES.md``).

The claim, as RULES.md states it (source ``002_*``):

    "B8 Nasdaq crash risk: VIX low (~15) with CBOE SKEW high (148–155, > 150) is a
    classic precursor; ... flash crash = > 10% fall within days; bear = > 20%."

The **signal** at bar ``t``: the VIX close at or under ``vix_max`` (15) and the
SKEW close above ``skew_min`` (150), both joined point-in-time as features
(``vix`` from ``datasets/vix_daily.parquet``, ``skew`` from
``datasets/skew.parquet``; a value dated ``d`` is used at ``d``'s close;
``feed_max_age`` 5 bars). The bundle has no Nasdaq history, so the S&P 500 stands
in for the Nasdaq: the measured falls are the S&P's.

"Crash risk" is measured by the event study with ``move_threshold=0.10``: the share
of signal bars after which the index closes 10% or more under the signal close
within the horizon, against the same share over every bar (the base rate).

What the strategy does (event path): long ``size`` of equity while there is no
signal; on a signal, sell at the next open (exit reason ``"skew_warning"``) and
stay out until ``stay_out`` bars have passed with no signal, then buy again.

Default data: the S&P 500 from 1990 (the VIX and SKEW series start 1990-01-02).
"""

import numpy as np

from engine import Feed, Strategy, param


class SkewVix(Strategy):
    default_data = "../datasets/sp500_daily.parquet"
    default_start = "1990-01-02"
    feeds = {
        "vix": Feed("../datasets/vix_daily.parquet", columns={"close": "vix"}, max_age=5),
        "skew": Feed("../datasets/skew.parquet", columns=["skew"], max_age=5),
    }

    vix_max: float = param(15.0, min=0, help="signal: VIX close at or under this ('low, ~15')")
    skew_min: float = param(150.0, min=0, help="signal: SKEW close above this ('> 150')")
    stay_out: int = param(21, min=1, help="bars with no signal before buying again")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity held")

    def signal(self, vix, skew):
        """True where the VIX is at or under ``vix_max`` and SKEW above ``skew_min``."""
        with np.errstate(invalid="ignore"):
            return (np.asarray(vix, dtype=float) <= self.vix_max) & \
                (np.asarray(skew, dtype=float) > self.skew_min)

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        self.warn = self.I(self.signal, self.data.vix, self.data.skew, name="skew_warning")
        self.last_warning = -10**9

    def on_bar(self, bar):
        if self.warn[-1]:
            self.last_warning = bar.index
        if self.open_orders():
            return
        if self.position > 0:
            if self.warn[-1]:
                self.close(tag="skew_warning")
        elif bar.index - self.last_warning >= self.stay_out:
            self.buy(percent=self.size, tag="no_warning")

    # -- report hooks: the study's signal is the warning -----------------------------
    def entry_condition(self, data):
        """The signal (named by the event study's hook; it is this strategy's exit)."""
        return self.signal(data.vix, data.skew)
