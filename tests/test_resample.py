"""``engine.indicators.resample``: higher timeframes shown only once their period is over."""

import numpy as np
import pandas as pd
import pytest

import engine
from engine.errors import LookAheadError, ParameterError
from engine.indicators import resample


def business_days(start, end, holidays=()):
    days = pd.bdate_range(start, end)
    return days[~days.isin(pd.to_datetime(list(holidays)))]


def as_ts(index):
    return np.asarray(index.values, dtype="datetime64[ns]")


def test_weekly_value_shows_from_the_friday_that_completes_the_week():
    days = business_days("2024-01-01", "2024-01-19")       # three Mon-Fri weeks
    close = np.arange(1.0, len(days) + 1)                   # 1..15
    out = resample(close, as_ts(days), "W-FRI")
    assert np.isnan(out[:4]).all()                          # Mon 1 .. Thu 4: nothing yet
    assert out[4:9].tolist() == [5.0] * 5                   # Fri 5 .. Thu 11: week 1's close
    assert out[9:14].tolist() == [10.0] * 5
    assert out[14] == 15.0


def test_a_friday_holiday_shows_the_week_on_the_next_monday():
    days = business_days("2024-01-01", "2024-01-19", holidays=["2024-01-12"])
    close = np.arange(1.0, len(days) + 1)                   # Thu 11th is the 9th bar: 9
    out = resample(close, as_ts(days), "W-FRI", "max")
    thursday = list(days).index(pd.Timestamp("2024-01-11"))
    monday = thursday + 1
    assert out[thursday] == 5.0                             # still week 1's value
    assert out[monday] == 9.0                               # Thursday's week, seen Monday


def test_the_last_unfinished_period_never_shows():
    days = business_days("2024-01-01", "2024-01-10")        # ends on a Wednesday
    out = resample(np.arange(1.0, len(days) + 1), as_ts(days), "W-FRI")
    assert out[-3:].tolist() == [5.0, 5.0, 5.0]


def test_partial_gives_the_period_to_date_value():
    days = business_days("2024-01-01", "2024-01-12")
    high = np.array([3, 5, 4, 2, 1, 2, 7, 1, 1, 1], dtype=float)
    out = resample(high, as_ts(days), "W-FRI", "max", partial=True)
    assert out.tolist() == [3, 5, 5, 5, 5, 2, 7, 7, 7, 7]
    assert resample(high, as_ts(days), "W-FRI", "sum", partial=True)[:5].tolist() == [
        3, 8, 12, 14, 15]


def test_month_ending_on_a_weekend_shows_on_the_next_month_first_bar():
    days = business_days("2024-01-29", "2024-04-02")
    close = np.arange(len(days), dtype=float)
    out = resample(close, as_ts(days), "M")
    jan31 = list(days).index(pd.Timestamp("2024-01-31"))   # a Wednesday: by calendar
    assert out[jan31] == close[jan31] and np.isnan(out[jan31 - 1])
    fri = list(days).index(pd.Timestamp("2024-03-29"))     # the 31st is a Sunday
    assert out[fri] == close[list(days).index(pd.Timestamp("2024-02-29"))]
    assert out[fri + 1] == close[fri]                      # Monday 1 April


def test_intraday_bars_show_a_day_from_the_next_day_first_bar():
    ts = pd.date_range("2024-01-01 00:00", periods=48, freq="h")
    out = resample(np.arange(48.0), as_ts(ts), "D", "last")
    assert np.isnan(out[:24]).all()                       # the 00:00 bar is not the day's last
    assert (out[24:] == 23.0).all()


@pytest.mark.parametrize("rule", ["W-FRI", "W", "M", "Q", "D"])
@pytest.mark.parametrize("how", ["last", "first", "max", "mean", "count"])
@pytest.mark.parametrize("partial", [False, True])
def test_every_prefix_gives_the_prefix_of_the_result(rule, how, partial):
    rng = np.random.default_rng(1)
    days = business_days("2023-11-01", "2024-03-31",
                         holidays=["2023-11-24", "2023-12-25", "2024-01-01", "2024-03-29"])
    hours = pd.date_range("2024-01-01", periods=120, freq="5h")
    for ts in (as_ts(days), as_ts(hours)):
        values = rng.normal(size=(len(ts), 2))
        values[rng.random(values.shape) < 0.1] = np.nan
        whole = resample(values, ts, rule, how, partial=partial)
        for cut in range(1, len(ts) + 1):
            np.testing.assert_array_equal(
                resample(values[:cut], ts[:cut], rule, how, partial=partial), whole[:cut])


