"""Execution rules of the simulator, each checked against prices worked out by hand.

Every test scripts a strategy with ``actions``: a dict ``bar index -> callable(strategy)``
run from ``on_bar`` after that bar closes. Bars are ``(open, high, low, close)`` tuples
on consecutive days (see ``conftest.make_bars``).
"""

import math

import pandas as pd
import pytest
from conftest import SCRIPT_CASH, make_bars, order_row, run_script

import engine
from engine.data.bars import DataWarning

CASH = SCRIPT_CASH  # the cash of run_script


run, order = run_script, order_row


def ts(i):
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)


def assert_filled(res, oid, price, qty, bar):
    o = order(res, oid)
    assert o["status"] == "filled", o
    assert o["fill_price"] == pytest.approx(price, rel=1e-12)
    assert o["fill_qty"] == qty
    assert o["done_ts"] == ts(bar)


def cash_at(res, bar):
    return res.equity["cash"][bar]


def equity_at(res, bar):
    return res.equity["equity"][bar]


FLAT = (10.0, 10.0, 10.0, 10.0)


# --------------------------------------------------------------------------- market orders


def test_market_order_fills_at_next_open():
    rows = [(10, 11, 9, 10.5), (12, 13, 11, 12.5), (14, 15, 13, 14.5)]
    res = run(rows, {0: lambda s: s.buy(size=10)})
    assert_filled(res, 0, 12.0, 10.0, bar=1)
    assert order(res, 0)["placed_ts"] == ts(0)
    assert cash_at(res, 0) == CASH
    assert cash_at(res, 1) == CASH - 120.0
    # marked at each close: 9880 + 10 * 12.5, then 9880 + 10 * 14.5
    assert equity_at(res, 1) == 9880.0 + 125.0
    assert equity_at(res, 2) == 9880.0 + 145.0


def test_market_order_with_fill_close_fills_at_the_same_bars_close():
    rows = [(10, 11, 9, 10.5), (12, 13, 11, 12.5)]
    res = run(rows, {0: lambda s: s.buy(size=10)}, fill="close")
    assert_filled(res, 0, 10.5, 10.0, bar=0)
    assert cash_at(res, 0) == CASH - 105.0
    assert equity_at(res, 0) == CASH
    assert equity_at(res, 1) == CASH - 105.0 + 125.0


def test_market_order_on_a_bar_without_open_fills_at_its_close():
    rows = [(10, 11, 9, 10), (math.nan, 13, 11, 12.5), (14, 15, 13, 14)]
    with pytest.warns(DataWarning):
        res = run(rows, {0: lambda s: s.buy(size=10)})
    assert_filled(res, 0, 12.5, 10.0, bar=1)
    assert cash_at(res, 1) == CASH - 125.0


def test_buy_without_size_spends_cash_on_whole_shares():
    rows = [FLAT, (30, 31, 29, 30), (30, 31, 29, 31)]
    res = run(rows, {0: lambda s: s.buy()}, cash=1000.0)
    # floor(1000 / 30) = 33 shares, 990 spent
    assert_filled(res, 0, 30.0, 33.0, bar=1)
    assert cash_at(res, 1) == 10.0
    assert order(res, 0)["size_mode"] == "all_cash"


def test_buy_without_size_fractional_spends_all_cash():
    rows = [FLAT, (30, 31, 29, 30), (30, 31, 29, 31)]
    res = run(rows, {0: lambda s: s.buy()}, cash=1000.0, fractional=True)
    o = order(res, 0)
    assert o["fill_qty"] == pytest.approx(1000.0 / 30.0, rel=1e-12)
    assert cash_at(res, 1) == pytest.approx(0.0, abs=1e-9)
    assert equity_at(res, 2) == pytest.approx(1000.0 / 30.0 * 31.0, rel=1e-12)


# --------------------------------------------------------------------------- limit orders


@pytest.mark.parametrize(
    "bar1, price",
    [
        ((10, 11, 9, 10.5), 9.5),   # low touches the limit: filled at the limit
        ((9, 10, 8.5, 9.8), 9.0),   # opens below the limit: filled at the open
    ],
)
def test_buy_limit_fills(bar1, price):
    res = run([FLAT, bar1, FLAT], {0: lambda s: s.buy(size=10, limit=9.5)})
    assert_filled(res, 0, price, 10.0, bar=1)
    assert cash_at(res, 1) == CASH - 10 * price


def test_buy_limit_not_reached_stays_open():
    rows = [FLAT, (10, 11, 9.6, 10.5), (10, 11, 9.51, 10)]
    res = run(rows, {0: lambda s: s.buy(size=10, limit=9.5)})
    o = order(res, 0)
    assert o["status"] == "open"
    assert o["fill_price"] is None
    assert res.equity["cash"].to_list() == [CASH] * 3
    assert len(res.trades) == 0


