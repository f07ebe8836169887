"""What the commands share: the run options, ``--param`` parsing, warnings and exit codes."""

from __future__ import annotations

import argparse

from engine.errors import ParameterError

#: Exit status of a user mistake (bad data, parameters, strategy file, options).
EXIT_USER_ERROR = 2
#: Exit status of a sweep that finished with parameter sets missing, or with sets
#: that killed their worker process (it still prints and writes what finished).
EXIT_INCOMPLETE = 3
#: Exit status of an interrupted command (Ctrl-C), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130


def add_debug_option(command: argparse.ArgumentParser) -> None:
    """``--debug`` on a subcommand too (``python -m engine run FILE --debug``).

    ``SUPPRESS`` keeps a subcommand that was not given ``--debug`` from resetting
    the value the main parser read before the subcommand's name.
    """
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks for errors")


def add_output_options(command: argparse.ArgumentParser, writes: str) -> None:
    """``--out DIR`` (writing ``writes``) and ``--force``."""
    command.add_argument("--out", metavar="DIR", help=f"write {writes} to this folder")
    command.add_argument("--force", action="store_true", help="replace an existing --out folder")


def add_run_options(command: argparse.ArgumentParser, *, compare: bool = False) -> None:
    """The options of one backtest, shared by ``run``, ``compare`` and ``sweep``."""
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
                         help="commission as a fraction of traded value, below 1, e.g. "
                              "0.001 = 0.1%% (a fee per order is --commission-fixed)")
    command.add_argument("--commission-per-share", type=float, default=0.0)
    command.add_argument("--commission-fixed", type=float, default=0.0,
                         help="commission per order, in money, e.g. 10")
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
    command.add_argument("--date-format", metavar="FORMAT",
                         help="strptime format of dates stored as text, e.g. %%d/%%m/%%Y "
                              "(default: ISO, or the one day/month order the file allows)")
    command.add_argument("--tz", metavar="ZONE",
                         help="time zone to show results in, e.g. America/New_York (default: "
                              "the data's; data without a zone is taken to be in ZONE)")
    command.add_argument("--periods-per-year", default=None, metavar="N",
                         help="bars per year, to annualise: any positive number (default: "
                              "read off the data: 252 for exchange days, 365 when weekends "
                              "trade, bars per day times that for intraday bars)")
    command.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate")
    command.add_argument("--strict", action="store_true",
                         help="fail (exit 2) when any order is rejected, naming the first, "
                              "instead of warning")
    command.add_argument("--audit", choices=("cuts", "full", "off"), default="cuts",
                         help="look-ahead audit of signals and indicators: recompute them on "
                              "prefixes cut at points spread over the data (cuts, default), "
                              "at every bar (full: slow, for small data or a pre-flight "
                              "check), or not at all (off: for audited code)")
    # account/time-in-force
    command.add_argument("--leverage", type=float, default=1.0,
                         help="1 (default): a cash account; above 1: a margin account whose "
                              "positions may be worth up to LEVERAGE x equity")
    command.add_argument("--maintenance-margin", type=float, default=0.25,
                         help="margin account: below this fraction of the gross position "
                              "value, equity triggers a margin call (0.25)")
    command.add_argument("--margin-rate", type=float, default=0.0,
                         help="margin account: annual interest on borrowed cash, e.g. 0.06")
    command.add_argument("--max-volume-share", type=float, default=None, metavar="FRACTION",
                         help="fill at most this fraction of a bar's volume per order, e.g. "
                              "0.1; the rest of a GTC order waits for the next bars")
    command.add_argument("--benchmark", metavar="PATH_OR_DATASET[:SYMBOL]", default=None,
                         help="measure against this series instead of buy-and-hold of the "
                              "data: a bar file, a bundled dataset such as sp500_daily, "
                              "either with :SYMBOL, or a symbol of the data")
    command.add_argument("--adjust", action="store_true",
                         help="data with adj_close (a Yahoo CSV): trade open, high, low and "
                              "close x adj_close / close")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    add_debug_option(command)
    # What each run option is when not given: a sweep may grid a run option only if
    # its fixed value was left alone.
    command.set_defaults(run_option_defaults={
        name: command.get_default(name) for name in RUN_OPTIONS})


#: The options of :func:`engine.run` the CLI sets, by their ``args`` names.
RUN_OPTIONS = (
    "cash", "commission", "commission_per_share", "commission_fixed", "commission_minimum",
    "slippage_bps", "slippage_fixed", "fill", "mode", "fractional", "shorting",
    "borrow_rate", "start", "end", "periods_per_year", "risk_free", "strict",
    "date_format", "tz", "audit",
    "leverage", "maintenance_margin", "margin_rate", "max_volume_share", "benchmark",
    "adjust",
)


def run_options(args) -> dict:
    """The keyword arguments of :func:`engine.run` from parsed run options."""
    return {name: getattr(args, name) for name in RUN_OPTIONS}


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


def show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the CLI: a data warning is a message for the user,
    not a developer's source pointer."""
    from engine.report.progress import emit

    emit(f"warning: {message}")


def sweep_problems(caught) -> list[str]:
    """The messages of the SweepWarnings ``caught`` (missing or crashed sets), for
    :func:`exit_status`; every other warning, SweepNotice included, is shown as usual."""
    import warnings

    from engine.research.sweep import SweepNotice, SweepWarning

    problems = []
    for item in caught:
        if issubclass(item.category, SweepWarning) and not issubclass(item.category,
                                                                       SweepNotice):
            problems.append(str(item.message))
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    return problems


def exit_status(notes: list[str], incomplete: str) -> int:
    """Print a sweep's warnings (``notes``) and return its exit status: 130 when it was
    interrupted, 3 (with ``error: {incomplete}``) when sets are missing or crashed,
    else 0."""
    import sys

    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if any("interrupted" in n for n in notes):
        return EXIT_INTERRUPTED
    if notes:  # sets missing (a lost worker) or killed their worker process
        print(f"error: {incomplete}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0
