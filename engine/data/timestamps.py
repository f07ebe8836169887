"""Timestamps in: dates and times as files spell them, read one way for a whole column.

:func:`to_timestamps` turns a date, timestamp or text column into ``datetime64[ns]``
and names its time zone. It is shared by the bar loader, the feeds and the
streaming reader, so that one file is read the same way whichever of them reads it.

Text dates
    ISO dates and timestamps (``2024-01-31``, ``2024-01-31 15:30:00``, with or
    without a UTC offset) are read as they are. Numeric dates in another order
    (``31/01/2024``, ``01.31.2024``, ``2024/1/31``) are read in the one order the
    column allows: a column with a first number above 12 somewhere is day-first,
    one with a second number above 12 is month-first, *for every row*. A column
    where both orders are possible everywhere (``01/02/2020`` reads as 2
    January or 1 February) is refused, naming both readings: the user settles it
    with a ``strptime`` format (``--date-format``, ``date_format=``). Dates with
    month names (``Jan 31, 2024``) are read as written.
Range
    ``datetime64[ns]`` holds 1677-09-22 to 2262-04-11; a date outside it is refused
    whatever its spelling (never wrapped around to the other end).
Time zones
    A column whose values carry a zone (a Parquet ``timestamp[tz=...]``, text with
    UTC offsets) gives UTC nanoseconds and the zone: its IANA name when the file
    has one, a fixed ``Etc/GMT±h`` zone for one whole-hour offset, else UTC with a
    note saying why (offsets that change with daylight saving name no single
    zone). Text that mixes stamps with and without a zone is refused: a stamp
    without one could be UTC or local time.

The panel keeps naive UTC nanoseconds; :func:`wall_clock` gives the local times
the reports show, and :func:`localize` takes naive stamps to be in a zone.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError, ParameterError, did_you_mean

__all__ = ["check_date_format", "check_zone", "localize", "to_timestamps", "wall_clock"]

#: What datetime64[ns] can hold, as messages state it.
RANGE = "1677-09-22..2262-04-11"
_NS_MIN = np.iinfo(np.int64).min + 1        # int64 min itself is NaT
_NS_MAX = np.iinfo(np.int64).max
_NS_PER = {"D": 86_400 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}

# A time of day followed by a zone: an offset, Z, UTC or GMT. The time must be there,
# or the "-02" that ends an ISO date would read as an offset.
_AWARE = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|GMT|[+-]\d\d(?::?\d\d)?)$"
_OFFSET = r"(?P<off>[zZ]|UTC|GMT|[+-]\d\d(?::?\d\d)?)$"
# Year first, any of - / . between the parts (ISO with one-digit parts included).
_YMD = r"^(?P<y>\d{4})[/.-](?P<m>\d{1,2})[/.-](?P<d>\d{1,2})(?P<rest>[ T].*)?$"
# Year last: day-first or month-first, which the column decides.
_XXY = (r"^(?P<a>\d{1,2})(?P<s>[/.-])(?P<b>\d{1,2})[/.-](?P<y>\d{4}|\d{2})"
        r"(?P<rest>[ T].*)?$")


def _count(n: int) -> str:
    return "1 row fails" if n == 1 else f"{n} rows fail"


def _how(option: str, fmt: str | None) -> str:
    """How the user passes a date format (``fmt``, or any) to what reads this column."""
    if option == "feed":
        return f"Feed(date_format={fmt!r})" if fmt else "Feed(date_format=...)"
    return f"--date-format {fmt!r}" if fmt else "--date-format (date_format= in Python)"


def _python_too(option: str, fmt: str) -> str:
    return "" if option == "feed" else f"; in Python, date_format={fmt!r}"


# --------------------------------------------------------------------------- zones


def check_zone(tz) -> str | None:
    """``tz`` if it names a time zone of the IANA database (or None), else ParameterError."""
    if tz is None:
        return None
    import zoneinfo

    if isinstance(tz, str) and tz.strip():
        try:
            zoneinfo.ZoneInfo(tz)
            return tz
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    hint = did_you_mean(tz, zoneinfo.available_timezones()) if isinstance(tz, str) else ""
    raise ParameterError(
        f"tz={tz!r} is not a time zone.{hint} Fix: name one of the IANA time zone database, "
        f"e.g. America/New_York, Europe/London, Asia/Tokyo or UTC (CLI --tz)."
    )


def wall_clock(ts: np.ndarray, tz: str | None) -> np.ndarray:
    """UTC ``datetime64[ns]`` stamps as naive local times in ``tz`` (as given when None)."""
    if not tz or len(ts) == 0:
        return ts
    import pandas as pd

    index = pd.DatetimeIndex(np.asarray(ts, dtype="datetime64[ns]"), tz="UTC")
    return index.tz_convert(tz).tz_localize(None).to_numpy().astype("datetime64[ns]")


def localize(ts: np.ndarray, tz: str, where: str, what: str = "the data has",
             rows: bool = False) -> np.ndarray:
    """Naive stamps taken as local times in ``tz``, as UTC ``datetime64[ns]``.

    A local time the clocks skip (spring forward) or pass twice (fall back) is a
    :class:`DataError` naming it: no guess is made about which instant was meant.
    ``where`` starts the message (the file) and ``what`` leads to the stamp
    (``"column 'ts' has"``); with ``rows`` the stamps are a file's rows, named.
    """
    import pandas as pd

    index = pd.DatetimeIndex(np.asarray(ts, dtype="datetime64[ns]"))
    try:
        local = index.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except (ValueError, pd.errors.OutOfBoundsDatetime) as exc:
        gap = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").isna()
        skipped = index.tz_localize(tz, ambiguous=np.zeros(len(index), bool),
                                    nonexistent="NaT").isna() if gap.any() else gap
        if not gap.any():
            raise DataError(f"{where}: cannot place {what} in {tz} ({exc}).") from None
        i = int(np.flatnonzero(gap)[0])
        stamp = _fmt(index[i].to_datetime64())
        why = (f"does not exist in {tz} (the clocks skip it when daylight saving time starts)"
               if skipped[i] else f"happens twice in {tz} (the clocks go back when daylight "
               f"saving time ends)")
        n = int(gap.sum())
        raise DataError(
            f"{where}: {what} {stamp}{f' at row {i + 1}' if rows else ''}, a local time that "
            f"{why}; {n} "
            f"{'stamps are' if n > 1 else 'stamp is'} affected. Fix: write the timestamps "
            f"with their UTC offset (e.g. 2024-11-03 01:30:00-04:00) or in UTC, or choose "
            f"another --tz."
        ) from None
    return local.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[ns]")


def _fmt(value, tz: str | None = None) -> str:
    """One stamp for a message: the date alone at midnight; local time in ``tz``."""
    value = np.datetime64(value, "ns")
    if tz:
        value = wall_clock(np.array([value]), tz)[0]
    text = np.datetime_as_string(value, unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


def _zone_of(offsets: list[str]) -> tuple[str, str | None]:
    """The zone UTC offsets name, and why none could be named (else None)."""
    minutes = set()
    for text in offsets:
        if text is None or text.upper() in ("Z", "UTC", "GMT"):
            minutes.add(0)
            continue
        digits = text[1:].replace(":", "")
        value = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        minutes.add(value if text[0] == "+" else -value)
    shown = ", ".join(f"{'+' if m >= 0 else '-'}{abs(m) // 60:02}:{abs(m) % 60:02}"
                      for m in sorted(minutes))
    if len(minutes) > 1:
        return "UTC", f"UTC offsets that change within the column ({shown}: daylight saving " \
                      f"time?), which name no single time zone"
    (m,) = minutes
    if m == 0:
        return "UTC", None
    if m % 60:
        return "UTC", f"the UTC offset {shown}, which names no time zone by itself"
    # POSIX signs: Etc/GMT-5 is five hours *ahead* of UTC.
    return f"Etc/GMT{'-' if m > 0 else '+'}{abs(m) // 60}", None


# --------------------------------------------------------------------------- conversion


def check_date_format(date_format, where: str | None = None) -> str | None:
    """``date_format`` if it is a usable ``strptime`` format (or None), else an error.

    Without ``where`` it is a run option (a ParameterError naming ``--date-format``);
    with it, a feed's setting (a DataError naming the feed ``where``).
    """
    if date_format is None:
        return None
    import pandas as pd

    reason = "it has no % code"
    if isinstance(date_format, str) and "%" in date_format:
        try:
            pd.to_datetime(pd.Series(["2000-01-01"]), format=date_format, errors="coerce")
            return date_format
        except (ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if where is not None:
        raise DataError(
            f"{where}: Feed(date_format={date_format!r}) is not a strptime format ({reason}). "
            f"Fix: write it with strptime codes, e.g. %d/%m/%Y or %m/%d/%Y %H:%M."
        )
    raise ParameterError(
        f"date_format={date_format!r} is not a strptime format ({reason}). Fix: write it "
        f"with strptime codes, e.g. %d/%m/%Y or %m/%d/%Y %H:%M (CLI --date-format)."
    )


def to_timestamps(col, src: str, name: str, *, date_format: str | None = None,
                  option: str = "bars", notes: list | None = None,
                  memo: dict | None = None) -> tuple[np.ndarray, str | None]:
    """A date, timestamp or date-text column as ``datetime64[ns]`` and its time zone.

    Parameters
    ----------
    col : pyarrow.ChunkedArray or pyarrow.Array
        The column.
    src, name : str
        The file (or frame) and the column, for messages.
    date_format : str, optional
        A ``strptime`` format for text dates; every text value must match it.
    option : {"bars", "feed"}
        Which option a message tells the user to set (``--date-format`` or
        ``Feed(date_format=...)``).
    notes : list, optional
        Receives the text of a warning when the zone had to be chosen (UTC offsets
        that change within the column).
    memo : dict, optional
        Shared by the calls that read one column in parts (streaming): the order
        of day and month and whether stamps carry a zone, decided by the first
        part, hold for the others.

    Returns
    -------
    (numpy.ndarray, str or None)
        ``datetime64[ns]`` stamps: UTC when the zone is given, as written when it
        is None.

    Raises
    ------
    DataError
        Naming ``src``, ``name``, the first offending row and the fix: an empty
        value, text that is not a date, an ambiguous day/month order, a date out
        of range, stamps with and without a zone mixed, a non-date type.
    """
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    if col.null_count:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{src}: column {name!r} is empty at row {i + 1}; {_count(col.null_count)} this "
            f"check. Fix: every bar needs a timestamp; fill it in or drop the row."
        )
    if pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "string_view":
        return _from_text(col.cast(pa.string()).combine_chunks(), src, name, date_format,
                          option, notes, memo)
    if pa.types.is_timestamp(t):
        unit, tz = t.unit, t.tz
        ticks = col.cast(pa.int64())
    elif pa.types.is_date32(t):
        unit, tz = "D", None
        ticks = col.cast(pa.int32()).cast(pa.int64())
    elif pa.types.is_date64(t):
        unit, tz = "ms", None
        ticks = col.cast(pa.int64())
    else:
        raise DataError(
            f"{src}: column {name!r} holds {t} values, not dates or timestamps. Fix: store "
            f"dates (e.g. 2024-01-31) or timestamps; convert numeric dates such as 20240131 "
            f"or epoch seconds before loading."
        )
    ns, outside = _scaled(ticks.to_numpy(), unit)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        try:
            shown = str(col[i].as_py())
        except (ValueError, OverflowError):   # beyond Python's datetime too
            shown = f"{ticks[i].as_py()} {unit} from 1970"
        _out_of_range(src, name, shown, i, int(outside.sum()))
    if memo is not None:
        _same_zone_kind(memo, tz is not None, src, name)
    return ns.view("datetime64[ns]"), tz


def _scaled(ticks: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """int64 ticks of ``unit`` as nanoseconds, and where they fall outside datetime64[ns]."""
    per = _NS_PER[unit]
    ticks = np.asarray(ticks, dtype=np.int64)
    if per == 1:
        return ticks, np.zeros(len(ticks), dtype=bool)
    outside = (ticks < -(-_NS_MIN // per)) | (ticks > _NS_MAX // per)
    return np.where(outside, 0, ticks) * per, outside


def _out_of_range(src: str, name: str, shown: str, i: int, n: int):
    raise DataError(
        f"{src}: column {name!r} has {shown!r} at row {i + 1}, outside {RANGE}, the range of "
        f"nanosecond timestamps; {_count(n)} this check. Fix: drop or correct those rows."
    )


def _same_zone_kind(memo: dict, aware: bool, src: str, name: str) -> None:
    seen = memo.setdefault("aware", aware)
    if seen != aware:
        raise DataError(
            f"{src}: column {name!r} mixes timestamps with a time zone and without one "
            f"(from one part of the file to the next); a timestamp without a zone could be "
            f"UTC or local time. Fix: write every timestamp with its UTC offset, or none."
        )


def _from_text(text: pa.Array, src, name, date_format, option, notes, memo):
    import pandas as pd

    text = pc.utf8_trim_whitespace(text)
    raw = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    blank = np.asarray(pc.equal(text, "").to_numpy(zero_copy_only=False), dtype=bool)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise DataError(
            f"{src}: column {name!r} is empty at row {i + 1}; {_count(int(blank.sum()))} this "
            f"check. Fix: every bar needs a timestamp; fill it in or drop the row."
        )
    aware = np.asarray(pc.match_substring_regex(text, _AWARE).to_numpy(
        zero_copy_only=False), dtype=bool)
    if aware.any() and not aware.all():
        j, k = int(np.flatnonzero(aware)[0]), int(np.flatnonzero(~aware)[0])
        raise DataError(
            f"{src}: column {name!r} mixes timestamps with a time zone (row {j + 1}: "
            f"{raw[j]!r}) and without one (row {k + 1}: {raw[k]!r}); a timestamp without a "
            f"zone could be UTC or local time. Fix: write every timestamp with its UTC "
            f"offset (e.g. 2024-01-02 09:30:00-05:00), or none of them."
        )
    is_aware = bool(aware.any()) or (date_format is not None and "%z" in date_format)
    if memo is not None:
        _same_zone_kind(memo, is_aware, src, name)

    if date_format is not None:
        parsed = pd.to_datetime(pd.Series(raw), format=date_format, utc=True, errors="coerce")
        ns, bad, outside = _ns_of(parsed, raw)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            _out_of_range(src, name, raw[i], i, int(outside.sum()))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{src}: column {name!r} has {raw[i]!r} at row {i + 1}, which does not match "
                f"the date format {date_format!r}; {_count(int(bad.sum()))} this check. Fix: "
                f"correct those rows, or the format (strptime codes, e.g. %d/%m/%Y %H:%M)."
            )
    else:
        iso, rewritten = _year_first(text, raw, src, name, option, memo)
        parsed = pd.to_datetime(pd.Series(iso), format="ISO8601", utc=True, errors="coerce")
        ns, bad, outside = _ns_of(parsed, raw)
        if bad.any():
            # Times like "9:30 AM" or month names: read as written. Only text that is
            # year-first by now, or holds letters, goes this way: an all-digit date in
            # another order must not be guessed month-first.
            letters = np.asarray(pc.match_substring_regex(text, "[A-Za-z]").to_numpy(
                zero_copy_only=False), dtype=bool)
            retry = np.flatnonzero(bad & (letters | rewritten))
            if retry.size:
                again = pd.to_datetime(pd.Series(iso[retry]), format="mixed", utc=True,
                                       errors="coerce")
                ns2, bad2, outside2 = _ns_of(again, raw[retry])
                ns[retry] = ns2
                bad[retry] = bad2
                outside[retry] = outside2
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            _out_of_range(src, name, raw[i], i, int(outside.sum()))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{src}: column {name!r} has {raw[i]!r}, not a date, at row {i + 1}; "
                f"{_count(int(bad.sum()))} this check. Fix: use ISO dates or timestamps such "
                f"as 2024-01-31 or 2024-01-31 15:30:00, or give their strptime format with "
                f"{_how(option, None)}."
            )
    tz = None
    if is_aware:
        offsets = pc.extract_regex(text, _OFFSET)
        found = pc.unique(offsets.field("off").filter(offsets.is_valid())).to_pylist()
        if len(found) == 0 or offsets.null_count:
            found.append(None)      # a zone the pattern does not spell out: say UTC
        tz, why = _zone_of(found)
        if why is not None and notes is not None:
            notes.append(
                f"{src}: column {name!r} gives times with {why}; results show them in UTC. "
                f"Fix: name the exchange's time zone with --tz (e.g. --tz America/New_York; "
                f"tz= in Python) to show local times."
            )
    return ns.view("datetime64[ns]"), tz


def _ns_of(parsed, raw: np.ndarray):
    """Nanoseconds of parsed stamps, which rows did not parse, and which are out of range."""
    import pandas as pd

    values = parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    unit = np.datetime_data(values.dtype)[0]
    ticks = values.view(np.int64)
    nat = ticks == np.iinfo(np.int64).min
    ns, outside = _scaled(np.where(nat, 0, ticks), unit)
    outside &= ~nat
    if nat.any():
        # A pandas that parses in nanoseconds gives NaT for a year it cannot hold:
        # tell those rows apart from text that is not a date by their year.
        years = pd.Series(raw[nat]).astype(str).str.extract(r"(?<!\d)(\d{4})(?!\d)")[0]
        far = pd.to_numeric(years, errors="coerce")
        far = ((far < 1678) | (far > 2261)).fillna(False).to_numpy(dtype=bool)
        rows = np.flatnonzero(nat)
        outside[rows[far]] = True
        nat[rows[far]] = False
    return ns, nat, outside


def _year_first(text: pa.Array, raw: np.ndarray, src, name, option, memo):
    """The text with numeric dates rewritten year-first (ISO), and which rows were."""
    iso = raw.copy()
    rewritten = np.zeros(len(raw), dtype=bool)

    ymd = pc.extract_regex(text, _YMD)
    rows = np.flatnonzero(np.asarray(ymd.is_valid().to_numpy(zero_copy_only=False),
                                     dtype=bool))
    if rows.size:
        part = ymd.filter(ymd.is_valid())
        iso[rows] = _joined(part.field("y"), part.field("m"), part.field("d"),
                            part.field("rest"))
        rewritten[rows] = True

    xxy = pc.extract_regex(text, _XXY)
    valid = np.asarray(xxy.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(valid)
    if not rows.size:
        return iso, rewritten
    part = xxy.filter(xxy.is_valid())
    a = np.asarray(part.field("a").cast(pa.int32()).to_numpy(), dtype=np.int64)
    b = np.asarray(part.field("b").cast(pa.int32()).to_numpy(), dtype=np.int64)
    order = _order(a, b, rows, raw, part, src, name, option, memo)
    year = part.field("y")
    two = pc.equal(pc.utf8_length(year), 2)
    # Two-digit years as strptime's %y reads them: 69-99 -> 1900s, 00-68 -> 2000s.
    century = pc.if_else(pc.less(pc.cast(year, pa.int32()), 69), "20", "19")
    year = pc.if_else(two, pc.binary_join_element_wise(century, year, ""), year)
    day, month = (part.field("a"), part.field("b")) if order == "dmy" else (
        part.field("b"), part.field("a"))
    iso[rows] = _joined(year, month, day, part.field("rest"))
    rewritten[rows] = True
    return iso, rewritten


def _joined(year, month, day, rest) -> np.ndarray:
    pad = pc.utf8_lpad
    text = pc.binary_join_element_wise(year, pad(month, 2, "0"), pad(day, 2, "0"), "-")
    rest = pc.if_else(pc.is_null(rest), "", rest)
    return np.asarray(pc.binary_join_element_wise(text, rest, "").to_numpy(
        zero_copy_only=False), dtype=object)


def _order(a, b, rows, raw, part, src, name, option, memo) -> str:
    """``"dmy"`` or ``"mdy"`` for the whole column, or a DataError saying why neither."""
    day_first = np.flatnonzero(a > 12)
    month_first = np.flatnonzero(b > 12)
    known = memo.get("order") if memo is not None else None
    if day_first.size and (month_first.size or known == "mdy"):
        i = int(rows[day_first[0]])
        k = int(rows[month_first[0]]) if month_first.size else None
        other = (f"row {k + 1} has {raw[k]!r} (month first)" if k is not None
                 else "earlier rows are month first")
        raise DataError(
            f"{src}: column {name!r} mixes day-first and month-first dates: row {i + 1} has "
            f"{raw[i]!r} (day first) but {other}. Fix: write every date in one order "
            f"(ISO dates such as 2024-01-31 cannot be misread)."
        )
    if month_first.size and known == "dmy":
        k = int(rows[month_first[0]])
        raise DataError(
            f"{src}: column {name!r} mixes day-first and month-first dates: row {k + 1} has "
            f"{raw[k]!r} (month first) but earlier rows are day first. Fix: write every "
            f"date in one order (ISO dates such as 2024-01-31 cannot be misread)."
        )
    order = "dmy" if day_first.size else "mdy" if month_first.size else known
    if order is None:
        differ = np.flatnonzero(a != b)
        if not differ.size:
            return "mdy"        # 01/01/2020, 02/02/2020: both orders read the same
        j = int(differ[0])
        i = int(rows[j])
        year = str(part.field("y")[j].as_py())
        if len(year) == 2:
            year = ("20" if int(year) < 69 else "19") + year
        sep = str(part.field("s")[j].as_py())
        code = "%Y" if len(str(part.field("y")[j].as_py())) == 4 else "%y"
        tail = _time_format(str(part.field("rest")[j].as_py() or ""))
        day_fmt = f"%d{sep}%m{sep}{code}{tail}"
        month_fmt = f"%m{sep}%d{sep}{code}{tail}"
        raise DataError(
            f"{src}: column {name!r} has {raw[i]!r} at row {i + 1}, which reads as "
            f"{year}-{a[j]:02}-{b[j]:02} month-first or {year}-{b[j]:02}-{a[j]:02} day-first, "
            f"and no date in the column has a day above 12 to settle it. Fix: give the order "
            f"with {_how(option, day_fmt)} (day first) or {_how(option, month_fmt)} (month "
            f"first){_python_too(option, day_fmt)}."
        )
    if memo is not None:
        memo["order"] = order
    return order


def _time_format(rest: str) -> str:
    """The strptime codes of a time part such as `` 09:30:00`` or `` 9:30 PM``."""
    out = re.sub(r"\d{1,2}:\d{2}:\d{2}[.,]\d+", "%H:%M:%S.%f", rest)
    out = re.sub(r"\d{1,2}:\d{2}:\d{2}", "%H:%M:%S", out)
    out = re.sub(r"\d{1,2}:\d{2}", "%H:%M", out)
    if re.search(r"(?i)[ap]\.?m\.?$", out):
        out = re.sub(r"(?i)[ap]\.?m\.?$", "%p", out).replace("%H", "%I")
    out = re.sub(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$", "%z", out)
    return out