@pytest.mark.parametrize(
    "bar1, price",
    [
        ((10, 11, 9, 10.5), 10.5),   # high touches the limit
        ((11, 12, 10.8, 11.5), 11.0),  # opens above the limit: filled at the open
        ((10, 10.4, 9, 10), None),   # high stays below: no fill
    ],
)
def test_sell_limit_mirrored(bar1, price):
    res = run([FLAT, bar1, FLAT], {0: lambda s: s.sell(size=10, limit=10.5)}, shorting=True)
    if price is None:
        assert order(res, 0)["status"] == "open"
        assert cash_at(res, 1) == CASH
    else:
        assert_filled(res, 0, price, -10.0, bar=1)
        assert cash_at(res, 1) == CASH + 10 * price


# --------------------------------------------------------------------------- stop orders


@pytest.mark.parametrize(
    "bar1, price",
    [
        ((10, 11, 9.8, 10.8), 10.5),  # high touches the stop: filled at the stop
        ((11, 12, 10.9, 11.5), 11.0),  # gaps above: filled at the open
        ((10, 10.4, 9, 10), None),    # never reaches the stop
    ],
)
def test_buy_stop(bar1, price):
    res = run([FLAT, bar1, FLAT], {0: lambda s: s.buy(size=10, stop=10.5)})
    if price is None:
        assert order(res, 0)["status"] == "open"
    else:
        assert_filled(res, 0, price, 10.0, bar=1)
        assert order(res, 0)["kind"] == "stop"


@pytest.mark.parametrize(
    "bar2, price",
    [
        ((10, 10.2, 9, 9.2), 9.5),   # low touches the stop
        ((9, 9.2, 8.5, 9.1), 9.0),   # gaps down through it: filled at the open
        ((10, 11, 9.6, 10), None),   # stays above
    ],
)
def test_sell_stop_mirrored(bar2, price):
    # long 10 at 10 on bar 1, protective sell stop at 9.5 placed on bar 1
    res = run([FLAT, FLAT, bar2, FLAT],
              {0: lambda s: s.buy(size=10), 1: lambda s: s.sell(size=10, stop=9.5)})
    assert_filled(res, 0, 10.0, 10.0, bar=1)
    if price is None:
        assert order(res, 1)["status"] == "open"
        assert res.trades["exit_ts"][0] is None
    else:
        assert_filled(res, 1, price, -10.0, bar=2)
        assert res.trades["exit_price"][0] == price
        assert res.trades["pnl"][0] == pytest.approx(10 * (price - 10.0), rel=1e-12)
        assert res.trades["exit_reason"][0] == "stop"
        assert cash_at(res, 2) == pytest.approx(CASH - 100.0 + 10 * price, rel=1e-12)


# --------------------------------------------------------------------------- stop-limit


def test_stop_limit_triggered_at_open_fills_at_open_within_limit():
    # opens at 10.7 >= stop 10.5 and <= limit 10.8: a limit that gapped, filled at the open
    res = run([FLAT, (10.7, 11, 10.6, 10.9), FLAT],
              {0: lambda s: s.buy(size=10, stop=10.5, limit=10.8)})
    assert_filled(res, 0, 10.7, 10.0, bar=1)
    assert order(res, 0)["kind"] == "stop_limit"


def test_stop_limit_triggered_at_open_above_limit_fills_at_limit():
    # opens at 11 above the limit; the low comes back to 10.6 <= 10.8: filled at the limit
    res = run([FLAT, (11, 11.5, 10.6, 11), FLAT],
              {0: lambda s: s.buy(size=10, stop=10.5, limit=10.8)})
    assert_filled(res, 0, 10.8, 10.0, bar=1)


def test_stop_limit_triggered_at_open_never_back_to_limit_rests():
    res = run([FLAT, (11, 11.5, 10.9, 11), (10.9, 11, 10.7, 10.8)],
              {0: lambda s: s.buy(size=10, stop=10.5, limit=10.8)})
    # bar 1 never trades at or below 10.8; bar 2 opens at 10.9 and reaches 10.7
    assert_filled(res, 0, 10.8, 10.0, bar=2)


def test_stop_limit_triggered_intrabar_with_limit_above_stop_fills_at_stop():
    res = run([FLAT, (10, 11, 9.8, 10.9), FLAT],
              {0: lambda s: s.buy(size=10, stop=10.5, limit=10.8)})
    assert_filled(res, 0, 10.5, 10.0, bar=1)


def test_stop_limit_triggered_intrabar_with_limit_below_stop_rests_as_limit():
    # bar 1 touches the stop 10.5 (and its low is under the limit, but the order of
    # prices inside the bar is unknown): it rests; bar 2 opens above 10.2, reaches 10.1
    rows = [FLAT, (10, 11, 9.8, 10.9), (10.6, 10.7, 10.1, 10.4), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, stop=10.5, limit=10.2)})
    assert_filled(res, 0, 10.2, 10.0, bar=2)
    assert cash_at(res, 1) == CASH


def test_sell_stop_limit_triggered_intrabar_with_limit_below_stop_fills_at_stop():
    res = run([FLAT, (10, 10.2, 9, 9.5), FLAT],
              {0: lambda s: s.sell(size=10, stop=9.5, limit=9.2)}, shorting=True)
    assert_filled(res, 0, 9.5, -10.0, bar=1)


# --------------------------------------------------------------------------- brackets


