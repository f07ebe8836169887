"""The command line: ``python -m engine run FILE [options]`` and
``python -m engine compare FILE... [options]``.

User mistakes (bad data, parameters, strategy files) print one message on stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import EngineError, ParameterError
from engine.format import fmt as _fmt

EXIT_USER_ERROR = 2

#: Years of the per-year table shown in the terminal (all of them are in the files).
YEARS_SHOWN = 10
#: Open positions listed in the terminal.
OPEN_SHOWN = 5


def _add_run_options(command: argparse.ArgumentParser, *, compare: bool = False) -> None:
    command.add_argument("--data", help="bars as Parquet or CSV (default: the "
                         + ("first strategy's dataset, for every strategy)" if compare
                            else "strategy's dataset)"))
    command.add_argument("--param", action="append", default=[],
                         metavar="FILE:NAME=VALUE" if compare else "NAME=VALUE",
                         help="set a strategy parameter (repeatable)"
                         + ("; FILE is the strategy's path, file name or stem" if compare
                            else ""))
    command.add_argument("--cash", type=float, default=100_000.0, help="starting cash (100000)")
    command.add_argument("--commission", type=float, default=0.0,
                         help="commission as a fraction of traded value, e.g. 0.001 = 0.1%%")
    command.add_argument("--commission-per-share", type=float, default=0.0)
    command.add_argument("--commission-fixed", type=float, default=0.0)
    command.add_argument("--commission-minimum", type=float, default=0.0)
    command.add_argument("--slippage-bps", type=float, default=0.0)
    command.add_argument("--slippage-fixed", type=float, default=0.0)
    command.add_argument("--fill", choices=("open", "close"), default="open",
                         help="market orders fill at the next open (default) or this close")
    command.add_argument("--mode", choices=("auto", "event", "vector"), default="auto",
                         help="event path (on_bar), vectorised path (signals), or auto")
    command.add_argument("--shorting", action="store_true", help="allow short positions")
    command.add_argument("--borrow-rate", type=float, default=0.0,
                         help="annual borrow rate on shorts, e.g. 0.03")
    command.add_argument("--fractional", action="store_true",
                         help="allow fractional quantities")
    command.add_argument("--start", help="first date (inclusive)")
    command.add_argument("--end", help="last date (inclusive)")
    command.add_argument("--periods-per-year", default="252",
                         help="annualisation factor: 252 (trading days) or 365")
    command.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate")
    command.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Backtest trading rules on real data with a compiled event loop.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run one backtest and print its metrics and tables")
    run.add_argument("file", help="strategy file (one Strategy subclass)")
    _add_run_options(run)
    run.add_argument("--out", help="write the results, tables, plot and report to this folder")
    run.add_argument("--force", action="store_true", help="replace an existing --out folder")
    run.add_argument("--stream", action="store_true",
                     help="read --data (Parquet) in chunks, in bounded memory: vectorised "
                          "path, metrics and --out files (equity, trades, orders) only")
    run.add_argument("--chunk-bars", type=int, default=None, metavar="N",
                     help="timestamps per chunk with --stream (100000)")

    compare = commands.add_parser(
        "compare", help="run several strategies and buy-and-hold on the same data")
    compare.add_argument("files", nargs="+", metavar="FILE", help="strategy files")
    _add_run_options(compare, compare=True)
    compare.add_argument("--out", help="write compare.csv, equity.png and report.html here")
    compare.add_argument("--force", action="store_true", help="replace an existing --out folder")

    params = commands.add_parser("params", help="list a strategy's parameters")
    params.add_argument("file", help="strategy file (one Strategy subclass)")
    params.add_argument("--json", action="store_true", help="print one JSON object")

    from engine.sweep_cli import add_sweep_parser

    add_sweep_parser(commands)

    claims = commands.add_parser(
        "claims", help="measure every checkable claim of the rule book on the bundled data")
    claims.add_argument("--horizon", type=int, default=None,
                        help="bars of the forward return that defines success (default 21)")
    claims.add_argument("--json", action="store_true", help="print one JSON object")
    claims.add_argument("--out", help="write claims.csv, claims.md and claims.html here")
    claims.add_argument("--force", action="store_true", help="replace an existing --out folder")
    return parser


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["fast=5", "slow=30"]`` → ``{"fast": "5", "slow": "30"}``."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(
                f"--param takes NAME=VALUE; got {pair!r}. Fix: write --param "
                f"{name.strip() or 'NAME'}=VALUE (python -m engine params FILE lists the names)."
            )
        params[name.strip()] = value.strip()
    return params


def _run_options(args) -> dict:
    return dict(
        cash=args.cash, commission=args.commission,
        commission_per_share=args.commission_per_share,
        commission_fixed=args.commission_fixed, commission_minimum=args.commission_minimum,
        slippage_bps=args.slippage_bps, slippage_fixed=args.slippage_fixed, fill=args.fill,
        mode=args.mode, fractional=args.fractional, shorting=args.shorting,
        borrow_rate=args.borrow_rate, start=args.start, end=args.end,
        periods_per_year=args.periods_per_year, risk_free=args.risk_free,
    )


def _run(args) -> int:
    from engine.api import run
    from engine.outputs import check_output, staged_output
    from engine.progress import Steps, wanted
    from engine.result import jsonable

    if args.stream or args.chunk_bars is not None:
        return _run_stream(args)
    if args.out:
        check_output(args.out, args.force)  # before the run, not after it
    name = Path(args.file).name
    with Steps(3 if args.out else 2, wanted(args.json)) as steps:
        steps.step(f"backtest {name}")
        result = run(args.file, args.data, **_run_options(args), **parse_params(args.param))
        steps.step("report tables")
        tables = result.tables()
        if args.out:
            steps.step(f"writing {args.out}")
            from engine.report import write_report

            with staged_output(args.out, args.force) as stage:
                result.to_dir(stage, report=False)
                write_report(result, stage, tables)
    if args.json:
        payload = result.summary()
        payload["trades"] = jsonable(result.trades.height)
        for key, frame in tables.items():
            payload[key] = jsonable(frame.fill_nan(None).to_dicts())
        print(json.dumps(payload))
    else:
        print_result(result, tables, args.out)
    return 0


def _run_stream(args) -> int:
    """``run --stream``: engine.stream_run over --data, printing the metrics."""
    from engine.result import jsonable
    from engine.streaming import DEFAULT_CHUNK_BARS, stream_run

    if not args.stream:
        raise ParameterError("--chunk-bars applies to --stream runs; add --stream or drop it")
    options = _run_options(args)
    if options["mode"] == "auto":
        options["mode"] = "vector"
    chunk = args.chunk_bars if args.chunk_bars is not None else DEFAULT_CHUNK_BARS
    result = stream_run(args.file, args.data, chunk_bars=chunk, out=args.out,
                        force=args.force, **options, **parse_params(args.param))
    if args.json:
        print(json.dumps(jsonable(result.summary())))
    else:
        print_stream_result(result)
    return 0


def parse_compare_params(pairs: list[str], files: list[str]) -> dict[str, dict[str, str]]:
    """``["sma_cross.py:fast=5"]`` → ``{"sma_cross.py": {"fast": "5"}}`` keyed by FILE as given.

    FILE may be the path as given on the command line, its file name or its stem.
    """
    lookup: dict[str, str] = {}
    for given in files:
        path = Path(given)
        for key in (given, str(path.resolve()), path.name, path.stem):
            lookup.setdefault(key, given)
    params: dict[str, dict[str, str]] = {}
    for pair in pairs:
        left, sep, value = pair.partition("=")
        target, colon, name = left.rpartition(":")
        if not sep or not colon or not name.strip() or not target.strip():
            raise ParameterError(f"--param takes FILE:NAME=VALUE in compare; got {pair!r}")
        key = target.strip()
        if key not in lookup and str(Path(key).resolve()) in lookup:
            key = str(Path(key).resolve())
        if key not in lookup:
            from engine.errors import did_you_mean

            raise ParameterError(
                f"--param {pair!r}: {target!r} is not one of the strategies compared "
                f"({', '.join(files)})." + did_you_mean(target, lookup)
            )
        params.setdefault(lookup[key], {})[name.strip()] = value.strip()
    return params


def _compare(args) -> int:
    from engine.comparison import run_all
    from engine.progress import Steps, wanted
    from engine.result import jsonable

    params = parse_compare_params(args.param, args.files)
    if len(set(args.files)) != len(args.files):
        raise ParameterError("a strategy file is given twice; compare runs each file once "
                             "(use engine.compare from Python to compare parameter sets)")
    from engine.outputs import check_output, staged_output

    if args.out:
        check_output(args.out, args.force)
    with Steps(len(args.files) + 1 + bool(args.out), wanted(args.json)) as steps:
        def progress(index, total, name):
            steps.step(f"backtest {name} ({index + 1}/{total})", total + bool(args.out))

        table, results, names = run_all(
            args.files, args.data, [params.get(f, {}) for f in args.files],
            progress=progress, **_run_options(args))
        meta = _compare_meta(results[0])
        if args.out:
            from engine.report import write_compare

            steps.step(f"writing {args.out}")
            with staged_output(args.out, args.force) as stage:
                write_compare(table, results, names, stage, meta)
    if args.json:
        print(json.dumps(jsonable({"settings": results[0].settings,
                                   "compare": table.to_dicts()})))
    else:
        from rich.console import Console

        console = Console()
        console.print(meta)
        shown = fit_columns(table, COMPARE_PRIORITY, console.width)
        caption = "BuyAndHold is the benchmark; definitions in engine/metrics.py"
        hidden = [c for c in table.columns if c not in shown]
        if hidden:
            caption += (f". Not shown for lack of width: {', '.join(hidden)} (in compare.csv "
                        f"with --out, --json, or a wider terminal)")
        console.print(frame_table(table.select(shown), "Comparison on the same data",
                                  caption=caption, headers=SHORT_HEADERS))
        if "params" not in shown:
            for name, values in zip(table["strategy"], table["params"], strict=True):
                if values:
                    console.print(f"{name}: {values}", highlight=False)
        if args.out:
            console.print(f"Wrote compare.csv, equity.png, report.html to {args.out}")
    return 0


#: Columns of the comparison kept first when the terminal is narrow.
COMPARE_PRIORITY = ("strategy", "total_return", "cagr", "sharpe", "max_drawdown", "volatility",
                    "trades", "hit_rate", "exposure", "beta", "sortino", "calmar",
                    "max_drawdown_duration", "profit_factor", "final_equity", "params")
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


def _compare_meta(result) -> str:
    s = result.settings
    return (f"{s['data']} {s['start']} → {s['end']}, cash {s['cash']:,.0f}, "
            f"fills at {s['fill']}")


def frame_table(frame, title: str, caption: str | None = None, headers: dict | None = None,
                formats: dict | None = None):
    """A polars frame as a rich table, numbers formatted and right-aligned.

    ``headers`` renames columns for display; ``formats`` maps a column to a
    function of its value that replaces :func:`engine.format.fmt`.
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


