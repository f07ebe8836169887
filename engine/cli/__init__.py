"""``python -m engine``: one module per command.

This package builds the parser and dispatches to the commands' modules:
:mod:`~engine.cli.run`, :mod:`~engine.cli.compare`, :mod:`~engine.cli.sweep`,
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
COMMANDS = ("run", "compare", "sweep", "params", "claims")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose unknown options get a hint.

    A misspelled option (``--comission``) suggests the option meant; an option
    that names no option of the command (``--fast 20``) suggests ``--param``.
    """

    def error(self, message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message += _unknown_hint(self, message[len(prefix):].split())
        super().error(message)


def _unknown_hint(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    from engine.errors import did_you_mean

    command = getattr(parser, "_engine_command", None) or parser
    options = [s for action in command._actions for s in action.option_strings]
    for word in unknown:
        if not word.startswith("--"):
            continue
        name, _, value = word.partition("=")
        hint = did_you_mean(name, options)
        if hint:
            return f".{hint}"
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
    parser = _Parser(
        prog="python -m engine",
        description="Backtest trading rules on real data with a compiled event loop.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=argparse.ArgumentParser)
    commands.required = True
    for name in COMMANDS:
        importlib.import_module(f"engine.cli.{name}").add_parser(commands)
    return parser


def _parse(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = parser._subparsers._group_actions[0].choices[args.command]
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
