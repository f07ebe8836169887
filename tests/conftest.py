"""Shared test helpers: hand-built bars (``from conftest import make_bars``) and a scripted
strategy run on them (``run_script``)."""

import numpy as np
import pandas as pd


def make_bars(rows, start="2024-01-01", symbol=None):
    """A DataFrame of daily bars from ``(open, high, low, close)`` tuples (NaN allowed)."""
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    df = pd.DataFrame({
        "ts": pd.date_range(start, periods=len(arr), freq="D"),
        "open": arr[:, 0], "high": arr[:, 1], "low": arr[:, 2], "close": arr[:, 3],
        "volume": 1000.0,
    })
    if symbol is not None:
        df.insert(1, "symbol", symbol)
    return df


def ledger_fills(res):
    """The filled orders of a result as the fills of ``engine.backtest.reference.fifo_ledger``:
    bar and symbol indices, in execution order (by bar, then order id)."""
    bar_of = {t: i for i, t in enumerate(pd.DatetimeIndex(res.panel.ts))}
    symbols = list(res.panel.symbols)
    filled = res.orders.filter(res.orders["status"] == "filled").to_dicts()
    fills = [{"bar": bar_of[pd.Timestamp(o["done_ts"])], "symbol": symbols.index(o["symbol"]),
              "qty": o["fill_qty"], "price": o["fill_price"], "commission": o["commission"],
              "order": o["order_id"], "reason": o["tag"]} for o in filled]
    return sorted(fills, key=lambda f: (f["bar"], f["order"]))


def unrealised(res):
    """Each trade row's unrealised P&L at the last close: ``size * (last close -
    entry_price) - costs`` for an open row, 0 for a closed one."""
    close = res.panel.fields["close"]
    symbols = list(res.panel.symbols)
    last = []
    for k in range(close.shape[1]):
        seen = close[:, k][np.isfinite(close[:, k])]
        last.append(seen[-1] if seen.size else np.nan)
    t = res.trades
    mark = np.array([last[symbols.index(s)] for s in t["symbol"].to_list()])
    open_ = t["exit_ts"].is_null().to_numpy()
    value = t["size"].to_numpy() * (mark - t["entry_price"].to_numpy()) - t["costs"].to_numpy()
    return np.where(open_, value, 0.0)


def reconciliation_gap(res):
    """Final equity - starting cash - (closed rows' pnl + open rows' unrealised P&L)."""
    closed_pnl = float(res.trades["pnl"].fill_null(0.0).sum())
    equity = res.equity["equity"].to_numpy()
    final = float(equity[-1]) if equity.size else res.starting_cash
    return final - res.starting_cash - (closed_pnl + float(unrealised(res).sum()))


#: The cash of a scripted run unless the test gives its own.
SCRIPT_CASH = 10_000.0


def run_script(rows, actions, data=None, **kw):
    """Run a strategy that calls ``actions[bar.index](strategy)`` after each bar closes,
    on ``make_bars(rows)`` (or ``data``), with ``SCRIPT_CASH`` unless ``cash=`` is given."""
    import engine

    class Script(engine.Strategy):
        def on_bar(self, bar):
            act = actions.get(bar.index)
            if act is not None:
                act(self)

    kw.setdefault("cash", SCRIPT_CASH)
    return engine.run(Script, data=make_bars(rows) if data is None else data, **kw)


def order_row(res, oid):
    """One row of a result's orders frame, as a dict."""
    rows = res.orders.filter(res.orders["order_id"] == oid).to_dicts()
    assert len(rows) == 1
    return rows[0]
