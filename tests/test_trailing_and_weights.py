"""Trailing stops, vectorised exits and target weights (issue 16, items 2 and 4).

Fills are worked out by hand on hand-built bars ``(open, high, low, close)`` on
consecutive days (``conftest.make_bars``); the event and vectorised paths of one
logic are compared trade by trade.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import SCRIPT_CASH, make_bars, run_script

import engine
from engine.data.bars import DataWarning
from engine.errors import EngineError, LookAheadError, OrderError

CASH = SCRIPT_CASH  # the cash of run_script

# A long bought at 100 on bar 1; highs 105, 110, 109 move the 10% trail to 94.5, 99, 99.
UP_THEN_DOWN = [
    (100, 100, 100, 100),
    (100, 105, 99, 104),
    (104, 110, 103, 109),
    (109, 109, 100, 101),
    (101, 102, 98, 99),
    (99, 99, 99, 99),
]


def script(actions, rows, **kw):
    return run_script(rows, actions, **kw)


def orders(res):
    return res.orders.to_dicts()


def trades(res):
    return res.trades.to_dicts()


def day(i):
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)


# ----------------------------------------------------------------- event path


def test_bracket_trailing_stop_follows_the_highest_high_and_fills_at_its_stop():
    res = script({0: lambda s: s.buy(size=10, sl_trail_pct=0.1)}, UP_THEN_DOWN)
    entry, stop = orders(res)
    assert entry["fill_price"] == 100.0
    # 110 * 0.9 = 99: bar 3's high (109) does not move it down; bar 4's low 98 touches it
    assert stop["kind"] == "stop" and stop["tag"] == "trailing_stop"
    assert stop["stop"] == pytest.approx(99.0)
    assert stop["fill_price"] == pytest.approx(99.0) and stop["done_ts"] == day(4)
    (trade,) = trades(res)
    assert trade["exit_reason"] == "trailing_stop"
    assert trade["pnl"] == pytest.approx(10 * (99.0 - 100.0))


def test_trailing_stop_fills_at_the_open_when_the_bar_gaps_through_it():
    rows = UP_THEN_DOWN[:4] + [(97, 98, 95, 96)]
    res = script({0: lambda s: s.buy(size=10, sl_trail_pct=0.1)}, rows)
    stop = orders(res)[1]
    assert stop["fill_price"] == 97.0 and stop["done_ts"] == day(4)


def test_trailing_stop_is_checked_from_the_bar_after_the_fill():
    # The fill bar's low (90) is under its own trail (105 * 0.9 = 94.5): no exit there.
    rows = [(100, 100, 100, 100), (100, 105, 90, 104), (104, 106, 104, 105)]
    res = script({0: lambda s: s.buy(size=10, sl_trail_pct=0.1)}, rows)
    stop = orders(res)[1]
    assert stop["status"] == "open"
    assert stop["stop"] == pytest.approx(106 * 0.9)


def test_standalone_trailing_sell_includes_the_bar_it_is_placed_on():
    res = script({0: lambda s: s.buy(size=10),
                  1: lambda s: s.sell(trail_percent=0.1)}, UP_THEN_DOWN)
    stop = orders(res)[1]
    assert stop["tag"] == "trailing_stop" and stop["fill_qty"] == -10
    assert stop["fill_price"] == pytest.approx(99.0) and stop["done_ts"] == day(4)


def test_short_trailing_stop_by_amount_follows_the_lowest_low():
    rows = [(100, 100, 100, 100), (100, 101, 95, 96), (96, 97, 90, 91), (92, 96, 91, 95),
            (95, 95, 95, 95)]
    res = script({0: lambda s: s.sell(size=10, sl_trail_amount=5)}, rows, shorting=True)
    entry, stop = orders(res)
    assert entry["fill_qty"] == -10 and entry["fill_price"] == 100.0
    # lows 95 then 90: the stop falls to 100, then 95; bar 3's high 96 reaches it
    assert stop["fill_price"] == pytest.approx(95.0) and stop["done_ts"] == day(3)
    assert trades(res)[0]["pnl"] == pytest.approx(-10 * (95.0 - 100.0))


def test_bracket_with_a_fixed_stop_trails_once_the_trail_passes_it():
    # fixed stop 98 (2% under 100); the trail is 94.5 after bar 1, 99 after bar 2
    res = script({0: lambda s: s.buy(size=10, sl_pct=0.02, sl_trail_pct=0.1)}, UP_THEN_DOWN)
    stop = orders(res)[1]
    assert stop["fill_price"] == pytest.approx(99.0)
    assert trades(res)[0]["exit_reason"] == "trailing_stop"
    # the price falls before the trail passes the fixed stop: a stop_loss exit at 98
    rows = [(100, 100, 100, 100), (100, 105, 99, 104), (103, 104, 97, 98)]
    res = script({0: lambda s: s.buy(size=10, sl_pct=0.02, sl_trail_pct=0.1)}, rows)
    assert orders(res)[1]["fill_price"] == pytest.approx(98.0)
    assert trades(res)[0]["exit_reason"] == "stop_loss"


def test_trailing_bracket_with_a_take_profit_is_one_cancels_the_other():
    rows = UP_THEN_DOWN[:2] + [(104, 112, 103, 111), (111, 111, 111, 111)]
    res = script({0: lambda s: s.buy(size=10, tp=112, sl_trail_pct=0.1)}, rows)
    by_tag = {o["tag"]: o for o in orders(res)}
    assert by_tag["take_profit"]["fill_price"] == 112.0
    assert by_tag["trailing_stop"]["status"] == "cancelled"


def test_trailing_order_arguments_are_checked():
    with pytest.raises(EngineError, match="sl_trail_pct is a fraction"):
        script({0: lambda s: s.buy(size=1, sl_trail_pct=3)}, UP_THEN_DOWN)
    with pytest.raises(EngineError, match="not both"):
        script({0: lambda s: s.sell(size=1, trail_percent=0.1, trail_amount=2)}, UP_THEN_DOWN)
    with pytest.raises(EngineError, match="takes no limit"):
        script({0: lambda s: s.sell(size=1, trail_percent=0.1, limit=3)}, UP_THEN_DOWN)
    with pytest.raises(EngineError, match="none is held"):
        script({0: lambda s: s.sell(trail_percent=0.1)}, UP_THEN_DOWN)
    assert issubclass(OrderError, EngineError)


# ----------------------------------------------------------------- vectorised exits


class VectorExits(engine.Strategy):
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trail: float = 0.0

    def rules(self, close):
        fast = engine.indicators.sma(close, 3)
        slow = engine.indicators.sma(close, 8)
        above = np.nan_to_num(fast - slow) > 0
        entries = above & ~np.roll(above, 1, axis=0)
        exits = ~above & np.roll(above, 1, axis=0)
        entries[0] = exits[0] = False
        return entries, exits

    def options(self):
        out = {}
        for name, value in (("stop_loss", self.stop_loss), ("take_profit", self.take_profit),
                            ("trail_percent", self.trail)):
            if value:
                out[name] = value
        return out

    def signals(self, data):
        entries, exits = self.rules(np.asarray(data.close))
        return engine.Signals(entries, exits, **self.options())


class EventExits(VectorExits):
    signals = engine.Strategy.signals

    def on_start(self):
        self.entries, self.exits = self.I(
            lambda c: tuple(a.astype(float) for a in self.rules(c)), self.data.close)

    def on_bar(self, bar):
        opts = self.options()
        bracket = {"sl_pct": opts.get("stop_loss"), "tp_pct": opts.get("take_profit"),
                   "sl_trail_pct": opts.get("trail_percent")}
        for s, name in enumerate(self.data.symbols):
            pos = self.position_of(name)
            closing = False
            if self.exits[-1][s] and pos > 0:
                self.close(name)
                closing = True
            if self.entries[-1][s] and (pos == 0 or closing):
                self.buy(symbol=name, **bracket)


def walk(n=300, symbols=("A", "B"), seed=7):
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(symbols):
        close = 50 * (1 + k) * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
        frames.append(pd.DataFrame({
            "ts": pd.date_range("2020-01-01", periods=n, freq="D"), "symbol": name,
            "open": open_, "high": high, "low": low, "close": close, "volume": 1e6}))
    return pd.concat(frames, ignore_index=True)


def same_trades(a, b):
    cols = ["symbol", "entry_ts", "exit_ts", "entry_price", "exit_price", "size", "pnl",
            "exit_reason"]
    left, right = a.trades.select(cols).to_dicts(), b.trades.select(cols).to_dicts()
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        for col in cols:
            if isinstance(x[col], float):
                assert x[col] == pytest.approx(y[col], rel=1e-12, nan_ok=True), (col, x, y)
            else:
                assert x[col] == y[col], (col, x, y)


@pytest.mark.parametrize("opts", [
    {"stop_loss": 0.03},
    {"take_profit": 0.04},
    {"trail": 0.05},
    {"stop_loss": 0.04, "take_profit": 0.06, "trail": 0.03},
])
@pytest.mark.parametrize("fill", ["open", "close"])
def test_vector_and_event_exits_give_identical_trades(opts, fill):
    data = walk()
    vec = engine.run(VectorExits, data=data, fill=fill, cash=CASH, **opts)
    evt = engine.run(EventExits, data=data, fill=fill, cash=CASH, **opts)
    same_trades(vec, evt)
    reasons = set(vec.trades["exit_reason"].drop_nulls())
    expected = {"stop_loss": "stop_loss", "take_profit": "take_profit",
                "trail": "trailing_stop"}
    assert {expected[k] for k in opts} & reasons, reasons


def test_vector_stop_loss_fills_by_hand():
    # entry signal on bar 0: bought at 100 on bar 1; 5% stop at 95 touched on bar 3
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 100, 96, 97), (97, 97, 94, 95),
            (95, 95, 95, 95)]

    class Stop(engine.Strategy):
        def signals(self, data):
            entries = np.zeros(len(data), bool)
            entries[0] = True
            return engine.Signals(entries, np.zeros(len(data), bool), size=10,
                                  size_type="shares", stop_loss=0.05)

    res = engine.run(Stop, data=make_bars(rows), cash=CASH)
    (trade,) = trades(res)
    assert trade["exit_reason"] == "stop_loss" and trade["exit_price"] == pytest.approx(95.0)
    assert trade["exit_ts"] == day(3)


def test_vector_exit_levels_per_bar_are_read_at_the_entry_signal():
    rows = [(100, 100, 100, 100)] * 2 + [(100, 100, 100, 100), (100, 100, 100, 100),
                                         (100, 104, 100, 103), (103, 103, 103, 103)]

    class PerBar(engine.Strategy):
        def signals(self, data):
            n = len(data)
            entries = np.zeros(n, bool)
            entries[1:2] = True
            tp = np.full(n, 0.5)
            tp[1:2] = 0.03          # the entry's bar says 3%: exit at 103
            return engine.Signals(entries, np.zeros(n, bool), size=1, size_type="shares",
                                  take_profit=tp)

    (trade,) = trades(engine.run(PerBar, data=make_bars(rows), cash=CASH))
    assert trade["exit_reason"] == "take_profit"
    assert trade["exit_price"] == pytest.approx(103.0) and trade["exit_ts"] == day(4)


def test_vector_exit_options_are_checked():
    class Bad(engine.Strategy):
        value = 1.5

        def signals(self, data):
            n = len(data)
            return engine.Signals(np.zeros(n, bool), np.zeros(n, bool),
                                  stop_loss=type(self).value)

    with pytest.raises(EngineError, match=r"stop_loss must be a fraction .* got 1.5"):
        engine.run(Bad, data=make_bars(UP_THEN_DOWN))
    Bad.value = np.ones(3) * 0.1
    with pytest.raises(EngineError, match=r"stop_loss has shape \(3,\)"):
        engine.run(Bad, data=make_bars(UP_THEN_DOWN))


def test_uses_exits_or_weights():
    assert not engine.Signals([True], [False]).uses_exits_or_weights()
    assert engine.Signals([True], [False], trail_percent=0.1).uses_exits_or_weights()
    assert engine.Signals(weights=[[0.5]]).options_used() == ("weights",)


# ----------------------------------------------------------------- target weights


def two_symbols(rows_a, rows_b):
    a, b = make_bars(rows_a, symbol="A"), make_bars(rows_b, symbol="B")
    return pd.concat([a, b], ignore_index=True)


def test_weights_rebalance_sells_first_then_buys_whole_shares():
    flat_a = [(10, 10, 10, 10)] * 2 + [(20, 20, 20, 20)] * 3
    flat_b = [(50, 50, 50, 50)] * 5
    data = two_symbols(flat_a, flat_b)

    class Weights(engine.Strategy):
        def signals(self, data):
            w = np.full((len(data), 2), np.nan)
            w[0:1] = [0.5, 0.5]      # filled on bar 1: 500 A at 10, 100 B at 50
            w[2:3] = [0.25, 0.75]    # equity 15000 at bar 2's close (A at 20)
            return engine.Signals(weights=w)

    res = engine.run(Weights, data=data, cash=CASH)
    fills = res.orders.filter(res.orders["status"] == "filled").to_dicts()
    assert [(f["symbol"], f["fill_qty"], f["fill_price"]) for f in fills] == [
        ("A", 500.0, 10.0), ("B", 100.0, 50.0),
        # bar 3: A sells to 0.25 * 15000 / 20 = 187 (whole, toward zero): -313 first,
        # then B buys to 0.75 * 15000 / 50 = 225: +125
        ("A", -313.0, 20.0), ("B", 125.0, 50.0),
    ]
    assert fills[2]["done_ts"] == fills[3]["done_ts"] == day(3)
    assert fills[2]["order_id"] < fills[3]["order_id"]


def test_weights_nan_leaves_a_symbol_and_zero_closes_it_and_threshold_skips():
    data = two_symbols([(10, 10, 10, 10)] * 5, [(50, 50, 50, 50)] * 5)

    class Weights(engine.Strategy):
        def signals(self, data):
            w = np.full((len(data), 2), np.nan)
            w[0:1] = [0.5, 0.5]
            w[1:2] = [np.nan, 0.0]   # close B, leave A
            w[2:3] = [0.51, np.nan]  # one point: under the threshold, skipped
            return engine.Signals(weights=w, rebalance_threshold=0.02)

    res = engine.run(Weights, data=data, cash=CASH)
    fills = res.orders.filter(res.orders["status"] == "filled").to_dicts()
    assert [(f["symbol"], f["fill_qty"]) for f in fills] == [
        ("A", 500.0), ("B", 100.0), ("B", -100.0)]
    assert res.trades.filter(res.trades["symbol"] == "B")["exit_reason"].to_list() == ["close"]


class MonthlyVector(engine.Strategy):
    """Equal weight in the symbols above their 20-bar mean, rebalanced monthly."""

    def weights(self, close, ts):
        mean = engine.indicators.sma(close, 20)
        above = np.nan_to_num(close - mean) > 0
        n_above = above.sum(axis=1, keepdims=True)
        w = np.where(n_above > 0, above / np.maximum(n_above, 1), 0.0) * 0.95
        # the first bar of each month: knowing a bar is a month's last needs the next one
        month = np.asarray(ts).astype("datetime64[M]")
        first_of_month = np.r_[False, month[1:] != month[:-1]]
        return np.where(first_of_month[:, None], w, np.nan)

    def signals(self, data):
        return engine.Signals(weights=self.weights(np.asarray(data.close), data.ts),
                              rebalance_threshold=0.01)


class MonthlyEvent(MonthlyVector):
    signals = engine.Strategy.signals

    def on_start(self):
        self.w = self.I(lambda c: self.weights(c, self._panel.ts[:len(c)]), self.data.close)

    def on_bar(self, bar):
        row = self.w[-1]
        if not np.isnan(row).all():
            self.rebalance(row, threshold=0.01)


@pytest.mark.parametrize("fill", ["open", "close"])
def test_monthly_rebalancing_vector_and_event_give_identical_trades(fill):
    data = walk(n=400, symbols=("A", "B", "C"), seed=3)
    vec = engine.run(MonthlyVector, data=data, fill=fill, cash=CASH)
    evt = engine.run(MonthlyEvent, data=data, fill=fill, cash=CASH)
    assert len(vec.trades) > 10
    same_trades(vec, evt)
    np.testing.assert_allclose(vec.equity["equity"].to_numpy(), evt.equity["equity"].to_numpy())


def test_weights_reading_the_future_are_caught_by_the_audit():
    class Peek(engine.Strategy):
        def signals(self, data):
            close = np.asarray(data.close)
            w = np.full(close.shape, np.nan)
            w[:-1] = np.where(close[1:] > close[:-1], 1.0, 0.0)  # tomorrow's move
            return engine.Signals(weights=w)

    with pytest.raises(LookAheadError, match="weights at"):
        engine.run(Peek, data=walk(n=80))


def test_weights_are_checked():
    class Bad(engine.Strategy):
        def signals(self, data):
            return engine.Signals(np.zeros(len(data), bool), None, weights=np.ones(len(data)))

    with pytest.raises(EngineError, match="weights= sets the positions itself"):
        engine.run(Bad, data=make_bars(UP_THEN_DOWN))


def test_momentum_rotation_example_runs_with_no_argument_on_the_vector_path():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "strategies" / "momentum_rotation.py"
    with pytest.warns(DataWarning):         # the bundled file lacks some volumes
        res = engine.run(path)
    assert res.settings["mode"] == "vector"
    assert res.metrics["rejected"] == 0
    held = res.trades.filter(res.trades["exit_ts"].is_null())
    assert held["symbol"].n_unique() <= 10 and res.metrics["trades"] > 20
    # every fill is on the bar after the first bar of a month (a rebalance bar)
    filled = res.orders.filter(res.orders["status"] == "filled")
    placed = filled["placed_ts"].cast(pl_date()).unique().to_list()
    assert all(ts.day <= 7 for ts in placed)


def test_event_path_rebalance_takes_a_dict_and_checks_its_input():
    data = two_symbols([(10, 10, 10, 10)] * 3, [(50, 50, 50, 50)] * 3)
    res = script_multi({0: lambda s: s.rebalance({"B": 0.5})}, data)
    fills = res.orders.filter(res.orders["status"] == "filled").to_dicts()
    assert [(f["symbol"], f["fill_qty"]) for f in fills] == [("B", 100.0)]
    with pytest.raises(EngineError, match="weights has 1 values for 2 symbols"):
        script_multi({0: lambda s: s.rebalance([0.5])}, data)


def script_multi(actions, data):
    class Script(engine.Strategy):
        def on_bar(self, bar):
            act = actions.get(bar.index)
            if act is not None:
                act(self)

    return engine.run(Script, data=data, cash=CASH)


def pl_date():
    import polars as pl

    return pl.Date


def test_stop_levels_reading_the_future_are_caught_by_the_audit():
    class PeekStop(engine.Strategy):
        def signals(self, data):
            close = np.asarray(data.close)
            above = close > engine.indicators.sma(close, 5)
            # the stop of each entry from the range of the bars still to come
            ahead = np.r_[np.abs(np.diff(close)) / close[:-1], 0.01]
            return engine.Signals(above, ~above, stop_loss=np.clip(ahead, 0.001, 0.5))

    with pytest.raises(LookAheadError, match="stop_loss at"):
        engine.run(PeekStop, data=walk(n=80, symbols=("A",)))


def test_a_trailing_stop_records_the_strategy_tag_as_text():
    res = script({0: lambda s: s.buy(size=10),
                  1: lambda s: s.sell(trail_percent=0.1, tag=3)}, UP_THEN_DOWN)
    assert orders(res)[1]["tag"] == "3" and trades(res)[0]["exit_reason"] == "3"
