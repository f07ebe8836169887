"""``python -m engine claims``: measure the rule book's claims on the bundled data."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import add_debug_option, add_output_options
from engine.errors import ParameterError


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``claims`` command to the CLI's subparsers."""
    command = commands.add_parser(
        "claims", help="measure every checkable claim of the rule book on the bundled data")
    command.add_argument("--horizon", type=int, default=None,
                         help="bars of the forward return that defines success (default 21)")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    add_output_options(command, "claims.csv, claims.md and claims.html")
    add_debug_option(command)
    return command


def command(args) -> int:
    """Measure the claims (engine/research/claims/) and print, or write, the table."""
    import warnings

    from engine.backtest.result import jsonable
    from engine.report.claims import print_table, write_claims
    from engine.report.outputs import check_output, staged_output
    from engine.report.progress import Steps, emit, wanted
    from engine.research import claims

    target = check_output(args.out, args.force) if args.out else None  # before measuring
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
            with staged_output(target) as stage:
                write_claims(table, stage, settings)
    # Several runs load the same data: say each data warning once.
    for message in dict.fromkeys(str(w.message) for w in caught):
        emit(f"warning: {message}")
    if args.json:
        print(json.dumps(jsonable({"settings": claims.settings_dict(settings),
                                   "summary": claims.summary(table),
                                   "claims": table.to_dicts()})))
        return 0
    print_table(table, settings)
    if args.out:
        print(f"Wrote claims.csv, claims.md, claims.html to {args.out}")
    return 0
