"""Dates and time zones: text dates read one way per column, the range of datetime64[ns],
zones kept from the data to the results, ``date_format=``/``--date-format`` and
``tz=``/``--tz`` through every way a run starts, and symbols spelt two ways."""

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine.data.bars import DataWarning, load_bars, save_bars
from engine.data.feeds import Feed, join_feeds
from engine.errors import DataError, ParameterError

HEADER = "ts,open,high,low,close,volume\n"
STRATEGIES = __import__("pathlib").Path(__file__).resolve().parents[1] / "strategies"


def bars_csv(tmp_path, stamps, name="bars.csv", symbols=None):
    rows = []
    for i, stamp in enumerate(stamps):
        price = 100 + i % 7
        sym = f"{symbols[i]}," if symbols else ""
        rows.append(f"{stamp},{sym}{price},{price + 1},{price - 1},{price + 0.5},1000")
    header = "ts,symbol,open,high,low,close,volume\n" if symbols else HEADER
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_bars(*args, **kwargs)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_bars(*args, **kwargs)
    return str(info.value)


def days(*texts):
    return [np.datetime64(t, "ns") for t in texts]


# --------------------------------------------------------------------------- day and month


def test_ambiguous_day_month_dates_are_refused_naming_both_readings(tmp_path):
    path = bars_csv(tmp_path, ["01/02/2020", "02/02/2020", "03/02/2020"])
    msg = error_of(path)
    assert ("column 'ts' has '01/02/2020' at row 1, which reads as 2020-01-02 month-first "
            "or 2020-02-01 day-first") in msg
    assert "--date-format '%d/%m/%Y' (day first)" in msg
    assert "--date-format '%m/%d/%Y' (month first)" in msg
    assert "date_format='%d/%m/%Y'" in msg


def test_date_format_settles_the_order(tmp_path):
    path = bars_csv(tmp_path, ["01/02/2020", "02/02/2020", "03/02/2020"])
    day_first = quietly(path, date_format="%d/%m/%Y")
    assert list(day_first.ts) == days("2020-02-01", "2020-02-02", "2020-02-03")
    month_first = quietly(path, date_format="%m/%d/%Y")
    assert list(month_first.ts) == days("2020-01-02", "2020-02-02", "2020-03-02")


def test_one_day_above_12_makes_the_whole_column_day_first(tmp_path):
    # Row 1 alone would read as 2 January month-first; the 13 in row 3 settles the
    # column, so every row is read day-first (the old loader guessed row by row).
    path = bars_csv(tmp_path, ["02/01/2024", "05/01/2024", "13/01/2024"])
    assert list(quietly(path).ts) == days("2024-01-02", "2024-01-05", "2024-01-13")


def test_one_second_number_above_12_makes_the_column_month_first(tmp_path):
    path = bars_csv(tmp_path, ["01.02.2024 09:30", "01.13.2024 09:30", "02.01.2024 09:30"])
    assert list(quietly(path).ts) == days("2024-01-02T09:30", "2024-01-13T09:30",
                                          "2024-02-01T09:30")


def test_day_first_and_month_first_in_one_column_are_refused(tmp_path):
    msg = error_of(bars_csv(tmp_path, ["13/01/2024", "14/01/2024", "01/15/2024"]))
    assert ("mixes day-first and month-first dates: row 1 has '13/01/2024' (day first) but "
            "row 3 has '01/15/2024' (month first)") in msg


def test_dates_that_read_the_same_either_way_are_not_ambiguous(tmp_path):
    path = bars_csv(tmp_path, ["01/01/2024", "02/02/2024"])
    assert list(quietly(path).ts) == days("2024-01-01", "2024-02-02")


def test_a_date_that_does_not_exist_in_the_settled_order_is_named(tmp_path):
    msg = error_of(bars_csv(tmp_path, ["28/02/2023", "29/02/2023"]))
    assert "column 'ts' has '29/02/2023', not a date, at row 2" in msg