def daily_bars(days):
    close = 100 + np.cumsum(np.random.default_rng(5).normal(size=len(days)))
    return pd.DataFrame({"ts": days, "open": close, "high": close + 1, "low": close - 1,
                         "close": close, "volume": 1e6})


class WeeklyFilter(engine.Strategy):
    """Long while the close is above last week's close (the completed week)."""

    leak: bool = False

    def weekly(self, close, ts):
        if self.leak:   # the hand-written pandas version: the week's close filled back
            series = pd.Series(close, index=pd.DatetimeIndex(ts))
            return series.resample("W-FRI").last().reindex(series.index, method="bfill").values
        return resample(close, ts, "W-FRI")

    def signals(self, data):
        close = np.asarray(data.close)
        above = close > self.weekly(close, data.ts)
        return engine.Signals(entries=above, exits=~above)


def test_a_back_filled_weekly_value_is_refused_and_resample_passes():
    data = daily_bars(business_days("2022-01-03", "2023-06-30", holidays=["2022-07-01"]))
    with pytest.raises(LookAheadError, match="entries at"):
        engine.run(WeeklyFilter, data=data, leak=True)
    res = engine.run(WeeklyFilter, data=data, audit="full")
    assert len(res.trades) > 5


def test_resample_in_self_I_sees_the_week_only_from_its_friday():
    days = business_days("2024-01-01", "2024-01-19", holidays=["2024-01-12"])
    data = daily_bars(days)
    seen = []

    class Event(engine.Strategy):
        def on_start(self):
            self.weekly = self.I(resample, self.data.close, self.data.ts, "W-FRI")

        def on_bar(self, bar):
            seen.append(self.weekly[-1])

    engine.run(Event, data=data, audit="full")
    close = data["close"].to_numpy()
    expected = resample(close, as_ts(days), "W-FRI")
    np.testing.assert_array_equal(np.array(seen), expected)
    assert np.isnan(seen[3]) and seen[4] == close[4]


def test_bad_arguments_name_the_fix():
    ts = as_ts(business_days("2024-01-01", "2024-01-05"))
    with pytest.raises(ParameterError, match=r"rule must be one of .* got 'fortnight'"):
        resample(np.ones(5), ts, "fortnight")
    with pytest.raises(ParameterError, match="how must be one of"):
        resample(np.ones(5), ts, "W", how="median")
    with pytest.raises(ParameterError, match="5 bars but ts has 4"):
        resample(np.ones(5), ts[:4], "W")
    with pytest.raises(ParameterError, match="ascending"):
        resample(np.ones(5), ts[::-1], "W")


def test_zoned_daily_bars_use_the_local_calendar_through_local_ts():
    # local-midnight daily bars in New York are 05:00 UTC: by ts they are not date bars
    # (a week shows on the next Monday), by local_ts they are (it shows on the Friday)
    days = business_days("2024-01-01", "2024-01-12")
    frame = daily_bars(days)
    frame["ts"] = days.tz_localize("America/New_York")
    seen = {}

    class Zoned(engine.Strategy):
        def on_start(self):
            self.by_utc = self.I(resample, self.data.close, self.data.ts, "W-FRI")
            self.by_local = self.I(resample, self.data.close, self.data.local_ts, "W-FRI")

        def on_bar(self, bar):
            seen.setdefault("utc", []).append(self.by_utc[-1])
            seen.setdefault("local", []).append(self.by_local[-1])

    engine.run(Zoned, data=frame, audit="full")
    close = frame["close"].to_numpy()
    assert np.isnan(seen["utc"][4]) and seen["utc"][5] == close[4]
    assert seen["local"][4] == close[4]
