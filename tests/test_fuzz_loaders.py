"""Fuzzing of the bar loader and the feed loader with malformed files.

Hypothesis writes random bytes, truncated and corrupted Parquet, Parquet files of
random columns (names, types, values: inf, NaN, huge numbers, empty strings, nulls in
``ts`` and ``symbol``, nested and binary types) and CSV text of random cells, then
hands each to :func:`engine.data.bars.load_bars` and to a feed join. The only acceptable
outcomes are a loaded panel or one of the engine's documented errors
(:class:`~engine.errors.EngineError` and its subclasses), with at most
:class:`~engine.data.bars.DataWarning` warnings: never another exception type, never
another warning, never a crash of the interpreter.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.bars import DataWarning, load_bars
from engine.data.feeds import Feed, join_feeds
from engine.data.panel import Panel
from engine.errors import EngineError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# --------------------------------------------------------------------------- outcomes


def outcome(call):
    """Run ``call``; return the panel or the EngineError. Any other exception, and any
    warning other than a DataWarning, fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except EngineError as exc:
            result = exc
    stray = [w for w in caught if not issubclass(w.category, DataWarning)]
    assert not stray, [f"{w.category.__name__}: {w.message}" for w in stray]
    if isinstance(result, EngineError):
        text = str(result)
        assert text and "\n" not in text, text  # one line, for the CLI's `error:`
    else:
        assert isinstance(result, Panel)
        check_panel(result)
    return result


def check_panel(panel: Panel) -> None:
    """What a loaded panel promises: increasing timestamps, positive closes, valid OHLC."""
    ts = panel.ts.view(np.int64)
    assert (np.diff(ts) > 0).all()
    close = panel.fields["close"]
    assert close.shape == (panel.n_bars, panel.n_symbols)
    assert not np.isnan(close).all(axis=1).any()  # every timestamp has a bar somewhere
    bar = ~np.isnan(close)
    assert (close[bar] > 0).all() and np.isfinite(close[bar]).all()
    for name in ("open", "high", "low"):
        values = panel.fields[name][bar]
        known = ~np.isnan(values)
        assert (values[known] > 0).all() and np.isfinite(values[known]).all()


BARS = Panel(
    ts=np.array(["2024-01-01", "2024-01-02", "2024-01-03"], dtype="datetime64[ns]"),
    symbols=("AAA", "BBB"),
    fields={name: np.full((3, 2), 10.0) for name in ("open", "high", "low", "close",
                                                     "volume")},
    source="<fuzz bars>",
)


def join(path, **options):
    return join_feeds(BARS, {"fuzz": Feed(path, **options)})


# --------------------------------------------------------------------------- columns

NAMES = st.one_of(
    st.sampled_from(["ts", "date", "Date", "timestamp", "symbol", "ticker", "open", "high",
                     "low", "close", "Close", " close ", "adj-close", "volume", "value",
                     "first_seen", "x", ""]),
    st.text(max_size=6),
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -1.0, 1e308, -1e308, 5e-324, 10.0, 11.0, 9.0]))
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 20))
TEXT = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "10.5", "$10", "1,5",
                     "2024-01-02", "2024-01-02 09:30", "2024-13-45", "01/02/2024",
                     "2024-01-02T09:30:00+05:00", "9999-12-31", "0001-01-01", "AAA", "BBB",
                     "null", "-"]),
    st.text(max_size=8),
)
TS_UNITS = st.sampled_from(["s", "ms", "us", "ns"])
ZONES = st.sampled_from([None, "UTC", "America/New_York", "+05:30"])


@st.composite
def nullable(draw, elements, n):
    """``n`` values, about one in ten of them null."""
    return [None if draw(st.integers(0, 9)) == 0 else draw(elements) for _ in range(n)]


@st.composite
def columns(draw, n):
    """One column of ``n`` values of a random Arrow type, nulls included."""
    kind = draw(st.sampled_from(["float", "int", "text", "bool", "timestamp", "date", "null",
                                 "dictionary", "binary", "list", "decimal", "duration",
                                 "time"]))

    def values(elements):
        return draw(nullable(elements, n))

    if kind == "float":
        return pa.array(values(FLOATS), pa.float64())
    if kind == "int":
        return pa.array(values(INTS), pa.int64())
    if kind == "text":
        return pa.array(values(TEXT), pa.string())
    if kind == "bool":
        return pa.array(values(st.booleans()), pa.bool_())
    if kind == "timestamp":
        # raw int64 counts of any unit: includes dates no nanosecond timestamp can hold
        unit, zone = draw(TS_UNITS), draw(ZONES)
        return pa.array(values(INTS), pa.timestamp(unit, tz=zone))
    if kind == "date":
        return pa.array(values(st.dates()), pa.date32())
    if kind == "null":
        return pa.nulls(n)
    if kind == "dictionary":
        return pa.array(values(TEXT), pa.string()).dictionary_encode()
    if kind == "binary":
        return pa.array(values(st.binary(max_size=6)), pa.binary())
    if kind == "list":
        return pa.array(values(st.lists(FLOATS, max_size=2)), pa.list_(pa.float64()))
    if kind == "decimal":
        digits = st.decimals(min_value=-10**6, max_value=10**6, places=2, allow_nan=False)
        return pa.array(values(digits), pa.decimal128(12, 2))
    if kind == "duration":
        return pa.array(values(st.integers(-(10**12), 10**12)), pa.duration("s"))
    return pa.array(values(st.times()), pa.time64("us"))