def bracket_run(bar2, **order_kw):
    # entry: market buy of 10 placed on bar 0, filled at bar 1's open (10);
    # bar 1 (9.8 .. 10.4) touches neither exit
    rows = [FLAT, (10, 10.4, 9.8, 10), bar2, FLAT]
    return run(rows, {0: lambda s: s.buy(size=10, **order_kw)})


def children(res):
    o = res.orders
    sl = o.filter(o["tag"] == "stop_loss").to_dicts()
    tp = o.filter(o["tag"] == "take_profit").to_dicts()
    return sl[0] if sl else None, tp[0] if tp else None


def test_bracket_take_profit_hit():
    res = bracket_run((10, 12.5, 9.8, 12), sl=9.0, tp=12.0)
    sl, tp = children(res)
    assert sl["kind"] == "stop" and sl["stop"] == 9.0 and sl["side"] == "sell"
    assert tp["kind"] == "limit" and tp["limit"] == 12.0
    assert sl["parent_id"] == 0 and tp["parent_id"] == 0
    assert_filled(res, tp["order_id"], 12.0, -10.0, bar=2)
    assert sl["status"] == "cancelled" and sl["reason"]
    t = res.trades.row(0, named=True)
    assert t["exit_reason"] == "take_profit"
    assert t["entry_price"] == 10.0 and t["exit_price"] == 12.0
    assert t["pnl"] == pytest.approx(20.0, rel=1e-12)
    assert t["stop_and_target_same_bar"] is False
    assert res.metrics["same_bar_exits"] == 0
    assert cash_at(res, 2) == CASH + 20.0


def test_bracket_stop_loss_hit():
    res = bracket_run((10, 10.2, 8.5, 9.0), sl=9.0, tp=12.0)
    sl, tp = children(res)
    assert_filled(res, sl["order_id"], 9.0, -10.0, bar=2)
    assert tp["status"] == "cancelled" and tp["reason"]
    t = res.trades.row(0, named=True)
    assert t["exit_reason"] == "stop_loss"
    assert t["pnl"] == pytest.approx(-10.0, rel=1e-12)
    assert cash_at(res, 2) == CASH - 10.0


def test_bracket_stop_loss_gap_fills_at_open():
    res = bracket_run((8.5, 9.0, 8.0, 8.8), sl=9.0, tp=12.0)
    sl, _ = children(res)
    assert_filled(res, sl["order_id"], 8.5, -10.0, bar=2)


def test_bracket_in_percent_of_the_fill_price():
    rows = [FLAT, (20, 20.5, 19.5, 20), (20, 22.5, 19.5, 22), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, sl_pct=0.05, tp_pct=0.1)})
    sl, tp = children(res)
    assert sl["stop"] == pytest.approx(19.0, rel=1e-12)   # 20 * (1 - 0.05)
    assert tp["limit"] == pytest.approx(22.0, rel=1e-12)  # 20 * (1 + 0.10)
    assert_filled(res, tp["order_id"], 22.0, -10.0, bar=2)
    assert res.trades["exit_reason"][0] == "take_profit"
    assert res.trades["pnl"][0] == pytest.approx(20.0, rel=1e-12)


def test_short_bracket_in_percent():
    rows = [FLAT, (20, 20.5, 19.5, 20), (20, 21.5, 19.5, 21), FLAT]
    res = run(rows, {0: lambda s: s.sell(size=10, sl_pct=0.05, tp_pct=0.1)}, shorting=True)
    sl, tp = children(res)
    assert sl["side"] == "buy" and sl["stop"] == pytest.approx(21.0, rel=1e-12)
    assert tp["side"] == "buy" and tp["limit"] == pytest.approx(18.0, rel=1e-12)
    assert_filled(res, sl["order_id"], 21.0, 10.0, bar=2)
    t = res.trades.row(0, named=True)
    assert t["size"] == -10.0 and t["exit_reason"] == "stop_loss"
    assert t["pnl"] == pytest.approx(-10.0, rel=1e-12)


def test_bracket_both_exits_in_one_bar_fills_the_stop():
    res = bracket_run((10, 12.5, 8.5, 10), sl=9.0, tp=12.0)
    sl, tp = children(res)
    assert_filled(res, sl["order_id"], 9.0, -10.0, bar=2)
    assert tp["status"] == "cancelled" and tp["reason"]
    assert res.metrics["same_bar_exits"] == 1
    t = res.trades.row(0, named=True)
    assert t["stop_and_target_same_bar"] is True
    assert t["exit_reason"] == "stop_loss"
    assert t["pnl"] == pytest.approx(-10.0, rel=1e-12)
    assert cash_at(res, 3) == CASH - 10.0


def test_bracket_exit_on_the_entry_bar_after_an_open_fill():
    # the entry fills at bar 1's open (10); the rest of bar 1 reaches the stop 9
    rows = [FLAT, (10, 10.2, 8.8, 9.5), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, sl=9.0, tp=12.0)})
    sl, _ = children(res)
    assert_filled(res, sl["order_id"], 9.0, -10.0, bar=1)
    t = res.trades.row(0, named=True)
    assert t["bars_held"] == 0 and t["exit_reason"] == "stop_loss"


