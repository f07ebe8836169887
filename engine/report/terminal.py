"""Rich tables on the terminal: a run's metrics and report tables, a comparison, a
sweep's ranking, a strategy's parameters.

Every number goes through :func:`engine.report.format.fmt`, so the terminal,
the JSON and the files agree on units. rich is imported when something is
printed, not before.
"""

from __future__ import annotations

from pathlib import Path

from engine.report.format import event_study_display, hit_rate_display, margin_call_note
from engine.report.format import fmt as _fmt

#: Years of the per-year table shown in the terminal (all of them are in the files).
YEARS_SHOWN = 10
#: Open positions listed in the terminal.
OPEN_SHOWN = 5
#: Metrics shown beside a sweep's ranking metric, as the width allows.
SWEEP_METRICS = ("sharpe", "dsr", "total_return", "cagr", "max_drawdown", "trades", "hit_rate",
                 "exposure", "sortino", "calmar", "volatility", "profit_factor", "final_equity",
                 "rejected")


#: Columns of the comparison kept first when the terminal is narrow.
COMPARE_PRIORITY = ("strategy", "data", "period", "total_return", "cagr", "sharpe",
                    "max_drawdown", "volatility", "trades", "hit_rate", "exposure", "beta",
                    "sortino", "calmar",
                    "max_drawdown_duration", "profit_factor", "final_equity", "params")
#: Columns of the event study kept first when the terminal is narrow.
EVENT_PRIORITY = ("signal", "horizon", "count", "share > 0 [95%]", "vs base (pts) [95%]",
                  "claimed_rate", "episodes", "p_value", "mean_return", "median_return")
SHORT_HEADERS = {"total_return": "return", "volatility": "vol", "max_drawdown": "max dd",
                 "max_drawdown_duration": "dd bars", "hit_rate": "hit rate",
                 "profit_factor": "pf", "final_equity": "final equity"}


def fit_columns(frame, priority, width: int) -> list[str]:
    """The columns of ``frame`` that fit in ``width`` characters, taken by ``priority``,
    in the frame's own order."""
    def size(column):
        cells = [_fmt(column, v) for v in frame[column].to_list()]
        return max([len(SHORT_HEADERS.get(column, column)), *map(len, cells)]) + 3

    chosen, used = set(), 1
    for column in [c for c in priority if c in frame.columns]:
        if not chosen or used + size(column) <= width:
            chosen.add(column)
            used += size(column)
    return [c for c in frame.columns if c in chosen]


def frame_table(frame, title: str, caption: str | None = None, headers: dict | None = None,
                formats: dict | None = None):
    """A polars frame as a rich table, numbers formatted and right-aligned.

    ``headers`` renames columns for display; ``formats`` maps a column to a
    function of its value that replaces :func:`engine.report.format.fmt`.
    """
    from rich.table import Table

    headers, formats = headers or {}, formats or {}
    table = Table(title=title, caption=caption, header_style="bold", caption_justify="left")
    for column, dtype in zip(frame.columns, frame.dtypes, strict=True):
        table.add_column(headers.get(column, column),
                         justify="right" if dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(formats[c](v) if c in formats else _fmt(c, v)
                        for c, v in zip(frame.columns, row, strict=True)))
    return table


def _whole_money(value) -> str:
    return _fmt("total_pnl", value) if value is None else f"{value:,.0f}"


#: Short names of the hit-rate groups in the terminal.
GROUP_NAMES = {"exit_reason": "exit", "entry_label": "label", "entry_condition": "condition"}


def periods_text(settings: dict) -> str:
    """``"annualised at 252 bars a year (daily bars, weekdays only)"``."""
    ppy = settings.get("periods_per_year")
    if ppy is None:
        return "annualisation unknown"
    how = settings.get("periods_per_year_from", "given")
    return f"annualised at {ppy:,.6g} bars a year ({how})"


def _account_text(settings) -> str:
    """What the heading adds for the account, prices and benchmark, when not the default."""
    parts = []
    if settings.get("leverage", 1.0) > 1.0:
        parts.append(f"margin account at leverage {settings['leverage']:g} (maintenance "
                     f"{settings['maintenance_margin']:g}, rate {settings['margin_rate']:g})")
    if settings.get("max_volume_share") is not None:
        parts.append(f"fills capped at {settings['max_volume_share']:g} of each bar's volume")
    if settings.get("prices", "as given") != "as given":
        parts.append(f"prices: {settings['prices']}")
    if settings.get("benchmark", "buy-and-hold of the data") != "buy-and-hold of the data":
        parts.append(f"benchmark: {settings['benchmark']}")
    return "".join(f", {p}" for p in parts)


