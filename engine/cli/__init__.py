"""``python -m engine``: one module per command.

This package builds the parser and dispatches to the commands' modules:
:mod:`~engine.cli.run`, :mod:`~engine.cli.compare`, :mod:`~engine.cli.sweep`,
:mod:`~engine.cli.walkforward`,
:mod:`~engine.cli.claims` and :mod:`~engine.cli.params`, each with an
``add_parser(commands)`` and a ``command(args) -> int``;
:mod:`~engine.cli.common` holds what they share. The CLI is the top layer: it
may import every other package, and nothing imports it. A command module imports
the engine inside ``command``, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, show_warning
from engine.errors import EngineError

#: Command name → module of ``engine.cli``, in the order ``--help`` lists them.
COMMANDS = ("run", "compare", "sweep", "walkforward", "params", "claims")


def _unknown_hint(command: argparse.ArgumentParser, unknown: list[str]) -> str:
    """A hint for the first unknown option: the option meant (``--comission``), or
    ``--param`` for a strategy parameter given as an option (``--fast 20``)."""
    import difflib

    options = [s for action in command._actions for s in action.option_strings]
    for word in unknown:
        if not word.startswith("--"):
            continue
        name, _, value = word.partition("=")
        close = difflib.get_close_matches(name[2:], [o[2:] for o in options if o[:2] == "--"],
                                          n=1, cutoff=0.75)
        if close:
            return f". Did you mean '--{close[0]}'?"
        if "--param" in options:
            after = unknown[unknown.index(word) + 1:]
            value = value or (after[0] if after and not after[0].startswith("-") else "VALUE")
            stem = name[2:].replace("-", "_")
            return (f". {name} is not an option of this command; if {stem} is a strategy "
                    f"parameter, write --param {stem}={value} (python -m engine params FILE "
                    f"lists them)")
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m engine`` with every command."""
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Backtest trading rules on real data with a compiled event loop.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    parser.command_parsers = {name: importlib.import_module(f"engine.cli.{name}")
                              .add_parser(commands) for name in COMMANDS}
    return parser


def _parse(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = parser.command_parsers[args.command]
        command.error("unrecognized arguments: " + " ".join(unknown)
                      + _unknown_hint(command, unknown))
    return args


def main(argv=None) -> int:
    """Run ``python -m engine`` with ``argv`` (default ``sys.argv[1:]``); return the status."""
    import warnings

    parser = build_parser()
    args = _parse(parser, argv)
    if not args.debug:
        warnings.showwarning = show_warning
    try:
        return importlib.import_module(f"engine.cli.{args.command}").command(args)
    except EngineError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