def test_bracket_children_cancelled_when_position_closed():
    rows = [FLAT, FLAT, FLAT, FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, sl=9.0, tp=12.0), 1: lambda s: s.close()})
    sl, tp = children(res)
    assert sl["status"] == "cancelled" and tp["status"] == "cancelled"
    assert res.trades["exit_reason"][0] == "close"


# --------------------------------------------------------------------------- OCO and tif


def test_oco_one_fills_the_other_is_cancelled():
    ids = {}

    def place(s):
        ids["limit"] = s.buy(size=5, limit=9.0)
        ids["stop"] = s.buy(size=5, stop=11.0, oco=ids["limit"])

    res = run([FLAT, (10, 11.5, 9.8, 11), FLAT], {0: place})
    assert_filled(res, ids["stop"], 11.0, 5.0, bar=1)
    lim = order(res, ids["limit"])
    assert lim["status"] == "cancelled"
    assert "OCO" in lim["reason"] and str(ids["stop"]) in lim["reason"]
    assert lim["done_ts"] == ts(1)
    assert lim["oco_id"] == ids["stop"] and order(res, ids["stop"])["oco_id"] == ids["limit"]
    assert cash_at(res, 2) == CASH - 55.0


def test_day_order_expires_after_its_first_bar():
    rows = [FLAT, (10, 11, 9.5, 10), (10, 10, 8.8, 9)]
    res = run(rows, {0: lambda s: s.buy(size=1, limit=9.0, tif="day")})
    o = order(res, 0)
    assert o["status"] == "expired" and o["tif"] == "day"
    assert o["done_ts"] == ts(1)
    assert o["reason"]
    assert res.equity["cash"].to_list() == [CASH] * 3


def test_gtc_order_stays_and_fills_later():
    rows = [FLAT, (10, 11, 9.5, 10), (10, 10, 8.8, 9)]
    res = run(rows, {0: lambda s: s.buy(size=1, limit=9.0)})
    assert_filled(res, 0, 9.0, 1.0, bar=2)
    assert order(res, 0)["tif"] == "gtc"


# --------------------------------------------------------------------------- rejections


def test_order_beyond_cash_is_rejected_not_resized():
    rows = [FLAT, (12, 12, 12, 12), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=100)}, cash=1000.0)
    o = order(res, 0)
    assert o["status"] == "rejected"
    assert "insufficient cash" in o["reason"]
    assert o["fill_qty"] == 0.0 and o["fill_price"] is None
    assert o["done_ts"] == ts(1)
    assert len(res.trades) == 0
    assert res.equity["cash"].to_list() == [1000.0] * 3
    assert res.equity["equity"].to_list() == [1000.0] * 3


def test_commission_counts_toward_the_cash_check():
    # 100 shares at 10 cost exactly the cash; the commission of 1 tips it over
    res = run([FLAT, FLAT, FLAT], {0: lambda s: s.buy(size=100)}, cash=1000.0,
              commission_fixed=1.0)
    assert order(res, 0)["status"] == "rejected"
    res = run([FLAT, FLAT, FLAT], {0: lambda s: s.buy(size=100)}, cash=1000.0)
    assert_filled(res, 0, 10.0, 100.0, bar=1)
    assert cash_at(res, 2) == 0.0


def test_selling_more_than_held_without_shorting_is_rejected():
    rows = [FLAT, FLAT, FLAT, FLAT]
    res = run(rows, {0: lambda s: s.buy(size=5), 1: lambda s: s.sell(size=8)})
    o = order(res, 1)
    assert o["status"] == "rejected"
    assert "short" in o["reason"]
    assert o["fill_qty"] == 0.0
    # never resized to the 5 held: the long stays open
    t = res.trades.row(0, named=True)
    assert t["size"] == 5.0 and t["exit_ts"] is None
    assert cash_at(res, 3) == CASH - 50.0


def test_short_sale_from_flat_without_shorting_is_rejected():
    res = run([FLAT, FLAT, FLAT], {0: lambda s: s.sell(size=3)})
    o = order(res, 0)
    assert o["status"] == "rejected" and "short" in o["reason"]
    assert len(res.trades) == 0
    assert res.equity["cash"].to_list() == [CASH] * 3


# --------------------------------------------------------------------------- costs