def print_run_metrics(console, result, how: str) -> None:
    """The run's heading (strategy, parameters, data, ``how`` it ran) and its metrics."""
    from rich.table import Table

    settings = result.settings
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    console.print(
        f"[bold]{result.strategy}[/bold] ({params}) on {settings['data']} "
        f"{settings['start']} → {settings['end']}, {how}, fills at {settings['fill']}, "
        f"{periods_text(settings)}{_account_text(settings)}"
    )
    metrics = Table(title="Metrics", show_header=True, header_style="bold")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result.metrics.items():
        metrics.add_row(name, _fmt(name, value))
    console.print(metrics)


def warn_rejections(rejections, prefix: str = "") -> None:
    """One ``warning:`` line on stderr per kind of rejected order: the count and the first
    case (see :class:`engine.backtest.rejections.Rejection`), ``prefix`` before it."""
    from engine.report.progress import emit

    for rejection in rejections:
        emit(f"warning: {prefix}{rejection.describe()} (orders.parquet of --out lists every "
             f"rejected order; --strict makes them an error)")


def print_stream_result(result) -> None:
    """The metrics of a streamed run (``run --stream``), then its rejected orders."""
    from rich.console import Console

    console = Console()
    s = result.settings
    print_run_metrics(console, result, f"streamed in {s['chunks']:,} chunk(s) of "
                                        f"{s['chunk_bars']:,} bars, vectorised path")
    warn_rejections(result.rejections)
    if result.out is not None:
        console.print(f"Wrote metrics.json, trades.parquet, equity.parquet, orders.parquet to "
                      f"{result.out} (no report tables or plot: they need the whole curve; "
                      f"run without --stream for them)")


def print_result(result, tables=None, out_dir=None) -> None:
    import polars as pl
    from rich.console import Console

    tables = tables if tables is not None else result.tables()
    console = Console()
    print_run_metrics(console, result, f"{result.settings['mode']} path")
    warn_rejections(result.rejections())  # beside the numbers they put in doubt

    drawdowns = tables["drawdowns"].select(
        "rank", "peak_ts", "trough_ts", "recovery_ts", "depth", "length", "bars_to_trough")
    console.print(frame_table(
        drawdowns, "Worst drawdowns",
        caption="length and to trough in bars from the peak; no recovery date: not recovered",
        headers={"peak_ts": "peak", "trough_ts": "trough", "recovery_ts": "recovery",
                 "bars_to_trough": "to trough"}))

    yearly = tables["yearly"]
    note = "trades and hit rate: trades closed in the year"
    if yearly.height > YEARS_SHOWN:
        note = (f"the last {YEARS_SHOWN} of {yearly.height} years (all of them in yearly.csv "
                f"with --out, or --json); " + note)
        yearly = yearly.tail(YEARS_SHOWN)
    console.print(frame_table(yearly, "Per year", caption=note,
                              headers={"max_drawdown": "max dd", "hit_rate": "hit rate"}))

    console.print(frame_table(
        hit_rate_display(tables["hit_rates"]),
        "Hit rates: overall, by exit reason and by entry condition",
        caption="closed trades; a hit is pnl > 0 after costs (zero is not a hit); label and "
                "condition are read on the bar the entry order was placed; [95% exact "
                "interval]; vs all: points above the hit rate of all trades, p from "
                "Fisher's exact test against the other trades",
        headers={"avg_return": "avg return", "total_pnl": "total pnl",
                 "avg_bars_held": "bars held", "p_value": "p"},
        formats={"group": lambda g: GROUP_NAMES.get(g, g), "total_pnl": _whole_money}))
    still_open = result.trades.filter(pl.col("exit_ts").is_null())
    for row in still_open.head(OPEN_SHOWN).iter_rows(named=True):
        console.print(f"Open at the end: {row['symbol']} {row['size']:,g} since "
                      f"{_fmt('entry_ts', row['entry_ts'])} (not in the hit rates)",
                      highlight=False)
    if still_open.height > OPEN_SHOWN:
        console.print(f"... and {still_open.height - OPEN_SHOWN} more open lots "
                      f"(trades.parquet with --out)")

    events = event_study_display(tables["event_study"])
    if events["claimed_rate"].null_count() == events.height:
        events = events.drop("claimed_rate")
    shown = fit_columns(events, EVENT_PRIORITY, console.width)
    console.print(frame_table(
        events.select(shown),
        "Event study: forward returns after each signal",
        caption="from the signal bar's close over horizon bars; share > 0 is the measured "
                "success rate (forward return > 0) [95% block-bootstrap interval]; vs base: "
                "points above the share > 0 of every bar from the first to the last signal; "
                "episodes: runs of signals split at gaps longer than the horizon; claimed: "
                "the rate the source notes claim" + (
                    f". Not shown for lack of width (event_study.csv has them): "
                    f"{', '.join(c for c in events.columns if c not in shown)}"
                    if len(shown) < len(events.columns) else ""),
        headers={"mean_return": "mean", "median_return": "median", "claimed_rate": "claimed",
                 "p_value": "p"}))
    if "confidence" in tables:
        import polars as pl

        conf = tables["confidence"]
        shown = pl.DataFrame({"metric": conf["metric"], **{
            column: [_fmt(metric, v) for metric, v in zip(conf["metric"], conf[column],
                                                           strict=True)]
            for column in ("value", "low", "high")}, "method": conf["method"]})
        console.print(frame_table(
            shown, "Confidence: 95% intervals",
            caption="definitions: engine/analysis/stats.py; psr is the probability that the "
                    "true Sharpe ratio is above 0 (psr_benchmark: above buy-and-hold's)"))
    if result.metrics.get("same_bar_exits"):
        console.print(f"[yellow]{result.metrics['same_bar_exits']:.0f} bars touched both a "
                      f"stop-loss and a take-profit; the stop was assumed to fill first.[/yellow]")
    if result.metrics.get("margin_calls"):
        console.print(f"[yellow]warning: {margin_call_note(result.metrics)}[/yellow]")
    if out_dir:
        console.print(f"Wrote metrics.json, trades.parquet, equity.parquet, orders.parquet, "
                      f"drawdowns.csv, yearly.csv, hit_rates.csv, event_study.csv, equity.png, "
                      f"report.html to {out_dir}")


