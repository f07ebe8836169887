"""``engine.stream_run``: a vectorised backtest over a Parquet file too large for memory.

The file is read in row batches (``pyarrow.parquet.ParquetFile.iter_batches``),
validated like :func:`engine.load_bars` validates a file, and pivoted into chunks
of ``chunk_bars`` timestamps. For each chunk:

1. the strategy's :meth:`~engine.Strategy.signals` runs on the bars its
   :meth:`~engine.Strategy.lookback` asked to keep from before the chunk, followed
   by the chunk; only the chunk's rows are traded;
2. the compiled loop (:func:`engine._core.loop.run_vector`) runs the chunk on the
   same :class:`~engine._core.broker.Broker`, which keeps global bar numbers, the
   cash (with its compensation term), positions, open trades and resting orders
   from one chunk to the next (:meth:`Broker.bind_chunk`);
3. the finished orders and closed trades are drained from the broker
   (:meth:`Broker.drain_orders`, :meth:`Broker.drain_trades`), the equity curve
   of the chunk and the drained records go to the metrics accumulator
   (:mod:`engine.analysis.streaming_metrics`) and, with ``out``, are appended to Parquet.

Memory is then bounded by one chunk (its panel, its signals, its part of the
curve) plus the kept bars and the records not yet drained, whatever the length of
the file. Two things can hold records back, and the README says so: a resting
order that stays open (a far GTC limit) keeps every later order in memory until it
ends, and an open trade keeps the later trades, since records are drained in
order so that the files list them exactly as :func:`engine.run` does.

The result is exactly that of :func:`engine.run` on the whole file (same trades,
same orders, same equity to the last bit), and the metrics agree with
:func:`engine.analysis.metrics.compute_metrics` to rounding, provided the strategy's
``lookback`` is right. Only the vectorised path streams, without feeds.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.data.panel import BAR_FIELDS, Panel
from engine.errors import DataError, EngineError, ParameterError, StrategyError

__all__ = ["DEFAULT_CHUNK_BARS", "StreamResult", "stream_run"]

#: Timestamps per chunk unless told otherwise: 4 MB of panel per symbol. Larger chunks
#: are no faster (10M bars: 2.8 s at 50k, 3.1 s at 100k, 4.2 s at 1M, measured) and
#: hold more (peak +146, +163, +403 MB).
DEFAULT_CHUNK_BARS = 100_000
#: Rows per Parquet read batch (the reader also holds one row group at a time).
BATCH_ROWS = 262_144


@dataclass
class StreamResult:
    """What :func:`stream_run` returns: the metrics and where the files went.

    Attributes
    ----------
    strategy : str
        The strategy's class name.
    params : dict
        Its parameters.
    metrics : dict
        The keys of :func:`engine.run`'s metrics (see :mod:`engine.analysis.metrics`).
    settings : dict
        Account and run settings, as in :attr:`engine.backtest.result.Result.settings`,
        plus ``stream``, ``chunk_bars`` and ``chunks``.
    out : pathlib.Path or None
        The folder holding ``equity.parquet``, ``trades.parquet``,
        ``orders.parquet`` and ``metrics.json``, if ``out`` was given.
    symbols : tuple of str
        The symbols (columns) of the run.
    held : dict
        The most orders and trades held in memory at once (not yet drained).
    rejections : list of engine.backtest.rejections.Rejection
        The rejected orders by kind of reason, as
        :meth:`engine.backtest.result.Result.rejections` gives them (bar numbers
        count from the first bar streamed); ``metrics["rejected"]`` is their total.
    """

    strategy: str
    params: dict
    metrics: dict
    settings: dict
    out: Path | None = None
    symbols: tuple[str, ...] = ()
    held: dict = field(default_factory=dict)
    rejections: list = field(default_factory=list)

    def summary(self) -> dict:
        """Strategy, parameters, settings and metrics as plain JSON-ready values."""
        from engine.backtest.result import jsonable

        return jsonable({"strategy": self.strategy, "params": self.params,
                         "settings": self.settings, "metrics": self.metrics})


def stream_run(strategy, data=None, *, chunk_bars: int = DEFAULT_CHUNK_BARS, out=None,
               force: bool = False, cash: float = 100_000.0, commission: float = 0.0,
               commission_per_share: float = 0.0, commission_fixed: float = 0.0,
               commission_minimum: float = 0.0, slippage_bps: float = 0.0,
               slippage_fixed: float = 0.0, fill: str = "open", mode: str = "vector",
               fractional: bool = False, shorting: bool = False, borrow_rate: float = 0.0,
               start=None, end=None, periods_per_year=None, risk_free: float = 0.0,
               feeds=None, strict: bool = False, date_format: str | None = None,
               tz: str | None = None, audit: str = "cuts",
               leverage: float = 1.0, maintenance_margin: float = 0.25,
               margin_rate: float = 0.0, max_volume_share: float | None = None,
               benchmark=None, adjust: bool = False, **params) -> StreamResult:
    """Run the vectorised path over a Parquet file read in chunks, in bounded memory.

    The account and run options (``cash``, ``commission``,
    ``commission_per_share``, ``commission_fixed``, ``commission_minimum``,
    ``slippage_bps``, ``slippage_fixed``, ``fill``, ``fractional``, ``shorting``,
    ``borrow_rate``, ``start``, ``end``, ``periods_per_year``, ``risk_free``,
    ``strict``, ``date_format``, ``tz``, ``leverage``, ``maintenance_margin``,
    ``margin_rate``) are those of :func:`engine.run`; ``max_volume_share`` is
    refused (volume-limited fills run in memory only, with :func:`engine.run`);
    ``periods_per_year`` left out is read off the whole file's days (in the data's
    time zone), as :func:`engine.run` reads it off its data.

    Parameters
    ----------
    strategy : str, pathlib.Path, module or Strategy subclass
        The strategy; it must define ``signals`` and ``lookback`` (see
        :meth:`engine.Strategy.lookback`) and declare no feeds.
    data : str or pathlib.Path, optional
        A Parquet file in the bar schema (``ts``, optional ``symbol``, ``open,
        high, low, close``, optional ``volume`` and numeric features), sorted by
        ``ts`` (rows of one timestamp in any symbol order). Read in row batches,
        never whole. Default: the strategy's ``default_data`` (and its
        ``default_start``/``default_end``).
    chunk_bars : int
        Timestamps per chunk (rows = timestamps × symbols), default 100,000. Memory
        grows with it; time does not fall above ~50,000.
    out : str or pathlib.Path, optional
        A folder for ``equity.parquet`` (``ts, equity, cash``), ``trades.parquet``,
        ``orders.parquet`` (the columns of :meth:`engine.backtest.result.Result.to_dir`)
        and ``metrics.json``, appended chunk by chunk into a staging folder that
        becomes ``out`` only when the run completes (:mod:`engine.report.outputs`).
        It is checked before any data is read.
    force : bool
        Replace an existing ``out`` folder.
    mode : {"vector", "auto"}
        Only the vectorised path streams; ``"event"`` is refused.
    feeds : dict, optional
        Only ``None`` or ``{}``: feeds are not joined in streaming mode.
    audit : {"cuts", "full", "off"}
        The look-ahead audit of :func:`engine.run`, applied to each chunk: the
        signals on the kept bars and the chunk are recomputed on prefixes cut
        within the chunk (``"cuts"``: a few per chunk; ``"full"``: at every bar).
    **params
        Strategy parameters, by name.

    Returns
    -------
    StreamResult

    Raises
    ------
    ParameterError
        For a strategy that cannot stream (no ``signals``, no ``lookback``, feeds)
        or invalid settings; the message says what to change.
    DataError
        For bad data, naming the file, the column, the row and the fix; also for a
        file not sorted by ``ts`` (streaming cannot sort it).
    """
    from engine._core.broker import Broker
    from engine._core.loop import Cursor, run_vector
    from engine.analysis.conventions import (
        choose_periods_per_year,
        periods_from_days,
        resolve_periods_per_year,
    )
    from engine.analysis.streaming_metrics import BenchmarkStream, StreamingMetrics
    from engine.backtest.rejections import strict_error
    from engine.backtest.result import stamps
    from engine.backtest.run import (
        FILL_MODES,
        _account_message,
        _account_options,
        _default_data_path,
        _vector_signals,
        check_commission,
    )
    from engine.report.outputs import check_output, staged_output
    from engine.strategy.base import Strategy
    from engine.strategy.lookahead import check_audit
    from engine.strategy.plugins import load_strategy

    cls = load_strategy(strategy)
    instance = cls(**params)
    name = cls.__name__
    audit = check_audit(audit)
    if fill not in FILL_MODES:
        raise ParameterError(f"fill must be 'open' or 'close'; got {fill!r}")
    if mode not in ("vector", "auto"):
        raise ParameterError(
            f"mode={mode!r} cannot stream: only the vectorised path runs in chunks "
            f"(use mode='vector', or engine.run on data that fits in memory for the "
            f"event path)"
        )
    if not cls.has_vector_path():
        raise ParameterError(
            f"{name} defines no signals() method; streaming runs the vectorised path "
            f"only. Fix: add signals() (and lookback()) to {name}, or use engine.run "
            f"without --stream"
        )
    if cls.lookback is Strategy.lookback:
        raise ParameterError(
            f"{name} does not define lookback(), so it cannot be streamed: the engine "
            f"does not know how many bars before a chunk its signals need. Fix: add "
            f"`def lookback(self, data): return N` to {name} (N = bars of history its "
            f"signals read, e.g. the longest indicator window; see "
            f"engine.Strategy.lookback), or run without --stream"
        )
    if feeds or (feeds is None and instance.feed_specs()):
        raise ParameterError(
            f"{name} joins feeds ({', '.join(feeds or instance.feed_specs())}), which "
            f"streaming does not support. Fix: run without --stream, or pass feeds={{}}"
        )
    chunk_bars = _positive_int(chunk_bars, "chunk_bars")
    check_commission(commission)
    target = check_output(out, force) if out is not None else None  # before any reading
    if data is None:
        if cls.default_data is None:
            raise ParameterError(
                f"{name} declares no default_data; pass the Parquet file to stream "
                f"(CLI --data PATH)")
        data = _default_data_path(cls)
        start = start if start is not None else cls.default_start
        end = end if end is not None else cls.default_end
    if periods_per_year is not None:
        resolve_periods_per_year(periods_per_year)  # a bad value fails before the data loads
    account = dict(
        commission_percent=float(commission), commission_per_share=float(commission_per_share),
        commission_fixed=float(commission_fixed), commission_minimum=float(commission_minimum),
        slippage_bps=float(slippage_bps), slippage_fixed=float(slippage_fixed),
        borrow_rate=float(borrow_rate), fractional=bool(fractional), shorting=bool(shorting),
        fill_on_close=fill == "close",
    )
    if benchmark is not None:
        raise ParameterError(
            f"benchmark={benchmark!r} cannot stream: a streamed run is measured against "
            f"buy-and-hold of its data. Fix: run without --stream (engine.run), or drop "
            f"benchmark (CLI --benchmark)")
    if adjust:
        raise ParameterError(
            "adjust=True cannot stream: adjusted prices are computed as the bars load in "
            "memory. Fix: run without --stream (engine.run), or write the adjusted bars to "
            "Parquet first (engine.load_bars(..., adjust=True))")
    if max_volume_share is not None:     # account/time-in-force
        raise ParameterError(
            f"max_volume_share={max_volume_share!r} cannot stream: volume-limited fills "
            f"run in memory only. Fix: run without --stream (engine.run), or drop "
            f"max_volume_share (CLI --max-volume-share)")
    account.update(_account_options(None, leverage, maintenance_margin, margin_rate, None))
    if isinstance(cash, bool) or not isinstance(cash, numbers.Real) or not (
            math.isfinite(cash) and cash > 0):
        raise ParameterError(f"cash must be a positive number; got {cash!r} (CLI --cash)")
    reader = _BarStream(data, chunk_bars, start, end, date_format=date_format, tz=tz)
    # Read off the whole file (one pass over its ts column), as engine.run reads it.
    periods = (choose_periods_per_year(periods_per_year, None) if periods_per_year is not None
               else periods_from_days(*reader.scan_days()))
    bench = BenchmarkStream(cash, len(reader.symbols))
    symbols = reader.symbols
    clock = _Clock()
    clock.zone = reader.zone
    sinks = {}
    rejected: dict = {"kinds": []}

    def body(stage: Path | None) -> StreamResult:
        if stage is not None:
            for key in ("equity", "trades", "orders"):
                sinks[key] = _ParquetSink(stage / f"{key}.parquet")
        broker = metrics_acc = ppy = ppy_from = None
        kept: Panel | None = None
        first_ts = last_ts = None
        chunks = 0
        held = {"orders": 0, "trades": 0}
        signal_kind = None
        for part in reader.parts():
            panel, h = reader.panel(part, kept)
            if first_ts is None:
                first_ts = panel.ts[h]
            last_ts = panel.ts[-1]
            rows = slice(h, None)
            fields = panel.fields
            prices = [fields[f][rows] for f in ("open", "high", "low", "close")]
            if broker is None:
                ppy, ppy_from = periods
                metrics_acc = StreamingMetrics(cash, periods_per_year=ppy, risk_free=risk_free,
                                               benchmark_start=cash)
                try:
                    broker = Broker(*prices, float(cash), periods_per_year=float(ppy),
                                    **account)
                except (ValueError, TypeError) as exc:
                    raise ParameterError(_account_message(str(exc))) from None
            else:
                broker.bind_chunk(*prices)
            instance._bind(panel, broker, Cursor(), audit=audit)
            # The look-ahead audit of engine.run, on every chunk: cuts after the kept
            # bars, which the chunk before audited. A leak confined to one stretch of
            # the file is looked for there too.
            signals, entries, exits, size = _vector_signals(
                instance, panel, audit, first=h, offset=broker.base - h)
            kind = (signals.size_type, signals.direction)
            if signal_kind is not None and kind != signal_kind:
                raise StrategyError(
                    f"{name}.signals returned size_type={kind[0]!r}, direction={kind[1]!r} "
                    f"for the chunk starting {_fmt(panel.ts[h], reader.zone)}, but "
                    f"{signal_kind[0]!r}, {signal_kind[1]!r} before; they must not change "
                    f"within a run"
                )
            signal_kind = kind
            if size.shape[0] != 1:
                size = size[rows]
            run_vector(broker, entries[rows], exits[rows], size, signals.size_type,
                       1 if signals.direction == "long" else -1)
            del entries, exits, size, signals
            equity, cash_curve = broker.equity_curve, broker.cash_curve
            close = fields["close"][rows]
            metrics_acc.add_bars(equity, broker.exposure, bench.add(close))
            clock.span(panel.ts, broker.base - h)
            if "equity" in sinks:
                sinks["equity"].write({"ts": stamps(panel.ts[rows], reader.zone),
                                       "equity": equity.copy(),
                                       "cash": cash_curve.copy()})
            held["orders"] = max(held["orders"], broker.held_orders)
            held["trades"] = max(held["trades"], broker.held_trades)
            _drain(broker, clock, symbols, sinks, metrics_acc, rejected, everything=False)
            clock.keep(broker)
            chunks += 1
            kept = _kept(instance, panel, name)
            # the chunk is done with: only `kept` (and the strategy's view) go on
            del panel, fields, prices, close, equity, cash_curve
        if broker is None:
            raise DataError(f"{reader.src}: no bars between {start} and {end}")
        open_trades = _drain(broker, clock, symbols, sinks, metrics_acc, rejected,
                             everything=True)
        metrics = metrics_acc.result()
        metrics["open_trades"] = float(open_trades)
        metrics["commissions"] = float(broker.commissions_paid)
        metrics["borrow_costs"] = float(broker.borrow_paid)
        metrics["same_bar_exits"] = float(broker.same_bar_exits)
        metrics["margin_calls"] = float(broker.margin_calls)
        metrics["margin_interest"] = float(broker.margin_interest_paid)
        metrics["bars"] = float(metrics_acc.n)
        metrics["rejected"] = float(sum(r.count for r in rejected["kinds"]))
        for key, value in metrics.items():
            if isinstance(value, float) and math.isnan(value):
                metrics[key] = float("nan")
        settings = {
            "cash": float(cash), "commission": float(commission),
            "commission_per_share": float(commission_per_share),
            "commission_fixed": float(commission_fixed),
            "commission_minimum": float(commission_minimum),
            "slippage_bps": float(slippage_bps), "slippage_fixed": float(slippage_fixed),
            "fill": fill, "mode": "vector", "fractional": bool(fractional),
            "shorting": bool(shorting), "borrow_rate": float(borrow_rate),
            "periods_per_year": ppy, "periods_per_year_from": ppy_from,
            "risk_free": float(risk_free), "audit": audit, "data": reader.src,
            "start": _fmt(first_ts, reader.zone)[:10], "end": _fmt(last_ts, reader.zone)[:10],
            "tz": reader.zone,
            "stream": True, "chunk_bars": chunk_bars, "chunks": chunks,
            "leverage": float(leverage), "maintenance_margin": float(maintenance_margin),
            "margin_rate": float(margin_rate),
        }
        if strict and rejected["kinds"]:
            raise strict_error(rejected["kinds"])
        for sink in sinks.values():
            sink.close()
        reader.warn_missing()
        if stage is not None:
            from engine.backtest.result import jsonable

            (stage / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2) + "\n")
        return StreamResult(strategy=name, params=dict(instance.params), metrics=metrics,
                            settings=settings, out=Path(out) if out is not None else None,
                            symbols=symbols, held=held, rejections=rejected["kinds"])

    try:
        if out is None:
            return body(None)
        with staged_output(target) as stage:
            return body(stage)
    finally:
        for sink in sinks.values():
            sink.abort()


# --------------------------------------------------------------------------- helpers


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ParameterError(f"{name} must be a whole number >= 1; got {value!r} "
                             f"(CLI --{name.replace('_', '-')})")
    return int(value)


def _fmt(value, zone: str | None = None) -> str:
    from engine.data.bars import _fmt_ts

    return _fmt_ts(value, zone)


def _kept(instance, data: Panel, name: str) -> Panel:
    """The last bars of ``data`` the next chunk's signals need (a copy it owns)."""
    from engine.strategy.base import VectorData

    try:
        n = instance.lookback(VectorData(data))
    except EngineError:
        raise
    except Exception as exc:
        raise StrategyError(f"{name}.lookback raised {type(exc).__name__}: {exc}") from exc
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise StrategyError(
            f"{name}.lookback must return a whole number of bars >= 0; got {n!r}. Fix: "
            f"return how many of the last bars of `data` the next signals depend on"
        )
    n = min(int(n), data.n_bars)
    return data.slice(data.n_bars - n, data.n_bars)