@pytest.mark.parametrize(
    "costs, commission",
    [
        ({"commission": 0.001}, 1.0),                       # 0.1% of 1000
        ({"commission_per_share": 0.01}, 1.0),              # 100 * 0.01
        ({"commission_fixed": 2.5}, 2.5),
        ({"commission_minimum": 5.0}, 5.0),                 # minimum alone
        ({"commission": 0.001, "commission_minimum": 5.0}, 5.0),
        ({"commission": 0.001, "commission_per_share": 0.02, "commission_fixed": 1.5}, 4.5),
        ({"commission": 0.001, "commission_per_share": 0.02, "commission_fixed": 1.5,
          "commission_minimum": 3.0}, 4.5),
        ({"commission": 0.001, "commission_per_share": 0.02, "commission_fixed": 1.5,
          "commission_minimum": 10.0}, 10.0),
    ],
)
def test_commission(costs, commission):
    # buy 100 at 10 on bar 1, sell 100 at 12 on bar 2: notional 1000 then 1200
    rows = [FLAT, (10, 10, 10, 10), (12, 12, 12, 12), (12, 12, 12, 12)]
    res = run(rows, {0: lambda s: s.buy(size=100), 1: lambda s: s.sell(size=100)}, **costs)
    assert order(res, 0)["commission"] == pytest.approx(commission, rel=1e-12)
    assert cash_at(res, 1) == pytest.approx(CASH - 1000.0 - commission, rel=1e-12)
    pct = costs.get("commission", 0.0)
    exit_fee = max(costs.get("commission_minimum", 0.0),
                   pct * 1200 + costs.get("commission_per_share", 0.0) * 100
                   + costs.get("commission_fixed", 0.0))
    assert order(res, 1)["commission"] == pytest.approx(exit_fee, rel=1e-12)
    assert cash_at(res, 2) == pytest.approx(CASH + 200.0 - commission - exit_fee, rel=1e-12)
    assert res.metrics["commissions"] == pytest.approx(commission + exit_fee, rel=1e-12)
    assert res.trades["pnl"][0] == pytest.approx(200.0 - commission - exit_fee, rel=1e-12)


@pytest.mark.parametrize(
    "slip, buy_price, sell_price",
    [
        ({"slippage_bps": 10}, 10.01, 11.988),      # 10 * 1.001, 12 * 0.999
        ({"slippage_fixed": 0.05}, 10.05, 11.95),
        ({"slippage_bps": 10, "slippage_fixed": 0.05}, 10.06, 11.938),
    ],
)
def test_slippage_on_market_orders(slip, buy_price, sell_price):
    rows = [FLAT, (10, 10, 10, 10), (12, 12, 12, 12), (12, 12, 12, 12)]
    res = run(rows, {0: lambda s: s.buy(size=100), 1: lambda s: s.sell(size=100)}, **slip)
    assert_filled(res, 0, buy_price, 100.0, bar=1)
    assert_filled(res, 1, sell_price, -100.0, bar=2)
    assert cash_at(res, 2) == pytest.approx(CASH + 100 * (sell_price - buy_price), rel=1e-12)


@pytest.mark.parametrize(
    "bar1, price",
    [
        ((10, 11, 9.8, 10.8), 10.5 * 1.001),  # touched: the stop, slipped
        ((11, 12, 10.9, 11.5), 11.0 * 1.001),  # gapped: the open, slipped
    ],
)
def test_slippage_on_stop_fills(bar1, price):
    res = run([FLAT, bar1, FLAT], {0: lambda s: s.buy(size=10, stop=10.5)}, slippage_bps=10)
    assert_filled(res, 0, price, 10.0, bar=1)


@pytest.mark.parametrize(
    "bar1",
    [
        (10, 11, 9, 10.5),      # touched inside the bar
        (9.4, 10, 9, 9.8),      # opened below the limit: slipped open 9.9 capped at 9.5
    ],
)
def test_limit_fill_never_worse_than_the_limit(bar1):
    res = run([FLAT, bar1, FLAT], {0: lambda s: s.buy(size=10, limit=9.5)},
              slippage_fixed=0.5)
    assert_filled(res, 0, 9.5, 10.0, bar=1)


def test_sell_limit_never_worse_than_the_limit():
    res = run([FLAT, (10.6, 11, 10, 10.5), FLAT],
              {0: lambda s: s.sell(size=10, limit=10.5)}, slippage_fixed=0.5, shorting=True)
    assert_filled(res, 0, 10.5, -10.0, bar=1)


# --------------------------------------------------------------------------- shorts


def test_short_and_cover_pnl():
    rows = [FLAT, (50, 51, 49, 50), (48, 49, 46, 47), (45, 46, 44, 45), FLAT]
    res = run(rows, {0: lambda s: s.sell(size=10), 2: lambda s: s.buy(size=10)},
              shorting=True)
    assert_filled(res, 0, 50.0, -10.0, bar=1)
    assert_filled(res, 1, 45.0, 10.0, bar=3)
    assert cash_at(res, 1) == CASH + 500.0
    assert equity_at(res, 2) == CASH + 500.0 - 470.0
    t = res.trades.row(0, named=True)
    assert t["size"] == -10.0
    assert t["entry_price"] == 50.0 and t["exit_price"] == 45.0
    assert t["pnl"] == pytest.approx(50.0, rel=1e-12)
    assert t["return_pct"] == pytest.approx(50.0 / 500.0, rel=1e-12)
    assert cash_at(res, 3) == CASH + 50.0


