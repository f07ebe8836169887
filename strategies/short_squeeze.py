"""Short-squeeze entries above 10 days-to-cover (rule A2 of the rule book, ``RULES.md``).

The rule, as RULES.md states it (source ``003_*``):

    "Days-to-cover (short ratio) = shares sold short ÷ average daily volume, the
    average taken over the standard 30-day window." ... "> 10.0 extreme
    positioning, traditionally a short-squeeze precursor." ... "Rule: enter long a
    stock when days-to-cover > 10 (strictly above). Confirmation is **open** (e.g.
    price above its N-day high or moving average, rising volume). Exit is **open**
    (e.g. the ratio falling back under a level, a trailing stop, a time stop)."
    "A backtest must use a value only from the day it was public."

How it is computed here, per symbol and bar ``t``:

* ``shares_sold_short`` is the short-interest feed joined point-in-time
  (``datasets/short_interest.parquet``): a settlement's figure is visible from the
  first bar at or after its ``first_seen`` time (the scrape that first showed it;
  intraday times fall after the midnight bar stamp, so the next bar), or, with
  ``si_lag_days > 0``, from ``settlement_date + si_lag_days`` calendar days. A
  figure expires: more than ``max_age`` calendar days after its settlement date it
  is missing (NaN), so no signal fires on stale short interest (a missed
  publication, or after the feed's last one). ``si_max_age_days=0`` (default)
  takes the feed's ``max_age="auto"``: the usual gap between two publications (15
  days) plus the usual publication delay (13 days) plus a week, 35 days on the
  bundled data (:func:`engine.data.feeds.publication_max_age`); N > 0 sets N days;
* days-to-cover ``dtc[t] = shares_sold_short[t] / sma(volume, adv_window)[t]`` with
  the as-traded ``volume`` of the bars up to ``t`` (the current 30-bar average,
  so a volume surge lowers the ratio: covering shows before the next report). A
  window with a missing volume (unknown split factor) or a missing bar gives NaN:
  no entry there;
* **entry** (a market order for the next open, ``tif="day"``) when ``dtc > dtc_threshold``
  (strictly), the confirmation holds (``confirm="high"``: the close is above the
  highest high of the previous ``confirm_window`` bars; ``"sma"``: above their
  average close; ``"none"``), the close is at least ``min_price``, and a slot is
  free. When more names qualify than slots are free, the highest days-to-cover
  come first (ties: symbol order);
* **sizing**: each entry spends ``size`` of equity, at most ``max_positions`` names
  at once, and never more than the cash left, so orders are not rejected;
* **exits** (checked at each close, in this order, filled at the next open):
  ``"trailing_stop"`` when the close is at or below ``(1 - trail_pct)`` times the
  highest of the entry price and the closes since; ``"dtc_fell"`` when days-to-cover falls under
  ``dtc_exit``; ``"time"`` so that the exit fills ``max_hold`` bars after the entry.

Parameters the documents leave open (defaults chosen here): ``confirm`` and
``confirm_window`` (close above its 20-bar high), ``dtc_exit`` (5: back to the
"moderate" band), ``trail_pct`` (15%), ``max_hold`` (20 bars), ``size`` (10% of
equity) and ``max_positions`` (10), ``min_price`` ($1, to keep out sub-dollar
shares whose tiny volume makes the ratio explode), ``si_lag_days`` (0: use
``first_seen``), ``si_max_age_days`` (0: the feed's publication schedule plus a
week, 35 days). Fixed by the documents: ``dtc_threshold`` 10, ``adv_window`` 30.

Default data: the bundled universe (``datasets/short_universe_daily.parquet``:
4,663 US stocks with short interest and prices, 2020-08-03 to 2021-09-30). Short
interest is first visible on 2020-12-21, so trading starts then. Prices are
split-adjusted as of 2024 and volume is as traded; shares short are as traded at
settlement, so the ratio's units agree except across an in-window split.
"""

import numpy as np

from engine import Feed, Strategy, param
from engine.errors import ParameterError
from engine.indicators import days_to_cover, rolling_max, sma

#: the document's bands: < 2 little bearish positioning, 2-5 moderate, 5-10 strong
#: conviction or thin liquidity, > 10 extreme (the rule's threshold is strict)
DTC_BANDS = ("< 2", "2-5", "5-10", "> 10")


def previous_high(high, window):
    """Highest high of the ``window`` bars before each bar (NaN in the warm-up)."""
    out = np.full(np.shape(high), np.nan)
    out[1:] = rolling_max(high, window)[:-1]
    return out


def previous_mean(close, window):
    """Average close of the ``window`` bars before each bar."""
    out = np.full(np.shape(close), np.nan)
    out[1:] = sma(close, window)[:-1]
    return out


