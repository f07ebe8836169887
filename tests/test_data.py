"""Tests for engine.data.bars: reading, schema resolution, validation messages, pivot, save."""

import datetime as dt
import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.bars import DataWarning, load_bars, save_bars
from engine.data.panel import Panel
from engine.errors import DataError, ParameterError

ROOT = Path(__file__).resolve().parents[1]

HEADER = "ts,open,high,low,close,volume\n"
GOOD = HEADER + (
    "2024-01-02,10,11,9,10.5,100\n"
    "2024-01-03,10.5,12,10,11,200\n"
    "2024-01-04,11,11.5,10.5,11.2,300\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no surprise warnings on clean data
        return load_bars(*args, **kwargs)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_bars(*args, **kwargs)
    return str(info.value)


def day(s):
    return np.datetime64(s, "ns")


# --------------------------------------------------------------------------- sources


def test_csv_single_symbol(tmp_path):
    path = write(tmp_path, "bars.csv", GOOD)
    panel = load_quietly(path)
    assert isinstance(panel, Panel)
    assert panel.source == str(path)
    assert panel.symbols == (Panel.DEFAULT_SYMBOL,)
    assert panel.ts.dtype == np.dtype("datetime64[ns]")
    assert list(panel.ts) == [day("2024-01-02"), day("2024-01-03"), day("2024-01-04")]
    np.testing.assert_array_equal(panel.close[:, 0], [10.5, 11, 11.2])
    np.testing.assert_array_equal(panel.volume[:, 0], [100, 200, 300])
    for name in ("open", "high", "low", "close", "volume"):
        arr = panel.fields[name]
        assert arr.dtype == np.float64 and arr.flags.c_contiguous and arr.shape == (3, 1)
        assert not arr.flags.writeable
    assert panel.meta["missing"] == {}
    assert panel.meta["volume_missing"] is False
    assert panel.meta["ignored_columns"] == []
    assert panel.meta["resorted"] is False


def test_symbol_argument_names_single_instrument(tmp_path):
    panel = load_quietly(write(tmp_path, "spx.csv", GOOD), symbol="SPX")
    assert panel.symbols == ("SPX",)


def test_csv_gz(tmp_path):
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    panel = load_quietly(str(path))
    assert panel.source == str(path)
    np.testing.assert_array_equal(panel.close[:, 0], [10.5, 11, 11.2])


def test_parquet_multi_symbol_pivot_with_missing_bar(tmp_path):
    table = pa.table(
        {
            "ts": pa.array([dt.date(2024, 1, 2)] * 2 + [dt.date(2024, 1, 3)], pa.date32()),
            "symbol": ["BBB", "AAA", "BBB"],  # AAA has no bar on Jan 3
            "open": [20.0, 10.0, 21.0],
            "high": [22.0, 11.0, 23.0],
            "low": [19.0, 9.0, 20.0],
            "close": [21.0, 10.5, 22.0],
            "volume": [5.0, 6.0, 7.0],
        }
    )
    path = tmp_path / "multi.pq"
    pq.write_table(table, path)
    panel = load_quietly(path)
    assert panel.symbols == ("AAA", "BBB")
    assert list(panel.ts) == [day("2024-01-02"), day("2024-01-03")]
    assert panel.close[0, 0] == 10.5 and panel.close[0, 1] == 21.0
    assert np.isnan(panel.close[1, 0]) and panel.close[1, 1] == 22.0
    assert panel.open[0, 0] == 10.0 and panel.open[0, 1] == 20.0
    assert np.isnan(panel.open[1, 0]) and panel.open[1, 1] == 21.0
    assert panel.volume[0, 0] == 6.0 and panel.volume[0, 1] == 5.0
    assert np.isnan(panel.volume[1, 0]) and panel.volume[1, 1] == 7.0
    # the missing bar is not a "missing open" in the data: it is just absent
    assert panel.meta["missing"] == {}


def test_pandas_dataframe():
    df = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "Open": [1.0, 2.0],
            "High": [1.5, 2.5],
            "Low": [0.5, 1.5],
            "Close": [1.2, 2.2],
            "Volume": [10, 20],
        }
    )
    panel = load_quietly(df)
    assert panel.source == "<pandas DataFrame>"
    np.testing.assert_array_equal(panel.close[:, 0], [1.2, 2.2])
    df.loc[0, "Close"] = 99.0  # the panel must not share memory with the frame
    assert panel.close[0, 0] == 1.2


