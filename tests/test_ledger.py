"""The ledger reconciles, runs are deterministic, and look-ahead is refused.

The ledger test replays every fill of a long random run from the orders frame, in
plain Python, and checks the engine's cash, equity and cost totals against the
replay, and its trade rows against the FIFO lots the fills make
(:func:`engine.backtest.reference.fifo_ledger`).
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ledger_fills, make_bars, reconciliation_gap, unrealised

import engine
from engine.backtest.reference import fifo_ledger
from engine.data.bars import DataWarning
from engine.errors import LookAheadError

N_BARS = 2000
CASH = 100_000.0
SETTINGS = dict(
    cash=CASH, commission=0.0005, commission_per_share=0.01, commission_fixed=0.5,
    commission_minimum=1.0, slippage_bps=3.0, slippage_fixed=0.01, shorting=True,
    borrow_rate=0.08, periods_per_year=252, mode="event",
)


def random_walk(seed, n, start_price, symbol):
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    prev = np.concatenate([[start_price], close[:-1]])
    opens = prev * np.exp(rng.normal(0.0, 0.006, n))
    high = np.maximum(opens, close) * np.exp(np.abs(rng.normal(0.0, 0.006, n)))
    low = np.minimum(opens, close) * np.exp(-np.abs(rng.normal(0.0, 0.006, n)))
    opens[rng.random(n) < 0.01] = np.nan  # a few bars without an open
    df = make_bars(np.column_stack([opens, high, low, close]), symbol=symbol)
    keep = rng.random(n) >= 0.02  # a few bars on which the symbol did not trade
    keep[0] = True
    return df[keep]


@pytest.fixture(scope="module")
def random_data():
    return pd.concat([random_walk(1, N_BARS, 100.0, "A"), random_walk(2, N_BARS, 40.0, "B")],
                     ignore_index=True)


class RandomTrader(engine.Strategy):
    """Places random market, limit, stop, stop-limit and bracket orders, both ways."""

    seed: int = 7

    def on_start(self):
        self.rng = np.random.default_rng(self.seed)

    def on_bar(self, bar):
        rng = self.rng
        for k, symbol in enumerate(("A", "B")):
            price = bar.close[k]
            if not math.isfinite(price) or rng.random() < 0.5:
                continue
            size = int(rng.integers(1, 60))
            off = float(rng.uniform(0.001, 0.03))
            tif = "day" if rng.random() < 0.3 else "gtc"
            u = rng.random()
            if u < 0.14:
                if rng.random() < 0.3:
                    self.buy(size=size, symbol=symbol, sl_pct=off, tp_pct=2 * off)
                else:
                    self.buy(size=size, symbol=symbol)
            elif u < 0.28:
                if rng.random() < 0.3:
                    self.sell(size=size, symbol=symbol, sl=price * (1 + off),
                              tp=price * (1 - off))
                else:
                    self.sell(size=size, symbol=symbol)
            elif u < 0.38:
                self.buy(size=size, symbol=symbol, limit=price * (1 - off), tif=tif)
            elif u < 0.48:
                self.sell(size=size, symbol=symbol, limit=price * (1 + off), tif=tif)
            elif u < 0.55:
                self.buy(size=size, symbol=symbol, stop=price * (1 + off), tif=tif)
            elif u < 0.62:
                self.sell(size=size, symbol=symbol, stop=price * (1 - off), tif=tif)
            elif u < 0.66:
                self.buy(size=size, symbol=symbol, stop=price * (1 + off),
                         limit=price * (1 + off * rng.uniform(0.5, 1.5)), tif=tif)
            elif u < 0.70:
                self.sell(size=size, symbol=symbol, stop=price * (1 - off),
                          limit=price * (1 - off * rng.uniform(0.5, 1.5)), tif=tif)
            elif u < 0.75:
                self.close(symbol)
            elif u < 0.79:
                self.order_target_percent(float(rng.uniform(-0.3, 0.3)), symbol=symbol)
            elif u < 0.82:
                self.buy(cash=float(rng.uniform(100, 3000)), symbol=symbol)
            elif u < 0.83:
                self.buy(size=5000, symbol=symbol)  # more than the account holds: rejected
            elif u < 0.86:
                open_ids = self.open_orders(symbol)
                if open_ids:
                    self.cancel(int(rng.choice(open_ids)))


def run_random(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return engine.run(RandomTrader, data=data, **SETTINGS)


@pytest.fixture(scope="module")
def random_run(random_data):
    return run_random(random_data)


def replay(res):
    """Recompute cash, equity, positions and borrow from the orders frame's fills."""
    close = res.panel.fields["close"]
    n, k = close.shape
    by_bar = {}
    for f in ledger_fills(res):
        by_bar.setdefault(f["bar"], []).append(f)
    rate = SETTINGS["borrow_rate"] / SETTINGS["periods_per_year"]

    cash = CASH
    pos = [0.0] * k
    last = [math.nan] * k
    borrow = 0.0
    cash_curve, equity_curve = [], []
    for i in range(n):
        for f in by_bar.get(i, []):
            s = f["symbol"]
            cash -= f["qty"] * f["price"] + f["commission"]
            new = pos[s] + f["qty"]
            pos[s] = 0.0 if abs(new) <= 1e-9 * max(abs(pos[s]), abs(f["qty"])) else new
        held = 0.0
        for s in range(k):
            if math.isfinite(close[i, s]):
                last[s] = close[i, s]
            if pos[s] < 0:
                cost = -pos[s] * last[s] * rate
                cash -= cost
                borrow += cost
            held += pos[s] * last[s] if pos[s] else 0.0
        cash_curve.append(cash)
        equity_curve.append(cash + held)
    return dict(cash=np.array(cash_curve), equity=np.array(equity_curve), pos=pos, last=last,
                borrow=borrow)