def test_borrow_cost_accrues_per_bar_on_shorts():
    rate, ppy = 0.1, 100
    rows = [FLAT, (50, 51, 49, 50), (48, 49, 46, 47), (45, 46, 44, 45), FLAT]
    res = run(rows, {0: lambda s: s.sell(size=10), 2: lambda s: s.buy(size=10)},
              shorting=True, borrow_rate=rate, periods_per_year=ppy)
    # short 10 held at the closes of bars 1 (50) and 2 (47); flat at bar 3's close
    b1 = 10 * 50 * rate / ppy  # 0.5
    b2 = 10 * 47 * rate / ppy  # 0.47
    assert cash_at(res, 1) == pytest.approx(CASH + 500.0 - b1, rel=1e-12)
    assert cash_at(res, 2) == pytest.approx(CASH + 500.0 - b1 - b2, rel=1e-12)
    assert cash_at(res, 3) == pytest.approx(CASH + 50.0 - b1 - b2, rel=1e-12)
    assert cash_at(res, 4) == cash_at(res, 3)
    assert res.metrics["borrow_costs"] == pytest.approx(b1 + b2, rel=1e-12)
    t = res.trades.row(0, named=True)
    assert t["pnl"] == pytest.approx(50.0 - b1 - b2, rel=1e-12)
    assert t["costs"] == pytest.approx(b1 + b2, rel=1e-12)
    assert equity_at(res, 4) == pytest.approx(CASH + 50.0 - b1 - b2, rel=1e-12)


def test_no_borrow_cost_on_longs():
    rows = [FLAT, FLAT, FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10)}, borrow_rate=0.5)
    assert res.metrics["borrow_costs"] == 0.0
    assert cash_at(res, 2) == CASH - 100.0


# --------------------------------------------------------------------------- sizing


def test_size_by_cash():
    res = run([FLAT, (12, 12, 12, 12), FLAT], {0: lambda s: s.buy(cash=500.0)})
    assert_filled(res, 0, 12.0, 41.0, bar=1)  # floor(500 / 12)
    assert order(res, 0)["size_mode"] == "cash"


def test_size_by_percent_of_equity():
    res = run([FLAT, (12, 12, 12, 12), FLAT], {0: lambda s: s.buy(percent=0.5)})
    assert_filled(res, 0, 12.0, 416.0, bar=1)  # floor(5000 / 12)


def test_sell_by_percent_of_equity_opens_a_short():
    res = run([FLAT, (12, 12, 12, 12), FLAT], {0: lambda s: s.sell(percent=0.5)},
              shorting=True)
    assert_filled(res, 0, 12.0, -416.0, bar=1)


def test_order_target_percent():
    rows = [FLAT, (12, 12, 12, 12), FLAT, (15, 15, 15, 15), FLAT]
    res = run(rows, {0: lambda s: s.order_target_percent(0.5),
                     2: lambda s: s.order_target_percent(0.25)})
    assert_filled(res, 0, 12.0, 416.0, bar=1)  # floor(0.5 * 10000 / 12)
    # at bar 3's open: equity 5008 + 416 * 15 = 11248; 0.25 of it / 15 = 187.47 -> 187
    assert_filled(res, 1, 15.0, 187.0 - 416.0, bar=3)
    assert order(res, 1)["side"] == "sell"
    assert cash_at(res, 3) == 5008.0 + 229 * 15.0


def test_order_target_shares_and_close():
    rows = [FLAT, FLAT, (11, 11, 11, 11), FLAT, FLAT]
    res = run(rows, {0: lambda s: s.order_target_shares(30),
                     1: lambda s: s.order_target_shares(-10),
                     3: lambda s: s.close()}, shorting=True)
    assert_filled(res, 0, 10.0, 30.0, bar=1)
    assert_filled(res, 1, 11.0, -40.0, bar=2)
    assert_filled(res, 2, 10.0, 10.0, bar=4)
    t = res.trades.to_dicts()
    assert [x["size"] for x in t] == [30.0, -10.0]
    assert [x["exit_reason"] for x in t] == ["signal", "close"]
    assert t[0]["pnl"] == pytest.approx(30.0, rel=1e-12)   # 30 * (11 - 10)
    assert t[1]["pnl"] == pytest.approx(10.0, rel=1e-12)   # 10 * (11 - 10), short
    assert cash_at(res, 4) == CASH + 40.0


def test_order_target_at_the_current_position_is_cancelled():
    res = run([FLAT, FLAT, FLAT, FLAT], {0: lambda s: s.buy(size=5),
                                         1: lambda s: s.order_target_shares(5)})
    o = order(res, 1)
    assert o["status"] == "cancelled" and "target" in o["reason"]


# --------------------------------------------------------------------------- several symbols


def test_symbols_share_one_cash_account():
    rows = [FLAT, FLAT, FLAT]
    data = pd.concat([make_bars(rows, symbol="A"), make_bars(rows, symbol="B")])

    def place(s):
        s.buy(size=50, symbol="A")   # 500
        s.buy(size=60, symbol="B")   # 600 > the 500 left
        s.buy(size=40, symbol="B")   # 400 fits

    res = run(None, {0: place}, data=data, cash=1000.0)
    assert_filled(res, 0, 10.0, 50.0, bar=1)
    rejected = order(res, 1)
    assert rejected["status"] == "rejected" and "insufficient cash" in rejected["reason"]
    assert rejected["symbol"] == "B"
    assert_filled(res, 2, 10.0, 40.0, bar=1)
    assert cash_at(res, 1) == 100.0
    held = sorted(zip(res.trades["symbol"], res.trades["size"], strict=True))
    assert held == [("A", 50.0), ("B", 40.0)]


# --------------------------------------------------------------------------- the trades frame


