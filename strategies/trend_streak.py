"""Long after a long streak above the 50-day average (claim B3 of the rule book, ``RULES.md``).

The claim, as RULES.md states it (source ``000_*``/``001_*`` §4):

    "B3 Trend streak: S&P 500 above its 50-day average for more than 138 trading
    days → up over the next 3 months in every case since 1950."

Definitions (each a parameter):

* the **streak** at bar ``t`` is the number of consecutive closes up to and
  including ``t`` that are strictly above their ``window``-bar simple moving
  average (a close at or under it, or a bar whose average is still warming up,
  ends the streak: 0);
* "**more than 138 days**": ``streak > min_streak``. The *case* is the first bar of
  each streak on which that becomes true (``streak == min_streak + 1``), the
  ``entry_episode`` of the event study; every later bar of the same streak is in
  ``entry_condition``;
* "**up over the next 3 months**": the close ``hold`` (63) bars after the signal
  bar's close is above it.

What the strategy does (event path): flat, and the streak has just passed
``min_streak`` (the case's bar): buy ``size`` of equity at the next open; sell so
that the exit fills ``hold`` bars after the entry (exit reason ``"time"``), the
3-month horizon of the claim. A new streak can only start after the old one ended,
so with ``hold <= min_streak`` every case is traded once.

Default data: the S&P 500 from 1927 (``datasets/sp500_daily.parquet``), so the
average and the streak are warm by 1950; the claims check counts cases from 1950
(``engine.event_study.event_study(result, signals_from="1950-01-01")``).
"""

import numpy as np

from engine import Strategy, param
from engine.indicators import sma


def streak_above(close, average):
    """Consecutive bars, up to and including each bar, with ``close > average``."""
    above = np.asarray(close, dtype=float) > np.asarray(average, dtype=float)
    out = np.zeros(above.shape, dtype=np.int64)
    run = 0
    for t, flag in enumerate(above):
        run = run + 1 if flag else 0
        out[t] = run
    return out


class TrendStreak(Strategy):
    default_data = "../datasets/sp500_daily.parquet"
    # "up over the next 3 months in every case": every case's 63-bar forward return > 0
    claims = {"entry_episode": {63: 1.0}}

    window: int = param(50, min=1, help="bars in the simple moving average")
    min_streak: int = param(138, min=0,
                            help="the signal: a streak of more than this many closes above "
                                 "the average")
    hold: int = param(63, min=1, help="bars a position is held (3 months)")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity bought")

    def _streak(self, close):
        return streak_above(close, sma(close, self.window))

    # -- event path ------------------------------------------------------------------
    def on_start(self):
        self.streak = self.I(self._streak, self.data.close, name="streak")
        self.entry_bar = -1

    def on_fill(self, fill):
        if fill["side"] > 0:
            self.entry_bar = fill["done_bar"]

    def on_bar(self, bar):
        if self.position > 0:
            if not self.open_orders() and bar.index - self.entry_bar >= self.hold - 1:
                self.close(tag="time")
            return
        if not self.open_orders() and self.streak[-1] == self.min_streak + 1:
            self.buy(percent=self.size, tag="streak")

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        return self._streak(np.asarray(data.close)) > self.min_streak
