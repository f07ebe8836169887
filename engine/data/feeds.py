"""Alternative data joined onto the bar timeline, point-in-time.

A :class:`Feed` describes a table of values that are not bars — the CNN Fear &
Greed index, the VIX close, semi-monthly short interest — and *when each value
became known*. :func:`join_feeds` adds every feed column to a
:class:`~engine.data.panel.Panel` as a float64 feature field of shape
``(n_bars, n_symbols)``, read by strategies as ``self.data.<name>[-1]`` (event
path) or ``data.<name>`` (vectorised path and report hooks).

The join is an **as-of join on availability**, never on the value's own date:

* a row's *availability* is its ``available_at`` column when one is named, else
  its ``on`` column; a ``lag`` delays it further, either by a time span
  (``"1D"``, ``"36h"``, a ``timedelta``) or by a number of bars (an ``int``: the
  value is visible ``lag`` bars after the first bar at or after its availability);
* the value at bar ``t`` is that of the **latest observation** (largest ``on``;
  among revisions of one observation, the latest available) among the rows whose
  availability is ``<= ts[t]``. A row is therefore never visible before its
  availability: nothing here reads forward;
* rows available before the first bar are visible from the first bar (with a lag
  in bars, from bar ``lag``: bars before the panel are not counted); rows available
  after the last bar are dropped; ``max_age`` (bars or a time span,
  counted from the row's ``on`` date) turns stale values into NaN so a gap in the
  feed, or its end, does not carry an old value forward for ever; ``max_age="auto"``
  derives it from the feed's own publication schedule (:func:`publication_max_age`).

Bars are stamped by their date (midnight) on daily data, and a strategy acts after
the close of bar ``t`` with orders filled from bar ``t + 1``. So a value dated
``d`` with lag 0 is used at the close of day ``d`` and traded at ``d + 1``'s open:
right for a value published by the close (the VIX close, CNN's Fear & Greed posted
after the close). An intraday availability time (short interest first seen at
07:38 UTC on 2021-01-13) is later than that day's midnight stamp, so it becomes
visible on the next bar: conservative by up to one bar.

Every problem is a :class:`~engine.errors.DataError` naming the feed, the file,
the column and the fix; symbols of a by-symbol feed that are not in the bars only
warn (:class:`FeedWarning`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.bars import DataWarning, column_list
from engine.data.panel import Panel
from engine.errors import DataError, did_you_mean

__all__ = ["Feed", "FeedWarning", "join_feeds", "publication_max_age"]

_NS_PER_DAY = 86_400 * 10**9
#: The grace ``max_age="auto"`` allows beyond a publication's usual life.
AUTO_MAX_AGE_GRACE_DAYS = 7


class FeedWarning(DataWarning):
    """A feed problem worked around (e.g. symbols the bars do not have)."""


@dataclass(frozen=True, eq=False)
class Feed:
    """One alternative-data source to join onto the bars point-in-time.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame, polars.DataFrame or pyarrow.Table
        A Parquet or CSV file (a relative path is taken relative to the strategy's
        file, like ``default_data``), or a frame.
    columns : sequence of str or mapping of str to str, optional
        The value columns to take; a mapping renames them (``{"close": "vix"}``
        adds the field ``vix``). Default: every numeric column other than ``on``,
        ``available_at`` and the symbol column.
    on : str
        The column holding each value's own date or time (``"ts"``; for short
        interest, ``"settlement_date"``).
    available_at : str, optional
        A column holding when each row became known (``"first_seen"``). Without it,
        a row is available at its ``on`` time (plus ``lag``).
    lag : int, str, datetime.timedelta or numpy.timedelta64
        Extra delay after the availability time: an ``int`` counts bars, anything
        else is a time span (``"1D"``, ``"14 days"``, ``"36h"``). Must not be
        negative. Default 0.
    by_symbol : bool
        Join per symbol through the ``symbol`` column (short interest); otherwise
        one value per timestamp, the same for every symbol (Fear & Greed, VIX).
    symbol : str
        The symbol column of a by-symbol feed.
    max_age : int, str, datetime.timedelta, numpy.timedelta64 or "auto", optional
        A value older than this, counted from its ``on`` date (in bars for an
        ``int``, else as a time span), is treated as missing (NaN). Default: no limit.
        ``"auto"`` (for a feed published on a schedule, such as semi-monthly short
        interest): the usual gap between two publications plus the usual
        publication delay plus a week, see :func:`publication_max_age`.
    mapping : mapping of str to mapping, optional
        For text columns: ``{"rating": {"fear": 1, "greed": 2}}`` maps each text
        value to a number. A text column without a mapping is refused.
    date_format : str, optional
        A ``strptime`` format for dates stored as text (``"%d/%m/%Y"``), when the
        feed's day/month order cannot be told from its dates (see
        :mod:`engine.data.timestamps`).

    Notes
    -----
    Times with a zone are compared as instants. Times without one are local times
    of the bars' zone when the bars have one (a feed dated 2024-01-02 belongs to
    that day where the bars trade), and compared as written otherwise.
    """

    source: Any
    columns: Any = None
    on: str = "ts"
    available_at: str | None = None
    lag: Any = 0
    by_symbol: bool = False
    symbol: str = "symbol"
    max_age: Any = None
    mapping: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    date_format: str | None = None

    def replace(self, **changes) -> Feed:
        """A copy with some settings changed (``feed.replace(lag=1)``)."""
        import dataclasses

        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- helpers


def _norm(name) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _span(value, what: str, where: str):
    """``("bars", n)`` or ``("time", ns)`` for a lag or max_age; None for None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: {what} must be a number of bars or a time span; got {value!r}")
    if isinstance(value, int | np.integer):
        if value < 0:
            raise DataError(
                f"{where}: {what} is {value} bars; it must be >= 0 (a negative {what} would "
                f"use values before they were available)"
            )
        return ("bars", int(value))
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return ("bars", int(value))
    import pandas as pd

    try:
        ns = int(pd.Timedelta(value).value)
    except (ValueError, TypeError):
        raise DataError(
            f"{where}: {what}={value!r} is neither a number of bars (an int) nor a time span; "
            f"write e.g. {what}=1 (one bar), {what}='1D' or {what}='36h'"
        ) from None
    if ns < 0:
        raise DataError(
            f"{where}: {what}={value!r} is negative; it must be >= 0 (a negative {what} would "
            f"use values before they were available)"
        )
    return ("time", ns)


