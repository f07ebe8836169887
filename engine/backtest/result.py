"""What a backtest returns: metrics, trades, equity and orders as polars frames."""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine._core.broker import KIND_NAMES, SIZE_MODE_NAMES, STATUS_NAMES, TAG_NAMES, TIF_NAMES
from engine.data.panel import Panel

if TYPE_CHECKING:  # polars is imported when a frame is built: a sweep's worker never does
    import polars as pl

TRADE_COLUMNS = ("symbol", "entry_ts", "entry_price", "exit_ts", "exit_price", "size", "pnl",
                 "return_pct", "bars_held", "exit_reason", "costs", "stop_and_target_same_bar",
                 "entry_order")


class Result:
    """The outcome of one backtest.

    The report tables are methods: :meth:`drawdowns`, :meth:`yearly`,
    :meth:`hit_rates`, :meth:`event_study` (see :mod:`engine.analysis.tables` and
    :mod:`engine.analysis.event_study` for the definitions).

    Attributes
    ----------
    metrics : dict
        Name → number; see :mod:`engine.analysis.metrics` for every definition.
    trades : polars.DataFrame
        The trade ledger, one row per lot, first in, first out (the rules:
        :mod:`engine._core.broker`): every fill that opens or adds to a position
        opens a lot; a fill that reduces it closes the oldest lots, a lot closed in
        part becoming a closed row for the quantity sold and an open row for the
        rest. Columns: ``symbol, entry_ts, entry_price, exit_ts, exit_price, size``
        (signed: negative for shorts), ``pnl`` (``size * (exit_price -
        entry_price) - costs``), ``return_pct`` (pnl over the entry value
        ``entry_price * |size|``, as a fraction), ``bars_held``, ``exit_reason``
        (the closing order's tag), ``costs`` (the row's share of commissions and
        borrow, by quantity), ``stop_and_target_same_bar``, ``entry_order`` (the id
        of the order whose fill opened the lot: the lot's id, shared by the rows
        split from it, and the link to ``orders``). An open row (a lot still held)
        has null exit fields, ``pnl`` and ``return_pct``, and the costs it has
        carried so far; its unrealised P&L is ``size * (last close - entry_price)
        - costs``, so that the closed rows' ``pnl`` plus the open rows' unrealised
        P&L is the final equity less the starting cash.
        Timestamps here and in ``equity`` and ``orders`` are in the data's time
        zone (``settings["tz"]``: the file's, or ``tz=``), naive for data without one.
    equity : polars.DataFrame
        ``ts, equity, cash`` at every bar's close.

    ``trades``, ``equity`` and ``orders`` are built from the broker's arrays on
    first access and kept: a run whose frames are never read (a sweep's) never
    pays for them. :attr:`metrics` never needs them.
    orders : polars.DataFrame
        Every order with its status and, when not filled, the reason.
    settings : dict
        The account and run settings (cash, costs, fill, mode, periods_per_year
        and how it was chosen, risk_free, data, start, end, tz).
    panel : Panel or None
        The bars the run used.
    instance : Strategy or None
        The strategy object that ran (its parameters set): the reports evaluate
        its ``entry_condition``/``entry_labels`` hooks and read its ``claims``.
    benchmark : numpy.ndarray or None
        Buy-and-hold of the same data at each bar's close
        (:func:`engine.backtest.benchmark.benchmark_equity`), what ``benchmark_return``
        and ``beta`` measure against.
    """

    def __init__(self, strategy: str, params: dict, metrics: dict,
                 trades: pl.DataFrame | None = None, equity: pl.DataFrame | None = None,
                 orders: pl.DataFrame | None = None, settings: dict | None = None,
                 panel: Panel | None = None, instance: Any = None,
                 benchmark: np.ndarray | None = None, source: dict | None = None):
        self.strategy = strategy
        self.params = params
        self.metrics = metrics
        self.settings = settings if settings is not None else {}
        self.panel = panel
        self.instance = instance
        self.benchmark = benchmark
        #: Memoised report inputs (the strategy's hooks evaluated on the data).
        self.cache: dict = {}
        # The broker's tables the frames are built from, on first access
        # (``trades_table``, ``orders_table``, ``equity``, ``cash``).
        self._source = source
        self._frames = {"trades": trades, "equity": equity, "orders": orders}

    def __repr__(self) -> str:
        return (f"Result(strategy={self.strategy!r}, params={self.params!r}, "
                f"metrics={self.metrics!r}, settings={self.settings!r})")

    def _frame(self, name: str) -> pl.DataFrame:
        frame = self._frames[name]
        if frame is None:
            source, panel = self._source, self.panel
            if source is None:
                raise AttributeError(f"this Result holds no {name}")
            if name == "trades":
                frame = trades_frame(source["trades_table"], panel)
            elif name == "orders":
                frame = orders_frame(source["orders_table"], panel)
            else:
                frame = equity_frame(panel, source["equity"], source["cash"])
            self._frames[name] = frame
            if all(f is not None for f in self._frames.values()):
                self._source = None
        return frame

    @property
    def trades(self) -> pl.DataFrame:
        return self._frame("trades")

    @trades.setter
    def trades(self, frame: pl.DataFrame) -> None:
        self._frames["trades"] = frame

    @property
    def equity(self) -> pl.DataFrame:
        return self._frame("equity")

    @equity.setter
    def equity(self, frame: pl.DataFrame) -> None:
        self._frames["equity"] = frame

    @property
    def orders(self) -> pl.DataFrame:
        return self._frame("orders")

    @orders.setter
    def orders(self, frame: pl.DataFrame) -> None:
        self._frames["orders"] = frame

    def __getstate__(self) -> dict:
        # The strategy object holds the compiled broker, which does not pickle: evaluate
        # its report hooks now (they land in the cache) and leave the object behind.
        for name in self._frames:  # the frames travel, not the broker's tables
            self._frame(name)
        state = dict(self.__dict__)
        if self.instance is not None:
            from engine.analysis.event_study import strategy_hooks

            strategy_hooks(self)
            state["instance"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def equity_values(self):
        """Equity at each bar's close as a NumPy array, with no frame built."""
        if self._source is not None and self._frames["equity"] is None:
            return self._source["equity"]
        return self.equity["equity"].to_numpy()

    @property
    def starting_cash(self) -> float:
        """The cash before the first bar."""
        if "cash" in self.settings:
            return float(self.settings["cash"])
        return float(self.equity["equity"][0]) if self.equity.height else 1.0

    def drawdowns(self, n: int = 5) -> pl.DataFrame:
        """The ``n`` deepest drawdowns: peak, trough, recovery, depth, length."""
        from engine.analysis.tables import drawdowns

        return drawdowns(self, n)

    def yearly(self) -> pl.DataFrame:
        """Per calendar year: return, volatility, Sharpe, max drawdown, trades, hit rate."""
        from engine.analysis.tables import yearly

        return yearly(self)

    def hit_rates(self) -> pl.DataFrame:
        """Hit rates of closed trades: overall, by exit reason, by entry label/condition."""
        from engine.analysis.tables import hit_rates

        return hit_rates(self)

    def event_study(self, horizons=(5, 21, 63)) -> pl.DataFrame:
        """Forward returns after each signal, beside the claimed success rates."""
        from engine.analysis.event_study import event_study

        return event_study(self, horizons)

    def confidence(self, level: float = 0.95, reps: int = 1000, seed: int = 0) -> pl.DataFrame:
        """Intervals of Sharpe, CAGR, max drawdown and hit rate, and the PSR figures
        (see :func:`engine.analysis.tables.confidence`)."""
        from engine.analysis.tables import confidence

        return confidence(self, level, reps, seed)

    def rejections(self) -> list:
        """The rejected orders by kind of reason, most frequent first.

        Each is a :class:`~engine.backtest.rejections.Rejection`: the kind (e.g.
        ``"insufficient cash"``), the count and the first case in time (its bar
        number and timestamp, the order, the broker's full reason);
        ``metrics["rejected"]`` is their total. Every rejected order is in
        :attr:`orders` (``status == "rejected"``, with its ``reason``).
        """
        if "rejections" not in self.cache:
            from engine.backtest.rejections import rejections_of

            bar_of = None
            if self.panel is not None:
                done, ts = self.orders["done_ts"], self.panel.ts

                def bar_of(row: int) -> int:
                    return int(np.searchsorted(ts, done.slice(row, 1).to_numpy()[0]))

            self.cache["rejections"] = rejections_of(self.orders, bar_of)
        return list(self.cache["rejections"])

    def tables(self) -> dict[str, pl.DataFrame]:
        """Every report table by name: drawdowns, yearly, hit_rates, event_study."""
        return {"drawdowns": self.drawdowns(), "yearly": self.yearly(),
                "hit_rates": self.hit_rates(), "event_study": self.event_study()}

    def to_dir(self, out: str | os.PathLike, report: bool = True) -> Path:
        """Write the run's files to the folder ``out`` (created if needed).

        Always ``metrics.json``, ``trades.parquet``, ``equity.parquet``,
        ``orders.parquet``; with ``report=True`` (the default) also the tables
        ``drawdowns.csv``, ``yearly.csv``, ``hit_rates.csv``, ``event_study.csv``,
        the plot ``equity.png`` and the self-contained ``report.html``
        (see :mod:`engine.report.html`). Returns the folder.
        """
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "metrics.json").write_text(json.dumps(jsonable(self.metrics), indent=2) + "\n")
        self.trades.write_parquet(path / "trades.parquet", statistics=False)
        self.equity.write_parquet(path / "equity.parquet", statistics=False)
        self.orders.write_parquet(path / "orders.parquet", statistics=False)
        if report:
            from engine.report.html import write_report

            write_report(self, path)
        return path

    def summary(self) -> dict:
        """Strategy, parameters, settings and metrics as plain JSON-ready values."""
        return jsonable({
            "strategy": self.strategy,
            "params": self.params,
            "settings": self.settings,
            "metrics": self.metrics,
        })

    def plot(self):
        """The interactive chart of ``report.html`` as a Bokeh layout (shown inline in
        Jupyter): prices and trades, indicators, feeds, equity, drawdown, trade list
        (see :mod:`engine.report.chart`)."""
        from engine.report.chart import build_chart, show_in_notebooks

        show_in_notebooks()
        return build_chart(self)

    def _repr_html_(self) -> str:
        """A compact summary for notebooks: strategy, period, headline metrics and an
        equity sparkline (:func:`engine.report.html.summary_html`)."""
        from engine.report.html import summary_html

        return summary_html(self)


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
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return value