def test_pandas_datetime_index_is_used_as_ts():
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    df = pd.DataFrame(
        {"open": [1.0, 2.0], "high": [1.5, 2.5], "low": [0.5, 1.5], "close": [1.2, 2.2]},
        index=idx,
    )
    panel = load_quietly(df)
    assert list(panel.ts) == [day("2024-01-02"), day("2024-01-03")]


def test_polars_dataframe():
    df = pl.DataFrame(
        {
            "ts": [dt.datetime(2024, 1, 2, 9, 30), dt.datetime(2024, 1, 2, 9, 31)],
            "symbol": ["X", "X"],
            "open": [1.0, 2.0],
            "high": [1.5, 2.5],
            "low": [0.5, 1.5],
            "close": [1.2, 2.2],
            "volume": [1, 2],
        }
    )
    panel = load_quietly(df)
    assert panel.source == "<polars DataFrame>"
    assert panel.symbols == ("X",)
    assert list(panel.ts) == [day("2024-01-02T09:30"), day("2024-01-02T09:31")]
    np.testing.assert_array_equal(panel.volume[:, 0], [1.0, 2.0])


def test_tz_aware_timestamps_become_naive_utc():
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-02 09:30", "2024-01-02 09:31"]).tz_localize(
                "America/New_York"
            ),
            "open": [1.0, 2.0],
            "high": [1.5, 2.5],
            "low": [0.5, 1.5],
            "close": [1.2, 2.2],
        }
    )
    panel = load_quietly(df)
    assert list(panel.ts) == [day("2024-01-02T14:30"), day("2024-01-02T14:31")]
    assert panel.meta["tz"] == "America/New_York"


def test_string_timestamps_with_offsets_in_csv(tmp_path):
    text = HEADER + "2024-01-02T10:00:00+01:00,1,2,1,1.5,1\n2024-01-02T10:00:00Z,1,2,1,1.5,1\n"
    # Two offsets name no single zone: the instants are kept, shown in UTC, with a word.
    with pytest.warns(DataWarning, match=r"UTC offsets that change within the column "
                                         r"\(\+00:00, \+01:00"):
        panel = load_bars(write(tmp_path, "tz.csv", text))
    assert list(panel.ts) == [day("2024-01-02T09:00"), day("2024-01-02T10:00")]
    assert panel.meta["tz"] == "UTC"
    named = load_quietly(tmp_path / "tz.csv", tz="Europe/Paris")
    assert named.meta["tz"] == "Europe/Paris" and list(named.ts) == list(panel.ts)


# --------------------------------------------------------------------------- schema


def test_column_names_normalised_aliases_features_and_ignored(tmp_path):
    text = (
        " Date ,OPEN,High,low,Close,Adj Close,Volume,put-call,source\n"
        "2024-01-02,10,11,9,10.5,10.4,100,0.8,yahoo\n"
        "2024-01-03,10.5,12,10,11,10.9,200,0.9,yahoo\n"
    )
    # a Yahoo-style file: the run says it trades the unadjusted close (adjust=True rescales)
    with pytest.warns(DataWarning, match="trades the unadjusted close"):
        panel = load_bars(write(tmp_path, "yahoo.csv", text))
    assert panel.meta["prices"] == "unadjusted close (the file also has adj_close)"
    assert panel.features == ("adj_close", "put_call")
    np.testing.assert_array_equal(panel.adj_close[:, 0], [10.4, 10.9])
    np.testing.assert_array_equal(panel.fields["put_call"][:, 0], [0.8, 0.9])
    assert panel.fields["adj_close"].dtype == np.float64
    assert panel.meta["ignored_columns"] == ["source"]