def publication_max_age(on_ns: np.ndarray, available_ns: np.ndarray | None = None,
                        lag_ns: int = 0) -> int:
    """``max_age="auto"`` in whole days: how old a value of a scheduled feed may get.

    A value dated ``d`` (its ``on`` date, e.g. a short-interest settlement date) is
    published ``delay`` later and replaced when the next one is published, one
    ``gap`` after that. So it is normally ``gap + delay`` old when it is replaced;
    ``max_age`` adds a week of grace (:data:`AUTO_MAX_AGE_GRACE_DAYS`)::

        max_age = round_days(median(gap) + median(delay) + lag) + 7 days

    with ``gap`` the differences between consecutive distinct ``on`` dates (the
    publication schedule, across symbols), ``delay`` the availability minus the
    ``on`` date of each row (0 without an ``available_at`` column), and ``round_days``
    rounding to the nearest whole day. On the bundled
    short interest (15 semi-monthly settlements, seen 10–13 days after each):
    ``15 + 13 + 7 = 35`` days, so a value more than 35 days past its settlement --
    a missed publication, or the end of the feed -- is missing rather than carried
    forward.

    Parameters
    ----------
    on_ns : array of int64
        The rows' ``on`` times in nanoseconds.
    available_ns : array of int64, optional
        The rows' availability times (same length).
    lag_ns : int
        A further delay in nanoseconds (a time-span ``lag``).

    Returns
    -------
    int
        Days. Raises :class:`~engine.errors.DataError` with fewer than two distinct
        ``on`` dates (no schedule to read).
    """
    dates = np.unique(np.asarray(on_ns, dtype=np.int64))
    if dates.size < 2:
        raise DataError("max_age='auto' needs at least two distinct publication dates to "
                        "read the feed's schedule; this feed has "
                        f"{dates.size}. Fix: give max_age as a time span (e.g. '35D').")
    gap = float(np.median(np.diff(dates)))
    delay = 0.0 if available_ns is None else float(
        np.median(np.asarray(available_ns, dtype=np.int64) - np.asarray(on_ns, dtype=np.int64)))
    return int(round((gap + delay + lag_ns) / _NS_PER_DAY)) + AUTO_MAX_AGE_GRACE_DAYS