def _drain(broker, clock, symbols, sinks, acc, rejected: dict, *, everything: bool) -> int:
    """Move finished orders and closed trades out of the broker; return open trades.

    The rejected orders among the drained ones join the summary ``rejected["kinds"]``.
    """
    from engine.backtest.rejections import merged, rejections_of
    from engine.backtest.result import orders_frame, trades_frame

    view = _TimeView(clock, symbols, getattr(clock, "zone", None))
    trades = trades_frame(broker.drain_trades(everything), view)
    table = broker.drain_orders(everything)
    orders = orders_frame(table, view)
    done_bar = table["done_bar"]
    rejected["kinds"] = merged(rejected["kinds"],
                               rejections_of(orders, lambda row: int(done_bar[row])))
    closed = trades.filter(trades["exit_ts"].is_not_null())
    acc.add_trades(closed["pnl"].to_numpy(), closed["return_pct"].to_numpy())
    if "trades" in sinks:
        sinks["trades"].write(trades)
        sinks["orders"].write(orders)
    return trades.height - closed.height


class _Clock:
    """Timestamps of global bar numbers, for the bars records may still name.

    The current chunk's timestamps (kept bars included) are at hand; of earlier
    bars only those named by orders or trades still held in the broker are kept
    (:meth:`keep`), so this stays as small as the undrained records.
    """

    def __init__(self) -> None:
        self.ts = np.empty(0, "datetime64[ns]")
        self.first = 0
        self.known: dict[int, np.datetime64] = {}

    def span(self, ts: np.ndarray, first: int) -> None:
        self.ts, self.first = ts, first

    def __getitem__(self, bars) -> np.ndarray:
        bars = np.asarray(bars, dtype=np.int64)
        out = np.empty(bars.shape, "datetime64[ns]")
        here = bars >= self.first
        out[here] = self.ts[bars[here] - self.first]
        for i in np.flatnonzero(~here):
            out[i] = self.known[int(bars[i])]
        return out

    def keep(self, broker) -> None:
        orders, trades = broker.orders_table(), broker.trades_table()
        named = np.concatenate((orders["placed_bar"], orders["done_bar"],
                                trades["entry_bar"], trades["exit_bar"]))
        named = np.unique(named[named >= 0])
        stamps = self[named]
        self.known = dict(zip(named.tolist(), stamps, strict=True))


