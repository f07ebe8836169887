"""The trade ledger: FIFO lots, partial exits, flips, resizes, and a ledger that reconciles.

The rules (``engine/_core/broker.pyx``, module docstring): every fill that opens or adds
to a position opens a lot (a trade row); a fill that reduces it closes the oldest lots
first, a lot closed in part becoming a closed row for the quantity sold and an open row
for the rest; costs are shared by quantity. Hand-built bars check each rule against
figures worked out by hand; property tests check, over random order streams, that the
rows are those of a plain-Python replay of the fills
(:func:`engine.backtest.reference.fifo_ledger`) and that, for every run,

    closed rows' pnl + open rows' unrealised P&L = final equity - starting cash

on the event path and the vectorised path, which make the same trades for the same logic.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import (
    SCRIPT_CASH,
    ledger_fills,
    make_bars,
    reconciliation_gap,
    run_script,
    unrealised,
)
from engine._core.broker import Broker
from engine._core.loop import run_vector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.analysis.event_study import entry_signal_bars
from engine.backtest.reference import fifo_ledger
from engine.data.bars import DataWarning

CASH = SCRIPT_CASH  # the cash of run_script
FLAT = (10.0, 10.0, 10.0, 10.0)


def at(price):
    return (price, price, price, price)


def ts(i):
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)


run = run_script


def shape(res):
    """(size, entry_price, exit_price, exit_reason, entry_order) of every row."""
    return [(t["size"], t["entry_price"], t["exit_price"], t["exit_reason"], t["entry_order"])
            for t in res.trades.to_dicts()]


def assert_reconciles(res):
    assert abs(reconciliation_gap(res)) <= 1e-9 * res.starting_cash


# --------------------------------------------------------------------------- partial exits


def test_buy_10_sell_4_closes_a_row_of_4_and_keeps_6_open():
    rows = [FLAT, FLAT, at(12), at(13)]
    res = run(rows, {0: lambda s: s.buy(size=10), 1: lambda s: s.sell(size=4)},
              commission_fixed=1.0)
    closed, open_ = res.trades.to_dicts()
    assert (closed["size"], closed["entry_price"], closed["exit_price"]) == (4.0, 10.0, 12.0)
    assert closed["entry_ts"] == ts(1) and closed["exit_ts"] == ts(2)
    assert closed["bars_held"] == 1 and closed["exit_reason"] == "signal"
    # the entry commission is shared 4:6; the exit's 1 is all the closed row's
    assert closed["costs"] == pytest.approx(0.4 + 1.0, rel=1e-12)
    assert closed["pnl"] == pytest.approx(4 * 2.0 - 1.4, rel=1e-12)
    assert closed["return_pct"] == pytest.approx(6.6 / 40.0, rel=1e-12)
    assert (open_["size"], open_["entry_price"], open_["entry_ts"]) == (6.0, 10.0, ts(1))
    assert open_["costs"] == pytest.approx(0.6, rel=1e-12)
    for key in ("exit_ts", "exit_price", "pnl", "return_pct", "bars_held", "exit_reason"):
        assert open_[key] is None, key
    assert closed["entry_order"] == open_["entry_order"] == 0   # one lot, split
    # a partial exit is a closed trade for the statistics
    assert res.metrics["trades"] == 1 and res.metrics["open_trades"] == 1
    assert res.metrics["hit_rate"] == 1.0
    assert res.hit_rates().row(0, named=True)["trades"] == 1
    assert res.yearly()["trades"].to_list() == [1]
    # 6.6 realised + 6 * (13 - 10) - 0.6 held = 24 = final equity - starting cash
    assert res.equity["equity"][-1] == pytest.approx(CASH + 24.0, rel=1e-12)
    assert unrealised(res).tolist() == [0.0, pytest.approx(17.4, rel=1e-12)]
    assert_reconciles(res)


def test_buy_10_sell_4_sell_6_makes_two_closed_rows():
    rows = [FLAT, FLAT, at(12), at(13), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=10), 1: lambda s: s.sell(size=4),
                     2: lambda s: s.sell(size=6)}, commission_fixed=1.0)
    assert shape(res) == [(4.0, 10.0, 12.0, "signal", 0), (6.0, 10.0, 13.0, "signal", 0)]
    first, second = res.trades.to_dicts()
    assert second["entry_ts"] == ts(1) and second["exit_ts"] == ts(3)
    assert second["bars_held"] == 2
    assert second["costs"] == pytest.approx(0.6 + 1.0, rel=1e-12)
    assert second["pnl"] == pytest.approx(6 * 3.0 - 1.6, rel=1e-12)
    assert first["pnl"] + second["pnl"] == pytest.approx(res.equity["equity"][-1] - CASH)
    assert res.metrics["trades"] == 2 and res.metrics["open_trades"] == 0


def test_buy_5_buy_5_sell_7_closes_first_in_first_out():
    rows = [FLAT, FLAT, at(11), at(12), at(12)]
    res = run(rows, {0: lambda s: s.buy(size=5), 1: lambda s: s.buy(size=5),
                     2: lambda s: s.sell(size=7)}, commission_fixed=1.0)
    # the first lot (5 at 10) closes whole, then 2 of the second (5 at 11); 3 stay open
    assert shape(res) == [(5.0, 10.0, 12.0, "signal", 0), (2.0, 11.0, 12.0, "signal", 1),
                          (3.0, 11.0, None, None, 1)]
    first, second, rest = res.trades.to_dicts()
    assert first["costs"] == pytest.approx(1.0 + 5 / 7, rel=1e-12)
    assert first["pnl"] == pytest.approx(5 * 2.0 - (1.0 + 5 / 7), rel=1e-12)
    assert second["costs"] == pytest.approx(2 / 5 + 2 / 7, rel=1e-12)
    assert second["pnl"] == pytest.approx(2 * 1.0 - (2 / 5 + 2 / 7), rel=1e-12)
    assert second["entry_ts"] == rest["entry_ts"] == ts(2)
    assert rest["costs"] == pytest.approx(3 / 5, rel=1e-12)
    assert res.metrics["trades"] == 2 and res.metrics["open_trades"] == 1
    # the broker's average price is the open lots' own: 11, not the blended 10.5
    assert res.instance._broker.average_prices.tolist() == [11.0]
    assert_reconciles(res)


def test_a_flip_closes_every_lot_and_opens_the_rest_the_other_way():
    rows = [FLAT, FLAT, FLAT, at(12), at(11)]
    res = run(rows, {0: lambda s: s.buy(size=5), 1: lambda s: s.buy(size=5),
                     2: lambda s: s.sell(size=15)}, shorting=True, commission_fixed=3.0)
    assert shape(res) == [(5.0, 10.0, 12.0, "signal", 0), (5.0, 10.0, 12.0, "signal", 1),
                          (-5.0, 12.0, None, None, 2)]
    # the flip's commission of 3 is shared 5:5:5 by the two lots it closes and the short
    assert [t["costs"] for t in res.trades.to_dicts()] == pytest.approx([4.0, 4.0, 1.0])
    assert res.trades["pnl"].to_list()[:2] == pytest.approx([6.0, 6.0])
    assert res.equity["equity"][-1] == pytest.approx(CASH + 12.0 + 5.0 - 1.0, rel=1e-12)
    assert_reconciles(res)


def test_a_strategy_that_only_resizes_reports_its_trades():
    # target 50%, then 25%, 50% and 10% of equity: the sells close lots (FIFO)
    rows = [FLAT, at(12), FLAT, at(15), FLAT, FLAT, FLAT]
    res = run(rows, {0: lambda s: s.order_target_percent(0.5),
                     2: lambda s: s.order_target_percent(0.25),
                     4: lambda s: s.order_target_percent(0.5),
                     5: lambda s: s.order_target_percent(0.1)})
    # bar 1: +416 at 12; bar 3: -229 at 15; bar 5: equity 8443 + 187 * 10 = 10313,
    # +328 at 10 (515 held); bar 6: -412 at 10 (103 held)
    assert res.orders["fill_qty"].to_list() == [416.0, -229.0, 328.0, -412.0]
    assert shape(res) == [(229.0, 12.0, 15.0, "signal", 0), (187.0, 12.0, 10.0, "signal", 0),
                          (225.0, 10.0, 10.0, "signal", 2), (103.0, 10.0, None, None, 2)]
    assert res.trades["pnl"].to_list()[:3] == pytest.approx([687.0, -374.0, 0.0])
    assert res.metrics["trades"] == 3 and res.metrics["open_trades"] == 1
    assert res.metrics["hit_rate"] == pytest.approx(1 / 3)  # a zero-P&L trade is no hit
    assert res.trades["bars_held"].to_list() == [2, 5, 1, None]
    assert_reconciles(res)


# --------------------------------------------------------------------------- brackets, borrow


def test_a_bracket_stop_closes_lots_first_in_first_out_and_flags_them_all():
    # 3 held, then 10 bought with a bracket; the stop sells 10 on a bar that touches
    # both exits: the first lot (3) and 7 of the second close; 3 stay open
    rows = [FLAT, FLAT, FLAT, (10, 12.5, 8.5, 10), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=3), 1: lambda s: s.buy(size=10, sl=9.0, tp=12.0)})
    assert shape(res) == [(3.0, 10.0, 9.0, "stop_loss", 0), (7.0, 10.0, 9.0, "stop_loss", 1),
                          (3.0, 10.0, None, None, 1)]
    assert res.trades["stop_and_target_same_bar"].to_list() == [True, True, False]
    assert res.trades["pnl"].to_list()[:2] == pytest.approx([-3.0, -7.0])
    assert res.metrics["same_bar_exits"] == 1
    assert res.hit_rates().filter(value="stop_loss").row(0, named=True)["trades"] == 2
    assert_reconciles(res)


def test_borrow_is_shared_by_the_open_short_lots_by_quantity():
    # short 10, short 10 more, cover 15: borrow 0.1% of the short value per close
    rows = [FLAT] * 6
    res = run(rows, {0: lambda s: s.sell(size=10), 1: lambda s: s.sell(size=10),
                     3: lambda s: s.buy(size=15)},
              shorting=True, borrow_rate=0.252, periods_per_year=252)
    # first lot: 0.1 (bar 1) + 0.1 + 0.1; second: 0.1 + 0.1, half of it (0.1) goes
    # with the 5 covered, the other half stays with the 5 held, which then pay 0.05 a bar
    assert shape(res) == [(-10.0, 10.0, 10.0, "signal", 0), (-5.0, 10.0, 10.0, "signal", 1),
                          (-5.0, 10.0, None, None, 1)]
    costs = res.trades["costs"].to_list()
    assert costs == pytest.approx([0.3, 0.1, 0.2], rel=1e-9)
    assert res.trades["pnl"].to_list()[:2] == pytest.approx([-0.3, -0.1], rel=1e-9)
    assert sum(costs) == pytest.approx(res.metrics["borrow_costs"], rel=1e-12)
    assert_reconciles(res)


def test_two_lots_filled_on_one_bar_keep_their_own_signal_bars():
    # a limit placed on bar 0 and a market order placed on bar 2 both fill on bar 3
    rows = [FLAT, FLAT, FLAT, (9.5, 10, 9, 9.8), FLAT]
    res = run(rows, {0: lambda s: s.buy(size=2, limit=9.6), 2: lambda s: s.buy(size=3)})
    assert res.trades["entry_ts"].to_list() == [ts(3), ts(3)]
    assert res.trades["entry_order"].to_list() == [0, 1]
    assert entry_signal_bars(res.trades, res.orders, res.panel.ts).tolist() == [0, 2]


def test_a_position_not_marked_yet_counts_at_its_cost_when_sizing():
    # Found by the property tests: with fills at the close, A is bought on the first
    # bar, before any close was marked; sizing B by equity then read A at NaN and
    # filled B with a NaN quantity. A now counts at its cost (its lots' entry price).
    bars = pd.concat([make_bars([at(9.0), at(9.0)], symbol=s) for s in ("A", "B")])

    class Half(engine.Strategy):
        def on_bar(self, bar):
            if bar.index == 0:
                self.order_target_percent(0.5, symbol="A")
                self.order_target_percent(0.5, symbol="B")

    res = engine.run(Half, data=bars, mode="event", cash=2000.0, fill="close")
    # A: 1000 / 9 -> 111; B: equity 2000 - 999 + 111 * 9 = 2000 -> 111
    assert res.orders["fill_qty"].to_list() == [111.0, 111.0]
    assert res.equity["cash"].to_list() == [2.0, 2.0]
    assert_reconciles(res)


# --------------------------------------------------------------------------- properties

SYMBOLS = ("AAA", "BBB", "CCC")


@st.composite
def walks(draw, max_symbols=3):
    """Daily bars for 1-3 symbols (some bars missing), long format."""
    n_bars = draw(st.integers(5, 25))
    n_symbols = draw(st.integers(1, max_symbols))
    rows = []
    for k in range(n_symbols):
        close = draw(st.sampled_from([9.0, 41.0, 180.0]))
        for i in range(n_bars):
            o = round(close * math.exp(draw(st.floats(-0.04, 0.04))), 2)
            close = round(o * math.exp(draw(st.floats(-0.04, 0.04))), 2)
            if i == 0 or draw(st.integers(0, 9)) > 0:
                rows.append((ts(i), SYMBOLS[k], o, max(o, close) * 1.01, min(o, close) * 0.99,
                             close))
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close"])
    frame["volume"] = 1000.0
    return frame


def accounts():
    return st.fixed_dictionaries({
        "cash": st.sampled_from([2_000.0, 50_000.0]),
        "shorting": st.just(True),
        "fill": st.sampled_from(["open", "close"]),
        "borrow_rate": st.sampled_from([0.0, 0.3]),
        "commission": st.sampled_from([0.0, 0.002]),
        "commission_fixed": st.sampled_from([0.0, 1.5]),
        "slippage_bps": st.sampled_from([0.0, 7.0]),
    })


# market orders that resize, reduce in part, flatten and flip
moves = st.one_of(
    st.tuples(st.just("buy"), st.integers(1, 40)),
    st.tuples(st.just("sell"), st.integers(1, 40)),
    st.tuples(st.just("target_shares"), st.integers(-40, 40)),
    st.tuples(st.just("target_percent"), st.floats(-0.4, 0.4)),
    st.tuples(st.just("close"), st.none()),
)


class Streamer(engine.Strategy):
    """Places ``PLAN[bar]``: a list of (symbol index, move)."""

    PLAN: ClassVar[dict] = {}

    def on_bar(self, bar):
        closes = np.atleast_1d(np.asarray(bar.close, dtype=float))
        for k, (kind, amount) in self.PLAN.get(bar.index, ()):
            k %= len(self.data.symbols)
            symbol = self.data.symbols[k]
            if not math.isfinite(closes[k]):
                continue
            if kind == "buy":
                self.buy(size=amount, symbol=symbol)
            elif kind == "sell":
                self.sell(size=amount, symbol=symbol)
            elif kind == "target_shares":
                self.order_target_shares(amount, symbol=symbol)
            elif kind == "target_percent":
                self.order_target_percent(amount, symbol=symbol)
            else:
                self.close(symbol)


def quiet_run(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return engine.run(*args, **kw)


def assert_rows_match_the_replay(res, account):
    rows, _ = fifo_ledger(ledger_fills(res), res.panel.fields["close"],
                          borrow_rate=account.get("borrow_rate", 0.0),
                          periods_per_year=res.settings["periods_per_year"])
    t = res.trades
    symbols = list(res.panel.symbols)
    assert t.height == len(rows)
    assert t["symbol"].to_list() == [symbols[r["symbol"]] for r in rows]
    assert t["entry_order"].to_list() == [r["entry_order"] for r in rows]
    assert t["exit_reason"].to_list() == [r["exit_reason"] for r in rows]
    assert t["size"].to_list() == [r["direction"] * r["qty"] for r in rows]
    assert t["entry_price"].to_list() == [r["entry_price"] for r in rows]
    assert t["exit_price"].to_list() == [r["exit_price"] for r in rows]
    scale = account["cash"]
    np.testing.assert_allclose(t["costs"].to_numpy(), [r["costs"] for r in rows],
                               rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(t["pnl"].fill_null(np.nan).to_numpy(),
                               [np.nan if r["pnl"] is None else r["pnl"] for r in rows],
                               rtol=1e-9, atol=1e-12 * scale)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(walks(), accounts(), st.data())
def test_the_ledger_reconciles_over_random_resizes_partial_exits_and_flips(bars, account, data):
    n_bars = bars["ts"].nunique()
    plan = data.draw(st.lists(st.tuples(st.integers(0, n_bars - 1),
                                        st.tuples(st.integers(0, 2), moves)),
                              min_size=3, max_size=30))
    by_bar: dict[int, list] = {}
    for bar, move in plan:
        by_bar.setdefault(bar, []).append(move)
    res = quiet_run(type("Streamer", (Streamer,), {"PLAN": by_bar}), data=bars, mode="event",
                    **account)
    # closed P&L + open unrealised P&L = final equity - starting cash
    assert abs(reconciliation_gap(res)) <= 1e-6 * account["cash"]
    assert_rows_match_the_replay(res, account)
    t = res.trades
    closed = t.filter(t["exit_ts"].is_not_null())
    np.testing.assert_allclose(
        closed["pnl"].to_numpy(),
        (closed["size"] * (closed["exit_price"] - closed["entry_price"])
         - closed["costs"]).to_numpy(), rtol=1e-9, atol=1e-9 * account["cash"])
    # the open rows are the positions held, lot by lot
    broker = res.instance._broker
    for k, symbol in enumerate(res.panel.symbols):
        held = t.filter((t["symbol"] == symbol) & t["exit_ts"].is_null())["size"].sum()
        assert held == pytest.approx(broker.positions[k], abs=1e-9)
    # the statistics count every closed row, a partial exit included
    assert res.metrics["trades"] == closed.height
    assert res.metrics["open_trades"] == t.height - closed.height
    if closed.height:
        assert res.hit_rates().row(0, named=True)["trades"] == closed.height
        assert res.metrics["hit_rate"] == pytest.approx(float((closed["pnl"] > 0).mean()))


# --------------------------------------------------------------------------- both paths


class Both(engine.Strategy):
    """One logic on both paths: the signals of ``ENTRIES``/``EXITS``, read as the
    vectorised loop reads them (exits first; an entry only while flat or closing)."""

    ENTRIES: ClassVar[np.ndarray] = np.zeros((0, 1), bool)
    EXITS: ClassVar[np.ndarray] = np.zeros((0, 1), bool)
    SIZE: ClassVar[float] = 0.0
    SIZE_TYPE: ClassVar[str] = "shares"
    DIRECTION: ClassVar[str] = "long"

    def signals(self, data):
        n = len(data.ts)
        return engine.Signals(entries=self.ENTRIES[:n], exits=self.EXITS[:n], size=self.SIZE,
                              size_type=self.SIZE_TYPE, direction=self.DIRECTION)

    def on_bar(self, bar):
        i, way = bar.index, 1 if self.DIRECTION == "long" else -1
        for k, symbol in enumerate(self.data.symbols):
            held = self.position_of(symbol)
            closing = False
            if self.EXITS[i, k] and held * way > 0:
                self.close(symbol)
                closing = True
            if self.ENTRIES[i, k] and (held == 0 or closing):
                size, kind = self.SIZE, self.SIZE_TYPE
                if kind == "target_percent":
                    self.order_target_percent(way * size, symbol=symbol)
                elif kind == "all_cash":
                    self.buy(symbol=symbol)
                else:
                    place = self.buy if way > 0 else self.sell
                    place(symbol=symbol, **{"shares": {"size": size}, "cash": {"cash": size},
                                            "percent": {"percent": size}}[kind])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(walks(), accounts(), st.data())
def test_both_paths_make_the_same_trades_and_reconcile(bars, account, data):
    n_bars, n_symbols = bars["ts"].nunique(), bars["symbol"].nunique()
    size_type = data.draw(st.sampled_from(["shares", "cash", "percent", "target_percent",
                                           "all_cash"]))
    direction = "long" if size_type == "all_cash" else data.draw(
        st.sampled_from(["long", "short"]))
    size = {"shares": float(data.draw(st.integers(1, 30))),
            "cash": data.draw(st.floats(100, 3000)), "percent": data.draw(st.floats(0.05, 0.5)),
            "target_percent": data.draw(st.floats(0.05, 0.5)), "all_cash": 0.0}[size_type]
    signal = st.lists(st.booleans(), min_size=n_bars * n_symbols,
                      max_size=n_bars * n_symbols)
    entries = np.array(data.draw(signal)).reshape(n_bars, n_symbols)
    exits = np.array(data.draw(signal)).reshape(n_bars, n_symbols)
    cls = type("Both", (Both,), {"ENTRIES": entries, "EXITS": exits, "SIZE": size,
                                 "SIZE_TYPE": size_type, "DIRECTION": direction})
    event = quiet_run(cls, data=bars, mode="event", **account)
    vector = quiet_run(cls, data=bars, mode="vector", **account)
    assert event.trades.equals(vector.trades)
    assert event.equity.equals(vector.equity)
    for res in (event, vector):
        assert abs(reconciliation_gap(res)) <= 1e-6 * account["cash"]
    assert_rows_match_the_replay(vector, account)


# --------------------------------------------------------------------------- draining


def stepped_broker(prices, plan, drain, **account):
    """A broker fed one bar at a time (a chunk per bar), with ``plan[bar]`` market
    orders ``(symbol, signed shares)`` placed after that bar; with ``drain``, the
    closed trades are drained after every bar. Returns the trade tables handed out."""
    k = prices.shape[2]
    zeros = np.zeros((1, k), np.uint8)
    broker = Broker(*(np.ascontiguousarray(prices[f, :1]) for f in range(4)), 1e6,
                    shorting=True, **account)
    tables = []
    for i in range(prices.shape[1]):
        if i:
            broker.bind_chunk(*(np.ascontiguousarray(prices[f, i:i + 1]) for f in range(4)))
        run_vector(broker, zeros, zeros, np.zeros((1, k)), "shares", 1)
        for s, qty in plan.get(i, ()):
            broker.submit(s, 1 if qty > 0 else -1, 0, 0, float(abs(qty)))  # market, shares
        if drain:
            tables.append(broker.drain_trades())
    tables.append(broker.drain_trades(everything=True))
    return tables


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(2, 3), st.integers(4, 30), st.data())
def test_draining_closed_rows_bar_by_bar_hands_out_the_whole_ledger(k, n, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, k)), axis=0))
    prices = np.stack([close, close * 1.01, close * 0.99, close])
    plan = {}
    for bar, s, qty in data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, k - 1),
                                                    st.integers(-20, 20).filter(bool)),
                                          max_size=40)):
        plan.setdefault(bar, []).append((s, qty))
    account = dict(commission_fixed=1.0, borrow_rate=0.2)
    whole = stepped_broker(prices, plan, drain=False, **account)[-1]
    parts = stepped_broker(prices, plan, drain=True, **account)
    for key, value in whole.items():
        if isinstance(value, dict):
            continue
        joined = np.concatenate([p[key] for p in parts])
        np.testing.assert_array_equal(joined, value, err_msg=key)


class _NumberTags(engine.Strategy):
    """Buys on bar 0 and closes on bar 1 with the tag 3, a number."""

    def on_bar(self, bar):
        if bar.index == 0:
            self.buy(size=1, tag=7)
        elif bar.index == 1:
            self.close(tag=3)


def test_a_number_tag_is_recorded_as_its_text_not_as_an_engine_code():
    # The broker's own tags are numbered (3 was "close"); a strategy's number is its name.
    res = engine.run(_NumberTags, make_bars([(10, 11, 9, 10)] * 4))
    assert res.trades["exit_reason"].to_list() == ["3"]
    assert res.orders["tag"].to_list() == ["7", "3"]
