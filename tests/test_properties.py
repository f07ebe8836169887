"""Properties of the order simulator over random bars and random order streams.

Hypothesis draws a few symbols of daily bars (price gaps at the open, bars without an
open, bars on which a symbol did not trade), account settings (costs, slippage,
shorting, fractional shares, fills at the open or the close) and a stream of orders
(market, limit, stop, stop-limit, brackets, targets, closes, cancels, every sizing
mode, both directions). A small event strategy places them through the public
strategy API, and then every bar and every fill is checked:

* the ledger: cash + Σ position × last close = equity, and starting cash + realised
  P&L + unrealised P&L = equity, at every bar (replayed from the fills, and from the
  broker's own realised P&L while the run goes on);
* the trade ledger: the rows are the FIFO lots a plain-Python replay of the fills
  builds, and closed-trade P&L + the open rows' unrealised P&L = final equity -
  starting cash;
* cash never below zero when shorting is off (there is no margin);
* each fill at the price the execution rules give for its bar: the open when the bar
  opens through the order's price, else the order's price, inside the bar's range,
  worsened only by the slippage settings and never beyond a limit;
* whole shares unless fractional;
* no fill on or before the bar the strategy placed the order on, except a market
  order with ``fill="close"``, which fills at that bar's close.

Examples are derandomised so that a CI run is reproducible.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
from conftest import ledger_fills, reconciliation_gap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.backtest.reference import fifo_ledger
from engine.data.bars import DataWarning

SYMBOLS = ("AAA", "BBB")
# Relative tolerance of the ledger identities: sums of a few hundred products.
RTOL = 1e-9

# --------------------------------------------------------------------------- bars


@st.composite
def bar_frames(draw):
    """Long-format bars for one or two symbols with gaps, missing opens and missing bars."""
    n_bars = draw(st.integers(4, 30))
    n_symbols = draw(st.integers(1, 2))
    rows = []
    for k in range(n_symbols):
        close = draw(st.sampled_from([8.0, 45.0, 230.0]))
        for i in range(n_bars):
            gap = draw(st.sampled_from([0.0, 0.0, 0.0, 0.06, -0.06]))
            drift = draw(st.floats(-0.05, 0.05))
            up, down = draw(st.floats(0, 0.03)), draw(st.floats(0, 0.03))
            traded = i == 0 or draw(st.integers(0, 9)) > 0  # a symbol misses ~1 bar in 10
            has_open = draw(st.integers(0, 14)) > 0
            open_ = close * math.exp(draw(st.floats(-0.01, 0.01)) + gap)
            close = open_ * math.exp(drift)
            o, c = round(open_, 2), round(close, 2)
            h = round(max(o, c) * math.exp(up), 2)
            lo = round(min(o, c) * math.exp(-down), 2)
            if traded:
                rows.append((i, SYMBOLS[k], o if has_open else math.nan, h, lo, c))
    frame = pd.DataFrame(rows, columns=["day", "symbol", "open", "high", "low", "close"])
    frame.insert(0, "ts", pd.Timestamp("2024-01-01") + pd.to_timedelta(frame.pop("day"), "D"))
    frame["volume"] = 1000.0
    if n_symbols == 1:
        frame = frame.drop(columns="symbol")
    return frame


# --------------------------------------------------------------------------- orders

sides = st.sampled_from([1, -1])
offsets = st.floats(-0.04, 0.08)  # > 0: away from the market; < 0: already through it
brackets = st.one_of(
    st.none(),
    st.tuples(st.just("pct"), st.floats(0.005, 0.1), st.floats(0.005, 0.1)),
    st.tuples(st.just("price"), st.floats(0.005, 0.1), st.floats(0.005, 0.1)),
)


def sizings(fractional):
    shares = st.floats(0.5, 40).map(lambda x: round(x, 3)) if fractional else st.integers(1, 40)
    return st.one_of(
        st.tuples(st.just("size"), shares),
        st.tuples(st.just("cash"), st.floats(50, 3000)),
        st.tuples(st.just("percent"), st.floats(0.01, 0.6)),
        st.tuples(st.just("default"), st.none()),  # buy: all the cash; sell: the position
    )


def actions(fractional):
    """One order (or a cancel) as a dict; prices are offsets from the last close."""
    shares = st.integers(-30, 30) if not fractional else st.floats(-30, 30).map(
        lambda x: round(x, 3))
    common = dict(symbol=st.integers(0, 1), side=sides, sizing=sizings(fractional),
                  tif=st.sampled_from(["gtc", "day"]), offset=offsets, offset2=offsets)
    order = st.fixed_dictionaries(
        {"kind": st.sampled_from(["market", "limit", "stop", "stop_limit"]),
         "bracket": brackets, **common})
    return st.one_of(
        order,
        st.fixed_dictionaries({"kind": st.just("close"), "symbol": common["symbol"]}),
        st.fixed_dictionaries({"kind": st.just("target_percent"),
                               "symbol": common["symbol"], "amount": st.floats(-0.5, 0.8)}),
        st.fixed_dictionaries({"kind": st.just("target_shares"),
                               "symbol": common["symbol"], "amount": shares}),
        st.fixed_dictionaries({"kind": st.just("cancel"), "pick": st.integers(0, 5)}),
    )


@st.composite
def scenarios(draw):
    bars = draw(bar_frames())
    account = dict(
        cash=draw(st.sampled_from([1_000.0, 25_000.0])),
        fractional=draw(st.booleans()),
        shorting=draw(st.booleans()),
        fill=draw(st.sampled_from(["open", "open", "close"])),
        borrow_rate=draw(st.sampled_from([0.0, 0.05])),
    )
    if draw(st.booleans()):
        account.update(commission=0.001, commission_per_share=0.01, commission_fixed=1.0,
                       commission_minimum=2.0)
    if draw(st.booleans()):
        account.update(slippage_bps=5.0, slippage_fixed=0.01)
    n_bars = bars["ts"].nunique()
    plan = draw(st.lists(st.tuples(st.integers(0, n_bars - 1), actions(account["fractional"])),
                         min_size=4, max_size=40))
    return bars, account, plan


class PlanTrader(engine.Strategy):
    """Places the orders of ``PLAN`` (bar index -> actions) and checks the ledger live."""

    PLAN: ClassVar[dict] = {}  # ClassVar: not a strategy parameter

    def on_start(self):
        self.live_checks = 0

    def on_bar(self, bar):
        self.check_ledger()
        closes = np.atleast_1d(np.asarray(bar.close, dtype=float))
        for action in self.PLAN.get(bar.index, ()):
            self.place(action, closes)

    def check_ledger(self):
        """Starting cash + realised + unrealised = equity; cash >= 0 without shorting."""
        broker = self._broker
        held = broker.positions != 0
        if not broker.shorting:
            assert broker.cash >= -1e-9 * broker.starting_cash, broker.cash
        last = broker.last_prices[held]
        if not np.isfinite(last).all():
            return  # a position filled on the first bar its symbol has: not marked yet
        unrealised = float(np.sum(broker.positions[held] * (last - broker.average_prices[held])))
        equity = broker.equity
        assert math.isclose(broker.starting_cash + broker.realised + unrealised, equity,
                            rel_tol=RTOL, abs_tol=1e-6), (broker.realised, unrealised, equity)
        self.live_checks += 1

    def place(self, action, closes):
        kind = action["kind"]
        if kind == "cancel":
            ids = self.open_orders()
            if ids:
                self.cancel(ids[action["pick"] % len(ids)])
            return
        k = action["symbol"] % len(self.data.symbols)
        symbol, ref = self.data.symbols[k], closes[k]
        if not math.isfinite(ref):
            return  # no bar for this symbol now: the strategy would not trade it
        if kind == "close":
            self.close(symbol)
            return
        if kind == "target_percent":
            self.order_target_percent(action["amount"], symbol=symbol)
            return
        if kind == "target_shares":
            self.order_target_shares(action["amount"], symbol=symbol)
            return
        side, (mode, amount) = action["side"], action["sizing"]
        order = {"symbol": symbol}
        if mode != "default":
            order[mode] = amount
        elif side < 0 and self.position_of(symbol) <= 0:
            return  # sell() without a size sells a long position; there is none
        if kind in ("stop", "stop_limit"):
            order["stop"] = ref * (1 + side * action["offset"])
        if kind == "limit":
            order["limit"] = ref * (1 - side * action["offset"])
        if kind == "stop_limit":  # a limit beyond the stop (or, when < 0, short of it)
            order["limit"] = order["stop"] * (1 + side * action["offset2"])
        if kind != "market":
            order["tif"] = action["tif"]
        if action["bracket"] is not None and kind != "stop_limit":
            how, loss, profit = action["bracket"]
            if how == "pct":
                order.update(sl_pct=loss, tp_pct=profit)
            else:
                order.update(sl=ref * (1 - side * loss), tp=ref * (1 + side * profit))
        (self.buy if side > 0 else self.sell)(**order)


def run_plan(bars, account, plan):
    by_bar: dict[int, list] = {}
    for bar, action in plan:
        by_bar.setdefault(bar, []).append(action)
    trader = type("PlanTrader", (PlanTrader,), {"PLAN": by_bar})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # bars without an open, on purpose
        return engine.run(trader, data=bars, mode="event", **account)


# --------------------------------------------------------------------------- the checks


def fills_of(res):
    """Filled orders with bar indices (placed, done) and the bar index of their root
    order: the order the strategy placed (a bracket exit's root is its entry)."""
    bar_of = {t: i for i, t in enumerate(pd.DatetimeIndex(res.panel.ts))}
    orders = res.orders.to_dicts()
    by_id = {o["order_id"]: o for o in orders}
    for o in orders:
        o["placed_bar"] = bar_of[pd.Timestamp(o["placed_ts"])]
        o["done_bar"] = None if o["done_ts"] is None else bar_of[pd.Timestamp(o["done_ts"])]
    for o in orders:
        root = o
        while root["parent_id"] is not None:
            root = by_id[root["parent_id"]]
        o["root"] = root
    return [o for o in orders if o["status"] == "filled"], by_id


def replay(res, fills, account):
    """Cash, equity, realised and unrealised P&L at every close, from the fills alone."""
    panel = res.panel
    close = panel.fields["close"]
    n, k = close.shape
    symbols = list(panel.symbols)
    rate = account.get("borrow_rate", 0.0) / res.settings["periods_per_year"]
    cash = account["cash"]
    realised = 0.0
    pos, avg, last = np.zeros(k), np.zeros(k), np.full(k, np.nan)
    by_bar: dict[int, list] = {}
    # within a bar, orders are matched in the order they were placed (id order)
    for f in sorted(fills, key=lambda f: f["order_id"]):
        by_bar.setdefault(f["done_bar"], []).append(f)
    out = {"cash": [], "equity": [], "ledger": [], "pos": []}
    for i in range(n):
        for f in by_bar.get(i, []):
            s = symbols.index(f["symbol"])
            qty, price, fee = f["fill_qty"], f["fill_price"], f["commission"]
            cash -= qty * price + fee
            realised -= fee
            p = pos[s]
            new = p + qty
            if p == 0 or (p > 0) == (qty > 0):
                avg[s] = price if p == 0 else avg[s] + (price - avg[s]) * abs(qty) / abs(new)
            else:
                closing = min(abs(qty), abs(p))
                realised += closing * (price - avg[s]) * np.sign(p)
                if abs(new) <= 1e-9 * max(abs(p), abs(qty)):
                    new = 0.0
                avg[s] = 0.0 if new == 0 else (price if (new > 0) != (p > 0) else avg[s])
            pos[s] = new
        finite = np.isfinite(close[i])
        last[finite] = close[i][finite]
        short = pos < 0
        if short.any() and rate:
            cost = float(np.sum(-pos[short] * last[short] * rate))
            cash -= cost
            realised -= cost
        held = pos != 0
        value = float(np.sum(pos[held] * last[held]))
        out["cash"].append(cash)
        out["equity"].append(cash + value)
        out["ledger"].append(account["cash"] + realised
                             + float(np.sum(pos[held] * (last[held] - avg[held]))))
        out["pos"].append(pos.copy())
    return {key: np.array(v) for key, v in out.items()}


def slipped(price, side, account):
    return (price * (1 + side * account.get("slippage_bps", 0.0) / 1e4)
            + side * account.get("slippage_fixed", 0.0))


def expected_price(o, bar, account):
    """The fill price the README's execution rules give, or None where they allow a
    choice (stop-limits): the open when the bar opens through the price (the close
    when it has no open and its whole range is through the price), else the price."""
    op, hi, lo, c = bar
    side = 1 if o["fill_qty"] > 0 else -1
    has_open = math.isfinite(op)
    gap_price = op if has_open else c
    if o["kind"] == "market":
        on_close = account["fill"] == "close" and o["done_bar"] == o["placed_bar"]
        return slipped(c if on_close else gap_price, side, account)
    if o["kind"] == "limit":
        limit = o["limit"]
        if has_open:
            through = op <= limit if side > 0 else op >= limit
        else:
            through = hi < limit if side > 0 else lo > limit
        if not through:
            return limit
        worse = slipped(gap_price, side, account)
        return min(worse, limit) if side > 0 else max(worse, limit)
    if o["kind"] == "stop":
        stop = o["stop"]
        if has_open:
            through = op >= stop if side > 0 else op <= stop
        else:
            through = lo > stop if side > 0 else hi < stop
        return slipped(gap_price if through else stop, side, account)
    return None


def filled_at_open(o, bar, account):
    """Whether ``o`` was matched at the bar's open (before the rest of the bar)."""
    op = bar[0]
    if not math.isfinite(op):
        return False
    at_open = {op, slipped(op, 1 if o["fill_qty"] > 0 else -1, account)}
    return o["fill_price"] in at_open or (
        o["kind"] in ("limit", "stop_limit") and o["fill_price"] == o["limit"]
        and (op <= o["limit"] if o["fill_qty"] > 0 else op >= o["limit"]))


def bar_range(panel, s, i):
    """(open, high, low, close) with an unknown high or low bounded by the known prices."""
    f = panel.fields
    op, hi, lo, c = (float(f[name][i, s]) for name in ("open", "high", "low", "close"))
    known = [x for x in (op, c) if math.isfinite(x)]
    hi = hi if math.isfinite(hi) else max(known)
    lo = lo if math.isfinite(lo) else min(known)
    return op, hi, lo, c


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_the_simulator_keeps_its_ledger_and_its_execution_rules(scenario):
    bars, account, plan = scenario
    res = run_plan(bars, account, plan)
    panel = res.panel
    symbols = list(panel.symbols)
    fills, by_id = fills_of(res)

    # --- the ledger at every bar
    replayed = replay(res, fills, account)
    equity = res.equity["equity"].to_numpy()
    cash = res.equity["cash"].to_numpy()
    scale = account["cash"]
    np.testing.assert_allclose(cash, replayed["cash"], rtol=RTOL, atol=1e-9 * scale)
    np.testing.assert_allclose(equity, replayed["equity"], rtol=RTOL, atol=1e-9 * scale)
    np.testing.assert_allclose(equity, replayed["ledger"], rtol=RTOL, atol=1e-6 * scale)
    broker = res.instance._broker
    np.testing.assert_allclose(broker.positions, replayed["pos"][-1], rtol=0, atol=1e-9)
    # the engine's own books: realised P&L is the sum of the trades' P&L (costs
    # included; an open lot holds the costs it has paid so far)
    trade_pnl = float(np.sum(broker.trades_table()["pnl"]))
    assert math.isclose(trade_pnl, broker.realised, rel_tol=RTOL, abs_tol=1e-6 * scale)
    assert res.instance.live_checks > 0 or not fills

    # --- the trade ledger: FIFO lots as a plain-Python replay of the fills builds
    # them, and closed P&L + open unrealised P&L = final equity - starting cash
    assert abs(reconciliation_gap(res)) <= 1e-6 * scale
    rows, _ = fifo_ledger(ledger_fills(res), close=panel.fields["close"],
                          borrow_rate=account.get("borrow_rate", 0.0),
                          periods_per_year=res.settings["periods_per_year"])
    trades = res.trades
    assert trades["entry_order"].to_list() == [r["entry_order"] for r in rows]
    assert trades["size"].to_list() == [r["direction"] * r["qty"] for r in rows]
    assert trades["exit_price"].to_list() == [r["exit_price"] for r in rows]
    assert trades["exit_reason"].to_list() == [r["exit_reason"] for r in rows]
    np.testing.assert_allclose(trades["costs"].to_numpy(), [r["costs"] for r in rows],
                               rtol=RTOL, atol=1e-12 * scale)

    # --- no margin: cash never below zero when shorting is off
    if not account["shorting"]:
        assert (cash >= -1e-9 * scale).all(), cash.min()
        assert all(p >= -1e-9 for row in replayed["pos"] for p in row)

    for o in fills:
        s = symbols.index(o["symbol"])
        i = o["done_bar"]
        bar = bar_range(panel, s, i)
        op, hi, lo, c = bar
        price, qty = o["fill_price"], o["fill_qty"]
        where = (o, bar, account)
        assert math.isfinite(c), where  # nothing fills on a bar the symbol did not trade

        # --- whole shares unless fractional
        if not account["fractional"]:
            assert qty == round(qty), where

        # --- never on or before the bar the strategy decided on
        root = o["root"]
        on_close = (account["fill"] == "close" and root["kind"] == "market"
                    and o is root and i == o["placed_bar"])
        if on_close:
            assert price == slipped(c, 1 if qty > 0 else -1, account), where
        else:
            assert i > root["placed_bar"], where
        if o is not root and i == by_id[o["parent_id"]]["done_bar"]:
            # a bracket exit acts on its entry's own bar only when the entry filled at
            # that bar's open: the rest of the bar came after the entry
            entry = by_id[o["parent_id"]]
            assert filled_at_open(entry, bar, account), (where, entry)

        # --- the price: the execution rules, inside the bar's range up to slippage
        side = 1 if qty > 0 else -1
        band_lo = lo if side > 0 else slipped(lo, side, account)
        band_hi = slipped(hi, side, account) if side > 0 else hi
        assert band_lo - 1e-9 <= price <= band_hi + 1e-9, where
        want = expected_price(o, bar, account)
        if want is not None:
            assert math.isclose(price, want, rel_tol=1e-12), (want, where)
        if o["kind"] in ("limit", "stop_limit") and o["limit"] is not None:
            assert price <= o["limit"] if side > 0 else price >= o["limit"], where


# Found by the property tests: on a bar without an open that gapped through the
# price, the stop used to fill at its own price, which did not trade on that bar.
def test_an_order_on_a_bar_without_open_fills_inside_the_bar():
    bars = pd.DataFrame({
        "ts": pd.date_range("2024-01-01", periods=3),
        "open": [10.0, math.nan, 10.7], "high": [10.1, 10.8, 10.9],
        "low": [9.9, 10.5, 10.6], "close": [10.0, 10.6, 10.8], "volume": 1000.0,
    })

    class BuyStop(engine.Strategy):
        def on_bar(self, bar):
            if bar.index == 0:
                self.buy(size=1, stop=10.2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        res = engine.run(BuyStop, data=bars)
    fill = res.orders.row(0, named=True)
    assert fill["status"] == "filled" and fill["done_ts"] == pd.Timestamp("2024-01-02")
    assert fill["fill_price"] == 10.6  # the close, as a market order on such a bar
