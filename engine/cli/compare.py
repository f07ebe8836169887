"""``python -m engine compare FILE... [options]``: strategies and buy-and-hold side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli.common import add_output_options, add_run_options, run_options
from engine.errors import ParameterError


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``compare`` command to the CLI's subparsers."""
    command = commands.add_parser(
        "compare", help="run several strategies and buy-and-hold on the same data")
    command.add_argument("files", nargs="+", metavar="FILE", help="strategy files")
    add_run_options(command, compare=True)
    add_output_options(command, "compare.csv, equity.png and report.html")
    return command


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


def _meta(table, result) -> str:
    from engine.research.compare import groups_of

    s = result.settings
    bars = (f"{s['data']} {s['start']} → {s['end']}" if groups_of(table) == 1 else
            "each strategy on its own default data and period (the data and period columns)")
    return f"{bars}, cash {s['cash']:,.0f}, fills at {s['fill']}"


def command(args) -> int:
    """Run every strategy and the benchmark on the same data; print or write the table."""
    from engine.backtest.result import jsonable
    from engine.report.outputs import check_output, staged_output
    from engine.report.progress import Steps, wanted
    from engine.research.compare import run_all

    params = parse_compare_params(args.param, args.files)
    if len(set(args.files)) != len(args.files):
        raise ParameterError("a strategy file is given twice; compare runs each file once "
                             "(use engine.compare from Python to compare parameter sets)")
    target = check_output(args.out, args.force) if args.out else None  # before the runs
    with Steps(len(args.files) + 1 + bool(args.out), wanted(args.json)) as steps:
        def progress(index, total, name):
            steps.step(f"backtest {name} ({index + 1}/{total})", total + bool(args.out))

        table, results, names = run_all(
            args.files, args.data, [params.get(f, {}) for f in args.files],
            progress=progress, **run_options(args))
        meta = _meta(table, results[0])
        if args.out:
            from engine.report.html import write_compare

            steps.step(f"writing {args.out}")
            with staged_output(target) as stage:
                write_compare(table, results, names, stage, meta)
    if args.json:
        print(json.dumps(jsonable({"settings": results[0].settings,
                                   "compare": table.to_dicts()})))
    else:
        from engine.report.terminal import print_compare

        print_compare(table, meta, args.out)
    from engine.report.terminal import warn_rejections

    for name, result in zip(names, results, strict=True):
        warn_rejections(result.rejections(), f"{name}: ")
    return 0
