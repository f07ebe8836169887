"""Higher timeframes without look-ahead: :func:`resample` (``engine.indicators.resample``).

A weekly (or monthly, ...) value of daily bars is known only once its week is over.
Filling it back onto the days of its week (a pandas ``resample(...).last()``
reindexed with a backward fill) shows Monday the close of Friday: a leak. Here a
period's value appears only from a bar at which the period is known to be over.

When a period is known to be over
---------------------------------
The rule never uses a bar after the one it shows the value on:

1. **Calendar.** The period is over at a bar dated on the period's last calendar day
   (a Friday for ``"W-FRI"``, the 31st of January for ``"M"``) when the data is
   *date bars*: this bar and every bar before it stamped at midnight, and it is not
   the first bar. A bar dated on a date covers the whole day, so nothing of the
   period can come after it.
2. **Next period.** Otherwise the period is over at the first bar of a later period:
   the week of a Friday holiday ends at Thursday's bar, but Thursday does not know it
   is the last trading day of the week; Monday's bar shows it. Intraday bars (and
   daily bars stamped at a time of day, such as local midnight stored in UTC) always
   use this rule.

The last period of the data, unfinished (the data ends mid-week) or finished without
a calendar bar (the week of a Friday holiday is the data's last), therefore never
shows: on the bars after it, which the data does not hold, it would. With
``partial=True`` each bar shows instead the value of its own period up to and
including itself (the week-to-date high, say), which is causal by construction.

Periods are calendar periods of the timestamps as given (UTC instants when the data
has a time zone: a week ends at Friday midnight UTC). Pass ``data.local_ts`` (or
``self.data.local_ts`` in ``self.I``) for the periods of the local calendar.
"""

from __future__ import annotations

import re

import numpy as np

from engine.errors import ParameterError

#: Aggregations of :func:`resample`'s ``how``.
HOWS = ("last", "first", "max", "min", "sum", "mean", "count")
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_RULE_HELP = ('"D" (day), "W" or "W-MON".."W-SUN" (weeks ending on that day; "W" = "W-SUN"), '
              '"M" (month), "Q" (quarter), "Y" (year)')


def _period_keys(days: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's period number and the number of that period's last calendar day."""
    unit = rule.upper()
    unit = {"ME": "M", "QE": "Q", "YE": "Y", "A": "Y", "W": "W-SUN"}.get(unit, unit)
    if unit == "D":
        return days, days
    match = re.fullmatch(r"W-(MON|TUE|WED|THU|FRI|SAT|SUN)", unit)
    if match:
        # 1970-01-01 (day 0) was a Thursday; weekday(d) = (d + 3) % 7 with Monday 0
        last_day = (_WEEKDAYS.index(match.group(1)) - 3) % 7
        shift = (6 - last_day) % 7
        keys = (days + shift) // 7
        return keys, keys * 7 + 6 - shift
    dates = days.astype("datetime64[D]")
    if unit == "M":
        months = dates.astype("datetime64[M]")
        ends = (months + 1).astype("datetime64[D]") - 1
        return months.astype(np.int64), ends.astype(np.int64)
    if unit == "Q":
        months = dates.astype("datetime64[M]").astype(np.int64)
        quarters = months // 3
        ends = (np.asarray(quarters * 3 + 3, dtype="datetime64[M]").astype("datetime64[D]")
                - 1)
        return quarters, ends.astype(np.int64)
    if unit == "Y":
        years = dates.astype("datetime64[Y]")
        ends = (years + 1).astype("datetime64[D]") - 1
        return years.astype(np.int64), ends.astype(np.int64)
    raise ParameterError(f"resample: rule must be one of {_RULE_HELP}; got {rule!r}. Fix: "
                         f"pass e.g. rule=\"W-FRI\" for weeks ending on Friday.")


def _to_date_time(ts) -> tuple[np.ndarray, np.ndarray]:
    """Day numbers since 1970-01-01 and whether each bar is stamped at midnight."""
    module = type(ts).__module__ or ""
    if module.startswith(("polars", "pandas")):
        ts = ts.to_numpy()
    arr = np.asarray(ts)
    if arr.dtype.kind != "M":
        try:
            arr = arr.astype("datetime64[ns]")
        except (TypeError, ValueError):
            raise ParameterError(
                f"resample: ts must hold timestamps (datetime64); got dtype {arr.dtype}. "
                f"Fix: pass the bars' timestamps, data.ts (signals) or self.data.ts (self.I)."
            ) from None
    if arr.ndim != 1:
        raise ParameterError(f"resample: ts must be 1-D, one timestamp per bar; got shape "
                             f"{arr.shape}")
    if arr.dtype.kind == "M" and np.datetime_data(arr.dtype)[0] in ("Y", "M", "W"):
        arr = arr.astype("datetime64[D]")
    ns = arr.astype("datetime64[ns]").astype(np.int64)
    day_ns = 86_400 * 10**9
    days = ns // day_ns
    return days, ns - days * day_ns == 0


def _running(block: np.ndarray, how: str) -> np.ndarray:
    """The aggregate of ``block``'s rows up to each row, column by column (NaN skipped)."""
    valid = ~np.isnan(block)
    count = np.cumsum(valid, axis=0)
    if how == "count":
        return count.astype(np.float64)
    rows = np.arange(len(block))[:, None]
    if how == "last":
        idx = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)
        out = np.take_along_axis(block, np.maximum(idx, 0), axis=0)
    elif how == "first":
        idx = np.minimum.accumulate(np.where(valid, rows, len(block)), axis=0)
        out = np.take_along_axis(block, np.minimum(idx, len(block) - 1), axis=0)
    elif how == "max":
        out = np.fmax.accumulate(block, axis=0)
    elif how == "min":
        out = np.fmin.accumulate(block, axis=0)
    else:
        total = np.cumsum(np.where(valid, block, 0.0), axis=0)
        out = total if how == "sum" else total / np.maximum(count, 1)
    return np.where(count > 0, out, np.nan)