def test_trades_frame_fields():
    rows = [FLAT, (10, 10, 10, 10), FLAT, (12, 12, 12, 12), (20, 20, 20, 20),
            (16, 16, 16, 16), (15, 17, 15, 17)]
    res = run(rows, {0: lambda s: s.buy(size=10),
                     2: lambda s: s.sell(size=10),
                     3: lambda s: s.sell(size=5),
                     4: lambda s: s.close(),
                     5: lambda s: s.buy(size=3)},
              shorting=True, commission_fixed=1.0)
    t = res.trades.to_dicts()
    assert len(t) == 3
    long_, short, open_ = t
    # long: 10 at 10 (bar 1) -> 12 (bar 3); pnl 20 - 2 commissions
    assert long_["entry_ts"] == ts(1) and long_["exit_ts"] == ts(3)
    assert (long_["entry_price"], long_["exit_price"], long_["size"]) == (10.0, 12.0, 10.0)
    assert long_["pnl"] == pytest.approx(18.0, rel=1e-12)
    assert long_["return_pct"] == pytest.approx(18.0 / 100.0, rel=1e-12)
    assert long_["bars_held"] == 2 and long_["exit_reason"] == "signal"
    assert long_["costs"] == pytest.approx(2.0, rel=1e-12)
    # short: 5 at 20 (bar 4) -> 16 (bar 5); pnl 20 - 2 commissions
    assert short["entry_ts"] == ts(4) and short["exit_ts"] == ts(5)
    assert (short["entry_price"], short["exit_price"], short["size"]) == (20.0, 16.0, -5.0)
    assert short["pnl"] == pytest.approx(18.0, rel=1e-12)
    assert short["return_pct"] == pytest.approx(18.0 / 100.0, rel=1e-12)
    assert short["bars_held"] == 1 and short["exit_reason"] == "close"
    # open at the end: bought 3 at 15 on bar 6, null exit fields
    assert open_["entry_ts"] == ts(6) and open_["entry_price"] == 15.0 and open_["size"] == 3.0
    for key in ("exit_ts", "exit_price", "pnl", "return_pct", "bars_held", "exit_reason"):
        assert open_[key] is None, key
    # cash: 10000 - 101 + 119 + 99 - 81 - 46 = 9990; marked at the last close 17
    assert cash_at(res, 6) == pytest.approx(9990.0, rel=1e-12)
    assert equity_at(res, 6) == pytest.approx(9990.0 + 3 * 17.0, rel=1e-12)
    assert res.metrics["open_trades"] == 1
    assert res.metrics["trades"] == 2


def test_flip_from_long_to_short_in_one_order():
    rows = [FLAT, FLAT, (12, 12, 12, 12), (11, 11, 11, 11)]
    res = run(rows, {0: lambda s: s.buy(size=10), 1: lambda s: s.sell(size=15)},
              shorting=True, commission_fixed=3.0)
    t = res.trades.to_dicts()
    assert [x["size"] for x in t] == [10.0, -5.0]
    # the flip's commission of 3 is shared 10:5 between the two trades
    assert t[0]["pnl"] == pytest.approx(20.0 - 3.0 - 2.0, rel=1e-12)
    assert t[1]["entry_price"] == 12.0 and t[1]["exit_ts"] is None
    assert t[1]["costs"] == pytest.approx(1.0, rel=1e-12)
    assert equity_at(res, 3) == pytest.approx(CASH + 20.0 - 6.0 + 5.0, rel=1e-12)


# --------------------------------------------------------------------------- regressions


def test_stop_limit_triggered_intrabar_does_not_fill_on_that_bar_via_its_oco_peer():
    # The stop-limit (stop 10.5, limit 10.2) is touched inside bar 1, so it may only
    # act as a limit from bar 2. Its OCO partner, a limit at 9.9, is touched on bar 1
    # and fills; the stop-limit is cancelled. (It used to fill at the open, 10.0,
    # below its own stop, once re-matched as the partner's peer.)
    ids = {}

    def place(s):
        ids["sl"] = s.buy(size=1, stop=10.5, limit=10.2)
        ids["lim"] = s.buy(size=1, limit=9.9, oco=ids["sl"])

    res = run([FLAT, (10, 11, 9.8, 10.9), FLAT], {0: place})
    assert_filled(res, ids["lim"], 9.9, 1.0, bar=1)
    assert order(res, ids["sl"])["status"] == "cancelled"
    assert res.metrics["same_bar_exits"] == 0


def test_oco_leg_still_matches_when_the_stop_leg_is_rejected():
    # both legs touched on bar 1; the stop leg cannot be funded and is rejected,
    # so the limit leg fills on its own (it used to be dropped, left "open" forever)
    ids = {}

    def place(s):
        ids["lim"] = s.buy(size=5, limit=9.0)
        ids["stop"] = s.buy(size=5000, stop=11.0, oco=ids["lim"])

    res = run([FLAT, (10, 11.5, 8.5, 10), FLAT], {0: place})
    assert order(res, ids["stop"])["status"] == "rejected"
    assert_filled(res, ids["lim"], 9.0, 5.0, bar=1)
    assert res.metrics["same_bar_exits"] == 0


