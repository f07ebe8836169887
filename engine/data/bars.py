"""Load bar data from Parquet, CSV or a DataFrame into a validated
:class:`~engine.data.panel.Panel`.

Every problem a user's data can have is reported once, at load time, as a
:class:`~engine.errors.DataError` naming the file, the column, the first offending
row (1-based data row as in the file, header excluded), how many rows share the
problem, and the fix. Problems the loader can repair without guessing (rows out of
time order) are repaired with a :class:`DataWarning`. Missing open/high/low values
are kept missing, never invented, and reported with a warning.

All checks are vectorised: nothing here loops over rows in Python.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.panel import BAR_FIELDS, PRICE_FIELDS, Panel
from engine.data.timestamps import (
    check_date_format,
    check_zone,
    localize,
    to_timestamps,
    wall_clock,
)
from engine.errors import DataError, ParameterError, did_you_mean

__all__ = ["DataWarning", "in_zone", "load_bars", "save_bars", "to_timestamps"]

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
TS_ALIASES = ("date", "datetime", "timestamp", "time")
SYMBOL_ALIASES = ("ticker",)
REQUIRED = ("ts", "open", "high", "low", "close")
# Relative slack for the OHLC range checks: prices that went through float
# rounding (e.g. adjusted prices) must not be rejected for a 1-ulp excursion.
REL_TOL = 1e-9
_NULL_WORDS = ["", "na", "n/a", "nan", "null", "none", "-"]
_ACCEPTED = (
    "a Parquet file (.parquet, .pq), a CSV file (.csv, .csv.gz), or a pandas/polars DataFrame"
)


class DataWarning(UserWarning):
    """A data problem the loader worked around (e.g. re-sorted rows, missing opens)."""


# --------------------------------------------------------------------------- reading


def _norm(name) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).replace("\ufeff", "").strip().lower())


def column_list(names) -> str:
    """Column names for a message, on one line: a name with a line break or another
    unprintable character is shown quoted and escaped."""
    return ", ".join(n if n.isprintable() else repr(n) for n in map(str, names))


def _sniff(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _looks_like_text(head: bytes) -> bool:
    return b"\x00" not in head


def _read_parquet(path: Path, src: str) -> pa.Table:
    import pyarrow.parquet as pq

    head = _sniff(path)
    if head[:4] != b"PAR1":
        hint = (
            " It looks like text; if it is CSV, rename it to .csv."
            if _looks_like_text(head)
            else ""
        )
        raise DataError(
            f"{src}: not a Parquet file (it does not start with the Parquet magic bytes). "
            f"Expected a Parquet file with columns ts, [symbol,] open, high, low, close, "
            f"volume.{hint}"
        )
    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, whose
        # import (it pulls in pandas) costs more than reading the bundled files.
        with pq.ParquetFile(path) as parquet:
            table = parquet.read()
        # A corrupted file can hold text that is not UTF-8 (in its names or values),
        # which would fail later, far from here; the check is linear and cheap.
        table.validate(full=True)
        _ = table.column_names
        return table
    except (pa.ArrowException, OSError, ValueError) as exc:
        # Arrow repeats the path in its message; the file is already named first.
        reason = re.sub(r"^Could not open Parquet input source '.*?': ", "", _short(exc))
        reason = reason.split(". ")[0].rstrip(".")
        raise DataError(
            f"{src}: cannot read as Parquet ({reason}). The file may be truncated or "
            f"corrupted; expected a Parquet file with columns ts, [symbol,] open, high, low, "
            f"close, volume. Fix: write or download the file again."
        ) from exc


def _read_csv(path: Path, src: str, gz: bool) -> pa.Table:
    import pyarrow.csv as pcsv

    head = _sniff(path)
    if head[:4] == b"PAR1":
        raise DataError(f"{src}: this is a Parquet file, not CSV. Rename it to .parquet.")
    if gz and head[:2] != b"\x1f\x8b":
        raise DataError(
            f"{src}: not gzip-compressed although the name ends in .gz. "
            f"Expected gzip-compressed CSV text; rename it to .csv if it is plain CSV."
        )
    if not gz and head[:2] == b"\x1f\x8b":
        raise DataError(
            f"{src}: the file is gzip-compressed but its name does not end in .gz. Fix: "
            f"rename it to end in .csv.gz (or decompress it)."
        )
    if not gz and not _looks_like_text(head):
        raise DataError(
            f"{src}: not a CSV text file (it contains binary data). Expected comma-separated "
            f"UTF-8 text with a header row such as ts,open,high,low,close,volume."
        )
    utf8_fix = "Fix: save the file as UTF-8 text (in Excel: CSV UTF-8)."
    try:
        table = pcsv.read_csv(path)
        _ = table.column_names  # decoded lazily: a header that is not UTF-8 fails here
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{src}: the header row is not UTF-8 text (byte {exc.object[exc.start:exc.end]!r} "
            f"in a column name); the engine reads CSV as UTF-8 only. {utf8_fix}"
        ) from exc
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        reason = _short(exc)
        if "UTF8" in reason:
            fix = f" {utf8_fix}"
        elif "columns, got" in reason:
            fix = " Fix: give every line as many fields as the header (quote text with commas)."
        else:
            fix = ""
        raise DataError(
            f"{src}: cannot read as CSV ({reason}). Expected comma-separated UTF-8 text "
            f"with a header row such as ts,open,high,low,close,volume and the same number of "
            f"fields on every line.{fix}"
        ) from exc
    for name, col in zip(table.column_names, table.columns, strict=True):
        # Arrow reads text that is not UTF-8 as binary; CSV holds no other binary.
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            values = col.to_pylist()  # only on this error path
            bad = [i for i, v in enumerate(values) if v is not None and not _is_utf8(v)]
            if not bad:
                continue
            i = bad[0]
            raise DataError(
                f"{src}: column {name!r} is not UTF-8 text at row {i + 1} ({values[i]!r}); "
                f"the engine reads CSV as UTF-8 only. {utf8_fix}"
            )
    # Arrow turns timestamps written with UTC offsets into UTC and drops the offsets,
    # which name the zone the results are shown in: read those columns again as text.
    aware = [name for name, col in zip(table.column_names, table.columns, strict=True)
             if pa.types.is_timestamp(col.type) and col.type.tz is not None]
    if aware:
        again = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            include_columns=aware, column_types={name: pa.string() for name in aware}))
        for name in aware:
            table = table.set_column(table.column_names.index(name), name, again.column(name))
    return table


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _pandas_to_arrow(df) -> pa.Table:
    import pandas as pd

    if not isinstance(df.index, pd.RangeIndex):
        # A DatetimeIndex (or a (ts, symbol) MultiIndex) carries the timestamps.
        if isinstance(df.index, pd.DatetimeIndex) and df.index.name is None:
            df = df.rename_axis("ts")
        df = df.reset_index()
    names = [str(c) for c in df.columns]
    arrays = []
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        try:
            arrays.append(pa.array(col, from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError):
            # Mixed objects (numbers and stray strings): keep them as text so the
            # type check can point at the first value that is not a number.
            as_text = col.astype(object).where(col.notna(), None)
            arrays.append(pa.array([None if v is None else str(v) for v in as_text]))
    return pa.Table.from_arrays(arrays, names=names)


def _read(source) -> tuple[pa.Table, str]:
    pd = sys.modules.get("pandas")
    pl = sys.modules.get("polars")
    if pd is not None and isinstance(source, pd.DataFrame):
        return _pandas_to_arrow(source), "<pandas DataFrame>"
    if pl is not None and isinstance(source, pl.LazyFrame):
        source = source.collect()
    if pl is not None and isinstance(source, pl.DataFrame):
        try:
            return source.to_arrow(), "<polars DataFrame>"
        except Exception as exc:  # an Object column, for instance
            raise DataError(
                f"<polars DataFrame>: cannot convert to Arrow ({_short(exc)})."
            ) from exc
    if isinstance(source, pa.Table):
        return source, "<pyarrow Table>"
    if not isinstance(source, str | Path):
        raise DataError(f"cannot load bars from a {type(source).__name__}; expected {_ACCEPTED}.")

    src = str(source)
    path = Path(source).expanduser()
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        kind = "csv"
    elif name.endswith(PARQUET_SUFFIXES):
        kind = "parquet"
    else:
        raise DataError(
            f"{src}: unknown file type {''.join(path.suffixes) or '(no extension)'!r}; "
            f"expected {_ACCEPTED}."
        )
    try:
        if not path.exists():
            raise DataError(
                f"no such file: {src}. Fix: correct the path (a relative path starts from the "
                f"working directory)."
            )
        if path.is_dir():
            raise DataError(f"{src}: is a directory; expected {_ACCEPTED}.")
        if path.stat().st_size == 0:
            raise DataError(
                f"{src}: the file is empty (0 bytes), so an export or download probably "
                f"stopped early. Fix: write the bars again (columns ts, [symbol,] open, high, "
                f"low, close, volume)."
            )
        if kind == "parquet":
            return _read_parquet(path, src), src
        return _read_csv(path, src, gz=name.endswith(".gz")), src
    except PermissionError as exc:
        raise unreadable(src, exc) from None


def unreadable(src: str, exc: OSError) -> DataError:
    """The error for a file (or a folder on its path) this user may not read."""
    denied = str(exc.filename) if exc.filename else src
    where = "" if Path(denied) == Path(src).expanduser() else f" (on {denied})"
    return DataError(
        f"{src}: permission denied{where}; this user may not read the file. Fix: make it "
        f"readable (e.g. chmod a+r {denied}, as its owner) or copy it to a folder you can read."
    )


# --------------------------------------------------------------------------- schema


@dataclass
class _Schema:
    ts: str
    symbol: str | None
    bars: dict  # canonical field -> original column name (volume may be absent)
    features: dict  # feature name -> original column name
    ignored: list


def _is_stringlike(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or getattr(pa.types, "is_string_view", lambda _t: False)(t)
    )


def _is_numeric(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_null(t)
    )


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    # Categorical columns (pandas category, polars Categorical) arrive as dictionaries.
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _resolve(table: pa.Table, src: str) -> _Schema:
    names = [str(c) for c in table.column_names]
    by_norm: dict[str, str] = {}
    for orig in names:
        key = _norm(orig)
        if key in by_norm:
            raise DataError(
                f"{src}: columns {by_norm[key]!r} and {orig!r} both mean {key!r} (column names "
                f"are matched ignoring case, spaces and dashes). Fix: rename or drop one of them."
            )
        by_norm[key] = orig

    def pick(canonical: str, aliases: tuple[str, ...]) -> str | None:
        if canonical in by_norm:
            return by_norm[canonical]
        found = [by_norm[a] for a in aliases if a in by_norm]
        if len(found) > 1:
            listed = " and ".join(repr(f) for f in found)
            raise DataError(
                f"{src}: columns {listed} could each be the {canonical!r} column. Fix: rename "
                f"the one to use to {canonical!r} (combine separate date and time columns "
                f"into one timestamp column)."
            )
        return found[0] if found else None

    used: dict[str, str] = {}
    ts = pick("ts", TS_ALIASES)
    if ts is not None:
        used["ts"] = ts
    symbol = pick("symbol", SYMBOL_ALIASES)
    if symbol is not None:
        used["symbol"] = symbol
    for f in BAR_FIELDS:
        if f in by_norm:
            used[f] = by_norm[f]

    missing = [c for c in REQUIRED if c not in used]
    if missing:
        taken = set(used.values())
        spare = {_norm(n): n for n in names if n not in taken}
        hints = ""
        for m in missing:
            hint = did_you_mean(m, spare)
            for norm_name, orig in spare.items():
                hint = hint.replace(repr(norm_name), repr(orig))
            if hint and len(missing) > 1:
                hint = f"{hint[:-1]} for {m!r}?"
            hints += hint
        what = ", ".join(repr(m) for m in missing)
        alias = (
            f" ('ts' may also be called {', '.join(TS_ALIASES)})" if "ts" in missing else ""
        )
        raise DataError(
            f"{src}: missing required column{'s' if len(missing) > 1 else ''} {what}{alias}. "
            f"Columns present: {column_list(names) or '(none)'}.{hints} Fix: add or rename the "
            f"column (names are matched ignoring case, spaces and dashes)."
        )

    taken = set(used.values())
    features, ignored = {}, []
    for orig in names:
        if orig in taken:
            continue
        t = _decode(table.column(orig)).type
        if _is_numeric(t) and not pa.types.is_null(t):
            features[_norm(orig)] = orig
        else:
            ignored.append(orig)
    bars = {f: used[f] for f in BAR_FIELDS if f in used}
    return _Schema(used["ts"], used.get("symbol"), bars, features, ignored)


# --------------------------------------------------------------------------- context


@dataclass
class _Bars:
    """Column arrays in file order plus what is needed to name a row in a message."""

    src: str
    ts: np.ndarray  # datetime64[ns]
    rows: np.ndarray  # 1-based data row numbers in the file
    codes: np.ndarray | None  # index into symbols; None without a symbol column
    symbols: list
    fields: dict
    volume_absent: bool = False
    tz: str | None = None  # the zone messages show times in (ts itself is UTC then)

    def fmt(self, value) -> str:
        return _fmt_ts(value, self.tz)

    def where(self, i: int) -> str:
        parts = [f"ts {self.fmt(self.ts[i])}"]
        if self.codes is not None:
            parts.append(f"symbol {self.symbols[self.codes[i]]!r}")
        return f"row {int(self.rows[i])} ({', '.join(parts)})"

    def keep(self, mask: np.ndarray) -> None:
        self.ts = self.ts[mask]
        self.rows = self.rows[mask]
        if self.codes is not None:
            self.codes = self.codes[mask]
        self.fields = {k: v[mask] for k, v in self.fields.items()}


def _fmt_ts(value, tz: str | None = None) -> str:
    """A stamp for a message: the date alone at midnight, local time when ``tz`` is set."""
    value = np.datetime64(value, "ns")
    if tz:
        value = wall_clock(np.array([value]), tz)[0]
    text = np.datetime_as_string(value, unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


def _fmt_val(value) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "no value (NaN)"
    if isinstance(value, float) and abs(value) >= 1e15:
        return f"{value:g}"     # 1e+308, not a float's 309 digits
    return repr(value) if isinstance(value, str) else str(value)


def _count(n: int) -> str:
    return "1 row fails" if n == 1 else f"{n} rows fail"


# --------------------------------------------------------------------------- conversion


def _where_raw(rows_ts: np.ndarray | None, i: int, tz: str | None = None) -> str:
    if rows_ts is None:
        return f"row {i + 1}"
    return f"row {i + 1} (ts {_fmt_ts(rows_ts[i], tz)})"


#: Integers above this (2**53) have no exact float64; a volume that large is a
#: missing-value marker (2**64 - 1) or a corrupted value, never a real count.
EXACT_INT = 2**53


def _to_float(col: pa.ChunkedArray, src: str, name: str, ts: np.ndarray, *,
              tz: str | None = None, required: bool = False,
              as_text: list | None = None) -> np.ndarray:
    """A numeric (or number-as-text) column as float64, NaN where it is missing.

    In text, an empty cell is missing and so, unless the column is ``required``
    (the close), is a word such as ``n/a`` or ``null``; any other text that is not
    a number is an error quoting it. A column of numbers stored as text is
    converted and its name added to ``as_text`` (when given), for a warning.
    """
    col = _decode(col)
    t = col.type
    if _is_stringlike(t):
        trimmed = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        words = _NULL_WORDS if not required else [""]
        blank = pc.fill_null(pc.is_in(trimmed, value_set=pa.array(words)), True)
        cleaned = pc.if_else(blank, pa.scalar(None, col.type), col)
        try:
            converted = cleaned.cast(pa.float64())
        except pa.ArrowInvalid:
            import pandas as pd

            values = cleaned.to_pandas()
            bad = (pd.to_numeric(values, errors="coerce").isna() & values.notna()).to_numpy()
            i = int(np.flatnonzero(bad)[0])
            empty = "; every bar needs a close" if required else " or leave them empty"
            raise DataError(
                f"{src}: column {name!r} must hold numbers, but {_where_raw(ts, i, tz)} has "
                f"{values.iloc[i]!r}; {_count(int(bad.sum()))} this check. Fix: correct those "
                f"values (a dot as decimal separator, no thousands separators or currency "
                f"signs){empty}."
            ) from None
        if as_text is not None and converted.null_count < len(converted):
            as_text.append(name)
        col = converted
    elif not _is_numeric(t):
        raise DataError(
            f"{src}: column {name!r} holds {t} values, not numbers. Fix: store {name!r} as a "
            f"numeric column."
        )
    else:
        try:
            col = col.cast(pa.float64())
        except pa.ArrowInvalid:
            if not pa.types.is_integer(t):
                raise
            _inexact_integers(col, src, name, ts, tz)
    if col.null_count:
        col = pc.fill_null(col, np.nan)
    return np.asarray(col.to_numpy(), dtype=np.float64)


def _inexact_integers(col: pa.ChunkedArray, src: str, name: str, ts, tz) -> None:
    """Raise for the integers a float64 cannot hold exactly (the cast refused them)."""
    big = pc.greater(col, pa.scalar(EXACT_INT, col.type))
    if pa.types.is_signed_integer(col.type):
        big = pc.or_(big, pc.less(col, pa.scalar(-EXACT_INT, col.type)))
    bad = np.asarray(pc.fill_null(big, False).to_numpy(zero_copy_only=False), dtype=bool)
    i = int(np.flatnonzero(bad)[0])
    raise DataError(
        f"{src}: column {name!r} has {col[i].as_py()} at {_where_raw(ts, i, tz)}, beyond "
        f"2**53 = {EXACT_INT}, the largest whole number a float64 holds exactly; "
        f"{_count(int(bad.sum()))} this check. Fix: correct those values (leave an unknown "
        f"value empty rather than marking it with a huge number), or store the column in "
        f"larger units."
    )


def _to_codes(col: pa.ChunkedArray, src: str, name: str, ts: np.ndarray, *,
              tz: str | None = None, notes: list | None = None):
    """Symbol codes into the sorted symbol names, with surrounding spaces dropped.

    Spellings that differ only by surrounding spaces are one symbol; spellings
    that differ by case stay apart. Either is described in ``notes`` (when given).
    """
    col = _decode(col)
    if pa.types.is_integer(col.type):
        col = col.cast(pa.string())
    elif not _is_stringlike(col.type):
        raise DataError(
            f"{src}: column {name!r} holds {col.type} values, not symbol names. Fix: store "
            f"symbols as text."
        )
    # Encoded chunk by chunk against one shared dictionary: the checks then read the
    # distinct names, and no copy of every row's text is made (it was ~0.7x the panel).
    encoded = col.dictionary_encode().chunks
    names = np.asarray(encoded[0].dictionary.to_pylist() if encoded else [], dtype=object)
    indices = np.concatenate([
        (chunk.indices.fill_null(-1) if chunk.null_count else chunk.indices).to_numpy(
            zero_copy_only=False) for chunk in encoded
    ]) if encoded else np.empty(0, dtype=np.int32)
    bad = indices < 0                                   # null
    blank = [i for i, text in enumerate(names) if not text.strip()]
    if blank:
        bad |= np.isin(indices, blank)                  # empty or only spaces
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{src}: column {name!r} is empty at {_where_raw(ts, i, tz)}; "
            f"{_count(int(bad.sum()))} this check. Fix: give every row its symbol."
        )
    # Codes follow the sorted symbol order so the panel's columns are sorted; a name
    # with spaces around it joins the same name without them (a padded export).
    stripped = np.array([str(text).strip() for text in names], dtype=object)
    unique, rank = np.unique(stripped, return_inverse=True) if len(names) else (
        np.empty(0, dtype=object), np.empty(0, dtype=np.intp))
    codes = rank.astype(np.intp)[indices]
    if notes is not None:
        notes.extend(spelling_notes(src, name, names, stripped, indices))
    return codes, [str(s) for s in unique]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def spelling_notes(src: str, name: str, names, stripped, indices=None) -> list[str]:
    """Warnings about symbols spelt two ways: with and without surrounding spaces
    (read as one), or differing only by case (kept apart). ``names`` are the
    spellings in the file, ``stripped`` the same without spaces; ``indices`` (each
    row's spelling) gives the first row of each, for the message."""
    names = [str(n) for n in names]
    stripped = [str(n) for n in stripped]
    first = None
    if indices is not None and len(names):
        # First row of each spelling; only on this path, where a note is likely.
        idx = np.asarray(indices, dtype=np.int64)
        first = np.full(len(names), len(idx), dtype=np.int64)
        np.minimum.at(first, idx[idx >= 0], np.flatnonzero(idx >= 0))

    def shown(k: int) -> str:
        return f"{names[k]!r} (row {int(first[k]) + 1})" if first is not None else repr(
            names[k])

    notes = []
    groups: dict[str, list[int]] = {}
    for k, text in enumerate(stripped):
        groups.setdefault(text, []).append(k)
    merged = [ks for ks in groups.values() if len(ks) > 1]
    if merged:
        listed = "; ".join(_and([shown(k) for k in ks]) + f" are read as "
                           f"{stripped[ks[0]]!r}" for ks in merged[:5])
        more = f"; and {len(merged) - 5} more" if len(merged) > 5 else ""
        notes.append(
            f"{src}: column {name!r} spells symbols with and without surrounding spaces: "
            f"{listed}{more}. Fix: remove the spaces in the file to silence this warning."
        )
    folded: dict[str, list[str]] = {}
    for text in groups:
        folded.setdefault(text.lower(), []).append(text)
    cased = [sorted(ts) for ts in folded.values() if len(ts) > 1]
    if cased:
        def spelt(text: str) -> str:
            k = groups[text][0]
            extra = f", written {names[k]!r}" if names[k] != text else ""
            return (f"{text!r} (row {int(first[k]) + 1}{extra})" if first is not None
                    else f"{text!r}{f' ({extra[2:]})' if extra else ''}")

        listed = "; ".join(_and([spelt(t) for t in ts]) for ts in cased[:5])
        more = f"; and {len(cased) - 5} more" if len(cased) > 5 else ""
        notes.append(
            f"{src}: column {name!r} has symbols that differ only by case: {listed}{more}; "
            f"they load as different symbols. Fix: if they are one instrument, spell it one "
            f"way in the file."
        )
    return notes


# --------------------------------------------------------------------------- filters


def _bound(value, name: str, is_end: bool, zone: str | None = None):
    """A start/end argument as a ``datetime64[ns]`` bound on the panel's stamps, or None.

    A bound with a zone is compared in UTC; one without is a local time in ``zone``
    (the data's), so ``end='2024-01-31'`` ends that day where the data trades.
    """
    if value is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"{name}={value!r} is not a date; use e.g. '2020-01-31' or a datetime."
        ) from exc
    if stamp is pd.NaT:
        raise ParameterError(f"{name}={value!r} is not a date; use e.g. '2020-01-31'.")
    aware = stamp.tzinfo is not None
    if aware:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    ns = np.datetime64(stamp.as_unit("ns").to_datetime64(), "ns")
    day_only = (
        isinstance(value, _dt.date) and not isinstance(value, _dt.datetime)
    ) or (isinstance(value, str) and ":" not in value and "T" not in value.upper())
    if is_end and day_only and stamp == stamp.normalize():
        # end='2020-01-31' includes that whole day's intraday bars.
        ns = ns + np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    if zone and not aware:
        local = pd.DatetimeIndex([ns]).tz_localize(zone, ambiguous=False,
                                                   nonexistent="shift_forward")
        ns = local.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[ns]")[0]
    return ns


