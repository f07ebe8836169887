"""The margin account, market-on-close and good_till per order, volume-limited fills.

Every expected fill, price, cash and exit reason below is worked out by hand in the
comments; bars are ``(open, high, low, close)`` tuples on consecutive days.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import SCRIPT_CASH, ledger_fills, make_bars, order_row, run_script

import engine
from engine.backtest.reference import fifo_ledger
from engine.errors import OrderError, ParameterError

CASH = SCRIPT_CASH  # the cash of run_script


run, order = run_script, order_row


def ts(i):
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)


def at(price):
    return (price, price, price, price)


def assert_ledger_identity(res):
    """equity = cash + sum(position x close) at every bar, positions rebuilt from fills."""
    close = res.panel.fields["close"]
    symbols = list(res.panel.symbols)
    held = np.zeros(len(symbols))
    bar_of = {pd.Timestamp(t): i for i, t in enumerate(pd.DatetimeIndex(res.panel.ts))}
    fills = res.orders.filter(res.orders["status"] == "filled").to_dicts()
    for i in range(res.panel.n_bars):
        for f in fills:
            if bar_of[pd.Timestamp(f["done_ts"])] == i:
                held[symbols.index(f["symbol"])] += f["fill_qty"]
        value = float(np.nansum(held * close[i]))
        assert res.equity["equity"][i] == pytest.approx(res.equity["cash"][i] + value,
                                                        rel=1e-12, abs=1e-9)


# --------------------------------------------------------------------------- margin account


def test_leverage_one_is_the_cash_account_and_rejects_a_purchase_beyond_cash():
    res = run([at(100)] * 3, {0: lambda s: s.buy(size=150)})
    assert order(res, 0)["status"] == "rejected"
    assert "insufficient cash" in order(res, 0)["reason"]


def test_leverage_two_buys_on_margin_and_cash_goes_negative():
    # 150 at 100 = 15,000 <= 2 x 10,000: filled; cash 10,000 - 15,000 = -5,000
    rows = [at(100), at(100), at(110), at(90)]
    res = run(rows, {0: lambda s: s.buy(size=150)}, leverage=2)
    o = order(res, 0)
    assert (o["status"], o["fill_price"], o["fill_qty"]) == ("filled", 100.0, 150.0)
    assert res.equity["cash"].to_list() == [CASH, -5000.0, -5000.0, -5000.0]
    # equity = -5,000 + 150 x close
    assert res.equity["equity"].to_list() == [CASH, 10_000.0, 11_500.0, 8_500.0]
    assert res.metrics["margin_calls"] == 0
    assert_ledger_identity(res)


def test_an_order_beyond_buying_power_is_rejected_with_the_figures():
    # 250 at 100 = 25,000 > 2 x 10,000 = 20,000
    res = run([at(100)] * 3, {0: lambda s: s.buy(size=250)}, leverage=2)
    o = order(res, 0)
    assert o["status"] == "rejected"
    assert "insufficient buying power" in o["reason"]
    assert "25000.00" in o["reason"] and "20000.00" in o["reason"]
    assert "--leverage" in o["reason"]


def test_buying_power_is_leverage_times_equity_less_the_positions_held():
    # bar 1: 120 at 100 (12,000, cash -2,000); bar 2: 90 more at 100 would hold 21,000
    # > 20,000: rejected; 80 more (20,000) fits exactly
    rows = [at(100)] * 4
    res = run(rows, {0: lambda s: s.buy(size=120), 1: lambda s: s.buy(size=90)},
              leverage=2)
    assert order(res, 1)["status"] == "rejected"
    res = run(rows, {0: lambda s: s.buy(size=120), 1: lambda s: s.buy(size=80)},
              leverage=2)
    assert order(res, 1)["status"] == "filled"
    assert res.equity["cash"][-1] == -10_000.0


def test_a_short_uses_margin():
    # short 250 at 100 = 25,000 > 2 x 10,000: rejected; 200 fits
    rows = [at(100)] * 3
    res = run(rows, {0: lambda s: s.sell(size=250)}, leverage=2, shorting=True)
    assert order(res, 0)["status"] == "rejected"
    assert "insufficient buying power" in order(res, 0)["reason"]
    res = run(rows, {0: lambda s: s.sell(size=200)}, leverage=2, shorting=True)
    assert order(res, 0)["status"] == "filled"
    assert res.equity["cash"][-1] == 30_000.0


def test_maintenance_margin_call_liquidates_at_the_next_open():
    # 200 at 100: cash -10,000. Close 70: equity 4,000 >= 0.25 x 14,000 = 3,500, no call.
    # Close 62: equity -10,000 + 12,400 = 2,400 < 0.25 x 12,400 = 3,100: a margin call;
    # sold at the next open, 60: cash -10,000 + 12,000 = 2,000.
    rows = [at(100), at(100), (100, 100, 70, 70), (70, 70, 62, 62), (60, 61, 59, 61), at(61)]
    res = run(rows, {0: lambda s: s.buy(size=200)}, leverage=2)
    assert res.metrics["margin_calls"] == 1
    call = order(res, 1)
    assert (call["status"], call["tag"], call["fill_price"], call["fill_qty"]) == (
        "filled", "margin_call", 60.0, -200.0)
    assert call["placed_ts"] == ts(3) and call["done_ts"] == ts(4)
    assert "margin call at bar 3" in call["reason"]
    (trade,) = res.trades.to_dicts()
    assert trade["exit_reason"] == "margin_call"
    assert trade["pnl"] == 200 * (60.0 - 100.0)
    assert res.equity["cash"][4] == 2_000.0 and res.equity["equity"][-1] == 2_000.0
    assert_ledger_identity(res)


def test_margin_call_closes_the_largest_position_first_and_only_what_is_needed():
    # leverage 3: A 200 at 100 (20,000) and B 100 at 100 (10,000), cash -20,000.
    # Bar 2 closes A 80, B 90: equity -20,000 + 16,000 + 9,000 = 5,000 < 0.25 x 25,000
    # = 6,250. A (16,000) goes first; then 0.25 x 9,000 = 2,250 <= 5,000: B stays.
    # A sold at bar 3's open, 78: cash -20,000 + 15,600 = -4,400.
    a = make_bars([at(100), at(100), at(80), (78, 80, 78, 80), at(80)], symbol="A")
    b = make_bars([at(100), at(100), at(90), at(90), at(90)], symbol="B")
    data = pd.concat([a, b]).sort_values(["ts", "symbol"])

    def enter(s):
        s.buy(size=200, symbol="A")
        s.buy(size=100, symbol="B")

    res = run(None, {0: enter}, data=data, leverage=3)
    assert res.metrics["margin_calls"] == 1
    calls = res.orders.filter(res.orders["tag"] == "margin_call").to_dicts()
    assert [(c["symbol"], c["fill_price"], c["fill_qty"]) for c in calls] == [
        ("A", 78.0, -200.0)]
    assert res.equity["cash"][3] == -4_400.0
    assert res.equity["equity"][3] == -4_400.0 + 200 * 0 + 100 * 90.0
    assert_ledger_identity(res)


def test_margin_rate_is_charged_per_bar_on_borrowed_cash():
    # 150 at 100: cash -5,000. 0.0252 / 252 = 0.0001 a bar: 0.5 at bar 1's close,
    # then 5,000.5 x 0.0001 = 0.50005 at bar 2's.
    rows = [at(100)] * 3
    res = run(rows, {0: lambda s: s.buy(size=150)}, leverage=2, margin_rate=0.0252,
              periods_per_year=252)
    cash = res.equity["cash"].to_list()
    assert cash[1] == pytest.approx(-5000.5, rel=1e-15)
    assert cash[2] == pytest.approx(-5001.00005, rel=1e-15)
    assert res.metrics["margin_interest"] == pytest.approx(1.00005, rel=1e-12)
    (trade,) = res.trades.to_dicts()
    assert trade["costs"] == pytest.approx(1.00005, rel=1e-12)    # carried by the open lot
    assert_ledger_identity(res)


def test_default_settings_match_the_cash_account_exactly():
    rows = [(10, 11, 9, 10.5), (12, 13, 11, 12.5), (14, 15, 13, 14.5), (13, 14, 12, 13)]
    actions = {0: lambda s: s.buy(), 2: lambda s: s.sell()}
    plain = run(rows, actions)
    margin = run(rows, actions, leverage=1.0, maintenance_margin=0.25, margin_rate=0.0)
    assert plain.equity.equals(margin.equity)
    assert plain.trades.equals(margin.trades)


@pytest.mark.parametrize("name, value, words", [
    ("leverage", 0.5, "leverage must be a number >= 1"),
    ("leverage", float("nan"), "leverage must be a number >= 1"),
    ("maintenance_margin", 1.5, "maintenance_margin must be a fraction"),
    ("margin_rate", -0.1, "margin_rate must be a finite annual rate"),
    ("max_volume_share", 0.0, "max_volume_share must be a fraction"),
    ("max_volume_share", 2.0, "max_volume_share must be a fraction"),
])
def test_bad_account_values_name_the_parameter_and_the_cli_option(name, value, words):
    with pytest.raises(ParameterError) as info:
        run([at(100)] * 2, {}, **{name: value})
    assert words in str(info.value)
    assert f"--{name.replace('_', '-')}" in str(info.value)


def test_maintenance_margin_at_or_above_one_over_leverage_is_refused():
    with pytest.raises(ParameterError, match=r"below 1 / leverage = 0.5"):
        run([at(100)] * 2, {}, leverage=2, maintenance_margin=0.5)


# --------------------------------------------------------------------------- at= and good_till=


def test_at_close_fills_at_the_placing_bars_close_whatever_the_run_fill():
    rows = [(10, 11, 9, 10.5), (12, 13, 11, 12.5), (14, 15, 13, 14.5)]
    res = run(rows, {0: lambda s: s.buy(size=10, at="close"),
                     1: lambda s: s.buy(size=5)})
    o = order(res, 0)
    assert (o["fill_price"], o["done_ts"]) == (10.5, ts(0))
    assert res.equity["cash"][0] == CASH - 105.0
    assert order(res, 1)["fill_price"] == 14.0      # the run's own rule: next open


def test_at_open_fills_at_the_next_open_in_a_fill_close_run():
    rows = [(10, 11, 9, 10.5), (12, 13, 11, 12.5)]
    res = run(rows, {0: lambda s: s.buy(size=10, at="open")}, fill="close")
    assert (order(res, 0)["fill_price"], order(res, 0)["done_ts"]) == (12.0, ts(1))


def test_order_target_percent_at_close():
    # 50% of 10,000 at the close 10: 500 shares
    res = run([at(10), at(10)], {0: lambda s: s.order_target_percent(0.5, at="close")})
    assert (order(res, 0)["fill_qty"], order(res, 0)["done_ts"]) == (500.0, ts(0))


def test_good_till_bars_expires_an_unfilled_order_with_a_reason():
    # a limit at 9: bar 1's low 11 misses it; good_till=1 allows bar 1 only, so the
    # order expires on bar 2 although bar 2's low (8) would have filled it
    rows = [at(10), (12, 13, 11, 12), (10, 10, 8, 9)]
    res = run(rows, {0: lambda s: s.buy(size=10, limit=9, good_till=1)})
    o = order(res, 0)
    assert (o["status"], o["done_ts"], o["good_till_ts"]) == ("expired", ts(2), ts(1))
    assert "good_till 1" in o["reason"]
    res = run(rows, {0: lambda s: s.buy(size=10, limit=9, good_till=2)})
    assert (order(res, 0)["status"], order(res, 0)["fill_price"]) == ("filled", 9.0)


def test_good_till_a_date_is_inclusive():
    rows = [at(10), (12, 13, 11, 12), (10, 10, 8, 9), at(9)]
    res = run(rows, {0: lambda s: s.buy(size=10, limit=9, good_till="2024-01-03")})
    assert (order(res, 0)["status"], order(res, 0)["done_ts"]) == ("filled", ts(2))
    res = run(rows, {0: lambda s: s.buy(size=10, limit=9, good_till="2024-01-02")})
    o = order(res, 0)
    assert (o["status"], o["done_ts"]) == ("expired", ts(2))
    assert "good_till 2024-01-02" in o["reason"]


@pytest.mark.parametrize("kwargs, words", [
    ({"at": "noon"}, "at must be 'open' or 'close'"),
    ({"at": "close", "limit": 9}, "at='close' applies to market orders"),
    ({"good_till": 0}, "good_till must be a number of bars >= 1"),
    ({"good_till": "soon"}, "good_till must be a number of bars (>= 1) or a date"),
    ({"good_till": "2023-12-01"}, "ends before the first bar this order can fill on"),
])
def test_bad_at_and_good_till_name_the_argument(kwargs, words):
    with pytest.raises(OrderError) as info:
        run([at(10)] * 3, {0: lambda s: s.buy(size=1, **kwargs)})
    assert words in str(info.value)


# --------------------------------------------------------------------------- volume limit


def test_a_large_gtc_order_fills_in_parts_each_a_fill_and_the_ledger_stays_exact():
    # volume 1,000 a bar, max_volume_share 0.1: 100 shares a bar. Buy 250 at bar 0:
    # 100 at open 11 (bar 1), 100 at 12 (bar 2), 50 at 13 (bar 3). Sell 250 at bar 3:
    # 100 at 14, 100 at 15, 50 at 16, closing the lots first in, first out.
    rows = [at(10)] + [at(p) for p in (11, 12, 13, 14, 15, 16)]
    res = run(rows, {0: lambda s: s.buy(size=250), 3: lambda s: s.sell(size=250)},
              max_volume_share=0.1, commission_fixed=1.0)
    filled = res.orders.filter(res.orders["status"] == "filled")
    assert filled["fill_qty"].to_list() == [100.0, 100.0, 50.0, -100.0, -100.0, -50.0]
    assert filled["fill_price"].to_list() == [11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
    assert filled["continues_id"].to_list() == [None, 0, 1, None, 3, 4]
    assert "partial fill: 100 of 250" in order(res, 0)["reason"]
    assert "carried to order 1" in order(res, 0)["reason"]
    t = res.trades.to_dicts()
    assert [(r["size"], r["entry_price"], r["exit_price"]) for r in t] == [
        (100.0, 11.0, 14.0), (100.0, 12.0, 15.0), (50.0, 13.0, 16.0)]
    # each row: one entry fill's commission (1) and one exit fill's (1)
    assert [r["pnl"] for r in t] == [298.0, 298.0, 148.0]
    rows_ref, _ = fifo_ledger(ledger_fills(res), res.panel.fields["close"])
    assert [r["pnl"] for r in rows_ref] == pytest.approx([r["pnl"] for r in t], rel=1e-12)
    assert res.equity["equity"][-1] == CASH + 298 + 298 + 148
    assert_ledger_identity(res)


def test_a_day_order_fills_one_part_and_the_rest_is_cancelled():
    rows = [at(10), at(11), at(12)]
    res = run(rows, {0: lambda s: s.buy(size=250, tif="day")}, max_volume_share=0.1)
    assert len(res.orders) == 1
    o = order(res, 0)
    assert (o["status"], o["fill_qty"], o["fill_price"]) == ("filled", 100.0, 11.0)
    assert "the rest, 150, cancelled: a day order" in o["reason"]


def test_a_bar_with_too_little_volume_fills_nothing_and_the_order_waits():
    # volume 5 on bar 1: 0.1 x 5 = 0.5 share, none; bar 2 (volume 1,000) fills 50
    data = make_bars([at(10), at(11), at(12)])
    data.loc[1, "volume"] = 5.0
    res = run(None, {0: lambda s: s.buy(size=50)}, data=data, max_volume_share=0.1)
    assert (order(res, 0)["fill_price"], order(res, 0)["done_ts"]) == (12.0, ts(2))
    res = run(None, {0: lambda s: s.buy(size=50, tif="day")}, data=data,
              max_volume_share=0.1)
    assert order(res, 0)["status"] == "expired"
    assert "less than one share" in order(res, 0)["reason"]


def test_max_volume_share_needs_a_volume_column():
    data = make_bars([at(10)] * 2).drop(columns="volume")
    with pytest.raises(ParameterError, match="no volume column"):
        run(None, {}, data=data, max_volume_share=0.1)


def test_streaming_refuses_max_volume_share(tmp_path):
    path = tmp_path / "bars.parquet"
    make_bars([at(10)] * 5).to_parquet(path)

    class Hold(engine.Strategy):
        def signals(self, data):
            return engine.Signals(entries=np.ones((len(data), 1), bool),
                                  exits=np.zeros((len(data), 1), bool))

        def lookback(self, data):
            return 1

    with pytest.raises(ParameterError, match="max_volume_share=0.1 cannot stream"):
        engine.stream_run(Hold, path, max_volume_share=0.1)
    res = engine.stream_run(Hold, path, leverage=2.0)
    assert res.settings["leverage"] == 2.0


# --------------------------------------------------------------------------- benchmarks


def test_compare_buy_and_hold_is_runs_benchmark_on_a_wide_universe():
    # 40 symbols priced 900-1,290 and 10,000 of cash: 250 a symbol buys no whole share,
    # so a whole-share buy-and-hold would hold nothing; the row must be the benchmark.
    rng = np.random.default_rng(3)
    frames = []
    for k in range(40):
        path = (900 + 10 * k) * np.cumprod(1 + rng.normal(0, 0.01, 30))
        frames.append(make_bars([at(p) for p in path], symbol=f"S{k:02d}"))
    data = pd.concat(frames).sort_values(["ts", "symbol"])

    class Idle(engine.Strategy):
        def on_bar(self, bar):
            pass

    from engine.research.compare import run_all

    table, results, _ = run_all([Idle], data, cash=CASH,
                                commission=0.001)
    bench = results[0].metrics["benchmark_return"]
    row = table.filter(table["strategy"] == "BuyAndHold").row(0, named=True)
    assert row["total_return"] == pytest.approx(bench, rel=1e-9, abs=1e-12)
    assert results[1].metrics["rejected"] == 0
    # by hand: the mean of the 40 price returns, first close to last
    close = results[0].panel.fields["close"]
    assert bench == pytest.approx(np.mean(close[-1] / close[0]) - 1, rel=1e-12)


def test_benchmark_a_symbol_of_the_data_and_the_relative_metrics_by_hand():
    # A: 100, 110, 99, 108.9; B: 50, 55, 55, 60.5. Holding A from bar 0's close
    # (at="close") makes the run's returns A's: 0.1, -0.1, 0.1. B's: 0.1, 0, 0.1.
    a = make_bars([at(100), at(110), at(99), at(108.9)], symbol="A")
    b = make_bars([at(50), at(55), at(55), at(60.5)], symbol="B")
    data = pd.concat([a, b]).sort_values(["ts", "symbol"])
    res = run(None, {0: lambda s: s.buy(size=100, symbol="A", at="close")}, data=data,
              benchmark="B", periods_per_year=252)
    assert res.settings["benchmark"] == "B (a symbol of the data)"
    assert res.metrics["benchmark_return"] == pytest.approx(0.21, rel=1e-12)
    # first returns are against the starting cash: r = [0, .1, -.1, .1] and
    # r_b = [0, .1, 0, .1]; active a = [0, 0, -.1, 0]: mean -0.025, std(ddof=1) 0.05
    assert res.metrics["tracking_error"] == pytest.approx(0.05 * np.sqrt(252), rel=1e-9)
    assert res.metrics["information_ratio"] == pytest.approx(-0.5 * np.sqrt(252), rel=1e-9)
    r = np.array([0, 0.1, -0.1, 0.1])
    r_b = np.array([0, 0.1, 0, 0.1])
    beta = np.cov(r, r_b, ddof=1)[0, 1] / np.var(r_b, ddof=1)
    assert res.metrics["beta"] == pytest.approx(beta, rel=1e-9)
    assert res.metrics["alpha"] == pytest.approx((r.mean() - beta * r_b.mean()) * 252,
                                                 rel=1e-9)


def test_benchmark_from_a_file_is_taken_as_of_each_bar(tmp_path):
    # the benchmark trades on days 0, 2, 3 only: day 1 keeps day 0's close
    bench = make_bars([at(200), at(220), at(180)], symbol="IDX")
    bench["ts"] = pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-04"])
    path = tmp_path / "idx.parquet"
    bench.to_parquet(path)
    res = run([at(10)] * 4, {}, benchmark=f"{path}:IDX")
    assert res.benchmark.tolist() == [CASH, CASH, CASH * 1.1, CASH * 0.9]
    assert res.settings["benchmark"] == "idx.parquet:IDX"


def test_benchmark_the_bundled_sp500():
    rows = [at(10)] * 3
    data = make_bars(rows, start="2020-03-02")
    res = run(None, {}, data=data, benchmark="sp500_daily")
    assert res.settings["benchmark"] == "sp500_daily.parquet"
    assert res.benchmark[0] == CASH and res.benchmark[1] != CASH


def test_a_bad_benchmark_names_the_choices():
    with pytest.raises(ParameterError) as info:
        run([at(10)] * 3, {}, benchmark="nonesuch")
    assert "sp500_daily" in str(info.value) and "--benchmark" in str(info.value)


# --------------------------------------------------------------------------- Yahoo CSVs

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-01,10,11,9,10,5,100
2024-01-02,10,12,10,12,6,100
2024-01-03,20,22,18,20,20,100
"""