def test_bracket_on_a_flip_protects_only_the_new_position():
    # long 10; sell 20 with a bracket flips to short 10: the exits cover 10, not 20
    rows = [FLAT, FLAT, FLAT, (10, 12, 10, 11), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10),
                     1: lambda s: s.sell(size=20, sl=11.0, tp=8.0)}, shorting=True)
    sl, tp = children(res)
    assert sl["size"] == 10.0 and tp["size"] == 10.0
    assert_filled(res, sl["order_id"], 11.0, 10.0, bar=3)
    t = res.trades.to_dicts()
    assert [x["size"] for x in t] == [10.0, -10.0]
    assert t[1]["exit_reason"] == "stop_loss" and t[1]["pnl"] == pytest.approx(-10.0)
    assert cash_at(res, 4) == CASH - 10.0  # flat again, no stray long


def test_bracket_on_an_order_that_only_reduces_attaches_nothing():
    rows = [FLAT, FLAT, FLAT, (10, 12, 8, 10), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10),
                     1: lambda s: s.sell(size=5, sl=11.0, tp=9.0)})
    assert children(res) == (None, None)
    assert "no bracket" in order(res, 1)["reason"]
    assert order(res, 1)["status"] == "filled"


def test_bracket_exit_sells_at_most_the_position_held():
    # long 10 with a stop-loss at 9; 5 are sold by hand; the stop then sells the 5 left
    rows = [FLAT, FLAT, FLAT, (10, 10, 8, 9), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, sl=9.0), 1: lambda s: s.sell(size=5)},
              shorting=True)
    sl, _ = children(res)
    assert_filled(res, sl["order_id"], 9.0, -5.0, bar=3)
    # the partial exit by hand is a trade of its own, then the stop closes the rest
    t = res.trades.to_dicts()
    assert [(x["size"], x["exit_price"], x["exit_reason"]) for x in t] == [
        (5.0, 10.0, "signal"), (5.0, 9.0, "stop_loss")]
    assert [x["pnl"] for x in t] == [0.0, -5.0]
    assert cash_at(res, 4) == CASH - 5.0


def test_bracket_after_a_close_fill_starts_on_the_next_bar():
    # filled at bar 0's close (10); bar 0's low 8 came before the fill: no exit on bar 0
    rows = [(10, 10.5, 8, 10), (10, 10.2, 8.5, 9), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10, sl=9.0)}, fill="close")
    sl, _ = children(res)
    assert_filled(res, sl["order_id"], 9.0, -10.0, bar=1)


def test_symbol_without_a_bar_matches_nothing_until_it_trades():
    a = make_bars([FLAT, FLAT, FLAT, FLAT], symbol="A")
    b = make_bars([FLAT, (11, 11, 11, 11), (12, 12, 12, 12), (13, 13, 13, 13)], symbol="B")
    data = pd.concat([a, b.drop(index=1)])  # B has no bar 1
    res = run(None, {0: lambda s: s.buy(size=10, symbol="B")}, data=data)
    assert_filled(res, 0, 12.0, 10.0, bar=2)
    assert equity_at(res, 1) == CASH


def test_target_percent_short_needs_shorting():
    res = run([FLAT, FLAT, FLAT], {0: lambda s: s.order_target_percent(-0.5)})
    o = order(res, 0)
    assert o["status"] == "rejected" and "short" in o["reason"]
    res = run([FLAT, FLAT, FLAT], {0: lambda s: s.order_target_percent(-0.5)}, shorting=True)
    assert_filled(res, 0, 10.0, -500.0, bar=1)


class _OneOrder(engine.Strategy):
    side: str = "buy"
    kind: str = "limit"
    price: float = 0.0
    limit_price: float = math.nan

    def on_bar(self, bar):
        if bar.index == 0:
            place = self.buy if self.side == "buy" else self.sell
            if self.kind == "stop_limit":
                place(1, stop=self.price, limit=self.limit_price)
            else:
                place(1, **{self.kind: self.price})


@pytest.mark.parametrize("side, kind, price, limit_price, rows, expected", [
    # no open and the whole bar past the price: the close, the one known trade
    ("buy", "limit", 11.0, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.6),
    ("buy", "stop", 10.2, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.6),
    ("sell", "limit", 10.2, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.6),
    ("sell", "stop", 11.0, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.6),
    ("buy", "stop_limit", 10.2, 11.0, (math.nan, 10.8, 10.5, 10.6), 10.6),
    # no open, the price inside the range: the order's own price, as with an open
    ("buy", "limit", 10.55, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.55),
    ("sell", "stop", 10.55, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.55),
    # the bar's high exactly at a buy limit is inside the range: the limit
    ("buy", "limit", 10.8, math.nan, (math.nan, 10.8, 10.5, 10.6), 10.8),
])
def test_orders_on_a_bar_without_open(side, kind, price, limit_price, rows, expected):
    bars = make_bars([(10.0, 10.1, 9.9, 10.0), rows])
    with pytest.warns(DataWarning):
        res = engine.run(_OneOrder, data=bars, shorting=True, side=side, kind=kind,
                         price=price, limit_price=limit_price)
    order = res.orders.row(0, named=True)
    assert order["status"] == "filled"
    assert order["fill_price"] == pytest.approx(expected)