def _describe_span(span) -> str | int | None:
    if span is None:
        return None
    kind, amount = span
    if kind == "bars":
        return amount
    days, rest = divmod(amount, _NS_PER_DAY)
    return f"{days}D" if rest == 0 else f"{amount}ns"


def _times(col: pa.ChunkedArray, where: str, name: str, date_format=None,
           zone: str | None = None) -> np.ndarray:
    """A date or timestamp column as int64 UTC nanoseconds; naive stamps are local
    times of ``zone`` (the bars'), or kept as given when it is None."""
    from engine.data.timestamps import localize, to_timestamps

    ts, tz = to_timestamps(col, where, name, date_format=date_format, option="feed")
    if tz is None and zone:
        ts = localize(ts, zone, where, f"column {name!r} has", rows=True)
    return ts.view(np.int64)


def _values(col: pa.ChunkedArray, where: str, name: str, mapping) -> np.ndarray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    if pa.types.is_boolean(t):
        col = col.cast(pa.float64())
        t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) \
            or pa.types.is_null(t):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if mapping is None:
            sample = col.drop_null().slice(0, 3).to_pylist()
            raise DataError(
                f"{where}: column {name!r} holds text ({', '.join(map(repr, sample))}, ...), "
                f"not numbers; a feature must be numeric. Fix: take a numeric column, or map "
                f"the text to numbers with Feed(mapping={{{name!r}: {{'text': number, ...}}}})."
            )
        text = col.to_pylist()
        unknown = sorted({v for v in text if v is not None and v not in mapping})
        if unknown:
            raise DataError(
                f"{where}: column {name!r} has text values the mapping does not cover: "
                f"{', '.join(map(repr, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}. "
                f"Fix: add them to Feed(mapping={{{name!r}: {{...}}}})."
            )
        return np.array([np.nan if v is None else float(mapping[v]) for v in text],
                        dtype=np.float64)
    raise DataError(
        f"{where}: column {name!r} holds {t} values, not numbers. Fix: take a numeric column "
        f"or convert it before joining."
    )


def _find(table: pa.Table, name: str, where: str, role: str) -> str:
    names = [str(c) for c in table.column_names]
    if name in names:
        return name
    folded = [c for c in names if _norm(c) == _norm(name)]
    if len(folded) == 1:
        return folded[0]
    raise DataError(
        f"{where}: no column {name!r} ({role}). Columns present: {column_list(names)}."
        + did_you_mean(name, names)
        + f" Fix: name an existing column in the Feed ({role}), or add {name!r} to the data."
    )


def _read_table(feed: Feed, base_dir) -> tuple[pa.Table, str]:
    from engine.data.bars import _read

    source = feed.source
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        path = path.resolve()
        if not path.exists():
            raise DataError(
                f"no such file: {path}. Fix: correct the Feed's source (a relative path is "
                f"taken from the strategy's folder) or pass feeds= to run()"
            )
        source = path
    return _read(source)