class _TimeView:
    """What ``engine.backtest.result``'s frame builders read of a panel: ``ts`` and ``symbols``."""

    def __init__(self, clock: _Clock, symbols, zone: str | None = None) -> None:
        self.ts = clock
        self.symbols = symbols
        self.meta = {"tz": zone}


class _ParquetSink:
    """One Parquet file appended a frame at a time (in the staging folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = None
        self.empty = None

    def write(self, frame) -> None:
        import polars as pl
        import pyarrow.parquet as pq

        if isinstance(frame, dict):
            frame = pl.DataFrame(frame)
        table = frame.to_arrow()
        if frame.height == 0:
            self.empty = self.empty or table
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self.writer.schema:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        import pyarrow.parquet as pq

        if self.writer is None and self.empty is not None:
            pq.write_table(self.empty, self.path)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# --------------------------------------------------------------------------- reading


class _BarStream:
    """A Parquet bar file read in row batches and cut into chunks of timestamps.

    The schema, the symbols and the checks are those of :func:`engine.load_bars`
    (the same messages, with rows numbered in the whole file); the one difference
    is that rows out of time order are an error, since a stream cannot sort.
    """

    def __init__(self, path, chunk_bars: int, start=None, end=None, *,
                 date_format: str | None = None, tz: str | None = None) -> None:
        import pyarrow.parquet as pq

        from engine.data.bars import DataWarning, _bound, _resolve, unreadable
        from engine.data.timestamps import check_date_format, check_zone

        self.src = str(path)
        p = Path(path).expanduser()
        if not p.name.lower().endswith((".parquet", ".pq")):
            raise DataError(f"{self.src}: streaming reads Parquet files (.parquet, .pq); "
                            f"convert it first (engine.load_bars, then engine.save_bars)")
        self.date_format = check_date_format(date_format)
        self.tz = check_zone(tz)
        try:
            if not p.exists():
                raise DataError(f"no such file: {self.src}")
            with open(p, "rb"):
                pass        # Arrow's own message for a file it may not read names no fix
        except PermissionError as exc:
            raise unreadable(self.src, exc) from None
        try:
            self.file = pq.ParquetFile(p)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(
                f"{self.src}: cannot read as Parquet ({str(exc).splitlines()[0][:200]}). "
                f"Fix: write or download the file again"
            ) from exc
        if self.file.metadata.num_rows == 0:
            raise DataError(f"{self.src}: no data rows; nothing to stream")
        self.schema = _resolve(self.file.schema_arrow.empty_table(), self.src)
        self.chunk_bars = chunk_bars
        # The zone results are shown in: tz, else the file's. Text stamps with UTC
        # offsets are shown in UTC (a part of the file cannot tell the zone of all).
        ts_type = self.file.schema_arrow.field(self.schema.ts).type
        self.zone = self.tz or (ts_type.tz if pa.types.is_timestamp(ts_type) else None)
        self.memo: dict = {}        # day/month order and zone kind, held across batches
        self.lo = _bound(start, "start", is_end=False, zone=self.zone)
        self.hi = _bound(end, "end", is_end=True, zone=self.zone)
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ParameterError(f"start={start!r} is after end={end!r}")
        self.columns = [self.schema.ts, *([self.schema.symbol] if self.schema.symbol else []),
                        *self.schema.bars.values(), *self.schema.features.values()]
        self.volume_absent = "volume" not in self.schema.bars
        self.field_names = (*BAR_FIELDS, *self.schema.features)
        self.missing: dict[str, tuple] = {}   # column -> (NaN count, first ts, last ts)
        self.rows = 0
        self.notes: list[str] = []
        self.symbols = self._scan_symbols() if self.schema.symbol else (Panel.DEFAULT_SYMBOL,)
        for note in self.notes:
            warnings.warn(note, DataWarning, stacklevel=3)

    # -- first passes over one column: the days (to annualise) and the symbols

    def scan_days(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct days with bars in range and the bars on each, for
        :func:`~engine.analysis.conventions.periods_from_days` (memory: one entry
        per day, not per bar)."""
        from engine.data.timestamps import wall_clock

        days, counts = [], []
        offset = 0
        last = None
        for batch in self._iter_batches([self.schema.ts]):
            ts = self._timestamps(batch.column(0), offset)
            offset += batch.num_rows
            if self.lo is not None or self.hi is not None:
                ts = ts[self._in_range(ts)]
            # Bars are timestamps, not rows: several symbols share one. The file is
            # sorted by ts, so a timestamp split across batches meets its first half.
            ts = np.unique(ts)
            if last is not None and ts.size and ts[0] == last:
                ts = ts[1:]
            if ts.size:
                last = ts[-1]
            # Days where the data trades, as engine.run counts them.
            d, c = np.unique(wall_clock(ts, self.zone).astype("datetime64[D]"),
                             return_counts=True)
            days.append(d)
            counts.append(c)
        if not days:
            return np.array([], dtype="datetime64[D]"), np.array([], dtype=np.int64)
        unique, inverse = np.unique(np.concatenate(days), return_inverse=True)
        return unique, np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)


    def _scan_symbols(self) -> tuple[str, ...]:
        import pyarrow.compute as pc

        from engine.data.bars import spelling_notes

        names = [self.schema.symbol] + ([self.schema.ts] if self.lo or self.hi else [])
        seen: set[str] = set()
        offset = 0
        for batch in self._iter_batches(names):
            col = batch.column(0)
            if self.lo is not None or self.hi is not None:
                ts = self._timestamps(batch.column(1), offset)
                col = col.filter(pa.array(self._in_range(ts)))
            offset += batch.num_rows
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            seen.update(str(s) for s in pc.unique(col).to_pylist() if s is not None)
        # As load_bars reads them: spaces around a name dropped, case kept.
        spellings = sorted(seen)
        stripped = [s.strip() for s in spellings]
        self.notes = spelling_notes(self.src, self.schema.symbol, spellings, stripped)
        return tuple(sorted(set(stripped)))

    def _iter_batches(self, columns):
        # One iterator per row group: pyarrow's iterator over a whole file keeps more
        # and more decoded buffers alive as it goes (52 -> 196 MB over ten 1M-row
        # groups, measured with pyarrow 26), one per group stays at one group's worth.
        for group in range(self.file.metadata.num_row_groups):
            yield from self.file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group],
                                              columns=columns)

    def _in_range(self, ts: np.ndarray) -> np.ndarray:
        mask = np.ones(len(ts), dtype=bool)
        if self.lo is not None:
            mask &= ts >= self.lo
        if self.hi is not None:
            mask &= ts <= self.hi
        return mask

    def _timestamps(self, column, offset: int) -> np.ndarray:
        from engine.data.bars import to_timestamps
        from engine.data.timestamps import localize

        ts, zone = _renumbered(offset, to_timestamps, pa.chunked_array([column]), self.src,
                               self.schema.ts, date_format=self.date_format, memo=self.memo)
        if zone is None and self.tz is not None:
            ts = localize(ts, self.tz, self.src, f"column {self.schema.ts!r} has")
        elif zone is not None and self.zone is None:
            self.zone = "UTC"
        return ts

    # -- the batches, converted and checked

    def _batches(self):
        from engine.data.bars import _to_codes, _to_float

        index = {s: i for i, s in enumerate(self.symbols)}
        offset = 0
        for batch in self._iter_batches(self.columns):
            n = batch.num_rows
            ts = self._timestamps(batch.column(self.schema.ts), offset)
            fields = {}
            for name, orig in (*self.schema.bars.items(), *self.schema.features.items()):
                fields[name] = _renumbered(offset, _to_float, pa.chunked_array(
                    [batch.column(orig)]), self.src, orig, ts, tz=self.zone,
                    required=name == "close")
            if self.volume_absent:
                fields["volume"] = np.full(n, np.nan)
            codes = None
            if self.schema.symbol:
                codes, names = _renumbered(offset, _to_codes, pa.chunked_array(
                    [batch.column(self.schema.symbol)]), self.src, self.schema.symbol, ts,
                    tz=self.zone)
                # batch-local codes -> the run's columns
                # (a symbol outside start/end is -1; its rows are dropped below)
                remap = np.array([index.get(s, -1) for s in names], dtype=np.intp)
                codes = remap[codes] if len(names) else codes
            rows = np.arange(offset + 1, offset + n + 1)
            if self.lo is not None or self.hi is not None:
                keep = self._in_range(ts)
                if not keep.all():
                    ts, rows = ts[keep], rows[keep]
                    codes = codes[keep] if codes is not None else None
                    fields = {k: v[keep] for k, v in fields.items()}
            offset += n
            if len(ts):
                yield ts, rows, codes, fields

    def parts(self):
        """Yield the rows of each chunk (checked batches cut at timestamp boundaries)."""
        pending: list = []
        count = 0               # distinct timestamps pending
        last_ts = None          # the last timestamp seen (order check across batches)
        last_row = 0
        for ts, rows, codes, fields in self._batches():
            t = ts.view(np.int64)
            self._check_order(t, rows, last_ts, last_row)
            new = np.empty(len(t), dtype=bool)
            new[0] = last_ts is None or t[0] != last_ts
            np.not_equal(t[1:], t[:-1], out=new[1:])
            count += int(new.sum())
            last_ts, last_row = int(t[-1]), int(rows[-1])
            pending.append((ts, rows, codes, fields, new))
            # Cut when a timestamp after the chunk's last one has been seen (so that
            # every row of the last one is in).
            while count > self.chunk_bars:
                head, pending, count = self._cut(pending, count)
                yield head
        if pending:
            yield self._join(pending)

    def _check_order(self, t, rows, last_ts, last_row) -> None:
        k = len(self.symbols)
        step_back = np.flatnonzero(t[1:] < t[:-1]) if len(t) > 1 else np.empty(0, int)
        bad_first = last_ts is not None and (t[0] < last_ts or (k == 1 and t[0] == last_ts))
        same = np.flatnonzero(t[1:] == t[:-1]) if k == 1 and len(t) > 1 else np.empty(0, int)
        if not (bad_first or step_back.size or same.size):
            return
        if bad_first:
            here, before = int(rows[0]), last_row
            t_here, t_before = t[0], last_ts
        else:
            i = int(min(step_back[0] if step_back.size else len(t),
                        same[0] if same.size else len(t)))
            here, before, t_here, t_before = int(rows[i + 1]), int(rows[i]), t[i + 1], t[i]
        here_ts = _fmt(np.int64(t_here).view("datetime64[ns]"), self.zone)
        before_ts = _fmt(np.int64(t_before).view("datetime64[ns]"), self.zone)
        if t_here == t_before:
            raise DataError(
                f"{self.src}: duplicate bar for ts {here_ts} at rows {before} and {here}. Fix: "
                f"keep one row per (ts, symbol), e.g. drop duplicates before streaming."
            )
        raise DataError(
            f"{self.src}: rows are not in time order: row {here} (ts {here_ts}) comes after "
            f"row {before} (ts {before_ts}); a stream is read in order and "
            f"cannot sort it. Fix: sort the file by ts (e.g. polars: pl.scan_parquet(src)"
            f".sort('ts').sink_parquet(dst)), or run without --stream, which sorts in memory."
        )

    @staticmethod
    def _join(pending):
        if len(pending) == 1:
            return pending[0]
        ts = np.concatenate([p[0] for p in pending])
        rows = np.concatenate([p[1] for p in pending])
        codes = None if pending[0][2] is None else np.concatenate([p[2] for p in pending])
        fields = {k: np.concatenate([p[3][k] for p in pending]) for k in pending[0][3]}
        new = np.concatenate([p[4] for p in pending])
        return ts, rows, codes, fields, new

    def _cut(self, pending, count):
        ts, rows, codes, fields, new = self._join(pending)
        starts = np.flatnonzero(new)
        cut = int(starts[self.chunk_bars])      # first row of the (chunk_bars + 1)-th ts
        head = (ts[:cut], rows[:cut], None if codes is None else codes[:cut],
                {k: v[:cut] for k, v in fields.items()}, new[:cut])
        rest = (ts[cut:], rows[cut:], None if codes is None else codes[cut:],
                {k: v[cut:].copy() for k, v in fields.items()}, new[cut:].copy())
        return head, [rest], count - self.chunk_bars

    def panel(self, part, kept: Panel | None) -> tuple[Panel, int]:
        """The chunk ``part`` validated and pivoted behind the ``kept`` bars: ``(panel, h)``.

        The panel holds the ``h`` kept bars, then the chunk; its matrices are built
        once at their full size (no copy to join the two).
        """
        from engine.data.bars import _Bars, _validate_values

        ts, rows, codes, fields, new = part
        k = len(self.symbols)
        b = _Bars(self.src, ts, rows, codes, list(self.symbols), fields, self.volume_absent)
        notes: list[str] = []
        for col, n in _validate_values(b, notes).items():
            nan = np.flatnonzero(np.isnan(fields[col]))
            count, first, _ = self.missing.get(col, (0, ts[nan[0]], None))
            self.missing[col] = (count + n, first, ts[nan[-1]])
        self.rows += len(ts)
        uts = ts[new]
        h = kept.n_bars if kept is not None else 0
        m = len(uts)
        if k == 1:
            flat = None
        else:
            flat = (np.cumsum(new) - 1) * k + codes
            seen = np.zeros(m * k, dtype=bool)
            seen[flat] = True
            if int(seen.sum()) != len(flat):
                self._duplicate(flat, rows, ts, codes)
        out = {}
        for name in self.field_names:
            arr = np.empty((h + m, k))
            if h:
                arr[:h] = kept.fields[name]
            if flat is None:
                arr[h:, 0] = fields[name]
            else:
                body = arr[h:].reshape(-1)
                body[:] = np.nan
                body[flat] = fields[name]
            out[name] = arr
        all_ts = np.concatenate((kept.ts, uts)) if h else uts.copy()
        return Panel(ts=all_ts, symbols=self.symbols, fields=out, source=self.src,
                     meta={"stream": True, "tz": self.zone}), h

    def _duplicate(self, flat, rows, ts, codes):
        order = np.argsort(flat, kind="stable")
        same = np.flatnonzero(flat[order][1:] == flat[order][:-1])
        a, c = int(order[same[0]]), int(order[same[0] + 1])
        raise DataError(
            f"{self.src}: duplicate bar for ts {_fmt(ts[a], self.zone)}, symbol "
            f"{self.symbols[codes[a]]!r} at rows {int(rows[a])} and {int(rows[c])}. Fix: keep "
            f"one row per (ts, symbol), e.g. drop duplicates before streaming."
        )

    def warn_missing(self) -> None:
        from engine.data.bars import DataWarning, documented_gaps

        documented = documented_gaps(self.file.schema_arrow.empty_table(), self.src)
        for col, (n, first, last) in self.missing.items():
            if col == "volume" and self.volume_absent:
                continue
            gap = documented.get(col)
            if gap is not None and gap[0] <= first and last <= gap[1]:
                continue
            warnings.warn(
                f"{self.src}: column {col!r} is missing (NaN) in {n} of {self.rows} rows, "
                f"from {_fmt(first, self.zone)} to {_fmt(last, self.zone)}; they are kept "
                f"missing, not filled in.",
                DataWarning, stacklevel=3)


_ROW = re.compile(r"\brow (\d+)")


def _renumbered(offset: int, func, *args, **kwargs):
    """Call a loader conversion on one batch; its row numbers become the file's."""
    try:
        return func(*args, **kwargs)
    except DataError as exc:
        if not offset:
            raise
        text = _ROW.sub(lambda m: f"row {int(m.group(1)) + offset}", str(exc))
        raise DataError(text) from exc