def print_compare(table, meta: str, out_dir=None) -> None:
    """A comparison table (``python -m engine compare``) fitted to the terminal's width."""
    from rich.console import Console

    from engine.research.compare import groups_of

    console = Console()
    console.print(meta)
    same = groups_of(table) == 1
    if same:  # the heading names the one data and period
        table = table.drop("data", "period")
    priority = list(COMPARE_PRIORITY)
    if "rejected" in table.columns and (table["rejected"].fill_null(0) > 0).any():
        priority.insert(priority.index("trades") + 1, "rejected")  # then it matters
    else:
        priority.append("rejected")
    shown = fit_columns(table, priority, console.width)
    caption = "BuyAndHold is the benchmark; definitions in engine/analysis/metrics.py"
    hidden = [c for c in table.columns if c not in shown]
    if hidden:
        caption += (f". Not shown for lack of width: {', '.join(hidden)} (in compare.csv "
                    f"with --out, --json, or a wider terminal)")
    console.print(frame_table(table.select(shown), "Comparison on the same data" if same
                              else "Comparison, each strategy on its own data",
                              caption=caption, headers=SHORT_HEADERS))
    if "params" not in shown:
        for name, values in zip(table["strategy"], table["params"], strict=True):
            if values:
                console.print(f"{name}: {values}", highlight=False)
    if out_dir:
        console.print(f"Wrote compare.csv, equity.png, report.html to {out_dir}")


def _plain(value) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_sweep_ranking(file, grid, frame, ranked, metric: str, top: int, out_dir=None,
                        heatmap: bool | None = None) -> None:
    """The best ``top`` parameter sets of a sweep by ``metric``, and its failures
    (``heatmap``: whether ``heatmap.png`` was written; default: a two-name grid)."""
    import polars as pl
    from rich.console import Console

    console = Console()
    failed = frame.filter(pl.col("error").is_not_null())
    params = frame.columns[:len(grid)]
    metrics = [metric] + [m for m in SWEEP_METRICS if m != metric and m in frame.columns]
    best = ranked.head(top)
    columns = params + metrics + (["error"] if best["error"].null_count() < best.height else [])
    shown = fit_columns(best.select(columns), [*params, *metrics, "error"], console.width)
    console.print(f"{Path(file).name}: {frame.height} parameter sets, "
                  f"{frame.height - failed.height} ran, {failed.height} failed", highlight=False)
    if not best.height:
        return
    console.print(frame_table(
        best.select(shown), f"Best {best.height} by {metric}", headers=SHORT_HEADERS,
        formats={p: _plain for p in params},
        caption="best first; failed sets last" + (
            f". Not shown for lack of width: {', '.join(c for c in columns if c not in shown)}"
            if len(shown) < len(columns) else "")))
    overfitting = getattr(frame, "pbo", None)
    if overfitting:
        console.print(overfitting_line(overfitting, ranked, metric), highlight=False)
    if failed.height:
        first = failed.row(0, named=True)
        where = ", ".join(f"{p}={first[p]}" for p in params)
        console.print(f"{failed.height} sets failed; the first ({where}): {first['error']}",
                      highlight=False, markup=False)
    if out_dir:
        heatmap = len(grid) == 2 if heatmap is None else heatmap
        files = "sweep.parquet, sweep.csv" + (", heatmap.png" if heatmap else "")
        console.print(f"Wrote {files} to {out_dir}", highlight=False)