def _print_run_metrics(console, result, how: str) -> None:
    """The run's heading (strategy, parameters, data, ``how`` it ran) and its metrics."""
    from rich.table import Table

    settings = result.settings
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    console.print(
        f"[bold]{result.strategy}[/bold] ({params}) on {settings['data']} "
        f"{settings['start']} → {settings['end']}, {how}, fills at {settings['fill']}"
    )
    metrics = Table(title="Metrics", show_header=True, header_style="bold")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result.metrics.items():
        metrics.add_row(name, _fmt(name, value))
    console.print(metrics)


def print_stream_result(result) -> None:
    """The metrics of a streamed run (``run --stream``)."""
    from rich.console import Console

    console = Console()
    s = result.settings
    _print_run_metrics(console, result, f"streamed in {s['chunks']:,} chunk(s) of "
                                        f"{s['chunk_bars']:,} bars, vectorised path")
    if result.out is not None:
        console.print(f"Wrote metrics.json, trades.parquet, equity.parquet, orders.parquet to "
                      f"{result.out} (no report tables or plot: they need the whole curve; "
                      f"run without --stream for them)")


def print_result(result, tables=None, out_dir=None) -> None:
    import polars as pl
    from rich.console import Console

    tables = tables if tables is not None else result.tables()
    console = Console()
    _print_run_metrics(console, result, f"{result.settings['mode']} path")

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
        tables["hit_rates"].drop("hits"),
        "Hit rates: overall, by exit reason and by entry condition",
        caption="closed trades; a hit is pnl > 0 after costs (zero is not a hit); label and "
                "condition are read on the bar the entry order was placed",
        headers={"hit_rate": "hit rate", "avg_return": "avg return", "total_pnl": "total pnl",
                 "avg_bars_held": "bars held"},
        formats={"group": lambda g: GROUP_NAMES.get(g, g), "total_pnl": _whole_money}))
    still_open = result.trades.filter(pl.col("exit_ts").is_null())
    for row in still_open.head(OPEN_SHOWN).iter_rows(named=True):
        console.print(f"Open at the end: {row['symbol']} {row['size']:,g} since "
                      f"{_fmt('entry_ts', row['entry_ts'])} (not in the hit rates)",
                      highlight=False)
    if still_open.height > OPEN_SHOWN:
        console.print(f"... and {still_open.height - OPEN_SHOWN} more open positions "
                      f"(trades.parquet with --out)")

    console.print(frame_table(
        tables["event_study"], "Event study: forward returns after each signal",
        caption="from the signal bar's close over horizon bars; share > 0 is the measured "
                "success rate (forward return > 0), claimed the rate the source notes claim; "
                "all_bars is the base rate",
        headers={"share_positive": "share > 0", "mean_return": "mean", "median_return":
                 "median", "claimed_rate": "claimed"}))
    if result.metrics.get("same_bar_exits"):
        console.print(f"[yellow]{result.metrics['same_bar_exits']:.0f} bars touched both a "
                      f"stop-loss and a take-profit; the stop was assumed to fill first.[/yellow]")
    if out_dir:
        console.print(f"Wrote metrics.json, trades.parquet, equity.parquet, orders.parquet, "
                      f"drawdowns.csv, yearly.csv, hit_rates.csv, event_study.csv, equity.png, "
                      f"report.html to {out_dir}")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # Data warnings are messages for the user, not a developer's source pointer.
    from engine.progress import emit

    emit(f"warning: {message}")