@pytest.mark.parametrize("alias", ["date", "datetime", "timestamp", "time", "Date", "TIMESTAMP"])
def test_ts_aliases(tmp_path, alias):
    text = GOOD.replace("ts,", f"{alias},", 1)
    panel = load_quietly(write(tmp_path, "a.csv", text))
    assert panel.n_bars == 3


def test_ambiguous_ts_columns(tmp_path):
    text = "date,time,open,high,low,close\n2024-01-02,09:30,1,2,1,1.5\n"
    msg = error_of(write(tmp_path, "amb.csv", text))
    assert "amb.csv" in msg and "'date' and 'time'" in msg and "rename" in msg


def test_volume_absent_is_nan(tmp_path):
    text = "ts,open,high,low,close\n2024-01-02,1,2,1,1.5\n2024-01-03,1,2,1,1.5\n"
    panel = load_quietly(write(tmp_path, "novol.csv", text))
    assert panel.meta["volume_missing"] is True
    assert np.isnan(panel.volume).all() and panel.volume.shape == (2, 1)
    assert panel.meta["missing"] == {}


def test_missing_required_column_with_hint(tmp_path):
    text = "Date,Open,High,Low,Clsoe,Volume\n2024-01-02,1,2,1,1.5,1\n"
    msg = error_of(write(tmp_path, "typo.csv", text))
    assert "typo.csv" in msg
    assert "missing required column 'close'" in msg
    assert "Columns present: Date, Open, High, Low, Clsoe, Volume" in msg
    assert "Did you mean 'Clsoe'?" in msg
    assert "rename" in msg


def test_missing_ts_column_mentions_aliases(tmp_path):
    text = "day,open,high,low,close\n2024-01-02,1,2,1,1.5\n"
    msg = error_of(write(tmp_path, "nots.csv", text))
    assert "missing required column 'ts'" in msg and "date, datetime, timestamp, time" in msg