def overfitting_line(overfitting: dict, ranked, metric: str) -> str:
    """One line on selection bias under a sweep's ranking: PBO and the best set's DSR
    (the DSR alone, beside the reason, when PBO is not computed)."""
    if overfitting.get("pbo") is None:
        text = f"Probability of backtest overfitting: not computed ({overfitting['reason']})"
    else:
        text = (f"Probability of backtest overfitting: {overfitting['pbo']:.0%} (the share of "
                f"{overfitting['splits']:,} in/out-of-sample splits of {overfitting['blocks']} "
                f"blocks where the best of {overfitting['sets']} sets in sample fell to or "
                f"below the median out of sample)")
    tries = overfitting.get("sets")
    if tries and ranked.height and "dsr" in ranked.columns and ranked["dsr"][0] is not None:
        text += (f". Deflated Sharpe ratio of the best by {metric}: {ranked['dsr'][0]:.2f} "
                 f"(the probability that its Sharpe ratio beats the best of "
                 f"{tries} tries with no skill)")
    return text


def print_params(strategy: str, rows: list[dict]) -> None:
    """A strategy's parameters: name, type, default, bounds and help."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{strategy} parameters", header_style="bold")
    for column in ("name", "type", "default", "bounds", "help"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["type"], repr(row["default"]), row["bounds"], row["help"])
    Console().print(table)


#: Metrics of a walk-forward's summary table, in- and out-of-sample side by side.
WALK_FORWARD_METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                        "volatility", "trades", "hit_rate", "exposure", "final_equity")


def print_walk_forward(file, wf, names: list[str], anchored: bool, out_dir=None) -> None:
    """Per window: its dates, the parameters chosen in-sample and the metric in- and
    out-of-sample; then the stitched out-of-sample metrics beside the in-sample ones."""
    import polars as pl
    from rich.console import Console

    console = Console()
    w = wf.windows
    kind = "anchored" if anchored else "rolling"
    console.print(f"{Path(file).name}: walk-forward, {w.height} {kind} windows, sets chosen "
                  f"by {wf.metric} on the training bars", highlight=False)
    table = w.select(
        "window",
        pl.format("{} → {}", pl.col("train_start").dt.date(),
                  pl.col("train_end").dt.date()).alias("train"),
        pl.format("{} → {}", pl.col("test_start").dt.date(),
                  pl.col("test_end").dt.date()).alias("test"),
        *names, "in_sample", "out_of_sample")
    console.print(frame_table(
        table, f"Windows: chosen parameters and {wf.metric}",
        headers={"in_sample": "in-sample", "out_of_sample": "out-of-sample"},
        formats={**{n: _plain for n in names},
                 "in_sample": lambda v: _fmt(wf.metric, v),
                 "out_of_sample": lambda v: _fmt(wf.metric, v)}))
    for row in w.filter(pl.col("error").is_not_null()).iter_rows(named=True):
        console.print(f"window {row['window']} stays flat: {row['error']}", highlight=False,
                      markup=False)
    summary = wf.summary().filter(pl.col("metric").is_in(WALK_FORWARD_METRICS))
    rows = [(m, _fmt(m, i), _fmt(m, o)) for m, i, o in summary.iter_rows()]
    from rich.table import Table

    metrics = Table(title="Stitched out-of-sample metrics", header_style="bold",
                    caption="in-sample: the chosen sets' metrics on their training windows, "
                            "averaged over the windows", caption_justify="left")
    for header in ("metric", "in-sample", "out-of-sample"):
        metrics.add_column(header, justify="left" if header == "metric" else "right")
    for row in rows:
        metrics.add_row(*row)
    console.print(metrics)
    if out_dir:
        console.print(f"Wrote equity.parquet, equity.csv, windows.csv, metrics.json, "
                      f"walkforward.png to {out_dir}", highlight=False)