def test_text_not_matching_date_format_is_named(tmp_path):
    path = bars_csv(tmp_path, ["01/02/2020", "2020-02-02"])
    msg = error_of(path, date_format="%d/%m/%Y")
    assert ("column 'ts' has '2020-02-02' at row 2, which does not match the date format "
            "'%d/%m/%Y'; 1 row fails this check") in msg


def test_a_date_format_without_codes_is_a_parameter_error(tmp_path):
    path = bars_csv(tmp_path, ["2020-01-02"])
    with pytest.raises(ParameterError, match=r"'DD/MM/YYYY' is not a strptime format"):
        load_bars(path, date_format="DD/MM/YYYY")


def test_year_first_and_month_name_dates_read_as_written(tmp_path):
    assert list(quietly(bars_csv(tmp_path, ["2024/1/2", "2024/1/3"])).ts) == days(
        "2024-01-02", "2024-01-03")
    assert list(quietly(bars_csv(tmp_path, ["\"Jan 2, 2024\"", "\"Feb 1, 2024\""], "m.csv")).ts) \
        == days("2024-01-02", "2024-02-01")


# --------------------------------------------------------------------------- range


@pytest.mark.parametrize("stamps, shown", [
    (["13/01/2300", "14/01/2300"], "'13/01/2300' at row 1"),     # once wrapped to 1715
    (["2024-01-02", "2300-01-02"], "'2300-01-02' at row 2"),
    (["\"Jan 2, 1500\"", "\"Jan 3, 2024\""], "'Jan 2, 1500' at row 1"),
])
def test_dates_outside_the_nanosecond_range_get_one_message(tmp_path, stamps, shown):
    msg = error_of(bars_csv(tmp_path, stamps))
    assert f"column 'ts' has {shown}, outside 1677-09-22..2262-04-11" in msg
    assert "Fix: drop or correct those rows." in msg


def test_a_typed_timestamp_outside_the_range_is_named_with_its_row(tmp_path):
    table = pa.table({"ts": pa.array([0, 10**10], pa.timestamp("s")), "open": [1.0, 1.0],
                      "high": [2.0, 2.0], "low": [1.0, 1.0], "close": [1.5, 1.5]})
    pq.write_table(table, tmp_path / "far.parquet")
    msg = error_of(tmp_path / "far.parquet")
    assert "column 'ts' has '2286-11-20 17:46:40' at row 2, outside 1677-09-22..2262-04-11" in msg


# --------------------------------------------------------------------------- zones in


def test_naive_and_aware_stamps_mixed_are_refused(tmp_path):
    msg = error_of(bars_csv(tmp_path, ["2024-01-02 09:30:00", "2024-01-03 09:30:00+00:00"]))
    assert ("mixes timestamps with a time zone (row 2: '2024-01-03 09:30:00+00:00') and "
            "without one (row 1: '2024-01-02 09:30:00')") in msg


def test_one_whole_hour_offset_names_a_fixed_zone(tmp_path):
    panel = quietly(bars_csv(tmp_path, ["2024-01-02 09:30:00-05:00", "2024-01-03 09:30:00-05:00"]))
    assert panel.meta["tz"] == "Etc/GMT+5"      # POSIX sign: five hours behind UTC
    assert list(panel.ts) == days("2024-01-02T14:30", "2024-01-03T14:30")
    assert list(panel.local_ts) == days("2024-01-02T09:30", "2024-01-03T09:30")


