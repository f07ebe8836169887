"""Report tables of a backtest: drawdowns, years, hit rates.

Pure functions of a :class:`~engine.backtest.result.Result` (its equity curve, trades and
orders) returning polars DataFrames; the metrics they use are the ones of
:mod:`engine.analysis.metrics`, with the same conventions. Timestamps are dates when every
bar is at midnight (daily data), datetimes otherwise; for data with a time zone both are
those of the zone (the day and year where the data trades, not UTC's), and datetimes carry
the zone.

Drawdowns (:func:`drawdown_table`)
    On the equity curve ``E = [starting_cash, equity...]`` (as for
    ``max_drawdown``), a drawdown is a run of points below the running peak.
    ``peak_ts``: the last point at the peak before the fall (null when the peak
    is the starting cash, before the first bar); ``trough_ts``: the lowest point
    of the run (the first one on a tie); ``recovery_ts``: the first point back at
    or above the peak, null if equity had not recovered by the end.
    ``depth = 1 - E_trough / E_peak``; ``length``: bars from the peak to the
    recovery, or to the last bar if unrecovered (so the longest ``length`` is
    ``max_drawdown_duration``); ``bars_to_trough``: bars from the peak to the
    trough. Sorted by depth, the deepest first (the first ``depth`` is
    ``max_drawdown``); ties keep time order.
Years (:func:`yearly_table`)
    One row per calendar year with bars. The year's curve starts at the equity
    of the previous year's last close (the starting cash for the first year) and
    holds the year's closes. ``return``: its total return; ``volatility``,
    ``sharpe``: of its per-bar returns, annualised with the run's
    ``periods_per_year`` and ``risk_free`` exactly as in :mod:`engine.analysis.metrics`
    (NaN with fewer than 2 bars); ``max_drawdown``: within that curve;
    ``trades``: trades **closed** in the year (by exit date); ``hit_rate``: the
    share of them with ``pnl > 0`` (NaN without trades).
Hit rates (:func:`hit_rate_table`)
    Closed trades only (an open lot has no result yet); a closed trade is a
    closed row of the FIFO ledger (a partial exit included, with its own exit
    reason and ``bars_held`` from its lot's entry). A hit is a trade
    with ``pnl > 0`` (net of costs); a zero-P&L trade is not a hit but counts.
    Groups: ``all`` (value ``all``); ``exit_reason`` (the exit order's tag, e.g.
    ``signal``, ``stop_loss``); ``entry_label``: the strategy's
    ``entry_labels(data)`` value on the trade's **signal bar** -- the bar its
    entry order (``entry_order``) was placed on, not the fill bar -- (``(none)``
    when missing);
    ``entry_condition``: whether ``entry_condition(data)`` held on that bar
    (``true``/``false``). The last two appear only when the strategy defines the
    hook. Columns: ``trades, hits, hit_rate, avg_return`` (mean ``return_pct``),
    ``total_pnl, avg_bars_held``, then the evidence: ``hit_rate_low`` and
    ``hit_rate_high``, the exact (Clopper–Pearson) 95% interval of ``hit_rate``
    (trades of one symbol do not overlap, so each is one trial); ``base_rate``,
    the hit rate of all closed trades; ``difference = hit_rate - base_rate``; and
    ``p_value``, Fisher's exact test (two-sided) of the group's hits against the
    other trades' (null for ``all`` and when no trade is outside the group).
Confidence (:func:`confidence`)
    The run's headline figures with an interval each, at ``level`` (0.95):
    ``sharpe``, ``cagr`` and ``max_drawdown`` from a stationary block bootstrap of
    the per-bar returns, ``hit_rate`` from the exact binomial interval of the
    closed trades, and ``psr``/``psr_benchmark`` as probabilities (no interval).
    Definitions and references: :mod:`engine.analysis.stats`. Columns
    ``metric, value, low, high, method``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.analysis import metrics as m
from engine.analysis.event_study import entry_signal_bars, label_order, strategy_hooks

DRAWDOWN_COLUMNS = ("rank", "peak_ts", "trough_ts", "recovery_ts", "depth", "length",
                    "bars_to_trough", "peak_equity", "trough_equity")
YEARLY_COLUMNS = ("year", "bars", "return", "volatility", "sharpe", "max_drawdown", "trades",
                  "hit_rate")
HIT_RATE_COLUMNS = ("group", "value", "trades", "hits", "hit_rate", "avg_return", "total_pnl",
                    "avg_bars_held", "hit_rate_low", "hit_rate_high", "base_rate", "difference",
                    "p_value")


def _daily(ts: np.ndarray) -> bool:
    ts = np.asarray(ts, dtype="datetime64[ns]")
    return bool(ts.size) and bool((ts == ts.astype("datetime64[D]")).all())


def _ts_column(values, name: str, daily: bool, tz: str | None = None) -> pl.Series:
    """Stamps (UTC instants when ``tz`` is set) as dates or datetimes of the zone."""
    values = np.asarray(values, dtype="datetime64[ns]")
    if tz:
        series = pl.Series(name, values).dt.replace_time_zone("UTC").dt.convert_time_zone(tz)
        return series.dt.date() if daily else series
    series = pl.Series(name, values)
    return series.cast(pl.Date) if daily else series


def zoned(series: pl.Series) -> tuple[np.ndarray, str | None]:
    """A timestamp column of a result as ``(instants, zone)``: the UTC stamps and the
    zone they are shown in, or the naive stamps and None."""
    tz = getattr(series.dtype, "time_zone", None)
    return series.to_numpy(), tz


def local_times(series: pl.Series) -> np.ndarray:
    """A timestamp column as naive local times of its zone (days, years, plots)."""
    if getattr(series.dtype, "time_zone", None):
        series = series.dt.replace_time_zone(None)
    return series.to_numpy()


# --------------------------------------------------------------------------- drawdowns


def drawdown_periods(E) -> list[tuple[int, int, int | None]]:
    """Every drawdown of the curve ``E`` as ``(peak, trough, recovery)`` indices.

    ``recovery`` is None for a drawdown not recovered by the end. Indices are
    positions in ``E`` (the starting cash is position 0).

    >>> drawdown_periods([100, 120, 90, 110, 125, 100])
    [(1, 2, 4), (4, 5, None)]
    """
    E = np.asarray(E, dtype=np.float64)
    under = E < np.maximum.accumulate(E)
    if not under.any():
        return []
    edges = np.diff(np.concatenate(([0], under.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # one past the last point below the peak
    out = []
    for a, b in zip(starts, stops, strict=True):
        trough = int(a + np.argmin(E[a:b]))
        out.append((int(a - 1), trough, int(b) if b < E.size else None))
    return out


def drawdown_table(equity, ts, starting_cash: float, n: int = 5,
                   tz: str | None = None) -> pl.DataFrame:
    """The ``n`` deepest drawdowns (see the module docstring).

    Parameters
    ----------
    equity : array_like
        Equity at each bar's close, shape ``(n_bars,)``.
    ts : array_like of datetime64
        The bars' timestamps, shape ``(n_bars,)``: UTC instants when ``tz`` is given.
    starting_cash : float
        Equity before the first bar.
    n : int
        How many drawdowns to keep.
    tz : str, optional
        The zone the dates are shown in (and that decides whether bars are daily).
    """
    from engine.data.timestamps import wall_clock

    E = m.equity_curve(equity, starting_cash)
    ts = np.asarray(ts, dtype="datetime64[ns]")
    daily = _daily(wall_clock(ts, tz))
    nat = np.datetime64("NaT", "ns")

    def when(i):
        return nat if i is None or i == 0 else ts[i - 1]

    periods = drawdown_periods(E)
    depth = [1.0 - E[t] / E[p] for p, t, _ in periods]
    order = sorted(range(len(periods)), key=lambda i: (-depth[i], i))[: max(int(n), 0)]
    last = E.size - 1
    rows = [periods[i] for i in order]
    return pl.DataFrame([
        pl.Series("rank", np.arange(1, len(rows) + 1), dtype=pl.Int64),
        _ts_column([when(p) for p, _, _ in rows], "peak_ts", daily, tz),
        _ts_column([when(t) for _, t, _ in rows], "trough_ts", daily, tz),
        _ts_column([when(q) for _, _, q in rows], "recovery_ts", daily, tz),
        pl.Series("depth", [depth[i] for i in order], dtype=pl.Float64),
        pl.Series("length", [(last if q is None else q) - p for p, _, q in rows],
                  dtype=pl.Int64),
        pl.Series("bars_to_trough", [t - p for p, t, _ in rows], dtype=pl.Int64),
        pl.Series("peak_equity", [E[p] for p, _, _ in rows], dtype=pl.Float64),
        pl.Series("trough_equity", [E[t] for _, t, _ in rows], dtype=pl.Float64),
    ])


def drawdowns(result, n: int = 5) -> pl.DataFrame:
    """:func:`drawdown_table` of a result."""
    ts, tz = zoned(result.equity["ts"])
    return drawdown_table(result.equity["equity"].to_numpy(), ts, result.starting_cash, n, tz)


# --------------------------------------------------------------------------- years


def _curve_stats(Ey: np.ndarray, ppy: float, rf: float) -> dict:
    nan = float("nan")
    if Ey[0] <= 0:
        return {"return": nan, "volatility": nan, "sharpe": nan, "max_drawdown": nan}
    r = m.bar_returns(Ey[1:], Ey[0])
    ok = np.isfinite(r).all()
    return {
        "return": m.total_return(Ey),
        "volatility": m.volatility(r, ppy) if ok else nan,
        "sharpe": m.sharpe(r, ppy, rf) if ok else nan,
        "max_drawdown": m.max_drawdown(Ey),
    }


def yearly_table(equity, ts, starting_cash: float, trades: pl.DataFrame | None = None,
                 periods_per_year=252, risk_free: float = 0.0) -> pl.DataFrame:
    """One row per calendar year (see the module docstring); ``ts`` are local times."""
    ppy = m.resolve_periods_per_year(periods_per_year)
    E = m.equity_curve(equity, starting_cash)
    ts = np.asarray(ts, dtype="datetime64[ns]")
    years = ts.astype("datetime64[Y]").astype(np.int64) + 1970
    closed = _closed(trades)
    exit_years = (closed["exit_ts"].dt.year().to_numpy() if closed.height
                  else np.zeros(0, dtype=np.int64))
    pnl = closed["pnl"].to_numpy() if closed.height else np.zeros(0)
    rows = []
    if years.size:
        change = np.flatnonzero(np.diff(years)) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [years.size]))
        for a, b in zip(starts, stops, strict=True):
            year = int(years[a])
            in_year = exit_years == year
            n_trades = int(in_year.sum())
            row = {"year": year, "bars": int(b - a)}
            row.update(_curve_stats(E[a:b + 1], ppy, risk_free))
            row["trades"] = n_trades
            row["hit_rate"] = float((pnl[in_year] > 0).mean()) if n_trades else float("nan")
            rows.append(row)
    schema = {"year": pl.Int64, "bars": pl.Int64, "return": pl.Float64,
              "volatility": pl.Float64, "sharpe": pl.Float64, "max_drawdown": pl.Float64,
              "trades": pl.Int64, "hit_rate": pl.Float64}
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)
    return frame.fill_nan(None)


def yearly(result) -> pl.DataFrame:
    """:func:`yearly_table` of a result, with its annualisation settings."""
    settings = result.settings
    return yearly_table(result.equity["equity"].to_numpy(), local_times(result.equity["ts"]),
                        result.starting_cash, result.trades,
                        settings.get("periods_per_year", 252), settings.get("risk_free", 0.0))


# --------------------------------------------------------------------------- hit rates


def _closed(trades: pl.DataFrame | None) -> pl.DataFrame:
    if trades is None or trades.height == 0:
        return pl.DataFrame(schema={"exit_ts": pl.Datetime("ns"), "pnl": pl.Float64})
    return trades.filter(pl.col("exit_ts").is_not_null())


def hit_rate_table(trades: pl.DataFrame, groups: dict | None = None) -> pl.DataFrame:
    """Hit rates of the closed trades, overall and by each grouping.

    Parameters
    ----------
    trades : polars.DataFrame
        The result's trades (open ones are ignored).
    groups : dict, optional
        Group name -> the trades' values (one per row of ``trades``; None
        becomes ``(none)``), or ``(values, order)`` to list the values in that
        order (values not in it follow, sorted). The groups ``all`` and
        ``exit_reason`` always come first.
    """
    closed_mask = trades["exit_ts"].is_not_null().to_numpy() if trades.height else np.zeros(
        0, dtype=bool)
    frame = trades.select("pnl", "return_pct", "bars_held", "exit_reason")
    keyed = [("all", ["all"] * trades.height, ["all"])]
    reasons = trades["exit_reason"].to_list()
    keyed.append(("exit_reason", reasons,
                  sorted({r for r, c in zip(reasons, closed_mask, strict=True) if c},
                         key=str)))
    for name, spec in (groups or {}).items():
        values, order = spec if isinstance(spec, tuple) else (spec, None)
        values = ["(none)" if v is None else str(v) for v in values]
        present = [v for v, c in zip(values, closed_mask, strict=True) if c]
        if order is None:
            order = sorted(set(present))
        else:
            order = [v for v in order if v in present] + sorted(
                set(present) - set(order))
        keyed.append((name, values, order))
    from scipy.stats import fisher_exact

    from engine.analysis.stats import hit_rate_interval

    closed_pnl = trades["pnl"].to_numpy()[closed_mask] if trades.height else np.zeros(0)
    total, total_hits = int(closed_pnl.size), int((closed_pnl > 0).sum())
    base = total_hits / total if total else None
    rows = []
    for name, values, order in keyed:
        tagged = frame.with_columns(pl.Series("value", values, dtype=pl.String)).filter(
            pl.Series(closed_mask))
        stats = {
            row["value"]: row
            for row in tagged.group_by("value").agg(
                pl.len().alias("trades"),
                (pl.col("pnl") > 0).sum().alias("hits"),
                pl.col("return_pct").mean().alias("avg_return"),
                pl.col("pnl").sum().alias("total_pnl"),
                pl.col("bars_held").mean().alias("avg_bars_held"),
            ).iter_rows(named=True)
        }
        if name == "all" and "all" not in stats:
            stats["all"] = {"trades": 0, "hits": 0, "avg_return": None, "total_pnl": 0.0,
                            "avg_bars_held": None}
        for value in order:
            s = stats[value]
            n, hits = int(s["trades"]), int(s["hits"])
            low, high = hit_rate_interval(hits, n) if n else (None, None)
            rate = hits / n if n else None
            p_value = None
            if name != "all" and 0 < n < total:
                table = [[hits, n - hits], [total_hits - hits, total - n - (total_hits - hits)]]
                p_value = float(fisher_exact(table).pvalue)
            rows.append({
                "group": name, "value": value, "trades": n, "hits": hits, "hit_rate": rate,
                "avg_return": s["avg_return"], "total_pnl": float(s["total_pnl"]),
                "avg_bars_held": s["avg_bars_held"], "hit_rate_low": low, "hit_rate_high": high,
                "base_rate": base,
                "difference": rate - base if rate is not None and base is not None else None,
                "p_value": p_value,
            })
    schema = {"group": pl.String, "value": pl.String, "trades": pl.Int64, "hits": pl.Int64,
              "hit_rate": pl.Float64, "avg_return": pl.Float64, "total_pnl": pl.Float64,
              "avg_bars_held": pl.Float64, "hit_rate_low": pl.Float64,
              "hit_rate_high": pl.Float64, "base_rate": pl.Float64, "difference": pl.Float64,
              "p_value": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def hit_rates(result) -> pl.DataFrame:
    """:func:`hit_rate_table` of a result, with its entry labels and condition."""
    trades = result.trades
    groups = {}
    if result.panel is not None and trades.height:
        hooks = strategy_hooks(result)
        if hooks["labels"] is not None or hooks["condition"] is not None:
            panel = result.panel
            bars = entry_signal_bars(trades, result.orders, panel.ts)
            index = {name: i for i, name in enumerate(panel.symbols)}
            cols = np.array([index[s] for s in trades["symbol"]], dtype=np.int64)
            if hooks["labels"] is not None:
                names = hooks["label_names"]
                labels = [names[c] if c >= 0 else None for c in hooks["labels"][bars, cols]]
                groups["entry_label"] = (labels, label_order(names, hooks["claims"]))
            if hooks["condition"] is not None:
                held = hooks["condition"][bars, cols]
                groups["entry_condition"] = (["true" if h else "false" for h in held],
                                             ["true", "false"])
    return hit_rate_table(trades, groups)


CONFIDENCE_COLUMNS = ("metric", "value", "low", "high", "method")


def confidence(result, level: float = 0.95, reps: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Intervals of a run's Sharpe ratio, CAGR, maximum drawdown and hit rate.

    Parameters
    ----------
    result : engine.backtest.result.Result
        The run.
    level : float, default 0.95
        Coverage of the intervals.
    reps : int, default 1000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the bootstrap: the same run gives the same table.

    Returns
    -------
    polars.DataFrame
        Columns :data:`CONFIDENCE_COLUMNS`, one row per figure (see the module
        docstring).
    """
    from engine.analysis import stats

    equity = result.equity["equity"].to_numpy()
    r = m.bar_returns(equity, result.starting_cash)
    ppy = float(result.settings.get("periods_per_year", 252))
    bands = stats.run_intervals(r, ppy, risk_free=float(result.settings.get("risk_free", 0.0)),
                                level=level, reps=reps, seed=seed)
    block = bands["block"][0]
    closed = _closed(result.trades)
    hits = int((closed["pnl"] > 0).sum()) if closed.height else 0
    metrics = result.metrics
    boot = f"stationary block bootstrap, mean block {block:.0f} bars, {reps} resamples"
    rows = [
        ("sharpe", metrics.get("sharpe"), *bands["sharpe"], boot),
        ("cagr", metrics.get("cagr"), *bands["cagr"], boot),
        ("max_drawdown", metrics.get("max_drawdown"), *bands["max_drawdown"], boot),
        ("hit_rate", metrics.get("hit_rate"), *stats.hit_rate_interval(hits, closed.height,
                                                                        level),
         f"exact binomial (Clopper-Pearson), {closed.height} closed trades"),
        ("psr", metrics.get("psr"), None, None, "P(true Sharpe > 0)"),
    ]
    if "psr_benchmark" in metrics:
        rows.append(("psr_benchmark", metrics["psr_benchmark"], None, None,
                     "P(true Sharpe > buy-and-hold's)"))
    frame = pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.Float64,
                                       "low": pl.Float64, "high": pl.Float64,
                                       "method": pl.String}, orient="row")
    return frame.fill_nan(None)