def _adjusted_prices(fields: dict, src: str, adjust: bool, notes: list) -> str:
    """Trade adjusted prices (``adjust``) or say that the unadjusted ones are traded.

    With an ``adj_close`` column (Yahoo's ``Adj Close``) and ``adjust``, open, high,
    low and close are multiplied by ``adj_close / close`` row by row, so that
    dividends and splits no longer show as price jumps; volume is kept as given.
    Without ``adjust`` a note says the file's unadjusted close is traded. Returns
    what ``meta["prices"]`` records.
    """
    if "adj_close" not in fields:
        if adjust:
            raise ParameterError(
                f"adjust=True (CLI --adjust) rescales prices by adj_close / close, but {src} "
                f"has no adj_close column (Yahoo's 'Adj Close'). Fix: drop adjust, or load "
                f"a file with adjusted closes")
        return "as given"
    close, adj = fields["close"], fields["adj_close"]
    if not adjust:
        notes.append(
            f"{src}: has both close and adj_close (a Yahoo-style file); the run trades the "
            f"unadjusted close, so dividends and splits show as price moves. Fix: pass "
            f"adjust=True (CLI --adjust) to trade prices adjusted by adj_close / close.")
        return "unadjusted close (the file also has adj_close)"
    bad = np.isfinite(close) & ~(np.isfinite(adj) & (adj > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{src}: adjust=True needs a positive adj_close on every row with a close, but "
            f"{int(bad.sum())} row(s) lack one, the first data row {row + 1} (adj_close "
            f"{adj[row]!r}). Fix: fill adj_close there, or drop adjust")
    factor = np.where(np.isfinite(close), adj / close, np.nan)
    for name in ("open", "high", "low", "close"):
        fields[name] = fields[name] * factor
    return "adjusted: open, high, low and close x adj_close / close"


def _select_symbol(b: _Bars, symbol: str) -> None:
    if symbol not in b.symbols:
        folded = [s for s in b.symbols if s.lower() == symbol.lower()]
        hint = f" Did you mean {folded[0]!r}?" if folded else did_you_mean(symbol, b.symbols)
        few = ", ".join(b.symbols[:10]) + (", ..." if len(b.symbols) > 10 else "")
        raise DataError(
            f"{b.src}: no symbol {symbol!r} in the data ({len(b.symbols)} symbols: {few})."
            f"{hint} Fix: pass one of the symbols in the file."
        )
    code = b.symbols.index(symbol)
    b.keep(b.codes == code)
    b.codes = np.zeros(len(b.ts), dtype=np.intp)
    b.symbols = [symbol]


def _drop_absent_symbols(b: _Bars) -> None:
    present = np.bincount(b.codes, minlength=len(b.symbols)) > 0
    if not present.all():
        remap = np.cumsum(present) - 1
        b.codes = remap[b.codes]
        b.symbols = [s for s, p in zip(b.symbols, present, strict=True) if p]


# --------------------------------------------------------------------------- validation


#: The largest price accepted. Positions, equity and costs multiply prices by
#: quantities and sum them; 1e15 keeps every such figure far inside float64 (and
#: exact to the cent up to ~1e13) while no real instrument comes near it.
MAX_PRICE = 1e15


def _fail(b: _Bars, bad: np.ndarray, message: str, fix: str) -> None:
    """Raise for the first True in ``bad``; ``message`` gets ``where`` and ``i`` to format."""
    idx = np.flatnonzero(bad)
    i = int(idx[0])
    text = message.format(where=b.where(i), **{k: _fmt_val(b.fields[k][i]) for k in BAR_FIELDS})
    raise DataError(f"{b.src}: {text}; {_count(len(idx))} this check. Fix: {fix}")


#: Parquet key-value metadata through which a file documents its own missing values:
#: JSON ``{column: [first, last, where it is documented]}``. NaNs of that column
#: that all fall between ``first`` and ``last`` (inclusive dates or timestamps) are
#: recorded in ``meta["missing"]`` as always but not warned about: the file's
#: provenance already says so. The bundled S&P 500 uses it for its 1962–82 opens.
DOCUMENTED_GAPS_KEY = b"engine.documented_gaps"


def documented_gaps(table: pa.Table, src: str) -> dict[str, tuple]:
    """The missing values ``table``'s metadata documents: ``{column: (lo, hi, where)}``."""
    import json

    raw = (table.schema.metadata or {}).get(DOCUMENTED_GAPS_KEY)
    if raw is None:
        return {}
    try:
        gaps = {str(col): (np.datetime64(lo, "ns"), np.datetime64(hi, "ns")
                           + (np.timedelta64(1, "D") - np.timedelta64(1, "ns")
                              if len(str(hi)) == 10 else np.timedelta64(0, "ns")),
                           str(where))
                for col, (lo, hi, where) in json.loads(raw).items()}
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{src}: the Parquet metadata {DOCUMENTED_GAPS_KEY.decode()!r} must be JSON "
            f"{{column: [first, last, where documented]}} ({_short(exc)}). Fix: correct or "
            f"remove that metadata."
        ) from None
    return gaps


