"""Step aside when high-yield spreads widen from tight levels (claim B5, ``RULES.md``).

The claim, as RULES.md states it (source ``000_*``/``001_*`` §6):

    "B5 Credit: high-yield OAS up from 320 to 385 bp warns ahead of equities."

(The note: the ICE BofA US High Yield OAS "rose from 320 bp in October to 385 bp
(November 24)"; "the bond market warns of credit-event risk before the stock
market prices it".)

The **warning** at bar ``t`` (each threshold a parameter):

* the spread rose by at least ``widening`` (0.65 percentage points: 320 → 385 bp)
  above its lowest value of the last ``window`` bars (42, about two months: from
  "October" to "November 24"), and
* that low was at or under ``tight_level`` (3.20%: 320 bp), a rise from tight
  spreads. The spread is ``hy_oas`` (percent; 3.20 = 320 bp) from
  ``datasets/hy_oas.parquet``, joined point-in-time (the FRED value dated ``d`` is
  known after ``d``'s close; ``feed_max_age`` 5 bars); a window holding a missing
  value gives no warning.

"Warns ahead of equities" is measured on the **first bar of each warning**
(``entry_episode`` of the event study): the S&P 500's forward returns, and how
often it falls 10% or more below the signal close within the horizon
(``move_threshold``), against every bar (the base rate).

What the strategy does (event path): long ``size`` of equity in the S&P 500 while
there is no warning; on a warning, sell at the next open (exit reason
``"credit_warning"``) and stay out until ``stay_out`` bars have passed with no
warning, then buy again.

Default data: the S&P 500 from 1997 (the spread series starts 1996-12-31).
"""

import numpy as np

from engine import Feed, Strategy, param
from engine.indicators import rolling_min


class CreditSpread(Strategy):
    default_data = "../datasets/sp500_daily.parquet"
    default_start = "1997-01-01"
    feeds = {"hy_oas": Feed("../datasets/hy_oas.parquet", columns=["hy_oas"], max_age=5)}

    tight_level: float = param(3.20, min=0,
                               help="a spread low at or under this (percent) is tight: 320 bp")
    widening: float = param(0.65, min=0,
                            help="warning: a rise of at least this (percentage points) "
                                 "above the window's low: 65 bp")
    window: int = param(42, min=2, help="bars over which the rise is measured; open in the "
                                        "notes")
    stay_out: int = param(63, min=1, help="bars with no warning before buying again")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity held")

    def warning(self, spread):
        """True where the spread rose ``widening`` above a tight low of the last ``window``."""
        spread = np.asarray(spread, dtype=float)
        low = rolling_min(spread, self.window)
        with np.errstate(invalid="ignore"):
            return (spread - low >= self.widening - 1e-9) & (low <= self.tight_level + 1e-9)

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        self.warn = self.I(self.warning, self.data.hy_oas, name="credit_warning")
        self.last_warning = -10**9

    def on_bar(self, bar):
        if self.warn[-1]:
            self.last_warning = bar.index
        if self.open_orders():
            return
        if self.position > 0:
            if self.warn[-1]:
                self.close(tag="credit_warning")
        elif bar.index - self.last_warning >= self.stay_out:
            self.buy(percent=self.size, tag="no_warning")

    # -- report hooks: the study's signal is the warning -----------------------------
    def entry_condition(self, data):
        """The warning (named by the event study's hook; it is this strategy's exit)."""
        return self.warning(data.hy_oas)