def _at(ts: np.ndarray, bars: np.ndarray, tz: str | None = None) -> pl.Series:
    out = np.full(len(bars), np.datetime64("NaT", "ns"))
    ok = bars >= 0
    out[ok] = ts[bars[ok]]
    return stamps(out, tz)


def stamps(ts: np.ndarray, tz: str | None) -> pl.Series:
    """Panel stamps as a polars column: in the zone ``tz`` (the panel's UTC instants
    shown there), or as they are for data without a zone."""
    import polars as pl

    series = pl.Series(np.asarray(ts, dtype="datetime64[ns]"))
    if tz:
        series = series.dt.replace_time_zone("UTC").dt.convert_time_zone(tz)
    return series


def _zone(panel) -> str | None:
    return (getattr(panel, "meta", None) or {}).get("tz")


def _labels(codes, names, texts=None) -> pl.Series:
    """Strings from ``codes`` into ``names`` (-1: null), then ``texts`` ({row: text})
    written over their rows: a string column without a Python string per row."""
    import polars as pl

    index = pl.Series(np.asarray(codes, dtype=np.int64))
    index = pl.select(pl.when(index >= 0).then(index)).to_series()
    out = pl.Series(list(names), dtype=pl.String).gather(index)
    if texts:
        rows = np.fromiter(texts.keys(), dtype=np.int64, count=len(texts))
        out = out.scatter(rows, pl.Series(list(texts.values()), dtype=pl.String))
    return out