def _validate_values(b: _Bars, notes: list, documented: dict | None = None) -> dict:
    f = b.fields
    close = f["close"]
    bad = ~(close > 0) | np.isinf(close)
    if bad.any():
        _fail(b, bad, "column 'close' must be a positive price, but {where} has {close}",
              "correct or remove those rows; every bar needs a close.")
    for col in ("open", "high", "low"):
        x = f[col]
        bad = (x <= 0) | np.isinf(x)
        if bad.any():
            _fail(b, bad, f"column {col!r} must be a positive price, but {{where}} has {{{col}}}",
                  f"correct the {col}, or leave it empty if it is unknown.")
    for col in ("close", "open", "high", "low"):
        bad = f[col] > MAX_PRICE        # NaN compares False
        if bad.any():
            _fail(b, bad, f"column {col!r} has {{{col}}} at {{where}}, above {MAX_PRICE:g}, the "
                          f"largest price the engine accepts",
                  "correct those values; if the prices are real, state them in a larger unit "
                  "(e.g. thousands).")
    high, low = f["high"], f["low"]
    # NaN compares False, so unknown highs/lows never trigger these checks.
    bad = high < low - REL_TOL * np.abs(low)
    if bad.any():
        _fail(b, bad, "high is below low at {where}: high={high}, low={low}",
              "correct high and low in those rows (swapped columns?).")
    for col in ("open", "close"):
        x = f[col]
        bad = (x < low - REL_TOL * np.abs(low)) | (x > high + REL_TOL * np.abs(high))
        if bad.any():
            _fail(b, bad,
                  f"{col} is outside the bar's [low, high] range at {{where}}: "
                  f"{col}={{{col}}}, low={{low}}, high={{high}}",
                  f"correct {col}, low or high so that low <= {col} <= high.")
    vol = f["volume"]
    bad = (vol < 0) | np.isinf(vol)
    if bad.any():
        _fail(b, bad, "column 'volume' must not be negative, but {where} has {volume}",
              "correct the volume (0 when nothing traded, empty when unknown).")

    missing = {}
    for col in (*PRICE_FIELDS[:3], "volume"):
        nan = np.isnan(f[col])
        n = int(nan.sum())
        if n and not (col == "volume" and nan.all() and b.volume_absent):
            missing[col] = n
            idx = np.flatnonzero(nan)
            gap = (documented or {}).get(col)
            if gap is not None and gap[0] <= b.ts[idx].min() and b.ts[idx].max() <= gap[1]:
                continue
            notes.append(
                f"{b.src}: column {col!r} is missing (NaN) in {n} of {len(nan)} rows, "
                f"from {b.fmt(b.ts[idx[0]])} to {b.fmt(b.ts[idx[-1]])}; they are kept "
                f"missing, not filled in."
            )
    return missing