def resample(values, ts, rule: str, how: str = "last", *, partial: bool = False) -> np.ndarray:
    """A higher-timeframe series aligned to the bars, visible only once known.

    Parameters
    ----------
    values : array-like
        ``(n_bars,)`` or ``(n_bars, n_symbols)`` numbers (NaN for missing).
    ts : array-like of datetime64
        The bars' timestamps, ascending: ``data.ts`` in ``signals``, ``self.data.ts``
        inside ``self.I(resample, self.data.close, self.data.ts, "W-FRI")``.
    rule : str
        The period: ``"D"``, ``"W"``/``"W-MON"``..``"W-SUN"`` (weeks ending on that
        day; ``"W"`` is ``"W-SUN"`` as in pandas), ``"M"``, ``"Q"``, ``"Y"``.
    how : {"last", "first", "max", "min", "sum", "mean", "count"}
        How a period's bars make its value (NaN skipped; a period without a value is
        NaN): ``"last"`` of the closes is the weekly close, ``"max"`` of the highs
        the weekly high.
    partial : bool
        False (default): each bar shows the value of the latest period known to be
        over (module docstring: on a bar dated on the period's last calendar day, for
        date bars; else from the first bar of the next period); NaN before the first.
        True: each bar shows its own period's value up to and including itself.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``values``. Causal: on a prefix of the data it gives
        the prefix of the result.

    Examples
    --------
    Daily closes Monday 1 to Friday 12 January 2024, weeks ending on Friday:
    the week of the 5th shows from Friday the 5th, not on the 1st to the 4th.

    >>> import numpy as np
    >>> ts = np.arange("2024-01-01", "2024-01-13", dtype="datetime64[D]")
    >>> resample(np.arange(12.0), ts, "W-FRI")[:6].tolist()
    [nan, nan, nan, nan, 4.0, 4.0]
    """
    if how not in HOWS:
        raise ParameterError(f"resample: how must be one of {', '.join(HOWS)}; got {how!r}. "
                             f"Fix: pass e.g. how=\"last\" (the period's last value).")
    if not isinstance(rule, str):
        raise ParameterError(f"resample: rule must be a string, one of {_RULE_HELP}; got "
                             f"{rule!r}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ParameterError(f"resample: values must be 1-D (n_bars,) or 2-D (n_bars, "
                             f"n_symbols); got shape {arr.shape}")
    days, midnight = _to_date_time(ts)
    n = arr.shape[0]
    if len(days) != n:
        raise ParameterError(f"resample: values has {n} bars but ts has {len(days)} "
                             f"timestamps; pass one timestamp per bar")
    if n > 1 and (np.diff(days) < 0).any():
        raise ParameterError("resample: ts must be in ascending order (the bars' order)")
    keys, last_days = _period_keys(days, rule)
    cols = arr.reshape(n, -1)
    running = np.empty(cols.shape)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if n else np.array([], int)
    bounds = np.r_[starts, n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        running[a:b] = _running(cols[a:b], how)
    if partial:
        return running.reshape(arr.shape)
    # The bar from which each bar's period is known to be over.
    date_bars = np.logical_and.accumulate(midnight) & (np.arange(n) > 0)
    ends = bounds[1:] - 1                       # each period's last bar in the data
    by_calendar = date_bars[ends] & (days[ends] == last_days[ends])
    visible_from = np.where(by_calendar, ends, ends + 1)
    # On bar t: the latest period visible by t (periods are in order, and so are their
    # visibility bars).
    out = np.full(cols.shape, np.nan)
    shown = np.searchsorted(visible_from, np.arange(n), side="right") - 1
    has = shown >= 0
    out[has] = running[ends[shown[has]]]
    return out.reshape(arr.shape)
