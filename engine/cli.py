"""The command line: ``python -m engine run FILE [options]``.

User mistakes (bad data, parameters, strategy files) print one message on stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.errors import EngineError, ParameterError

EXIT_USER_ERROR = 2

# Metrics shown in the terminal table, with how each is formatted.
PERCENT = {"total_return", "cagr", "volatility", "max_drawdown", "hit_rate", "exposure",
           "best_trade", "worst_trade", "benchmark_return"}
COUNTS = {"trades", "open_trades", "max_drawdown_duration", "same_bar_exits", "bars"}
MONEY = {"final_equity", "expectancy", "avg_win", "avg_loss", "commissions", "borrow_costs"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Backtest trading rules on real data with a compiled event loop.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run one backtest and print its metrics")
    run.add_argument("file", help="strategy file (one Strategy subclass)")
    run.add_argument("--data", help="bars as Parquet or CSV (default: the strategy's dataset)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a strategy parameter (repeatable)")
    run.add_argument("--cash", type=float, default=100_000.0, help="starting cash (100000)")
    run.add_argument("--commission", type=float, default=0.0,
                     help="commission as a fraction of traded value, e.g. 0.001 = 0.1%%")
    run.add_argument("--commission-per-share", type=float, default=0.0)
    run.add_argument("--commission-fixed", type=float, default=0.0)
    run.add_argument("--commission-minimum", type=float, default=0.0)
    run.add_argument("--slippage-bps", type=float, default=0.0)
    run.add_argument("--slippage-fixed", type=float, default=0.0)
    run.add_argument("--fill", choices=("open", "close"), default="open",
                     help="market orders fill at the next open (default) or this close")
    run.add_argument("--mode", choices=("auto", "event", "vector"), default="auto",
                     help="event path (on_bar), vectorised path (signals), or auto")
    run.add_argument("--shorting", action="store_true", help="allow short positions")
    run.add_argument("--borrow-rate", type=float, default=0.0,
                     help="annual borrow rate on shorts, e.g. 0.03")
    run.add_argument("--fractional", action="store_true", help="allow fractional quantities")
    run.add_argument("--start", help="first date (inclusive)")
    run.add_argument("--end", help="last date (inclusive)")
    run.add_argument("--periods-per-year", default="252",
                     help="annualisation factor: 252 (trading days) or 365")
    run.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--out", help="write metrics, trades, equity and orders to this folder")
    return parser


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["fast=5", "slow=30"]`` → ``{"fast": "5", "slow": "30"}``."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"--param takes NAME=VALUE; got {pair!r}")
        params[name.strip()] = value.strip()
    return params


def _run(args) -> int:
    from engine.api import run
    from engine.result import jsonable

    periods = args.periods_per_year
    result = run(
        args.file, args.data, cash=args.cash, commission=args.commission,
        commission_per_share=args.commission_per_share,
        commission_fixed=args.commission_fixed, commission_minimum=args.commission_minimum,
        slippage_bps=args.slippage_bps, slippage_fixed=args.slippage_fixed, fill=args.fill,
        mode=args.mode, fractional=args.fractional, shorting=args.shorting,
        borrow_rate=args.borrow_rate, start=args.start, end=args.end,
        periods_per_year=periods, risk_free=args.risk_free, **parse_params(args.param),
    )
    if args.out:
        result.to_dir(args.out)
    if args.json:
        payload = result.summary()
        payload["trades"] = jsonable(result.trades.height)
        print(json.dumps(payload))
    else:
        print_result(result, args.out)
    return 0


def _fmt(name: str, value) -> str:
    if value is None or value != value:
        return "—"
    if name in PERCENT:
        return f"{value:.2%}"
    if name in COUNTS:
        return f"{value:,.0f}"
    if name in MONEY:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def print_result(result, out_dir=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    settings = result.settings
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    console.print(
        f"[bold]{result.strategy}[/bold] ({params}) on {settings['data']} "
        f"{settings['start']} → {settings['end']}, {settings['mode']} path, "
        f"fills at {settings['fill']}"
    )
    metrics = Table(title="Metrics", show_header=True, header_style="bold")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result.metrics.items():
        metrics.add_row(name, _fmt(name, value))
    console.print(metrics)
    console.print(trades_summary(result))
    if result.metrics.get("same_bar_exits"):
        console.print(f"[yellow]{result.metrics['same_bar_exits']:.0f} bars touched both a "
                      f"stop-loss and a take-profit; the stop was assumed to fill first.[/yellow]")
    if out_dir:
        console.print(f"Wrote metrics.json, trades.parquet, equity.parquet, orders.parquet "
                      f"to {out_dir}")


def trades_summary(result):
    """A table of closed trades by exit reason, and the open position if any."""
    import polars as pl
    from rich.table import Table

    trades = result.trades
    table = Table(title="Trades by exit reason", header_style="bold")
    for column in ("exit reason", "trades", "hit rate", "avg return", "total pnl",
                   "avg bars held"):
        table.add_column(column, justify="left" if column == "exit reason" else "right")
    closed = trades.filter(pl.col("exit_ts").is_not_null())
    if closed.height:
        groups = (
            closed.group_by("exit_reason")
            .agg(
                pl.len().alias("n"),
                (pl.col("pnl") > 0).mean().alias("hit"),
                pl.col("return_pct").mean().alias("ret"),
                pl.col("pnl").sum().alias("pnl"),
                pl.col("bars_held").mean().alias("bars"),
            )
            .sort("exit_reason")
        )
        for row in groups.iter_rows(named=True):
            table.add_row(row["exit_reason"], f"{row['n']:,}", f"{row['hit']:.1%}",
                          f"{row['ret']:.2%}", f"{row['pnl']:,.2f}", f"{row['bars']:.1f}")
    still_open = trades.filter(pl.col("exit_ts").is_null())
    for row in still_open.iter_rows(named=True):
        table.add_row(f"open: {row['symbol']}", "1", "—", "—", "—", "—")
    return table


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # Data warnings are messages for the user, not a developer's source pointer.
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        if args.command == "run":
            return _run(args)
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
