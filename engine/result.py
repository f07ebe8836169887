"""What a backtest returns: metrics, trades, equity and orders as polars frames."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from engine.panel import Panel

TRADE_COLUMNS = ("symbol", "entry_ts", "entry_price", "exit_ts", "exit_price", "size", "pnl",
                 "return_pct", "bars_held", "exit_reason")


@dataclass
class Result:
    """The outcome of one backtest.

    Attributes
    ----------
    metrics : dict
        Name → number; see :mod:`engine.metrics` for every definition.
    trades : polars.DataFrame
        One row per round trip: ``symbol, entry_ts, entry_price, exit_ts,
        exit_price, size`` (signed: negative for shorts), ``pnl`` (net of
        commissions and borrow costs), ``return_pct`` (pnl over the entry value,
        as a fraction), ``bars_held``, ``exit_reason``, then ``costs`` and
        ``stop_and_target_same_bar``. A position still open has null exit fields.
    equity : polars.DataFrame
        ``ts, equity, cash`` at every bar's close.
    orders : polars.DataFrame
        Every order with its status and, when not filled, the reason.
    """

    strategy: str
    params: dict
    metrics: dict
    trades: pl.DataFrame
    equity: pl.DataFrame
    orders: pl.DataFrame
    settings: dict = field(default_factory=dict)
    panel: Panel | None = field(default=None, repr=False)

    def to_dir(self, out: str | os.PathLike) -> Path:
        """Write ``metrics.json``, ``trades.parquet``, ``equity.parquet``, ``orders.parquet``."""
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "metrics.json").write_text(json.dumps(jsonable(self.metrics), indent=2) + "\n")
        self.trades.write_parquet(path / "trades.parquet", statistics=False)
        self.equity.write_parquet(path / "equity.parquet", statistics=False)
        self.orders.write_parquet(path / "orders.parquet", statistics=False)
        return path

    def summary(self) -> dict:
        """Strategy, parameters, settings and metrics as plain JSON-ready values."""
        return jsonable({
            "strategy": self.strategy,
            "params": self.params,
            "settings": self.settings,
            "metrics": self.metrics,
        })


def jsonable(value):
    """NaN and infinities become None, numpy scalars plain numbers: strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _at(ts: np.ndarray, bars: np.ndarray) -> np.ndarray:
    out = np.full(len(bars), np.datetime64("NaT", "ns"))
    ok = bars >= 0
    out[ok] = ts[bars[ok]]
    return out


def trades_frame(table: dict, panel: Panel) -> pl.DataFrame:
    symbols = np.array(panel.symbols, dtype=object)
    entry, exit_ = table["entry_bar"], table["exit_bar"]
    closed = exit_ >= 0
    size = table["size"]
    entry_value = table["entry_price"] * np.abs(size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return_pct = np.where(closed, table["pnl"] / entry_value, np.nan)
    return pl.DataFrame({
        "symbol": pl.Series(symbols[table["symbol"]].tolist(), dtype=pl.String),
        "entry_ts": _at(panel.ts, entry),
        "entry_price": table["entry_price"],
        "exit_ts": _at(panel.ts, exit_),
        "exit_price": pl.Series(table["exit_price"], nan_to_null=True),
        "size": size,
        "pnl": pl.Series(np.where(closed, table["pnl"], np.nan), nan_to_null=True),
        "return_pct": pl.Series(return_pct, nan_to_null=True),
        "bars_held": pl.Series(np.where(closed, exit_ - entry, -1)).replace(-1, None),
        "exit_reason": pl.Series(table["exit_reason"], dtype=pl.String),
        "costs": table["costs"],
        "stop_and_target_same_bar": table["stop_and_target_same_bar"],
    })


def orders_frame(table: dict, panel: Panel) -> pl.DataFrame:
    symbols = np.array(panel.symbols, dtype=object)
    side = np.where(table["side"] > 0, "buy", np.where(table["side"] < 0, "sell", None))
    return pl.DataFrame({
        "order_id": table["order_id"],
        "placed_ts": _at(panel.ts, table["placed_bar"]),
        "symbol": pl.Series(symbols[table["symbol"]].tolist(), dtype=pl.String),
        "side": pl.Series(side.tolist(), dtype=pl.String),
        "kind": pl.Series(table["kind"], dtype=pl.String),
        "size_mode": pl.Series(table["size_mode"], dtype=pl.String),
        "size": table["size"],
        "limit": pl.Series(table["limit"], nan_to_null=True),
        "stop": pl.Series(table["stop"], nan_to_null=True),
        "tif": pl.Series(table["tif"], dtype=pl.String),
        "status": pl.Series(table["status"], dtype=pl.String),
        "reason": pl.Series(table["reason"], dtype=pl.String),
        "tag": pl.Series(table["tag"], dtype=pl.String),
        "done_ts": _at(panel.ts, table["done_bar"]),
        "fill_price": pl.Series(table["fill_price"], nan_to_null=True),
        "fill_qty": table["fill_qty"],
        "commission": table["commission"],
        "parent_id": pl.Series(table["parent"]).replace(-1, None),
        "oco_id": pl.Series(table["oco"]).replace(-1, None),
    })


def equity_frame(panel: Panel, equity: np.ndarray, cash: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"ts": panel.ts, "equity": equity.copy(), "cash": cash.copy()})