def _check_order(b: _Bars, notes: list) -> bool:
    """Raise on duplicate (ts, symbol); warn about rows out of time order. True if unsorted."""
    ts = b.ts.view(np.int64)
    n = len(ts)
    if n < 2:
        return False
    codes = b.codes
    if codes is None or len(b.symbols) == 1:
        if (ts[1:] > ts[:-1]).all():
            return False
        order = np.argsort(ts, kind="stable")
        s_ts = ts[order]
        same_key = s_ts[1:] == s_ts[:-1]
    else:
        dc, dt = codes[1:] - codes[:-1], ts[1:] - ts[:-1]
        by_symbol = ((dc > 0) | ((dc == 0) & (dt > 0))).all()
        if by_symbol or ((dt > 0) | ((dt == 0) & (dc > 0))).all():
            return False
        order = np.lexsort((ts, codes))
        s_ts, s_c = ts[order], codes[order]
        same_key = (s_c[1:] == s_c[:-1]) & (s_ts[1:] == s_ts[:-1])

    if same_key.any():
        # The stable sort keeps ties in file order: order[i] is the earlier row.
        first, second = order[:-1][same_key], order[1:][same_key]
        j = int(np.argmin(second))
        a, c = int(first[j]), int(second[j])
        sym = f", symbol {b.symbols[codes[a]]!r}" if codes is not None else ""
        raise DataError(
            f"{b.src}: duplicate bar for ts {b.fmt(b.ts[a])}{sym} at rows {int(b.rows[a])} "
            f"and {int(b.rows[c])}; {len(second)} "
            f"{'rows repeat' if len(second) > 1 else 'row repeats'} an earlier (ts, symbol). "
            f"Fix: keep one row per (ts, symbol), e.g. drop duplicates before loading."
        )

    # Long files are often grouped by symbol; only time running backwards within a
    # symbol counts as unsorted.
    if codes is None or len(b.symbols) == 1:
        back = np.flatnonzero(ts[1:] < ts[:-1])
        prev, later = back, back + 1
    else:
        perm = np.argsort(codes, kind="stable")
        p_ts, p_c = ts[perm], codes[perm]
        step = np.flatnonzero((p_c[1:] == p_c[:-1]) & (p_ts[1:] < p_ts[:-1]))
        prev, later = perm[step], perm[step + 1]
    if len(later) == 0:
        return False
    j = int(np.argmin(later))
    i, k = int(later[j]), int(prev[j])
    notes.append(
        f"{b.src}: rows are not in time order: {b.where(i)} comes after row {int(b.rows[k])} "
        f"(ts {b.fmt(b.ts[k])}); {len(later)} {'rows step' if len(later) > 1 else 'row steps'} "
        f"back in time. Sorted them by (ts, symbol). Fix: sort the file by ts to silence this "
        f"warning."
    )
    return True


