"""Hold the index through one calendar month (claim B4 of the rule book, ``RULES.md``).

The claim, as RULES.md states it (source ``000_*``/``001_*`` §9):

    "B4 Seasonality: December the strongest month over 75 years, average +1.8%."

The claim is about calendar-month returns, measured from month-end closes by
``engine.event_study.calendar_study(result, last_years=75)`` on this strategy's run
(the return of each complete month from the previous month's last close to the
month's last close; per month of the year its mean, share positive and rank).

What the strategy does (event path), so that the claim can also be traded:

* at the close of the **last bar of the month before** ``month``: buy ``size`` of
  equity; at the close of the last bar of ``month``: sell (exit reason
  ``"month_end"``). Market orders fill at the next bar's open by default; with
  ``fill="close"`` they fill at that same close, and each trade's return is then
  exactly the month's return from month-end closes (no costs, ``fractional``);
* a bar is the last of its month when the **next weekday** falls in another
  month. The weekday calendar is known in advance, so this reads no future bar;
  a holiday on a month's last weekday makes the strategy act on the next bar
  instead (the first of the new month): late, never early.

Parameters: ``month`` (12, December), ``size`` (1.0, all the equity).
Default data: the S&P 500 (``datasets/sp500_daily.parquet``), price index only
(dividends are not in the data).
"""

import numpy as np

from engine import Strategy, param

_DAY = np.timedelta64(1, "D")


def next_weekday(day):
    """The weekday after ``day`` (a ``datetime64[D]``): Friday -> Monday."""
    nxt = day + _DAY
    weekday = (nxt.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
    return nxt + _DAY * max(0, 7 - int(weekday)) if weekday >= 5 else nxt


def month_number(day) -> int:
    """1-12 for a ``datetime64``."""
    return int(np.asarray(day).astype("datetime64[M]").astype(np.int64) % 12) + 1


class Seasonality(Strategy):
    default_data = "../datasets/sp500_daily.parquet"

    month: int = param(12, min=1, max=12, help="the calendar month held (12 = December)")
    size: float = param(1.0, min=0.01, max=1.0, help="fraction of equity bought")

    def on_start(self):
        self.previous_month = 12 if self.month == 1 else self.month - 1
        self.entered = None  # the held month (datetime64[M]) of the latest entry

    def on_bar(self, bar):
        if self.open_orders():
            return
        day = np.datetime64(bar.ts, "D")
        this_month = month_number(day)
        last_of_month = month_number(next_weekday(day)) != this_month
        if self.position > 0:
            # the month is over: its last bar, or a later bar if a holiday hid the last
            if this_month != self.month or last_of_month:
                self.close(tag="month_end")
            return
        held = day.astype("datetime64[M]")
        if this_month == self.previous_month and last_of_month:
            held = held + np.timedelta64(1, "M")
        elif this_month != self.month:
            return
        # in the month itself only when a holiday hid the previous month's last bar
        if held != self.entered:
            self.entered = held
            self.buy(percent=self.size, tag="month_start")

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        """Bars in the month held."""
        months = np.asarray(data.ts).astype("datetime64[M]").astype(np.int64) % 12 + 1
        return months == self.month