def test_random_run_is_busy(random_run):
    status = random_run.orders["status"].value_counts().to_dicts()
    counts = {row["status"]: row["count"] for row in status}
    # the run exercises fills, rejections, cancellations and expiries
    assert counts["filled"] > 500
    assert counts["rejected"] > 0 and counts["cancelled"] > 0 and counts["expired"] > 0
    kinds = set(random_run.orders.filter(random_run.orders["status"] == "filled")["kind"])
    assert kinds == {"market", "limit", "stop", "stop_limit"}
    reasons = set(random_run.trades["exit_reason"].drop_nulls())
    assert {"stop_loss", "take_profit", "close", "signal"} <= reasons
    assert (random_run.trades["size"] < 0).any()
    assert random_run.metrics["borrow_costs"] > 0


def test_ledger_identity_at_every_bar(random_run):
    r = replay(random_run)
    cash = random_run.equity["cash"].to_numpy()
    equity = random_run.equity["equity"].to_numpy()
    np.testing.assert_allclose(cash, r["cash"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(equity, r["equity"], rtol=1e-9, atol=0)
    # and with the engine's own cash: equity = cash + sum(position * last close)
    np.testing.assert_allclose(equity - cash, r["equity"] - r["cash"], rtol=1e-9, atol=1e-6)


def test_ledger_identity_at_the_end(random_run):
    trades = random_run.trades
    # the trade rows are the FIFO lots rebuilt in plain Python from the fills
    rows, last = fifo_ledger(ledger_fills(random_run), random_run.panel.fields["close"],
                             borrow_rate=SETTINGS["borrow_rate"],
                             periods_per_year=SETTINGS["periods_per_year"])
    symbols = list(random_run.panel.symbols)
    assert len(trades) == len(rows)
    assert trades["symbol"].to_list() == [symbols[r["symbol"]] for r in rows]
    assert trades["entry_order"].to_list() == [r["entry_order"] for r in rows]
    np.testing.assert_array_equal(trades["size"].to_numpy(),
                                  [r["direction"] * r["qty"] for r in rows])
    np.testing.assert_array_equal(trades["entry_price"].to_numpy(),
                                  [r["entry_price"] for r in rows])
    closed = trades["exit_ts"].is_not_null().to_numpy()
    assert closed.tolist() == [r["exit_bar"] is not None for r in rows]
    np.testing.assert_array_equal(trades["exit_price"].to_numpy()[closed],
                                  [r["exit_price"] for r in rows if r["exit_bar"] is not None])
    assert trades["exit_reason"].to_list() == [r["exit_reason"] for r in rows]
    np.testing.assert_allclose(trades["costs"].to_numpy(), [r["costs"] for r in rows],
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(trades["pnl"].to_numpy()[closed],
                               [r["pnl"] for r in rows if r["exit_bar"] is not None],
                               rtol=1e-9, atol=1e-9)
    # a closed row: pnl = size * (exit - entry) - costs
    c = trades.filter(trades["exit_ts"].is_not_null())
    np.testing.assert_allclose(
        c["pnl"].to_numpy(),
        (c["size"] * (c["exit_price"] - c["entry_price"]) - c["costs"]).to_numpy(),
        rtol=1e-9, atol=1e-8)
    # the run exercises partial exits: rows split from one lot share its entry order
    assert trades["entry_order"].is_duplicated().any()

    # closed P&L + the open rows' unrealised P&L = final equity - starting cash
    r = replay(random_run)
    assert (~closed).any()  # the run ends holding something
    open_rows = trades.filter(trades["exit_ts"].is_null())
    for s in set(open_rows["symbol"]):
        held = open_rows.filter(open_rows["symbol"] == s)["size"].sum()
        assert held == pytest.approx(r["pos"][symbols.index(s)], abs=1e-9)
    final = random_run.equity["equity"][-1]
    assert abs(reconciliation_gap(random_run)) <= 1e-6 * CASH
    total = trades["pnl"].to_numpy()[closed].sum() + unrealised(random_run).sum()
    assert final - CASH == pytest.approx(total, rel=1e-9)
    assert random_run.metrics["final_equity"] == final


def test_cost_totals_match_the_orders(random_run):
    r = replay(random_run)
    commissions = random_run.orders["commission"].sum()
    assert commissions > 0
    assert commissions == pytest.approx(random_run.metrics["commissions"], rel=1e-12)
    assert random_run.metrics["borrow_costs"] == pytest.approx(r["borrow"], rel=1e-9)
    costs = random_run.trades["costs"].sum()
    assert costs == pytest.approx(commissions + r["borrow"], rel=1e-9)


def test_filled_orders_respect_their_prices(random_run):
    o = random_run.orders.filter(random_run.orders["status"] == "filled")
    for row in o.filter(o["kind"] == "limit").to_dicts():
        if row["side"] == "buy":
            assert row["fill_price"] <= row["limit"]
        else:
            assert row["fill_price"] >= row["limit"]
    assert (o["fill_qty"] != 0).all()
    assert (o["fill_qty"].to_numpy() == np.round(o["fill_qty"].to_numpy())).all()


# --------------------------------------------------------------------------- determinism


def test_two_runs_are_identical(random_data, random_run):
    again = run_random(random_data)
    assert again.trades.equals(random_run.trades)
    assert again.orders.equals(random_run.orders)
    assert again.equity.equals(random_run.equity)
    assert again.metrics.keys() == random_run.metrics.keys()
    for key, value in random_run.metrics.items():
        other = again.metrics[key]
        assert other == value or (math.isnan(other) and math.isnan(value)), key


# --------------------------------------------------------------------------- look-ahead

ROWS = [(10 + i, 11 + i, 9 + i, 10.5 + i) for i in range(10)]


class ReadsPastTheEnd(engine.Strategy):
    def on_bar(self, bar):
        if bar.index == 3:
            self.data.close[len(self.data)]


class ReadsNextBar(engine.Strategy):
    def on_bar(self, bar):
        if bar.index == 5:
            self.data.close[bar.index + 1]


class ReadsTheCurrentBar(engine.Strategy):
    def on_bar(self, bar):
        assert self.data.close[bar.index] == self.data.close[-1] == bar.close
        assert len(self.data.close) == bar.index + 1


class PeekingIndicator(engine.Strategy):
    def on_start(self):
        self.nxt = self.I(lambda x: np.roll(x, -1), self.data.close, name="next_close")

    def on_bar(self, bar):
        pass


class PeekingSignals(engine.Strategy):
    def signals(self, data):
        close = data.close
        return engine.Signals(entries=np.roll(close, -1) > close,
                              exits=np.roll(close, -1) < close)


class HonestSignals(engine.Strategy):
    def signals(self, data):
        close = data.close
        up = np.concatenate([[False], close[1:] > close[:-1]])
        return engine.Signals(entries=up, exits=~up)


@pytest.mark.parametrize("cls, bar", [(ReadsPastTheEnd, 3), (ReadsNextBar, 5)])
def test_reading_a_later_bar_raises(cls, bar):
    with pytest.raises(LookAheadError) as info:
        engine.run(cls, data=make_bars(ROWS))
    assert type(info.value) is LookAheadError
    message = str(info.value)
    assert f"at bar {bar}" in message
    assert f"reads bar {bar + 1}" in message


def test_reading_the_current_bar_is_allowed():
    res = engine.run(ReadsTheCurrentBar, data=make_bars(ROWS))
    assert len(res.equity) == len(ROWS)


def test_indicator_reading_the_future_is_refused():
    with pytest.raises(LookAheadError, match="next_close"):
        engine.run(PeekingIndicator, data=make_bars(ROWS))


def test_vector_signals_reading_the_future_are_refused():
    with pytest.raises(LookAheadError, match="reads the future"):
        engine.run(PeekingSignals, data=make_bars(ROWS))


def test_honest_vector_signals_run():
    res = engine.run(HonestSignals, data=make_bars(ROWS))
    assert res.settings["mode"] == "vector"
    assert len(res.trades) >= 1