def _resolve_columns(feed: Feed, table: pa.Table, where: str, keys: set) -> dict[str, str]:
    """Original column → field name."""
    if feed.columns is None:
        chosen = {}
        for name in table.column_names:
            if name in keys:
                continue
            t = table.column(name).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            numeric = (pa.types.is_integer(t) or pa.types.is_floating(t)
                       or pa.types.is_decimal(t) or pa.types.is_boolean(t))
            if numeric or name in feed.mapping:
                chosen[name] = _norm(name)
        if not chosen:
            raise DataError(
                f"{where}: no numeric value column besides {', '.join(sorted(keys))}. "
                f"Fix: name the columns to take with Feed(columns=[...])."
            )
        return chosen
    if isinstance(feed.columns, str):
        wanted = {feed.columns: feed.columns}
    elif isinstance(feed.columns, Mapping):
        wanted = dict(feed.columns)
    else:
        wanted = {c: c for c in feed.columns}
    if not wanted:
        raise DataError(f"{where}: Feed(columns=...) is empty. Fix: name at least one column.")
    out = {}
    for orig, new in wanted.items():
        found = _find(table, orig, where, "a value column in Feed(columns=...)")
        if not isinstance(new, str) or not new.isidentifier():
            raise DataError(
                f"{where}: field name {new!r} for column {orig!r} is not a Python identifier, "
                f"so a strategy could not read it as data.<name>. Fix: rename it, e.g. "
                f"Feed(columns={{{orig!r}: {_norm(orig)!r}}})."
            )
        out[found] = new
    return out


def _fmt_day(ns: int) -> str:
    text = np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


# --------------------------------------------------------------------------- the join


def join_feeds(panel: Panel, feeds: Mapping[str, Feed], base_dir=None) -> Panel:
    """Add every feed's columns to ``panel`` as point-in-time feature fields.

    Parameters
    ----------
    panel : Panel
        The bars.
    feeds : mapping of str to Feed
        Feed name (used in messages and in ``panel.meta["feeds"]``) → :class:`Feed`.
    base_dir : str or pathlib.Path, optional
        Folder that relative feed paths are taken from (the strategy's folder);
        default the working directory.

    Returns
    -------
    Panel
        The same bars with one float64 field ``(n_bars, n_symbols)`` per feed column,
        and ``meta["feeds"]`` describing each join (source, fields, lag, coverage).
        Fields that an earlier join of the same feed name added are replaced, so a
        panel can be re-used with other feed settings.

    Raises
    ------
    DataError
        A missing file or column, text without a mapping, duplicate observations,
        an availability before the value's own date, a field name the bars already
        use, or a feed with no value during the bars.
    """
    if not feeds:
        return panel
    joined_meta = dict(panel.meta.get("feeds", {}))
    fields = dict(panel.fields)
    for name, feed in feeds.items():
        if not isinstance(feed, Feed):
            raise DataError(
                f"feed {name!r}: expected an engine.Feed, got {type(feed).__name__}. "
                f"Fix: declare feeds = {{{name!r}: Feed('path.parquet', columns=[...])}}."
            )
        previous = joined_meta.pop(name, None)
        if previous is not None:
            for old in previous["fields"]:
                fields.pop(old, None)
        new_fields, meta = _join_one(panel, name, feed, base_dir, fields)
        fields.update(new_fields)
        joined_meta[name] = meta
    meta = dict(panel.meta)
    meta["feeds"] = joined_meta
    return Panel(panel.ts, panel.symbols, fields, panel.source, meta)