def trades_frame(table: dict, panel: Panel) -> pl.DataFrame:
    import polars as pl

    entry, exit_ = table["entry_bar"], table["exit_bar"]
    closed = exit_ >= 0
    size = table["size"]
    entry_value = table["entry_price"] * np.abs(size)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return_pct = np.where(closed, table["pnl"] / entry_value, np.nan)
    tz = _zone(panel)
    return pl.DataFrame({
        "symbol": _labels(table["symbol"], panel.symbols),
        "entry_ts": _at(panel.ts, entry, tz),
        "entry_price": table["entry_price"],
        "exit_ts": _at(panel.ts, exit_, tz),
        "exit_price": pl.Series(table["exit_price"], nan_to_null=True),
        "size": size,
        "pnl": pl.Series(np.where(closed, table["pnl"], np.nan), nan_to_null=True),
        "return_pct": pl.Series(return_pct, nan_to_null=True),
        "bars_held": pl.Series(np.where(closed, exit_ - entry, -1)).replace(-1, None),
        "exit_reason": _labels(table["exit_tag"], TAG_NAMES, table["exit_user_tag"]),
        "costs": table["costs"],
        "stop_and_target_same_bar": table["stop_and_target_same_bar"],
        "entry_order": table["entry_order"],
    })


def orders_frame(table: dict, panel: Panel) -> pl.DataFrame:
    import polars as pl

    side = np.sign(table["side"]).astype(np.int64)      # sell -1 -> 0, buy 1 -> 1, 0 -> -1
    side = np.where(side == 0, -1, (side + 1) // 2)
    tz = _zone(panel)
    return pl.DataFrame({
        "order_id": table["order_id"],
        "placed_ts": _at(panel.ts, table["placed_bar"], tz),
        "symbol": _labels(table["symbol"], panel.symbols),
        "side": _labels(side, ("sell", "buy")),
        "kind": _labels(table["kind"], KIND_NAMES),
        "size_mode": _labels(table["size_mode"], SIZE_MODE_NAMES),
        "size": table["size"],
        "limit": pl.Series(table["limit"], nan_to_null=True),
        "stop": pl.Series(table["stop"], nan_to_null=True),
        "tif": _labels(table["tif"], TIF_NAMES),
        "status": _labels(table["status"], STATUS_NAMES),
        "reason": _labels(np.full(len(table["order_id"]), -1), (), table["reason"]),
        "tag": _labels(table["tag"], TAG_NAMES, table["user_tag"]),
        "done_ts": _at(panel.ts, table["done_bar"], tz),
        "fill_price": pl.Series(table["fill_price"], nan_to_null=True),
        "fill_qty": table["fill_qty"],
        "commission": table["commission"],
        "parent_id": pl.Series(table["parent"]).replace(-1, None),
        "oco_id": pl.Series(table["oco"]).replace(-1, None),
        # account/time-in-force: good_till's last bar, and the order a rest continues
        "good_till_ts": _at(panel.ts, table["expire_bar"], tz),
        "continues_id": pl.Series(table["continues"]).replace(-1, None),
    })


def equity_frame(panel: Panel, equity: np.ndarray, cash: np.ndarray) -> pl.DataFrame:
    import polars as pl

    # No copy: the broker's per-bar arrays are final once the run ends, and a copy
    # would add 16 bytes per bar to the run's peak memory.
    tz = _zone(panel)
    return pl.DataFrame({"ts": stamps(panel.ts, tz) if tz else panel.ts, "equity": equity,
                         "cash": cash})