def test_a_yahoo_csv_trades_the_unadjusted_close_and_says_so(tmp_path):
    path = tmp_path / "yahoo.csv"
    path.write_text(YAHOO)
    with pytest.warns(engine.data.bars.DataWarning, match="trades the unadjusted close"):
        res = run(None, {0: lambda s: s.buy(size=10, at="close")}, data=path)
    assert res.settings["prices"] == "unadjusted close (the file also has adj_close)"
    assert order(res, 0)["fill_price"] == 10.0


def test_adjust_scales_open_high_low_close_by_adj_close_over_close(tmp_path):
    # factors 0.5, 0.5, 1: bar 1 becomes (5, 6, 5, 6); bar 2 stays (20, 22, 18, 20)
    path = tmp_path / "yahoo.csv"
    path.write_text(YAHOO)
    res = run(None, {0: lambda s: s.buy(size=10)}, data=path, adjust=True)
    assert res.settings["prices"].startswith("adjusted")
    assert res.panel.fields["open"][:, 0].tolist() == [5.0, 5.0, 20.0]
    assert res.panel.fields["high"][:, 0].tolist() == [5.5, 6.0, 22.0]
    assert res.panel.fields["low"][:, 0].tolist() == [4.5, 5.0, 18.0]
    assert res.panel.fields["close"][:, 0].tolist() == [5.0, 6.0, 20.0]
    assert order(res, 0)["fill_price"] == 5.0
    assert res.equity["equity"][-1] == CASH + 10 * (20.0 - 5.0)


def test_adjust_without_adj_close_is_refused():
    with pytest.raises(ParameterError, match="has no adj_close column"):
        run([at(10)] * 2, {}, adjust=True)


def test_the_cli_warns_of_margin_calls_and_takes_the_new_options(tmp_path):
    import subprocess
    import sys

    strategy = tmp_path / "levered.py"
    strategy.write_text(
        "import engine\n\n\n"
        "class Levered(engine.Strategy):\n"
        "    def on_bar(self, bar):\n"
        "        if bar.index == 0:\n"
        "            self.buy(200)\n")
    data = tmp_path / "bars.csv"
    make_bars([at(100), at(100), (100, 100, 70, 70), (70, 70, 62, 62), (60, 61, 59, 61),
               at(61)]).to_csv(data, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(strategy), "--data", str(data),
         "--cash", "10000", "--leverage", "2", "--maintenance-margin", "0.25",
         "--margin-rate", "0.01", "--max-volume-share", "1"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning: 1 margin call(s)" in " ".join(proc.stdout.split())
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(strategy), "--data", str(data),
         "--maintenance-margin", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: maintenance_margin must be a fraction" in proc.stderr
    assert "--maintenance-margin" in proc.stderr