# --------------------------------------------------------------------------- pivot


def _pivot(b: _Bars, copy: bool = True) -> tuple[np.ndarray, dict]:
    """The timestamps and the ``(n_ts, n_symbols)`` matrices of ``b``; consumes ``b.fields``."""
    ts = b.ts.view(np.int64)
    k = len(b.symbols)
    codes = b.codes if b.codes is not None else np.zeros(len(ts), dtype=np.intp)
    if k == 1 and (len(ts) < 2 or (ts[1:] > ts[:-1]).all()):
        # One symbol in time order is already the panel's layout. Without `copy` (the
        # columns came from a file this load read, so nothing else holds them) they
        # are used as they are: a second copy of the panel is not made.
        fields = {name: (v.reshape(-1, 1).copy() if copy else
                         np.ascontiguousarray(v).reshape(-1, 1))
                  for name, v in b.fields.items()}
        return b.ts.copy(), fields
    if len(ts) < 2 or (ts[1:] >= ts[:-1]).all():
        new = np.empty(len(ts), dtype=bool)
        new[0] = True
        np.not_equal(ts[1:], ts[:-1], out=new[1:])
        uts = ts[new]
        ti = np.cumsum(new) - 1
    else:
        uts, ti = np.unique(ts, return_inverse=True)
    flat = ti
    flat *= k
    flat += codes
    fields = {}
    # Each long column is dropped once pivoted (b.fields is consumed), so the load
    # holds about one panel plus one column rather than two panels.
    for name in list(b.fields):
        out = np.full(len(uts) * k, np.nan)
        out[flat] = b.fields.pop(name)
        fields[name] = out.reshape(len(uts), k)
        release_arrow_memory()
    return uts.view("datetime64[ns]"), fields