class ShortSqueeze(Strategy):
    default_data = "../datasets/short_universe_daily.parquet"
    feeds = {
        "short_interest": Feed(
            "../datasets/short_interest.parquet", columns=["shares_sold_short"],
            on="settlement_date", available_at="first_seen", by_symbol=True, max_age="auto",
        ),
    }

    dtc_threshold: float = param(10.0, min=0, help="enter when days-to-cover > this")
    adv_window: int = param(30, min=1, help="bars in the average daily volume")
    confirm: str = param("high", choices=("high", "sma", "none"),
                         help="confirmation: close above the previous N-bar high, above "
                              "their average close, or none")
    confirm_window: int = param(20, min=1, help="N, the confirmation window in bars")
    min_price: float = param(1.0, min=0, help="enter only at a close of at least this")
    dtc_exit: float = param(5.0, min=0, help="exit when days-to-cover falls under this")
    trail_pct: float = param(0.15, min=0, max=0.99,
                             help="trailing stop below the highest close since entry (0: off)")
    max_hold: int = param(20, min=0, help="bars a position is held at most (0: no limit)")
    size: float = param(0.1, min=0.001, max=1.0, help="fraction of equity per name")
    max_positions: int = param(10, min=1, help="names held at once, at most")
    si_lag_days: int = param(0, min=0,
                             help="0: short interest visible from first_seen; N > 0: from "
                                  "settlement_date + N calendar days instead")

    si_max_age_days: int = param(0, min=0,
                                 help="0: short interest expires max_age='auto' after its "
                                      "settlement (publication gap + delay + a week: 35 days "
                                      "here); N > 0: after N calendar days")

    def validate(self):
        if self.dtc_exit >= self.dtc_threshold:
            raise ParameterError(f"dtc_exit ({self.dtc_exit}) must be below dtc_threshold "
                                 f"({self.dtc_threshold})")

    def feed_specs(self):
        feed = self.feeds["short_interest"]
        if self.si_lag_days > 0:
            feed = feed.replace(available_at=None, lag=f"{self.si_lag_days}D")
        if self.si_max_age_days > 0:
            feed = feed.replace(max_age=f"{self.si_max_age_days}D")
        return {"short_interest": feed}

    # -- shared by the event path and the report hooks ---------------------------
    def _confirmation(self, close, high):
        if self.confirm == "high":
            return close > previous_high(high, self.confirm_window)
        if self.confirm == "sma":
            return close > previous_mean(close, self.confirm_window)
        return np.isfinite(close)

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        data = self.data
        self.dtc = self.I(days_to_cover, data.shares_sold_short, data.volume, self.adv_window,
                          name="days_to_cover")
        if self.confirm == "high":
            self.level = self.I(previous_high, data.high, self.confirm_window,
                                name="previous_high")
        elif self.confirm == "sma":
            self.level = self.I(previous_mean, data.close, self.confirm_window,
                                name="previous_mean")
        else:
            self.level = None
        k = len(data.symbols)
        self.entry_bar = np.full(k, -1, dtype=np.int64)
        self.peak = np.full(k, np.nan)
        self.holding = set()     # symbol indices with a position
        self.pending = {}        # symbol index -> entry order id not yet filled
        self.exiting = set()     # symbol indices with an exit order placed
        self.index = {s: i for i, s in enumerate(data.symbols)}

    def on_fill(self, fill):
        s = self.index[fill["symbol"]]
        if fill["side"] > 0:
            self.pending.pop(s, None)
            self.holding.add(s)
            self.entry_bar[s] = fill["done_bar"]
            self.peak[s] = fill["fill_price"]
        elif self.position_of(s) == 0:
            self.holding.discard(s)
            self.exiting.discard(s)
            self.entry_bar[s] = -1
            self.peak[s] = np.nan

    def on_bar(self, bar):
        t = bar.index
        # rows over the symbols (a one-symbol universe gives scalars: make them rows)
        close = np.atleast_1d(self.data.close[-1])
        dtc = np.atleast_1d(self.dtc[-1])
        # entries that expired or were refused free their slot
        for s, oid in list(self.pending.items()):
            if self.order(oid)["status"] != "open":
                del self.pending[s]
        for s in sorted(self.holding - self.exiting):
            c = close[s]
            if not np.isfinite(c):
                continue
            self.peak[s] = max(self.peak[s], c)
            if self.trail_pct and c <= (1.0 - self.trail_pct) * self.peak[s]:
                reason = "trailing_stop"
            elif dtc[s] < self.dtc_exit:
                reason = "dtc_fell"
            elif self.max_hold and t - self.entry_bar[s] >= self.max_hold - 1:
                reason = "time"
            else:
                continue
            self.close(int(s), tag=reason)
            self.exiting.add(s)
        free = self.max_positions - len(self.holding) - len(self.pending)
        if free <= 0:
            return
        with np.errstate(invalid="ignore"):
            ok = (dtc > self.dtc_threshold) & (close >= self.min_price)
            if self.level is not None:
                ok &= close > np.atleast_1d(self.level[-1])
        ok[list(self.holding) + list(self.pending)] = False
        candidates = np.flatnonzero(ok)
        if len(candidates) == 0:
            return
        # highest days-to-cover first; a stable sort keeps symbol order among ties
        candidates = candidates[np.argsort(-dtc[candidates], kind="stable")][:free]
        cash = self.cash
        budget = self.size * self.equity
        for s in candidates:
            spend = min(budget, cash)
            if spend < close[s]:  # not even one share
                continue
            self.pending[int(s)] = self.buy(cash=spend, symbol=int(s), tif="day",
                                            tag="dtc_entry")
            cash -= spend

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        dtc = days_to_cover(data.shares_sold_short, data.volume, self.adv_window)
        close = np.asarray(data.close)
        with np.errstate(invalid="ignore"):
            return ((dtc > self.dtc_threshold) & (close >= self.min_price)
                    & self._confirmation(close, np.asarray(data.high)))

    def entry_labels(self, data):
        """The document's band of days-to-cover per bar and symbol (None where unknown)."""
        dtc = days_to_cover(data.shares_sold_short, data.volume, self.adv_window)
        with np.errstate(invalid="ignore"):
            bands = [dtc < 2.0, dtc < 5.0, dtc <= 10.0, dtc > 10.0]
        return np.select(bands, DTC_BANDS, default=None)