def test_parquet_zone_is_kept_and_the_panel_holds_utc(tmp_path):
    stamps = pd.date_range("2024-01-02 09:30", periods=3, freq="D", tz="America/New_York")
    frame = pd.DataFrame({"ts": stamps, "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5})
    panel = quietly(frame)
    assert panel.meta["tz"] == "America/New_York"
    assert list(panel.ts) == days("2024-01-02T14:30", "2024-01-03T14:30", "2024-01-04T14:30")


def test_tz_takes_naive_stamps_as_local_and_refuses_a_skipped_hour(tmp_path):
    path = bars_csv(tmp_path, ["2024-03-08 09:30:00", "2024-03-11 09:30:00"])
    panel = quietly(path, tz="America/New_York")
    assert panel.meta["tz"] == "America/New_York"
    # 09:30 is 14:30 UTC before the switch to daylight saving time, 13:30 after
    assert list(panel.ts) == days("2024-03-08T14:30", "2024-03-11T13:30")
    gap = bars_csv(tmp_path, ["2024-03-10 01:30:00", "2024-03-10 02:30:00"], "gap.csv")
    msg = error_of(gap, tz="America/New_York")
    assert ("column 'ts' has 2024-03-10 02:30:00 at row 2, a local time that does not exist "
            "in America/New_York") in msg


def test_an_unknown_zone_suggests_the_right_name(tmp_path):
    with pytest.raises(ParameterError, match=r"Did you mean 'America/New_York'\?"):
        load_bars(bars_csv(tmp_path, ["2024-01-02"]), tz="America/NewYork")


def test_bounds_are_local_days_of_the_data(tmp_path):
    # Tokyo midnight is 15:00 UTC the day before: end='2024-01-03' must end at Tokyo's
    # midnight, not UTC's, which would keep the bar of the 4th.
    stamps = pd.date_range("2024-01-02", periods=4, freq="D", tz="Asia/Tokyo")
    frame = pd.DataFrame({"ts": stamps, "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5})
    panel = quietly(frame, start="2024-01-03", end="2024-01-04")
    assert list(panel.local_ts) == days("2024-01-03", "2024-01-04")


def test_save_bars_keeps_the_zone(tmp_path):
    stamps = pd.date_range("2024-01-02 09:30", periods=3, freq="D", tz="America/New_York")
    frame = pd.DataFrame({"ts": stamps, "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5})
    panel = quietly(frame)
    again = quietly(save_bars(panel, tmp_path / "saved.parquet"))
    assert again.meta["tz"] == "America/New_York" and list(again.ts) == list(panel.ts)


# --------------------------------------------------------------------------- zones out


@pytest.fixture
def new_york(tmp_path):
    """Ten weekdays of 09:30 New York bars, as a time-zone-aware Parquet file."""
    stamps = pd.bdate_range("2024-03-04", periods=10).tz_localize(None) + pd.Timedelta("9.5h")
    close = 100 + np.array([0, 1, 2, 3, 2, 1, 2, 3, 4, 5], dtype=float)
    frame = pd.DataFrame({"ts": stamps.tz_localize("America/New_York"), "open": close,
                          "high": close + 1, "low": close - 1, "close": close, "volume": 1e3})
    path = tmp_path / "ny.parquet"
    frame.to_parquet(path)
    return path


def test_results_show_the_data_zone(new_york):
    result = engine.run(STRATEGIES / "buy_and_hold.py", new_york)
    assert result.equity["ts"].dtype == pl.Datetime("ns", "America/New_York")
    first = result.equity["ts"][0]
    assert (first.hour, first.minute) == (9, 30)      # not 14:30, not naive
    for column in ("entry_ts", "exit_ts"):
        assert result.trades[column].dtype == pl.Datetime("ns", "America/New_York")
    for column in ("placed_ts", "done_ts"):
        assert result.orders[column].dtype == pl.Datetime("ns", "America/New_York")
    assert result.settings["tz"] == "America/New_York"
    # the instants are unchanged: 09:30 EST is 14:30 UTC, 09:30 EDT (from the 10th) 13:30
    utc = result.equity["ts"].dt.convert_time_zone("UTC").dt.hour().to_list()
    assert utc[:5] == [14] * 5 and utc[5:] == [13] * 5


def test_tz_converts_the_results(new_york, tmp_path):
    result = engine.run(STRATEGIES / "buy_and_hold.py", new_york, tz="Europe/London")
    assert result.equity["ts"].dtype == pl.Datetime("ns", "Europe/London")
    assert result.equity["ts"][0].hour == 14
    out = result.to_dir(tmp_path / "out", report=False)
    assert pq.read_schema(out / "trades.parquet").field("entry_ts").type == pa.timestamp(
        "ns", "Europe/London")


def test_daily_bars_in_an_eastern_zone_keep_their_calendar(tmp_path):
    # Tokyo midnight is the previous day in UTC: read in UTC, Monday's bar would fall on a
    # Sunday (annualised as if weekends traded) and 1 January's bar in the year before.
    stamps = pd.bdate_range("2024-01-01", periods=30).tz_localize("Asia/Tokyo")
    close = 100 + np.sin(np.arange(30))
    frame = pd.DataFrame({"ts": stamps, "open": close, "high": close + 1, "low": close - 1,
                          "close": close, "volume": 1e3})
    result = engine.run(STRATEGIES / "buy_and_hold.py", frame)
    assert result.settings["periods_per_year"] == 252
    assert result.settings["start"] == "2024-01-01"
    assert result.yearly()["year"].to_list() == [2024]
    assert result.equity["ts"][0].date().isoformat() == "2024-01-01"
    peaks = result.drawdowns()["trough_ts"]
    assert peaks.dtype == pl.Date      # daily bars: dates, those of Tokyo


def test_intraday_report_tables_carry_the_zone(new_york):
    frame = pd.read_parquet(new_york)
    stamps = pd.date_range("2024-03-04 09:30", periods=40, freq="15min", tz="America/New_York")
    close = 100 + np.sin(np.arange(40))
    frame = pd.DataFrame({"ts": stamps, "open": close, "high": close + 1, "low": close - 1,
                          "close": close})
    result = engine.run(STRATEGIES / "sma_cross.py", frame, fast=2, slow=4)
    table = result.drawdowns()
    assert table["trough_ts"].dtype == pl.Datetime("ns", "America/New_York")
    assert 9 <= table["trough_ts"][0].hour <= 20


def test_naive_feed_dates_are_local_days_of_the_bars(tmp_path):
    # A value dated 2024-01-03 belongs to that Tokyo day: visible on its bar, as it would be
    # with naive bars (read as UTC midnight, it would wait one bar more).
    stamps = pd.date_range("2024-01-02", periods=4, freq="D", tz="Asia/Tokyo")
    frame = pd.DataFrame({"ts": stamps, "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5})
    panel = quietly(frame)
    feed = pd.DataFrame({"ts": ["2024-01-03"], "value": [7.0]})
    joined = join_feeds(panel, {"f": Feed(feed, columns=["value"])})
    assert np.isnan(joined.fields["value"][0, 0]) and joined.fields["value"][1, 0] == 7.0


def test_feed_date_format(tmp_path):
    panel = quietly(bars_csv(tmp_path, ["2024-02-01", "2024-02-02", "2024-02-03"]))
    feed = pd.DataFrame({"ts": ["01/02/2024", "02/02/2024"], "value": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"Feed\(date_format='%d/%m/%Y'\) \(day first\)"):
        join_feeds(panel, {"f": Feed(feed, columns=["value"])})
    joined = join_feeds(panel, {"f": Feed(feed, columns=["value"], date_format="%d/%m/%Y")})
    assert list(joined.fields["value"][:, 0]) == [1.0, 2.0, 2.0]


def test_stream_run_shows_the_zone(new_york, tmp_path):
    result = engine.stream_run(STRATEGIES / "sma_cross.py", new_york, fast=2, slow=3,
                               chunk_bars=4, out=tmp_path / "stream")
    assert result.settings["tz"] == "America/New_York"
    equity = pl.read_parquet(tmp_path / "stream" / "equity.parquet")
    assert equity["ts"].dtype == pl.Datetime("ns", "America/New_York")
    assert equity["ts"][0].hour == 9
    whole = engine.run(STRATEGIES / "sma_cross.py", new_york, fast=2, slow=3)
    assert equity["ts"].to_list() == whole.equity["ts"].to_list()


# --------------------------------------------------------------------------- options


def test_date_format_and_tz_reach_compare_and_sweep(tmp_path):
    stamps = [f"{d:02}/03/2024" for d in range(1, 12)]
    path = bars_csv(tmp_path, stamps)
    with pytest.raises(DataError, match="reads as 2024-01-03 month-first"):
        engine.run(STRATEGIES / "sma_cross.py", path)
    table = engine.compare([STRATEGIES / "sma_cross.py"], path, date_format="%d/%m/%Y",
                           tz="Europe/Paris")
    assert table["period"][0] == "2024-03-01 → 2024-03-11"
    frame = engine.sweep(STRATEGIES / "sma_cross.py", {"fast": [2, 3]}, data=path,
                         date_format="%d/%m/%Y", tz="Europe/Paris", slow=5, n_jobs=1,
                         progress=False)
    assert frame["error"].is_null().all() and (frame["bars"] == 11).all()
    with pytest.raises(ParameterError, match="'tz' cannot be swept"):
        engine.sweep(STRATEGIES / "sma_cross.py", {"tz": ["UTC"]}, data=path, n_jobs=1,
                     progress=False)


def test_cli_date_format_and_tz(tmp_path, capsys):
    from engine.cli import main

    path = bars_csv(tmp_path, [f"{d:02}/03/2024 09:30" for d in range(1, 12)])
    assert main(["run", str(STRATEGIES / "buy_and_hold.py"), "--data", str(path),
                 "--date-format", "%d/%m/%Y %H:%M", "--tz", "America/New_York",
                 "--json"]) == 0
    import json

    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["tz"] == "America/New_York" and settings["start"] == "2024-03-01"


# --------------------------------------------------------------------------- symbols, text


def test_symbols_differing_by_case_warn_and_stay_apart(tmp_path):
    path = bars_csv(tmp_path, ["2024-01-02", "2024-01-02", "2024-01-03"],
                    symbols=["AAPL", "aapl ", "AAPL"])
    with pytest.warns(DataWarning, match=r"differ only by case: 'AAPL' \(row 1\) and 'aapl' "
                                         r"\(row 2, written 'aapl '\)"):
        panel = load_bars(path)
    assert panel.symbols == ("AAPL", "aapl")


def test_symbols_with_surrounding_spaces_are_one_symbol(tmp_path):
    path = bars_csv(tmp_path, ["2024-01-02", "2024-01-03", "2024-01-04"],
                    symbols=["AAPL", " AAPL", "AAPL "])
    with pytest.warns(DataWarning, match=r"'AAPL' \(row 1\), ' AAPL' \(row 2\) and 'AAPL ' "
                                         r"\(row 3\) are read as 'AAPL'"):
        panel = load_bars(path)
    assert panel.symbols == ("AAPL",) and panel.n_bars == 3
    # spaces alone (no second spelling) are dropped without a word
    only = bars_csv(tmp_path, ["2024-01-02", "2024-01-03"], "only.csv", symbols=["MSFT "] * 2)
    assert quietly(only).symbols == ("MSFT",)


def test_prices_stored_as_text_are_read_with_a_warning(tmp_path):
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                          "open": ["1", "1"], "high": [2.0, 2.0], "low": [1.0, 1.0],
                          "close": ["1.5", "1.25"]})
    path = tmp_path / "text.parquet"
    frame.to_parquet(path)
    with pytest.warns(DataWarning, match=r"columns 'open' and 'close' hold numbers stored as "
                                         r"text"):
        panel = load_bars(path)
    assert list(panel.close[:, 0]) == [1.5, 1.25]


def test_a_word_in_a_text_close_is_quoted_not_shown_as_nan(tmp_path):
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                          "open": 1.0, "high": 2.0, "low": 1.0, "close": ["1.5", "-"]})
    frame.to_parquet(tmp_path / "dash.parquet")
    msg = error_of(tmp_path / "dash.parquet")
    assert "column 'close' must hold numbers, but row 2 (ts 2024-01-03) has '-'" in msg


# --------------------------------------------------------------------------- limits


def test_integers_beyond_float64_are_named(tmp_path):
    table = pa.table({"ts": pa.array(pd.to_datetime(["2024-01-02", "2024-01-03"])),
                      "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [1.0, 1.0],
                      "close": [1.5, 1.5], "volume": pa.array([10, 2**53 + 1], pa.uint64())})
    msg = error_of(table)
    assert ("column 'volume' has 9007199254740993 at row 2 (ts 2024-01-03), beyond 2**53 = "
            "9007199254740992") in msg


def test_prices_above_the_bound_are_refused(tmp_path):
    text = HEADER + "2024-01-02,1,2,1,1.5,1\n2024-01-03,1,2e15,1,1.5,1\n"
    (tmp_path / "big.csv").write_text(text)
    msg = error_of(tmp_path / "big.csv")
    assert "column 'high' has 2e+15 at row 2 (ts 2024-01-03), above 1e+15" in msg


def test_unreadable_file_names_the_permission_fix(tmp_path, monkeypatch):
    import builtins

    path = bars_csv(tmp_path, ["2024-01-02"])
    real = builtins.open

    def refusing(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    msg = error_of(path)
    assert msg == (f"{path}: permission denied; this user may not read the file. Fix: make it "
                   f"readable (e.g. chmod a+r {path}, as its owner) or copy it to a folder "
                   f"you can read.")


@pytest.mark.parametrize("call, expected", [
    ("self.buy(size=1e300)", "size is 1e+300, beyond 1e+15"),
    ("self.buy(size=10**400)", "size is a 401-digit integer, beyond 1e+15"),
    ("self.buy(cash=1e20)", "cash is 1e+20, beyond 1e+15"),
    ("self.buy(percent=5000)", "percent is 5000, beyond 1000"),
    ("self.order_target_shares(-1e300)", "shares is -1e+300, beyond 1e+15"),
])
def test_absurd_order_sizes_are_refused_in_readable_numbers(tmp_path, call, expected):
    from engine.errors import OrderError

    strategy = tmp_path / "absurd.py"
    strategy.write_text("from engine import Strategy\n\n\nclass Absurd(Strategy):\n"
                        f"    def on_bar(self, bar):\n        {call}\n")
    path = bars_csv(tmp_path, ["2024-01-02", "2024-01-03"])
    with pytest.raises(OrderError) as info:
        engine.run(strategy, path)
    assert expected in str(info.value)
    assert len(str(info.value)) < 400


def test_a_strategy_without_hooks_is_named_before_the_data_loads(tmp_path):
    from engine.errors import StrategyError

    strategy = tmp_path / "idle.py"
    strategy.write_text("from engine import Strategy\n\n\nclass Idle(Strategy):\n    pass\n")
    with pytest.raises(StrategyError) as info:
        engine.run(strategy, tmp_path / "no_such_file.csv")
    assert "Idle defines neither on_bar (event path) nor signals" in str(info.value)
    assert "idle.py" in str(info.value) and "engine/strategy" not in str(info.value)


class _MorningBuyer(engine.Strategy):
    """Records the local hour each bar reads, on both paths."""

    seen = []

    def on_bar(self, bar):
        _MorningBuyer.seen.append((int(self.data.ts[-1].astype("datetime64[h]").astype(int) % 24),
                                   int(self.data.local_ts[-1].astype("datetime64[h]")
                                       .astype(int) % 24), len(self.data.local_ts)))


def test_strategies_read_local_times_of_zoned_data_beside_utc():
    stamps = pd.date_range("2024-03-08 09:30", periods=3, freq="D", tz="America/New_York")
    frame = pd.DataFrame({"ts": stamps, "open": 1.0, "high": 2.0, "low": 1.0, "close": 1.5})
    _MorningBuyer.seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine.run(_MorningBuyer, frame)
    # 09:30 New York is 14:30 UTC, then 13:30 after the switch to daylight saving time
    assert _MorningBuyer.seen == [(14, 9, 1), (14, 9, 2), (13, 9, 3)]
    from engine.strategy.base import VectorData

    panel = quietly(frame)
    local = VectorData(panel).local_ts
    assert list(local) == days("2024-03-08T09:30", "2024-03-09T09:30", "2024-03-10T09:30")
    assert panel.local_ts is local       # computed once per panel