# --------------------------------------------------------------------------- public API


def release_arrow_memory() -> None:
    """Hand Arrow's freed buffers back to the system.

    Arrow's allocator keeps freed memory for reuse; after a load that is the file's
    decoded columns, up to ~2x the panel, which a backtest would otherwise carry on
    top of its own arrays.
    """
    release = getattr(pa.default_memory_pool(), "release_unused", None)
    if release is not None:     # pyarrow >= 13
        release()


def load_bars(source, *, symbol: str | None = None, start=None, end=None,
              date_format: str | None = None, tz: str | None = None,
              adjust: bool = False) -> Panel:
    """Load and validate bars into a :class:`~engine.data.panel.Panel`.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
        A ``.parquet``/``.pq`` or ``.csv``/``.csv.gz`` file, or a DataFrame, in the
        long bar schema: ``ts`` (also ``date``, ``datetime``, ``timestamp`` or
        ``time``), optional ``symbol``, ``open, high, low, close`` and optional
        ``volume``. Column names are matched ignoring case, surrounding spaces,
        and spaces/dashes versus underscores. Extra numeric columns become feature
        fields under their normalised names; other extra columns are ignored and
        listed in ``panel.meta["ignored_columns"]``. A pandas DataFrame whose index
        is not a plain range index (e.g. a DatetimeIndex) has it used as a column.
    adjust : bool
        With an ``adj_close`` column (Yahoo's ``Adj Close``), multiply open, high,
        low and close by ``adj_close / close`` on each row, to trade prices adjusted
        for dividends and splits; without it, a file with both columns loads with a
        :class:`DataWarning` saying the unadjusted close is traded.
        ``meta["prices"]`` records which.
    symbol : str, optional
        Without a ``symbol`` column, the name of the single instrument (default
        ``Panel.DEFAULT_SYMBOL``). With one, keep only that symbol's rows.
    start, end : str, datetime.date or datetime.datetime, optional
        Inclusive bounds on ``ts`` applied before validation and pivoting. A bare
        date as ``end`` includes that whole day. Bounds without a zone are local
        times of the data's zone (``tz``, else the file's); bounds with one are
        compared as instants.
    date_format : str, optional
        A ``strptime`` format (``"%d/%m/%Y"``, ``"%m/%d/%Y %H:%M"``) for dates
        stored as text. Without it, ISO dates are read as they are and other
        numeric dates in the one day/month order the column allows; a column where
        both orders fit every date is refused (see :mod:`engine.data.timestamps`).
    tz : str, optional
        An IANA time zone (``"America/New_York"``) for the results. Time-zone-aware
        data is converted to it; stamps without a zone are taken to be local times
        there. Default: the data's own zone, if it has one.

    Returns
    -------
    Panel
        Timestamps (``datetime64[ns]``, strictly increasing; UTC when the data has a
        zone, as written otherwise) by sorted symbols, one C-contiguous float64
        matrix per field, NaN where a symbol has no bar. ``meta`` holds ``missing``
        ({column: NaN count} for open, high, low and volume), ``volume_missing``,
        ``ignored_columns``, ``resorted``, ``rows`` and ``tz`` (the zone results
        are shown in, or None for data without one).

    Raises
    ------
    DataError
        For unreadable, empty or malformed data: the message names the file, the
        column, the first offending row (1-based, header excluded) with its ts and
        symbol, how many rows fail the same check, and the fix.
    ParameterError
        For a ``start``/``end`` that is not a date, or ``start`` after ``end``.

    Warns
    -----
    DataWarning
        Once per price column with missing values, when rows had to be sorted,
        when a price column holds numbers as text, when symbols differ only by
        case or surrounding spaces, and when UTC offsets name no single zone.
    """
    if symbol is not None and not isinstance(symbol, str):
        raise ParameterError(f"symbol must be a string, got {type(symbol).__name__}")
    date_format = check_date_format(date_format)
    tz = check_zone(tz)
    lo = _bound(start, "start", is_end=False)
    hi = _bound(end, "end", is_end=True)
    if lo is not None and hi is not None and lo > hi:
        raise ParameterError(f"start={start!r} is after end={end!r}")

    table, src = _read(source)
    if table.num_rows == 0:
        raise DataError(
            f"{src}: no data rows (only a header, or zero rows); nothing to load. Fix: write "
            f"the bars below the header, one row per (ts, symbol)."
        )
    schema = _resolve(table, src)

    notes: list[str] = []
    # A note on the zone (offsets that name none) has nothing to say once tz names one.
    ts, file_zone = to_timestamps(table.column(schema.ts), src, schema.ts,
                                  date_format=date_format, notes=notes if tz is None else None)
    if tz is not None and file_zone is None:
        ts = localize(ts, tz, src, f"column {schema.ts!r} has", rows=True)
    zone = tz or file_zone
    # Text is a choice in Parquet and frames (a CSV has nothing else): say so there.
    as_text: list[str] | None = [] if not src.lower().endswith(CSV_SUFFIXES) else None
    if schema.symbol is not None:
        codes, symbols = _to_codes(table.column(schema.symbol), src, schema.symbol, ts,
                                   tz=zone, notes=notes)
    else:
        codes, symbols = None, [symbol or Panel.DEFAULT_SYMBOL]
    fields = {}
    for name, orig in schema.bars.items():
        fields[name] = _to_float(table.column(orig), src, orig, ts, tz=zone,
                                 required=name == "close", as_text=as_text)
    volume_absent = "volume" not in fields
    if volume_absent:
        fields["volume"] = np.full(len(ts), np.nan)
    for name, orig in schema.features.items():
        fields[name] = _to_float(table.column(orig), src, orig, ts, tz=zone)
    if as_text:
        listed = _and([repr(c) for c in as_text])
        one = len(as_text) == 1
        notes.append(
            f"{src}: column{'' if one else 's'} {listed} {'holds' if one else 'hold'} numbers "
            f"stored as text; they were read as numbers. Fix: store "
            f"{'it' if one else 'them'} as numeric (e.g. pl.col({as_text[0]!r})"
            f".cast(pl.Float64)) to silence this warning."
        )
    fields = {k: fields[k] for k in (*BAR_FIELDS, *schema.features)}
    prices = _adjusted_prices(fields, src, adjust, notes)
    documented = documented_gaps(table, src)
    del table
    release_arrow_memory()      # the columns not kept (symbol text, ignored columns)

    b = _Bars(src, ts, np.arange(1, len(ts) + 1), codes, symbols, fields, volume_absent, zone)
    if symbol is not None and codes is not None:
        _select_symbol(b, symbol)
    if zone is not None:
        lo = _bound(start, "start", is_end=False, zone=zone)
        hi = _bound(end, "end", is_end=True, zone=zone)
    if lo is not None or hi is not None:
        covers = f"{b.fmt(b.ts.min())} to {b.fmt(b.ts.max())}"
        mask = np.ones(len(b.ts), dtype=bool)
        if lo is not None:
            mask &= b.ts >= lo
        if hi is not None:
            mask &= b.ts <= hi
        if not mask.all():
            b.keep(mask)
        if len(b.ts) == 0:
            window = (f"between {start} and {end}" if lo is not None and hi is not None
                      else f"from {start}" if lo is not None else f"up to {end}")
            raise DataError(
                f"{src}: no bars {window}; the data covers {covers}. "
                f"Fix: choose start/end inside that range."
            )
    if b.codes is not None:
        _drop_absent_symbols(b)

    missing = _validate_values(b, notes, documented)
    resorted = _check_order(b, notes)
    uts, matrices = _pivot(b, copy=not isinstance(source, str | Path))

    meta = {
        "missing": missing,
        "volume_missing": volume_absent,
        "ignored_columns": list(schema.ignored),
        "resorted": resorted,
        "rows": len(b.ts),
        "tz": zone,
        "prices": prices,
        "documented_gaps": {col: gap[2] for col, gap in documented.items()
                            if col in missing},
    }
    symbols = tuple(b.symbols)
    del b, fields, ts, codes
    release_arrow_memory()
    panel = Panel(ts=uts, symbols=symbols, fields=matrices, source=src, meta=meta)
    # Warn only once the load has succeeded, pointing at the caller.
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    return panel