@st.composite
def random_tables(draw):
    """Columns of random names and types."""
    n = draw(st.integers(0, 6))
    names = draw(st.lists(NAMES, min_size=1, max_size=6))
    if draw(st.booleans()):
        names = ["ts", "symbol", "open", "high", "low", "close", "volume", *names[:2]]
    # keyed by position: a random name may repeat, and Arrow allows repeated names
    return pa.table({str(i): draw(columns(n)) for i in range(len(names))}
                    ).rename_columns(names)


DAYS = [dt.datetime(2024, 1, d) for d in (2, 3, 4, 5, 8, 9)]
DAMAGE = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308, 5e-324, None])


@st.composite
def bar_rows(draw):
    """Rows that are valid bars (a few symbols, repeated or unsorted days possible),
    then a few cells damaged: the loader gets past the schema and into the values."""
    n = draw(st.integers(1, 6))
    rows = []
    for _ in range(n):
        low = draw(st.floats(1.0, 100.0))
        high = low * draw(st.floats(1.0, 1.1))
        open_, close = (draw(st.floats(low, high)) for _ in range(2))
        rows.append({"ts": draw(st.sampled_from(DAYS)), "symbol": draw(st.sampled_from(
            ["AAA", "BBB"])), "open": open_, "high": high, "low": low, "close": close,
            "volume": draw(st.sampled_from([0.0, 100.0, 5e9]))})
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.sampled_from(rows))
        column = draw(st.sampled_from(list(row)))
        row[column] = draw(DAMAGE) if column not in ("ts", "symbol") else draw(
            st.sampled_from([None, "", " ", "2024-13-45", "AAA"]))
    return rows


TS_FORMS = st.sampled_from(["date", "timestamp", "text", "tz"])


@st.composite
def bar_tables(draw):
    """:func:`bar_rows` as a typed table, with its ts in one of several forms, maybe
    a column renamed, retyped or dropped, and maybe extra feature columns."""
    rows = draw(bar_rows())
    names = list(rows[0])
    data = {name: [r[name] for r in rows] for name in names}
    ts = data["ts"]
    form = draw(TS_FORMS)
    text_ts = [v if not isinstance(v, dt.datetime) else str(v) for v in ts]
    if form == "text" or any(isinstance(v, str) for v in ts):
        arrays = {"ts": pa.array(text_ts, pa.string())}
    elif form == "date":
        arrays = {"ts": pa.array([v and v.date() for v in ts], pa.date32())}
    else:
        zone = "America/New_York" if form == "tz" else None
        arrays = {"ts": pa.array(ts, pa.timestamp(draw(TS_UNITS), tz=zone))}
    arrays["symbol"] = pa.array(data["symbol"], pa.string())
    for name in ("open", "high", "low", "close", "volume"):
        arrays[name] = pa.array(data[name], pa.float64())
    table = pa.table(arrays)
    change = draw(st.sampled_from(["none", "none", "rename", "retype", "drop", "extra"]))
    column = draw(st.sampled_from(table.column_names))
    index = table.column_names.index(column)
    if change == "rename":
        table = table.rename_columns([draw(NAMES) if i == index else c
                                      for i, c in enumerate(table.column_names)])
    elif change == "retype":
        table = table.set_column(index, column, draw(columns(table.num_rows)))
    elif change == "drop":
        table = table.remove_column(index)
    elif change == "extra":
        table = table.append_column(draw(NAMES), draw(columns(table.num_rows)))
    return table


tables = st.one_of(random_tables(), bar_tables())


def written(table: pa.Table, path) -> bool:
    """Write ``table`` as Parquet; False when Parquet cannot hold it (a seconds
    timestamp beyond the milliseconds range, say): such a file cannot reach a user."""
    try:
        pq.write_table(table, path)
    except pa.ArrowException:
        return False
    return True


def good_parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({
        "ts": pa.array([dt.date(2024, 1, d) for d in (2, 3, 4)]),
        "symbol": ["AAA"] * 3, "open": [10.0, 10.5, 11.0], "high": [11.0, 12.0, 11.5],
        "low": [9.0, 10.0, 10.5], "close": [10.5, 11.0, 11.2], "volume": [1.0, 2.0, 3.0],
    }), sink)
    return sink.getvalue()


GOOD_PARQUET = good_parquet_bytes()
GOOD_CSV = (b"ts,symbol,open,high,low,close,volume\n2024-01-02,AAA,10,11,9,10.5,100\n"
            b"2024-01-03,AAA,10.5,12,10,11,200\n")


