"""``python -m engine params FILE``: the parameters a strategy declares."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import add_debug_option


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``params`` command to the CLI's subparsers."""
    command = commands.add_parser("params", help="list a strategy's parameters")
    command.add_argument("file", help="strategy file (one Strategy subclass)")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    add_debug_option(command)
    return command


def parameter_rows(cls) -> list[dict]:
    """One row per parameter of ``cls``: name, type, default, bounds, help."""
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
    return rows


def command(args) -> int:
    """Print the parameters a strategy declares: type, default, bounds, help."""
    from engine.backtest.result import jsonable
    from engine.strategy.plugins import load_strategy

    cls = load_strategy(args.file)
    rows = parameter_rows(cls)
    if args.json:
        print(json.dumps(jsonable({"strategy": cls.__name__, "params": rows})))
        return 0
    from engine.report.terminal import print_params

    print_params(cls.__name__, rows)
    return 0