def test_mistyped_close_column(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,1,2,1,n/a,1\n2024-01-04,1,2,1,abc,1\n"
    msg = error_of(write(tmp_path, "typed.csv", text))
    assert "typed.csv" in msg
    assert "column 'close' must hold numbers" in msg
    # A close cannot be missing, so 'n/a' is quoted as the text it is, not shown as NaN
    assert "row 2 (ts 2024-01-03) has 'n/a'" in msg
    assert "2 rows fail this check" in msg


def test_an_empty_marker_in_an_optional_column_is_missing(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,n/a,2,1,1.5,1\n2024-01-04,$1,2,1,1.5,1\n"
    msg = error_of(write(tmp_path, "typed.csv", text))
    # 'n/a' marks an unknown open; '$1' on data row 3 is the first real offender
    assert "column 'open' must hold numbers, but row 3 (ts 2024-01-04) has '$1'" in msg
    assert "1 row fails this check" in msg


def test_mistyped_column_in_pandas_object_column():
    df = pd.DataFrame(
        {
            "ts": ["2024-01-02", "2024-01-03", "2024-01-04"],
            "open": [1.0, 1.0, 1.0],
            "high": [2.0, 2.0, 2.0],
            "low": [1.0, 1.0, 1.0],
            "close": pd.Series([1.5, "1,5", "x"], dtype=object),
        }
    )
    msg = error_of(df)
    assert msg.startswith("<pandas DataFrame>: column 'close' must hold numbers")
    assert "row 2 (ts 2024-01-03) has '1,5'" in msg and "2 rows fail this check" in msg


def test_numeric_strings_are_accepted():
    table = pa.table(
        {
            "ts": ["2024-01-02", "2024-01-03"],
            "open": ["1", "2"],
            "high": ["2", "3"],
            "low": ["1", "1"],
            "close": ["1.5", ""],
        }
    )
    msg = error_of(table)  # the empty close is then reported as NaN, not as a type error
    assert "column 'close' must be a positive price" in msg and "row 2" in msg


def test_unparseable_ts(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\nnot a date,1,2,1,1.5,1\n"
    msg = error_of(write(tmp_path, "ts.csv", text))
    assert "ts.csv" in msg and "column 'ts' has 'not a date', not a date, at row 2" in msg
    assert "ISO dates" in msg


def test_numeric_ts_rejected():
    df = pd.DataFrame({"ts": [20240102], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1]})
    msg = error_of(df)
    assert "column 'ts' holds int64 values, not dates" in msg


# --------------------------------------------------------------------------- value checks


@pytest.mark.parametrize(
    ("bad_close", "shown"), [("", "no value (NaN)"), ("0", "0.0"), ("-2", "-2.0")]
)
def test_close_nan_or_non_positive(tmp_path, bad_close, shown):
    text = HEADER + f"2024-01-02,1,2,1,1.5,1\n2024-01-03,1,2,1,{bad_close},1\n"
    msg = error_of(write(tmp_path, "close.csv", text))
    assert msg == (
        f"{tmp_path / 'close.csv'}: column 'close' must be a positive price, but row 2 "
        f"(ts 2024-01-03) has {shown}; 1 row fails this check. Fix: correct or remove those "
        f"rows; every bar needs a close."
    )


def test_first_row_and_count_reported(tmp_path):
    text = HEADER + "".join(
        f"2024-01-{d:02d},1,2,1,{c},1\n" for d, c in [(2, 1.5), (3, -1), (4, 1.5), (5, 0), (8, -3)]
    )
    msg = error_of(write(tmp_path, "many.csv", text))
    assert "row 2 (ts 2024-01-03) has -1.0" in msg and "3 rows fail this check" in msg


@pytest.mark.parametrize("col", ["open", "high", "low"])
def test_non_positive_ohl(tmp_path, col):
    values = {"open": "1", "high": "2", "low": "1", "close": "1.5"}
    values[col] = "0"
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,{open},{high},{low},{close},1\n".format(
        **values
    )
    msg = error_of(write(tmp_path, "ohl.csv", text))
    assert f"column '{col}' must be a positive price, but row 2 (ts 2024-01-03) has 0.0" in msg
    assert "leave it empty if it is unknown" in msg


def test_nan_open_allowed_kept_missing_and_warned(tmp_path):
    text = HEADER + (
        "2024-01-02,,2,1,1.5,1\n"
        "2024-01-03,,2,1,1.6,1\n"
        "2024-01-04,,2,1,1.7,1\n"
        "2024-01-05,1.7,2,1,1.8,1\n"
    )
    path = write(tmp_path, "nanopen.csv", text)
    with pytest.warns(DataWarning) as record:
        panel = load_bars(path)
    assert len(record) == 1
    msg = str(record[0].message)
    assert "nanopen.csv" in msg and "column 'open'" in msg and "3 of 4 rows" in msg
    assert "from 2024-01-02 to 2024-01-04" in msg and "kept missing" in msg
    assert panel.meta["missing"] == {"open": 3}
    assert np.isnan(panel.open[:3, 0]).all() and panel.open[3, 0] == 1.7


def test_missing_high_and_low_warn_separately(tmp_path):
    text = HEADER + "2024-01-02,1,,1,1.5,1\n2024-01-03,1,2,,1.5,1\n2024-01-04,1,,,1.5,1\n"
    with pytest.warns(DataWarning) as record:
        panel = load_bars(write(tmp_path, "hl.csv", text))
    assert panel.meta["missing"] == {"high": 2, "low": 2}
    assert sorted(str(r.message).split("column ")[1][:6] for r in record) == ["'high'", "'low' "]


def test_high_below_low(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,1.5,1,2,1.5,1\n"
    msg = error_of(write(tmp_path, "hl.csv", text))
    assert "hl.csv: high is below low at row 2 (ts 2024-01-03): high=1.0, low=2.0" in msg
    assert "1 row fails this check" in msg and "Fix: correct high and low" in msg


def test_rounding_tolerance(tmp_path):
    # close exceeds high by one part in 1e12: rounding, not bad data
    text = HEADER + "2024-01-02,1,2,1,2.000000000002,1\n"
    panel = load_quietly(write(tmp_path, "tol.csv", text))
    assert panel.close[0, 0] == 2.000000000002
    text = HEADER + "2024-01-02,1,2,1,2.0001,1\n"
    assert "close is outside" in error_of(write(tmp_path, "tol2.csv", text))


@pytest.mark.parametrize(("col", "row"), [("open", "3,2,1,1.5"), ("close", "1,2,1,0.5")])
def test_open_or_close_outside_range(tmp_path, col, row):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n" + f"2024-01-03,{row},1\n"
    msg = error_of(write(tmp_path, "range.csv", text))
    assert f"range.csv: {col} is outside the bar's [low, high] range at row 2 (ts 2024-01-03)" in (
        msg
    )
    assert "low=1.0, high=2.0" in msg and f"low <= {col} <= high" in msg


def test_range_check_skips_missing_low_high(tmp_path):
    text = HEADER + "2024-01-02,1,,,1.5,1\n"
    with pytest.warns(DataWarning):
        panel = load_bars(write(tmp_path, "nanhl.csv", text))
    assert panel.close[0, 0] == 1.5


def test_negative_volume(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,1,2,1,1.5,-5\n2024-01-04,1,2,1,1.5,-1\n"
    msg = error_of(write(tmp_path, "vol.csv", text))
    assert "vol.csv: column 'volume' must not be negative, but row 2 (ts 2024-01-03) has -5.0" in (
        msg
    )
    assert "2 rows fail this check" in msg and "Fix: correct the volume" in msg


def test_duplicate_ts_symbol_names_both_rows(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-02,AAA,1,2,1,1.5\n"
        "2024-01-02,BBB,1,2,1,1.5\n"
        "2024-01-03,AAA,1,2,1,1.5\n"
        "2024-01-02,BBB,1,2,1,1.6\n"
    )
    msg = error_of(write(tmp_path, "dup.csv", text))
    assert "dup.csv: duplicate bar for ts 2024-01-02, symbol 'BBB' at rows 2 and 4" in msg
    assert "1 row repeat" in msg and "keep one row per (ts, symbol)" in msg


def test_duplicate_reported_is_the_first_in_file_order(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-02,BBB,1,2,1,1.5\n"
        "2024-01-02,BBB,1,2,1,1.5\n"
        "2024-01-02,AAA,1,2,1,1.5\n"
        "2024-01-02,AAA,1,2,1,1.5\n"
    )
    msg = error_of(write(tmp_path, "dup2.csv", text))
    assert "symbol 'BBB' at rows 1 and 2; 2 rows repeat" in msg


def test_duplicate_single_symbol(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,1,2,1,1.5,1\n2024-01-03,1,2,1,1.5,1\n"
    msg = error_of(write(tmp_path, "dup1.csv", text))
    assert "duplicate bar for ts 2024-01-03 at rows 2 and 3" in msg


def test_unsorted_rows_are_sorted_with_warning(tmp_path):
    text = HEADER + "2024-01-03,1,2,1,1.3,1\n2024-01-02,1,2,1,1.2,1\n2024-01-04,1,2,1,1.4,1\n"
    with pytest.warns(DataWarning) as record:
        panel = load_bars(write(tmp_path, "unsorted.csv", text))
    assert len(record) == 1
    msg = str(record[0].message)
    assert "unsorted.csv: rows are not in time order: row 2 (ts 2024-01-02) comes after row 1" in (
        msg
    )
    assert "Sorted them by (ts, symbol)" in msg
    assert list(panel.ts) == [day("2024-01-02"), day("2024-01-03"), day("2024-01-04")]
    np.testing.assert_array_equal(panel.close[:, 0], [1.2, 1.3, 1.4])
    assert panel.meta["resorted"] is True


def test_grouped_by_symbol_is_not_unsorted(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-02,BBB,1,2,1,1.1\n"
        "2024-01-03,BBB,1,2,1,1.2\n"
        "2024-01-02,AAA,1,2,1,1.3\n"
        "2024-01-03,AAA,1,2,1,1.4\n"
    )
    panel = load_quietly(write(tmp_path, "grouped.csv", text))
    np.testing.assert_array_equal(panel.close, [[1.3, 1.1], [1.4, 1.2]])


def test_multi_symbol_unsorted_within_symbol(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-03,AAA,1,2,1,1.4\n"
        "2024-01-02,BBB,1,2,1,1.1\n"
        "2024-01-02,AAA,1,2,1,1.3\n"
    )
    expected = r"row 3 \(ts 2024-01-02, symbol 'AAA'\) comes after row 1"
    with pytest.warns(DataWarning, match=expected):
        panel = load_bars(write(tmp_path, "mu.csv", text))
    np.testing.assert_array_equal(panel.close[:, 0], [1.3, 1.4])
    assert panel.close[0, 1] == 1.1 and np.isnan(panel.close[1, 1])


def test_unsorted_reports_first_step_back_in_file_order(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-03,BBB,1,2,1,1.1\n"
        "2024-01-02,BBB,1,2,1,1.2\n"
        "2024-01-03,AAA,1,2,1,1.3\n"
        "2024-01-02,AAA,1,2,1,1.4\n"
    )
    with pytest.warns(DataWarning) as record:
        load_bars(write(tmp_path, "u2.csv", text))
    msg = str(record[0].message)
    assert "row 2 (ts 2024-01-02, symbol 'BBB') comes after row 1" in msg
    assert "2 rows step back in time" in msg


# --------------------------------------------------------------------------- selection


LONG = (
    "ts,symbol,open,high,low,close\n"
    "2024-01-02,AAA,1,2,1,1.1\n"
    "2024-01-02,BBB,1,2,1,1.2\n"
    "2024-01-03,AAA,1,2,1,1.3\n"
    "2024-01-03,BBB,1,2,1,-1\n"
    "2024-01-04,AAA,1,2,1,1.5\n"
)


def test_symbol_filter_keeps_one_and_skips_others_problems(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    panel = load_quietly(path, symbol="AAA")
    assert panel.symbols == ("AAA",)
    np.testing.assert_array_equal(panel.close[:, 0], [1.1, 1.3, 1.5])
    # BBB's bad close is reported with its row number in the file
    msg = error_of(path, symbol="BBB")
    assert "row 4 (ts 2024-01-03, symbol 'BBB') has -1.0" in msg


def test_unknown_symbol(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    msg = error_of(path, symbol="AAB")
    assert "long.csv: no symbol 'AAB'" in msg and "2 symbols: AAA, BBB" in msg
    assert "Did you mean 'AAA'?" in msg
    assert "Did you mean 'BBB'?" in error_of(path, symbol="bbb")


def test_start_end_inclusive(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    panel = load_quietly(path, symbol="AAA", start="2024-01-03", end=dt.date(2024, 1, 4))
    assert list(panel.ts) == [day("2024-01-03"), day("2024-01-04")]
    panel = load_quietly(path, end="2024-01-02")
    assert list(panel.ts) == [day("2024-01-02")] and panel.symbols == ("AAA", "BBB")


def test_end_date_includes_the_whole_day(tmp_path):
    text = HEADER + "2024-01-02 09:30,1,2,1,1.5,1\n2024-01-02 16:00,1,2,1,1.5,1\n"
    path = write(tmp_path, "intraday.csv", text)
    assert load_quietly(path, end="2024-01-02").n_bars == 2
    assert load_quietly(path, end="2024-01-02 12:00").n_bars == 1
    # an explicit datetime is taken literally: midnight is before the first bar
    assert "no bars up to 2024-01-02 00:00:00" in error_of(path, end=dt.datetime(2024, 1, 2))


def test_tz_aware_bounds_compare_in_utc(tmp_path):
    text = HEADER + "2024-01-02 04:00,1,2,1,1.5,1\n2024-01-02 06:00,1,2,1,1.5,1\n"
    path = write(tmp_path, "utc.csv", text)
    panel = load_quietly(path, start="2024-01-02T10:00:00+05:00")
    assert list(panel.ts) == [day("2024-01-02T06:00")]


def test_window_drops_symbols_without_bars(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    panel = load_quietly(path, start="2024-01-04")
    assert panel.symbols == ("AAA",)


def test_window_drops_leading_symbol(tmp_path):
    text = (
        "ts,symbol,open,high,low,close\n"
        "2024-01-02,AAA,1,2,1,1.1\n"
        "2024-01-02,BBB,1,2,1,1.2\n"
        "2024-01-03,BBB,1,2,1,1.3\n"
        "2024-01-03,CCC,1,2,1,1.4\n"
    )
    panel = load_quietly(write(tmp_path, "lead.csv", text), start="2024-01-03")
    assert panel.symbols == ("BBB", "CCC")
    np.testing.assert_array_equal(panel.close, [[1.3, 1.4]])


def test_empty_window(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    msg = error_of(path, start="2030-01-01", end="2030-12-31")
    assert "long.csv: no bars between 2030-01-01 and 2030-12-31" in msg
    assert "the data covers 2024-01-02 to 2024-01-04" in msg


def test_bad_bounds():
    with pytest.raises(ParameterError, match="not a date"):
        load_bars(pd.DataFrame(), start="yesterday-ish")
    with pytest.raises(ParameterError, match="after end"):
        load_bars(pd.DataFrame(), start="2024-02-01", end="2024-01-01")


# --------------------------------------------------------------------------- unreadable


def test_unknown_extension(tmp_path):
    msg = error_of(write(tmp_path, "bars.xlsx", "x"))
    assert "bars.xlsx" in msg and "unknown file type '.xlsx'" in msg
    assert ".parquet" in msg and ".csv" in msg


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.parquet") == (
        f"no such file: {tmp_path / 'nope.parquet'}. Fix: correct the path (a relative path "
        f"starts from the working directory)."
    )


def test_text_renamed_parquet(tmp_path):
    msg = error_of(write(tmp_path, "fake.parquet", GOOD))
    assert "fake.parquet: not a Parquet file" in msg and "rename it to .csv" in msg


def test_random_bytes_parquet_and_csv(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (tmp_path / "noise.parquet").write_bytes(noise)
    (tmp_path / "noise.csv").write_bytes(noise + b"\x00")
    assert "noise.parquet: not a Parquet file" in error_of(tmp_path / "noise.parquet")
    assert "noise.csv: not a CSV text file" in error_of(tmp_path / "noise.csv")


def test_truncated_parquet(tmp_path):
    path = tmp_path / "good.parquet"
    pq.write_table(pa.table({"ts": [1]}), path)
    (tmp_path / "cut.parquet").write_bytes(path.read_bytes()[:-20])
    msg = error_of(tmp_path / "cut.parquet")
    assert "cut.parquet: cannot read as Parquet" in msg and "truncated or corrupted" in msg


def test_parquet_named_csv(tmp_path):
    pq.write_table(pa.table({"ts": [1]}), tmp_path / "p.csv")
    assert "this is a Parquet file, not CSV" in error_of(tmp_path / "p.csv")


def test_ragged_csv(tmp_path):
    msg = error_of(write(tmp_path, "ragged.csv", HEADER + "2024-01-02,1,2\n"))
    assert "ragged.csv: cannot read as CSV" in msg


def test_empty_file_and_header_only(tmp_path):
    assert "empty.csv: the file is empty" in error_of(write(tmp_path, "empty.csv", ""))
    assert "head.csv: no data rows" in error_of(write(tmp_path, "head.csv", HEADER))
    assert "<pandas DataFrame>: no data rows" in error_of(
        pd.DataFrame({c: [] for c in ["ts", "open", "high", "low", "close"]})
    )


def test_unsupported_source_type():
    assert "cannot load bars from a list" in error_of([1, 2, 3])


# --------------------------------------------------------------------------- save / properties


def test_save_bars_round_trip(tmp_path):
    path = write(tmp_path, "long.csv", LONG.replace("-1\n", "1.4\n"))
    panel = load_quietly(path, start="2024-01-02")
    out = save_bars(panel, tmp_path / "sub" / "out.parquet")
    table = pq.read_table(out)
    assert table.column_names == ["ts", "symbol", "open", "high", "low", "close"]
    assert table.num_rows == 5
    back = load_quietly(out)
    assert back.symbols == panel.symbols
    np.testing.assert_array_equal(back.ts, panel.ts)
    for name in panel.fields:
        np.testing.assert_array_equal(back.fields[name], panel.fields[name])
    assert back.meta["volume_missing"] is True


def test_save_drops_bars_without_close(tmp_path):
    panel = load_quietly(write(tmp_path, "g.csv", LONG.replace("2024-01-03,BBB,1,2,1,-1\n", "")))
    assert np.isnan(panel.close).sum() == 2
    table = pq.read_table(save_bars(panel, tmp_path / "o.parquet"))
    assert table.num_rows == 4
    assert table.column("symbol").to_pylist() == ["AAA", "BBB", "AAA", "AAA"]


@settings(max_examples=40, deadline=None)
@given(
    cells=st.sets(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=28),
    seed=st.integers(0, 2**32 - 1),
)
def test_pivot_matches_pandas(cells, seed):
    rng = np.random.default_rng(seed)
    cells = list(cells)
    rng.shuffle(cells)  # any row order, including unsorted
    t = np.array([c[0] for c in cells])
    close = rng.uniform(1, 100, len(cells)).round(4)
    df = pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(t, unit="D"),
            "symbol": [f"S{c[1]}" for c in cells],
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": rng.integers(0, 10, len(cells)).astype(float),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        panel = load_bars(df)
    expected = df.pivot(index="ts", columns="symbol", values="close").sort_index()
    assert panel.symbols == tuple(sorted(expected.columns))
    np.testing.assert_array_equal(panel.ts, expected.index.to_numpy().astype("datetime64[ns]"))
    np.testing.assert_array_equal(panel.close, expected[list(panel.symbols)].to_numpy())
    assert panel.source == "<pandas DataFrame>"


def test_the_bundled_sp500_documents_its_missing_opens_and_does_not_warn(tmp_path):
    bundled = ROOT / "datasets" / "sp500_daily.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        panel = load_bars(bundled)
    assert panel.meta["missing"]["open"] == 5075
    assert "datasets/README.md" in panel.meta["documented_gaps"]["open"]
    # The same bars without the file's own note: the user is told.
    table = pq.read_table(bundled)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table.replace_schema_metadata(None), plain)
    with pytest.warns(DataWarning, match="'open' is missing .NaN. in 5075 of 24777 rows"):
        load_bars(plain)
    # A missing open outside the documented years is still reported.
    opens = table.column("open").to_numpy(zero_copy_only=False).copy()
    opens[-1] = np.nan
    later = tmp_path / "later.parquet"
    pq.write_table(table.set_column(2, "open", pa.array(opens)), later)
    with pytest.warns(DataWarning, match="5076 of 24777 rows, from 1962-01-02 to 2026"):
        load_bars(later)


def test_documented_gaps_metadata_that_is_not_json_is_named(tmp_path):
    table = pq.read_table(ROOT / "datasets" / "sp500_daily.parquet")
    broken = tmp_path / "broken.parquet"
    pq.write_table(table.replace_schema_metadata({b"engine.documented_gaps": b"{open"}), broken)
    with pytest.raises(DataError, match="broken.parquet: the Parquet metadata "
                                        "'engine.documented_gaps' must be JSON"):
        load_bars(broken)