def _params(args) -> int:
    """Print the parameters a strategy declares: type, default, bounds, help."""
    from engine.plugins import load_strategy
    from engine.result import jsonable

    cls = load_strategy(args.file)
    rows = []
    for name, spec in cls.parameters().items():
        kind = spec.type or type(spec.default)
        bounds = " ".join(part for part in (
            f">= {spec.min}" if spec.min is not None else "",
            f"<= {spec.max}" if spec.max is not None else "",
            f"one of {', '.join(map(str, spec.choices))}" if spec.choices else "",
        ) if part)
        rows.append({"name": name, "type": kind.__name__, "default": spec.default,
                     "bounds": bounds, "help": spec.help})
    if args.json:
        print(json.dumps(jsonable({"strategy": cls.__name__, "params": rows})))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cls.__name__} parameters", header_style="bold")
    for column in ("name", "type", "default", "bounds", "help"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["type"], repr(row["default"]), row["bounds"], row["help"])
    Console().print(table)
    return 0


def _claims(args) -> int:
    """Measure the rule book's claims (engine/claims.py) and print, or write, the table."""
    import warnings

    from engine import claims
    from engine.outputs import check_output, staged_output
    from engine.progress import Steps, emit, wanted
    from engine.result import jsonable

    if args.out:
        check_output(args.out, args.force)
    try:
        settings = claims.with_settings(claims.Settings(), horizon=args.horizon)
    except ParameterError as exc:
        raise ParameterError(f"--horizon: {exc}") from None
    with Steps(len(claims.CLAIMS) + bool(args.out), wanted(args.json)) as steps, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = claims.measure_all(
            settings, progress=lambda i, n, c: steps.step(f"claim {c.id} ({i + 1}/{n})"))
        if args.out:
            steps.step(f"writing {args.out}")
            with staged_output(args.out, args.force) as stage:
                claims.write_claims(table, stage, settings)
    # Several runs load the same data: say each data warning once.
    for message in dict.fromkeys(str(w.message) for w in caught):
        emit(f"warning: {message}")
    if args.json:
        print(json.dumps(jsonable({"settings": claims.settings_dict(settings),
                                   "summary": claims.summary(table),
                                   "claims": table.to_dicts()})))
        return 0
    claims.print_table(table, settings)
    if args.out:
        print(f"Wrote claims.csv, claims.md, claims.html to {args.out}")
    return 0


def main(argv=None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "params":
            return _params(args)
        if args.command == "claims":
            return _claims(args)
        if args.command == "sweep":
            from engine.sweep_cli import run_sweep

            return run_sweep(args)
        parser.error(f"unknown command {args.command}")
    except EngineError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