# --------------------------------------------------------------------------- the fuzzers


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".parquet", ".csv", ".csv.gz"]),
       keep_magic=st.booleans())
def test_random_bytes(tmp_path_factory, data, suffix, keep_magic):
    if keep_magic:  # past the magic-byte sniffing, into the readers
        data = {".parquet": b"PAR1", ".csv": b"", ".csv.gz": b"\x1f\x8b"}[suffix] + data
    path = tmp_path_factory.mktemp("bytes") / f"bars{suffix}"
    path.write_bytes(data)
    outcome(lambda: load_bars(path))
    outcome(lambda: join(path))


@FUZZ
@given(cut=st.integers(0, len(GOOD_PARQUET)), flips=st.lists(
    st.tuples(st.integers(0, len(GOOD_PARQUET) - 1), st.integers(1, 255)), max_size=4))
def test_truncated_and_corrupted_parquet(tmp_path_factory, cut, flips):
    data = bytearray(GOOD_PARQUET)
    for where, mask in flips:
        data[where] ^= mask
    path = tmp_path_factory.mktemp("cut") / "bars.parquet"
    path.write_bytes(bytes(data[:cut] if cut < len(data) and not flips else data))
    outcome(lambda: load_bars(path))


@FUZZ
@given(table=tables, symbol=st.sampled_from([None, "AAA"]),
       window=st.sampled_from([(None, None), ("2024-01-01", None), (None, "2000-01-01")]))
def test_parquet_of_random_columns(tmp_path_factory, table, symbol, window):
    start, end = window
    outcome(lambda: load_bars(table, symbol=symbol, start=start, end=end))  # in memory
    path = tmp_path_factory.mktemp("pq") / "bars.parquet"
    if written(table, path):
        outcome(lambda: load_bars(path, symbol=symbol, start=start, end=end))


CELLS = st.one_of(TEXT, FLOATS.map(repr), INTS.map(str),
                  st.sampled_from(['"', '""', '"a,b"', "\t", "\ufeff", "\r"]))


@FUZZ
@given(header=st.lists(NAMES, min_size=1, max_size=8), bar_header=st.booleans(),
       rows=st.lists(st.lists(CELLS, max_size=8), max_size=5),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_csv_of_random_cells(tmp_path_factory, header, bar_header, rows, newline):
    if bar_header:
        header = ["ts", "symbol", "open", "high", "low", "close", "volume"]
    text = newline.join(",".join(line) for line in [header, *rows]) + newline
    path = tmp_path_factory.mktemp("csv") / "bars.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    outcome(lambda: load_bars(path))


@FUZZ
@given(table=tables, on=st.sampled_from(["ts", "date", "value"]),
       available_at=st.sampled_from([None, "first_seen", "ts"]), by_symbol=st.booleans(),
       lag=st.sampled_from([0, 1, "1D", -1, "soon", 2.5, True]),
       max_age=st.sampled_from([None, 1, "2D"]),
       columns=st.sampled_from([None, ["value"], {"close": "price"}, [], "x"]))
def test_feeds_of_random_columns(tmp_path_factory, table, on, available_at, by_symbol, lag,
                                 max_age, columns):
    folder = tmp_path_factory.mktemp("feed")
    options = dict(on=on, available_at=available_at, by_symbol=by_symbol, lag=lag,
                   max_age=max_age, columns=columns)
    outcome(lambda: join(table, **options))
    path = folder / "feed.parquet"
    if written(table, path):
        outcome(lambda: join(path, **options))
    csv = folder / "feed.csv"
    try:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, csv)
    except (pa.ArrowException, ValueError):
        return  # nested and binary columns have no CSV form
    outcome(lambda: join(csv, **options))


@pytest.mark.parametrize("text", [GOOD_CSV, b"\xef\xbb\xbf" + GOOD_CSV])
def test_the_fuzzers_good_inputs_load(tmp_path, text):
    """The fuzzers start from inputs that do load, so that they reach the deep checks."""
    path = tmp_path / "good.csv"
    path.write_bytes(text)
    assert isinstance(outcome(lambda: load_bars(path)), Panel)
    pq_path = tmp_path / "good.parquet"
    pq_path.write_bytes(GOOD_PARQUET)
    assert outcome(lambda: load_bars(pq_path)).n_bars == 3


def test_decimal_and_dictionary_columns_load():
    """Types the fuzzer draws that are valid bar columns are accepted, not refused."""
    table = pa.table({
        "ts": pa.array(["2024-01-02", "2024-01-03"]).dictionary_encode(),
        "open": pa.array([decimal.Decimal("10.00"), decimal.Decimal("10.50")],
                         pa.decimal128(12, 2)),
        "high": [11.0, 12.0], "low": [9.0, 10.0], "close": [10.5, 11.0],
    })
    panel = outcome(lambda: load_bars(table))
    assert isinstance(panel, Panel)
    assert panel.fields["open"][:, 0].tolist() == [10.0, 10.5]