def in_zone(panel: Panel, tz: str | None) -> Panel:
    """``panel`` with its results shown in the time zone ``tz`` (None: as it is).

    A panel with a zone keeps its UTC stamps and changes only the zone it is shown
    in; a panel without one has its stamps taken as local times in ``tz``.
    """
    tz = check_zone(tz)
    if tz is None or panel.meta.get("tz") == tz:
        return panel
    ts = panel.ts
    if panel.meta.get("tz") is None:
        ts = localize(ts, tz, panel.source, "the bars include")
    return Panel(ts, panel.symbols, panel.fields, panel.source, {**panel.meta, "tz": tz})


def save_bars(panel: Panel, path) -> Path:
    """Write a panel to Parquet in the long bar schema.

    Parameters
    ----------
    panel : Panel
        The panel to write.
    path : str or pathlib.Path
        Destination file; parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    Columns are ``ts`` (timestamp[ns], in ``panel.meta["tz"]`` when it has a zone),
    ``symbol``, ``open, high, low, close``,
    ``volume`` (left out when ``panel.meta["volume_missing"]``) and every feature,
    one row per (ts, symbol) that has a close, sorted by (ts, symbol). Loading the
    file with :func:`load_bars` gives back the same panel, except for symbols or
    timestamps that had no close anywhere.
    """
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    n, k = panel.n_bars, panel.n_symbols
    has_bar = ~np.isnan(np.asarray(panel.fields["close"]).ravel())
    ts = np.repeat(np.asarray(panel.ts, dtype="datetime64[ns]"), k)[has_bar]
    sym_idx = np.tile(np.arange(k), n)[has_bar]
    symbols = pa.array(list(panel.symbols), pa.string()).take(pa.array(sym_idx))
    zone = panel.meta.get("tz")
    columns = {"ts": pa.array(ts.view(np.int64), pa.int64()).cast(pa.timestamp("ns", zone)),
               "symbol": symbols}
    for name, arr in panel.fields.items():
        if name == "volume" and panel.meta.get("volume_missing"):
            continue
        columns[name] = pa.array(np.asarray(arr).ravel()[has_bar], pa.float64())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path
