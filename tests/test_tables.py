"""Report tables (engine.analysis.tables) on hand-computed curves and a hand-built run."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import make_bars

import engine
from engine.analysis import metrics as m
from engine.analysis.tables import (
    DRAWDOWN_COLUMNS,
    HIT_RATE_COLUMNS,
    YEARLY_COLUMNS,
    drawdown_periods,
    drawdown_table,
    hit_rate_table,
    yearly_table,
)


def days(n, start="2024-01-01"):
    return pd.date_range(start, periods=n, freq="D").to_numpy()


def d(i, start="2024-01-01"):
    return (pd.Timestamp(start) + pd.Timedelta(days=i)).date()


# --------------------------------------------------------------------------- drawdowns


def test_drawdown_periods_docstring_example():
    assert drawdown_periods([100, 120, 90, 110, 125, 100]) == [(1, 2, 4), (4, 5, None)]
    assert drawdown_periods([100, 100, 101]) == []


def test_known_drawdowns_peak_trough_recovery_depth_length():
    # E = [100 (cash), 120, 90, 110, 125, 100]; bar i is E[i + 1], dated day i.
    table = drawdown_table([120, 90, 110, 125, 100], days(5), 100.0)
    assert table.columns == list(DRAWDOWN_COLUMNS)
    first, second = table.to_dicts()
    assert first == {"rank": 1, "peak_ts": d(0), "trough_ts": d(1), "recovery_ts": d(3),
                     "depth": pytest.approx(0.25), "length": 3, "bars_to_trough": 1,
                     "peak_equity": 120.0, "trough_equity": 90.0}
    assert second == {"rank": 2, "peak_ts": d(3), "trough_ts": d(4), "recovery_ts": None,
                      "depth": pytest.approx(0.2), "length": 1, "bars_to_trough": 1,
                      "peak_equity": 125.0, "trough_equity": 100.0}


def test_peak_at_the_starting_cash_has_no_date_and_deepest_first():
    # Falls from the start (peak = cash, before the first bar), recovers, then a smaller dip.
    equity = [95, 80, 100, 101, 99, 102]
    table = drawdown_table(equity, days(6), 100.0)
    rows = table.to_dicts()
    assert rows[0]["peak_ts"] is None and rows[0]["trough_ts"] == d(1)
    assert rows[0]["recovery_ts"] == d(2) and rows[0]["length"] == 3
    assert rows[0]["depth"] == pytest.approx(0.2)
    assert rows[1]["peak_ts"] == d(3) and rows[1]["depth"] == pytest.approx(2 / 101)
    assert drawdown_table(equity, days(6), 100.0, n=1).height == 1


def test_no_drawdown_gives_an_empty_table_with_the_columns():
    table = drawdown_table([100, 101, 102], days(3), 100.0)
    assert table.height == 0 and table.columns == list(DRAWDOWN_COLUMNS)


def test_drawdowns_agree_with_the_metrics_on_random_walks():
    rng = np.random.default_rng(7)
    for _ in range(20):
        equity = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
        E = m.equity_curve(equity, 100.0)
        table = drawdown_table(equity, days(300), 100.0, n=10_000)
        assert table["depth"][0] == pytest.approx(m.max_drawdown(E), rel=1e-12)
        assert table["length"].max() == m.max_drawdown_duration(E)
        assert table["depth"].is_sorted(descending=True)


def test_intraday_timestamps_stay_datetimes():
    ts = pd.date_range("2024-01-01 09:30", periods=3, freq="h").to_numpy()
    table = drawdown_table([90, 95, 101], ts, 100.0)
    assert table.schema["peak_ts"] == pl.Datetime("ns")
    assert table["trough_ts"][0] == dt.datetime(2024, 1, 1, 9, 30)


# --------------------------------------------------------------------------- years


def _trades(rows):
    return pl.DataFrame(rows, schema={"exit_ts": pl.Datetime("ns"), "pnl": pl.Float64,
                                      "return_pct": pl.Float64}, orient="row")


def test_yearly_return_volatility_sharpe_drawdown_trades_by_hand():
    ts = pd.to_datetime(["2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03",
                         "2024-01-04"]).to_numpy()
    equity = [110.0, 99.0, 108.9, 98.01, 107.811]  # +10%, -10%, +10%, -10%, +10%
    trades = _trades([
        (dt.datetime(2023, 12, 29), 5.0, 0.05),
        (dt.datetime(2024, 1, 3), -3.0, -0.03),
        (dt.datetime(2024, 1, 4), 0.0, 0.0),      # zero P&L: counts, is not a hit
        (None, None, None),                       # still open: not counted
    ])
    table = yearly_table(equity, ts, 100.0, trades, periods_per_year=252)
    assert table.columns == list(YEARLY_COLUMNS)
    y23, y24 = table.to_dicts()
    # 2023: curve [100, 110, 99]; r = [0.1, -0.1]: mean 0, sd 0.1*sqrt(2)
    assert y23["year"] == 2023 and y23["bars"] == 2
    assert y23["return"] == pytest.approx(-0.01)
    assert y23["volatility"] == pytest.approx(0.1 * math.sqrt(2) * math.sqrt(252))
    assert y23["sharpe"] == pytest.approx(0.0, abs=1e-12)
    assert y23["max_drawdown"] == pytest.approx(0.1)
    assert (y23["trades"], y23["hit_rate"]) == (1, 1.0)
    # 2024: curve [99, 108.9, 98.01, 107.811]; r = [0.1, -0.1, 0.1]
    sd = math.sqrt(((0.1 - 0.1 / 3) ** 2 * 2 + (-0.1 - 0.1 / 3) ** 2) / 2)
    assert y24["return"] == pytest.approx(107.811 / 99 - 1)
    assert y24["volatility"] == pytest.approx(sd * math.sqrt(252))
    assert y24["sharpe"] == pytest.approx((0.1 / 3) / sd * math.sqrt(252))
    assert y24["max_drawdown"] == pytest.approx(0.1)
    assert (y24["trades"], y24["hit_rate"]) == (2, 0.0)


def test_yearly_365_preset_and_one_bar_year():
    ts = pd.to_datetime(["2023-12-31", "2024-01-01", "2024-01-02"]).to_numpy()
    table = yearly_table([101.0, 102.0, 101.0], ts, 100.0, None, periods_per_year="365")
    y23, y24 = table.to_dicts()
    assert y23["bars"] == 1 and y23["volatility"] is None and y23["sharpe"] is None
    assert y23["trades"] == 0 and y23["hit_rate"] is None
    r = np.array([102 / 101 - 1, 101 / 102 - 1])
    assert y24["volatility"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(365))


# --------------------------------------------------------------------------- hit rates


def test_hit_rate_table_by_hand():
    trades = pl.DataFrame({
        "exit_ts": [dt.datetime(2024, 1, i) for i in (2, 3, 4, 5)] + [None],
        "pnl": [10.0, -5.0, 0.0, 4.0, None],
        "return_pct": [0.1, -0.05, 0.0, 0.04, None],
        "bars_held": [2, 4, 1, 3, None],
        "exit_reason": ["signal", "stop_loss", "signal", "take_profit", None],
    })
    groups = {"entry_label": (["fear", "fear", None, "greed", "fear"], ["greed", "fear"])}
    table = hit_rate_table(trades, groups)
    assert table.columns == list(HIT_RATE_COLUMNS)
    rows = {(r["group"], r["value"]): r for r in table.to_dicts()}
    assert list(rows) == [("all", "all"), ("exit_reason", "signal"),
                          ("exit_reason", "stop_loss"), ("exit_reason", "take_profit"),
                          ("entry_label", "greed"), ("entry_label", "fear"),
                          ("entry_label", "(none)")]
    overall = rows["all", "all"]
    assert (overall["trades"], overall["hits"], overall["hit_rate"]) == (4, 2, 0.5)
    assert overall["avg_return"] == pytest.approx(0.0225)
    assert overall["total_pnl"] == 9.0 and overall["avg_bars_held"] == 2.5
    assert rows["exit_reason", "signal"]["hit_rate"] == 0.5  # the zero trade is no hit
    assert rows["entry_label", "fear"]["trades"] == 2  # the open trade is left out
    assert rows["entry_label", "fear"]["hit_rate"] == 0.5
    assert rows["entry_label", "(none)"]["hits"] == 0
    # Evidence. Clopper-Pearson for 2 of 4: the 2.5% quantile of Beta(2, 3) and the
    # 97.5% quantile of Beta(3, 2), 0.06759 and 0.93241; for 1 of 1 the lower end is
    # 0.025 ** (1 / 1) and the upper 1; for 0 of 1, 0 and 1 - 0.025.
    assert overall["hit_rate_low"] == pytest.approx(0.067586, abs=1e-6)
    assert overall["hit_rate_high"] == pytest.approx(0.932414, abs=1e-6)
    greed = rows["entry_label", "greed"]
    assert (greed["hit_rate_low"], greed["hit_rate_high"]) == pytest.approx((0.025, 1.0))
    none = rows["entry_label", "(none)"]
    assert (none["hit_rate_low"], none["hit_rate_high"]) == pytest.approx((0.0, 0.975))
    assert greed["base_rate"] == 0.5 and greed["difference"] == 0.5
    # Fisher, greed (1 trade, 1 hit) against the other 3 (1 hit): P(1 hit) = C(2,1)C(2,0)/C(4,1)
    # = 1/2 and P(0 hits) = 1/2, so every table is as likely: p = 1.
    assert greed["p_value"] == pytest.approx(1.0)
    assert overall["p_value"] is None and overall["difference"] == 0.0


def test_hit_rate_table_without_trades():
    empty = pl.DataFrame(schema={"exit_ts": pl.Datetime("ns"), "pnl": pl.Float64,
                                 "return_pct": pl.Float64, "bars_held": pl.Int64,
                                 "exit_reason": pl.String})
    table = hit_rate_table(empty)
    assert table.to_dicts() == [{"group": "all", "value": "all", "trades": 0, "hits": 0,
                                 "hit_rate": None, "avg_return": None, "total_pnl": 0.0,
                                 "avg_bars_held": None, "hit_rate_low": None,
                                 "hit_rate_high": None, "base_rate": None, "difference": None,
                                 "p_value": None}]


# --------------------------------------------------------------------------- a hand-built run


class Labelled(engine.Strategy):
    """Buys at bar 2 and 7, sells at bar 5 and 9; labels alternate A (even) / B (odd)."""

    def on_bar(self, bar):
        if bar.index in (2, 7):
            self.buy(size=10)
        elif bar.index in (5, 9):
            self.close()

    def entry_labels(self, data):
        return np.where(np.arange(len(data)) % 2 == 0, "A", "B")

    def entry_condition(self, data):
        return np.arange(len(data)) == 2


def hand_run():
    # Opens: bar 3 at 10 (trade 1 fills), bar 6 at 12 (exit: +20), bar 8 at 12, bar 10 at 11.
    closes = [10, 10, 10, 10, 11, 12, 12, 12, 12, 11, 11, 11]
    rows = [(c, c, c, c) for c in closes]
    return engine.run(Labelled, data=make_bars(rows), cash=1_000.0)


def test_tables_of_a_hand_built_run():
    result = hand_run()
    assert result.trades["pnl"].to_list() == [20.0, -10.0]
    rows = {(r["group"], r["value"]): r for r in result.hit_rates().to_dicts()}
    # Labels are read on the signal bars (2 -> "A", 7 -> "B"), not the fill bars (3, 8).
    assert rows["entry_label", "A"]["hit_rate"] == 1.0
    assert rows["entry_label", "B"]["hit_rate"] == 0.0
    assert rows["entry_condition", "true"]["trades"] == 1
    assert rows["entry_condition", "false"]["hits"] == 0
    assert rows["all", "all"]["hit_rate"] == 0.5
    assert rows["exit_reason", "close"]["trades"] == 2

    drawdowns = result.drawdowns()
    # Equity 1000 until bar 3, +10/+10 to 1020 at bar 5 (exit fills at bar 6's open 12),
    # entry at bar 8 (12), 1010 at bar 9's close 11, exit at bar 10 (11): never recovered.
    assert drawdowns.height == 1
    row = drawdowns.row(0, named=True)
    assert row["depth"] == pytest.approx(10 / 1020)
    assert row["recovery_ts"] is None
    assert row["depth"] == pytest.approx(result.metrics["max_drawdown"])

    yearly = result.yearly()
    assert yearly["year"].to_list() == [2024] and yearly["trades"][0] == 2
    assert yearly["return"][0] == pytest.approx(result.metrics["total_return"])
    assert yearly["sharpe"][0] == pytest.approx(result.metrics["sharpe"])


def test_a_result_pickles_with_its_report_inputs():
    import pickle

    result = hand_run()
    copy = pickle.loads(pickle.dumps(result))
    assert copy.instance is None  # the strategy object (and its compiled broker) stays behind
    assert copy.hit_rates().equals(result.hit_rates())
    assert copy.event_study().equals(result.event_study())
