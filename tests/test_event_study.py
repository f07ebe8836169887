"""Event study: forward returns after signals, on series whose forward returns are known."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_bars

import engine
from engine.analysis.event_study import (
    EVENT_COLUMNS,
    EVIDENCE_COLUMNS,
    episodes,
    event_table,
    forward_returns,
)
from engine.errors import StrategyError


def test_forward_returns_of_a_geometric_series():
    close = 100 * 1.01 ** np.arange(30)
    for h in (1, 5, 21):
        fr = forward_returns(close, h)
        np.testing.assert_allclose(fr[:-h], 1.01 ** h - 1, rtol=1e-12)
        assert np.isnan(fr[-h:]).all()


def test_forward_returns_count_each_symbols_own_bars():
    close = np.array([[10.0, 20.0], [11.0, np.nan], [12.0, 22.0], [13.0, 24.0]])
    fr = forward_returns(close, 1)
    np.testing.assert_allclose(fr[:, 0], [0.1, 1 / 11, 1 / 12, np.nan])
    # symbol 2 has no bar on row 1: its next bar after row 0 is row 2
    np.testing.assert_allclose(fr[:, 1], [0.1, np.nan, 24 / 22 - 1, np.nan])
    with pytest.raises(ValueError):
        forward_returns(close, 0)


def test_episodes_are_first_bars_of_runs():
    cond = np.array([True, True, False, True, False, False, True, True])
    assert np.flatnonzero(episodes(cond)).tolist() == [0, 3, 6]


def test_event_table_statistics_by_hand():
    close = np.array([100.0, 110.0, 99.0, 99.0, 120.0, 60.0])
    mask = np.array([True, True, True, False, True, True])
    table = event_table(close, {"sig": mask}, horizons=(1, 2), claims={})
    assert table.columns == [*EVENT_COLUMNS, *EVIDENCE_COLUMNS]
    h1, h2 = table.to_dicts()
    # h=1 forward returns at bars 0,1,2,4: +10%, -10%, 0%, -50%; bar 5 has none (the end).
    assert h1["count"] == 4
    assert h1["share_positive"] == 0.25          # a zero return is not a success
    assert h1["mean_return"] == pytest.approx((0.1 - 0.1 + 0.0 - 0.5) / 4)
    assert h1["median_return"] == pytest.approx(-0.05)
    assert h1["claimed_rate"] is None
    # h=2 at bars 0,1,2: -1%, -10%, 99->120
    assert h2["count"] == 3
    assert h2["share_positive"] == pytest.approx(1 / 3)
    assert h2["median_return"] == pytest.approx(-0.01)
    # Evidence: h=1, signals at bars 0, 1, 2, 4 (gap 2 > 1 before bar 4: two episodes);
    # the base is every bar 0..4 with a forward return: +, -, 0, +21%, - -> 2 of 5.
    assert h1["episodes"] == 2
    assert h1["base_rate"] == pytest.approx(2 / 5)
    assert h1["difference"] == pytest.approx(0.25 - 0.4)
    # The window (bars 0..4) holds two blocks of 2h = 2 bars: it has an interval.
    assert h1["rate_low"] <= h1["share_positive"] <= h1["rate_high"]
    # h=2: window 0..2 is 3 bars, fewer than two blocks of 4: no interval, no p-value.
    assert h2["episodes"] == 1 and h2["rate_low"] is None and h2["p_value"] is None
    plain = event_table(close, {"sig": mask}, horizons=(1,), evidence=False)
    assert plain.columns == list(EVENT_COLUMNS)


def test_event_table_with_no_forward_return_counts_zero():
    table = event_table(np.array([1.0, 2.0, 3.0]), {"late": np.array([False, False, True])},
                        horizons=(5,))
    row = table.row(0, named=True)
    assert row["count"] == 0 and row["share_positive"] is None and row["mean_return"] is None


# --------------------------------------------------------------------------- from a run


def zigzag_closes(n=40):
    """Up 2% a bar for 10 bars, down 1% a bar for 10, and again."""
    steps = np.where((np.arange(1, n) // 10) % 2 == 0, 1.02, 0.99)
    return 100 * np.concatenate(([1.0], np.cumprod(steps)))


class Dips(engine.Strategy):
    """Condition: the close fell on this bar. Labels: "down"/"up". Buys the first dip."""

    claims = {"entry_condition": 0.85, "down": {5: 0.7}, "entries": 0.5}

    def on_bar(self, bar):
        if bar.index == 0:
            return
        if self.position == 0 and self.data.close[-1] < self.data.close[-2]:
            self.buy(size=1)
        elif self.position > 0 and bar.index % 10 == 5:
            self.close()

    def entry_condition(self, data):
        close = data.close
        fell = np.zeros(len(close), dtype=bool)
        fell[1:] = close[1:] < close[:-1]
        return fell

    def entry_labels(self, data):
        return np.where(self.entry_condition(data), "down", "up")


def run_dips():
    close = zigzag_closes()
    return close, engine.run(Dips, data=make_bars([(c, c, c, c) for c in close]), cash=1e6)


def test_event_study_of_a_run_matches_direct_forward_returns():
    close, result = run_dips()
    table = result.event_study(horizons=(2, 5))
    rows = {(r["signal"], r["horizon"]): r for r in table.to_dicts()}
    assert [s for s, h in rows if h == 2] == ["all_bars", "entries", "entry_condition",
                                              "entry_episode", "label:down", "label:up"]
    fell = np.zeros(close.size, dtype=bool)
    fell[1:] = close[1:] < close[:-1]
    first = fell & ~np.concatenate(([False], fell[:-1]))
    for h in (2, 5):
        fwd = np.full(close.size, np.nan)
        fwd[:-h] = close[h:] / close[:-h] - 1
        for name, mask in (("entry_condition", fell), ("entry_episode", first),
                           ("label:down", fell), ("label:up", ~fell),
                           ("all_bars", np.ones_like(fell))):
            values = fwd[mask]
            values = values[np.isfinite(values)]
            row = rows[name, h]
            assert row["count"] == values.size, (name, h)
            assert row["share_positive"] == pytest.approx((values > 0).mean()), (name, h)
            assert row["mean_return"] == pytest.approx(values.mean()), (name, h)
            assert row["median_return"] == pytest.approx(np.median(values)), (name, h)
    # claims: by "entry_condition" (episodes inherit it), by label and horizon, "entries"
    assert rows["entry_condition", 2]["claimed_rate"] == 0.85
    assert rows["entry_episode", 5]["claimed_rate"] == 0.85
    assert rows["label:down", 5]["claimed_rate"] == 0.7
    assert rows["label:down", 2]["claimed_rate"] is None
    assert rows["label:up", 2]["claimed_rate"] is None
    assert rows["entries", 2]["claimed_rate"] == 0.5


def test_entries_are_the_bars_orders_were_placed_on():
    close, result = run_dips()
    # Falls on bars 10-19 and 30-39. Buys when flat on a fall: placed at bars 10, 16
    # (after the exit placed at 15 filled at 16), 30 and 36; each fills a bar later.
    placed = [10, 16, 30, 36]
    assert [str(t)[:10] for t in result.trades["entry_ts"]] == [
        "2024-01-12", "2024-01-18", "2024-02-01", "2024-02-07"]
    table = result.event_study(horizons=(1,))
    entries = table.filter(table["signal"] == "entries").row(0, named=True)
    expected = [close[t + 1] / close[t] - 1 for t in placed]
    assert entries["count"] == 4
    assert entries["mean_return"] == pytest.approx(np.mean(expected))
    assert entries["share_positive"] == 0.0


def test_several_symbols_are_pooled():
    n = 12
    frames = []
    for symbol, growth in (("UP", 1.01), ("DOWN", 0.98)):
        close = 50 * growth ** np.arange(n)
        frame = make_bars([(c, c, c, c) for c in close], symbol=symbol)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)

    class EveryThird(engine.Strategy):
        def on_bar(self, bar):
            pass

        def entry_condition(self, data):
            cond = np.zeros((len(data), len(data.symbols)), dtype=bool)
            cond[::3] = True
            return cond

    result = engine.run(EveryThird, data=data)
    row = result.event_study(horizons=(3,)).filter(
        pl_col_eq("signal", "entry_condition")).row(0, named=True)
    # bars 0, 3, 6 of both symbols have a 3-bar forward return (bar 9 is too late)
    assert row["count"] == 6
    assert row["share_positive"] == 0.5
    assert row["mean_return"] == pytest.approx(((1.01 ** 3 - 1) + (0.98 ** 3 - 1)) / 2)


def pl_col_eq(name, value):
    import polars as pl

    return pl.col(name) == value


def test_a_hook_with_a_wrong_shape_is_a_strategy_error():
    class Bad(engine.Strategy):
        def on_bar(self, bar):
            pass

        def entry_condition(self, data):
            return np.ones(3, dtype=bool)

    result = engine.run(Bad, data=make_bars([(1, 1, 1, 1)] * 5))
    with pytest.raises(StrategyError, match=r"Bad.entry_condition has shape \(3,\)"):
        result.event_study()


def test_strategy_without_hooks_has_base_rate_and_entries_only():
    close = zigzag_closes(30)
    result = engine.run("strategies/sma_cross.py", data=make_bars([(c, c, c, c) for c in close]),
                        fast=2, slow=4)
    signals = set(result.event_study()["signal"])
    assert signals <= {"all_bars", "entries"} and "all_bars" in signals
    assert math.isnan(result.metrics["beta"]) or result.metrics["beta"] >= 0


# --------------------------------------------------------------------------- optional statistics


def test_forward_extremes_are_the_worst_and_best_close_ahead():
    from engine.analysis.event_study import forward_extremes

    close = np.array([100.0, 90.0, 120.0, 80.0, 100.0])
    worst, best = forward_extremes(close, 2)
    np.testing.assert_allclose(worst[:3], [-0.10, 80 / 90 - 1, 80 / 120 - 1])
    np.testing.assert_allclose(best[:3], [0.20, 120 / 90 - 1, 100 / 120 - 1])
    assert np.isnan(worst[3:]).all() and np.isnan(best[3:]).all()
    # a symbol's gap does not shorten its window: it counts its own bars
    panel = np.array([[10.0, 10.0], [9.0, np.nan], [12.0, 8.0], [11.0, 12.0]])
    worst, best = forward_extremes(panel, 2)
    assert worst[0, 1] == pytest.approx(-0.2) and best[0, 1] == pytest.approx(0.2)
    assert np.isnan(worst[1, 1]) and np.isnan(worst[2, 1])


def test_move_threshold_adds_the_shares_that_fell_and_rose():
    from engine.analysis.event_study import MOVE_COLUMNS

    close = np.array([100.0, 95.0, 89.0, 100.0, 111.0, 100.0, 100.0])
    everything = np.ones(close.size, dtype=bool)
    table = event_table(close, {"all": everything}, horizons=(2,), move_threshold=0.10)
    assert table.columns == [*EVENT_COLUMNS, *EVIDENCE_COLUMNS, *MOVE_COLUMNS]
    row = table.row(0, named=True)
    # windows of bars 0-4: bar 0 falls to 89 (-11%), bar 2 rises to 111 (+24.7%),
    # bar 3 rises to 111 (+11%); bar 1 (95 -> 89, 100: -6.3%) and bar 4 neither
    assert row["count"] == 5
    assert row["share_fell"] == pytest.approx(1 / 5)
    assert row["share_rose"] == pytest.approx(2 / 5)
    # without it the table is as before
    assert event_table(close, {"all": everything}, horizons=(2,)).columns == [
        *EVENT_COLUMNS, *EVIDENCE_COLUMNS]
    with pytest.raises(ValueError, match="move_threshold"):
        event_table(close, {"all": everything}, horizons=(2,), move_threshold=-0.1)


def test_signals_from_drops_earlier_signals_but_keeps_their_episodes():
    from engine.analysis.event_study import event_study

    class Rising(engine.Strategy):
        def on_bar(self, bar):
            pass

        def entry_condition(self, data):
            out = np.zeros(len(data), dtype=bool)
            out[3:12] = True  # one run, from bar 3 (2024-01-04) to bar 11
            return out

    close = 100 * 1.01 ** np.arange(20)
    result = engine.run(Rising, data=make_bars([(c, c, c, c) for c in close]))
    table = event_study(result, (2,), signals_from="2024-01-06")  # bar 5
    rows = {r["signal"]: r for r in table.to_dicts()}
    assert rows["all_bars"]["count"] == 13          # bars 5-17
    assert rows["entry_condition"]["count"] == 7    # bars 5-11
    assert rows["entry_episode"]["count"] == 0      # the run began on bar 3, before the date
    assert event_study(result, (2,), signals_from="2024-01-02").filter(
        pl_col_eq("signal", "entry_episode"))["count"][0] == 1


def weekday_bars(month_returns: dict, start="2020-01-01", end="2022-12-31"):
    """Weekday bars whose close moves only on each month's first bar, so that a month's
    return from month-end closes is ``month_returns.get(month, 0)``."""
    days = pd.bdate_range(start, end)
    close, level = [], 100.0
    for i, day in enumerate(days):
        if i and day.month != days[i - 1].month:
            level *= 1 + month_returns.get(day.month, 0.0)
        close.append(level)
    return days, np.array(close)


def test_monthly_returns_and_the_calendar_table_by_hand():
    from engine.analysis.event_study import MONTH_COLUMNS, calendar_month_table, monthly_returns

    days, close = weekday_bars({12: 0.03, 4: 0.01, 9: -0.02})
    months = monthly_returns(close, days.values)
    # Jan 2020 has no previous month-end and Dec 2022 is the data's last month: both left out
    assert months.height == 34
    assert (months["year"][0], months["month"][0]) == (2020, 2)
    assert (months["year"][-1], months["month"][-1]) == (2022, 11)
    dec = months.filter(pl_col_eq("month", 12))
    assert dec["return"].to_list() == pytest.approx([0.03, 0.03])
    assert str(dec["month_end"][0]) == "2020-12-31"
    table = calendar_month_table(close, days.values)
    assert table.columns == list(MONTH_COLUMNS)
    rows = {r["month"]: r for r in table.to_dicts()}
    assert rows[12]["mean_return"] == pytest.approx(0.03) and rows[12]["rank"] == 1
    assert rows[4]["rank"] == 2 and rows[9]["rank"] == 12
    assert rows[1]["count"] == 2 and rows[12]["count"] == 2   # Jan 2021, Jan 2022
    assert rows[12]["share_positive"] == 1.0 and rows[1]["share_positive"] == 0.0
    # the last year only: Dec 2021 .. Nov 2022
    last = {r["month"]: r["count"] for r in calendar_month_table(close, days.values, 1).to_dicts()}
    assert set(last.values()) == {1}