def _join_one(panel: Panel, name: str, feed: Feed, base_dir, existing: dict):
    table, src = _read_table(feed, base_dir)
    where = f"feed {name!r} ({src})"
    if table.num_rows == 0:
        raise DataError(f"{where}: no rows. Fix: point the feed at a file with values.")
    names = [str(c) for c in table.column_names]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise DataError(
            f"{where}: column {repeated[0]!r} appears {names.count(repeated[0])} times. "
            f"Fix: rename or drop the repeats so that every column has its own name."
        )
    lag = _span(feed.lag, "lag", where) or ("bars", 0)
    auto_age = isinstance(feed.max_age, str) and feed.max_age.strip().lower() == "auto"
    max_age = None if auto_age else _span(feed.max_age, "max_age", where)

    on_col = _find(table, feed.on, where, "Feed(on=...): each value's date")
    keys = {on_col}
    avail_col = None
    if feed.available_at is not None:
        avail_col = _find(table, feed.available_at, where,
                          "Feed(available_at=...): when each value became known")
        keys.add(avail_col)
    sym_col = None
    if feed.by_symbol:
        sym_col = _find(table, feed.symbol, where, "Feed(symbol=...): the symbol column")
        keys.add(sym_col)
    elif feed.symbol in table.column_names:
        keys.add(feed.symbol)
    columns = _resolve_columns(feed, table, where, keys)
    for orig, new in columns.items():
        if new in existing:
            raise DataError(
                f"{where}: column {orig!r} would become field {new!r}, which the bars already "
                f"have. Fix: rename it (Feed(columns={{{orig!r}: 'other_name'}})), drop the "
                f"column from the bars, or run without this feed (feeds={{}})."
            )

    from engine.data.timestamps import check_date_format

    date_format = check_date_format(feed.date_format, where)
    zone = panel.meta.get("tz")
    on_ns = _times(table.column(on_col), where, on_col, date_format, zone)
    avail_ns = on_ns if avail_col is None else _times(table.column(avail_col), where,
                                                      avail_col, date_format, zone)
    if avail_col is not None:
        early = avail_ns < on_ns
        if early.any():
            i = int(np.flatnonzero(early)[0])
            raise DataError(
                f"{where}: column {avail_col!r} is before {on_col!r} at row {i + 1} "
                f"({_fmt_day(avail_ns[i])} < {_fmt_day(on_ns[i])}); {int(early.sum())} rows. "
                f"A value cannot be known before its own date. Fix: correct those rows or "
                f"name the right columns in Feed(on=..., available_at=...)."
            )
    values = {new: _values(table.column(orig), where, orig, feed.mapping.get(orig))
              for orig, new in columns.items()}
    if auto_age:
        try:
            days = publication_max_age(on_ns, avail_ns if avail_col is not None else None,
                                       lag[1] if lag[0] == "time" else 0)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        max_age = ("time", days * _NS_PER_DAY)

    n, k = panel.n_bars, panel.n_symbols
    ts = panel.ts.astype("datetime64[ns]").view(np.int64)
    rows = len(on_ns)
    if feed.by_symbol:
        codes, unknown = _symbol_codes(table.column(sym_col), panel, where, sym_col)
        keep = codes >= 0
        if not keep.any():
            theirs = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise DataError(
                f"{where}: none of its symbols ({theirs}) is in the bars (bars: "
                f"{', '.join(panel.symbols[:5])}{', ...' if k > 5 else ''}). Fix: join it to "
                f"bars of the same symbols, or check Feed(symbol=...)."
            )
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            warnings.warn(
                f"{where}: {len(unknown)} symbol{'s' if len(unknown) > 1 else ''} not in the "
                f"bars, ignored ({shown}).", FeedWarning, stacklevel=4,
            )
        width = k
    else:
        codes = np.zeros(rows, dtype=np.intp)
        keep = np.ones(rows, dtype=bool)
        width = 1

    # Observation order: by date, then by availability (a revision after the original).
    order = np.lexsort((avail_ns, on_ns, codes))
    dup = ((codes[order][1:] == codes[order][:-1]) & (on_ns[order][1:] == on_ns[order][:-1])
           & (avail_ns[order][1:] == avail_ns[order][:-1]) & keep[order][1:])
    if dup.any():
        i = int(order[1:][dup][0])
        what = f", symbol {table.column(sym_col)[i].as_py()!r}" if feed.by_symbol else ""
        raise DataError(
            f"{where}: two rows share {on_col!r} {_fmt_day(on_ns[i])}{what} and the same "
            f"availability (row {i + 1}); {int(dup.sum())} repeats. Fix: keep one row per "
            f"{on_col!r}" + (" and symbol" if feed.by_symbol else "")
            + (", or join per symbol with Feed(by_symbol=True)" if not feed.by_symbol else "")
            + (", or give revisions an availability column (Feed(available_at=...))"
               if avail_col is None else "") + "."
        )

    if lag[0] == "bars":
        visible = np.searchsorted(ts, avail_ns, "left") + lag[1]
    else:
        visible = np.searchsorted(ts, avail_ns + lag[1], "left")
    usable = keep & (visible < n)
    first_on, last_on = int(on_ns.min()), int(on_ns.max())
    if n == 0 or not usable.any() or last_on < ts[0]:
        raise DataError(
            f"{where}: no value is available during the bars. The feed's {on_col!r} runs "
            f"from {_fmt_day(first_on)} to {_fmt_day(last_on)}"
            + (f" (lag {_describe_span(lag)})" if lag[1] else "")
            + (f"; the bars run from {_fmt_day(ts[0])} to {_fmt_day(ts[-1])}" if n else "")
            + ". Fix: choose bars that overlap the feed (start=/end=, CLI --start/--end), "
            "or run without it (engine.run(..., feeds={}))."
        )

    # rank[r] = position of row r in observation order; later observations rank higher.
    rank = np.empty(rows, dtype=np.int64)
    rank[order] = np.arange(rows)
    latest = np.full(n * width, -1, dtype=np.int64)
    cell = visible[usable] * width + codes[usable]
    np.maximum.at(latest, cell, rank[usable])
    latest = latest.reshape(n, width)
    np.maximum.accumulate(latest, axis=0, out=latest)  # the latest observation visible so far
    row_of = np.full(rows + 1, -1, dtype=np.int64)  # rank -> row; rank -1 -> -1
    row_of[rank] = np.arange(rows)
    picked = row_of[latest]  # -1 where nothing is visible yet
    missing = picked < 0
    if max_age is not None:
        if max_age[0] == "bars":
            on_bar = np.searchsorted(ts, on_ns, "left")
            age = np.arange(n).reshape(-1, 1) - on_bar[picked]
        else:
            age = ts.reshape(-1, 1) - on_ns[picked]
        missing = missing | (age > max_age[1])

    new_fields = {}
    for new, vals in values.items():
        out = np.where(missing, np.nan, vals[picked])
        if width == 1 and k != 1:
            out = np.repeat(out, k, axis=1)
        new_fields[new] = np.ascontiguousarray(out, dtype=np.float64)
    meta = {
        "source": str(src),
        "fields": list(values),
        "on": on_col,
        "available_at": avail_col,
        "lag": _describe_span(lag),
        "max_age": _describe_span(max_age),
        "by_symbol": feed.by_symbol,
        "rows": rows,
        "rows_used": int(usable.sum()),
        "first": _fmt_day(first_on),
        "last": _fmt_day(last_on),
    }
    return new_fields, meta


def _symbol_codes(col: pa.ChunkedArray, panel: Panel, where: str, name: str):
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    if col.null_count:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{where}: column {name!r} is empty at row {i + 1}. Fix: every row of a "
            f"by-symbol feed needs a symbol."
        )
    encoded = pc.dictionary_encode(col).combine_chunks()
    names = encoded.dictionary.to_pylist()
    index = {s: i for i, s in enumerate(panel.symbols)}
    lookup = np.array([index.get(s, -1) for s in names], dtype=np.intp)
    unknown = sorted(s for s in names if s not in index)
    codes = lookup[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes, unknown


