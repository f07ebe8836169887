"""``python -m engine run FILE [options]``: one backtest, its metrics and report tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli.common import add_output_options, add_run_options, parse_params, run_options
from engine.errors import ParameterError


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``run`` command to the CLI's subparsers."""
    command = commands.add_parser(
        "run", help="run one backtest and print its metrics and tables")
    command.add_argument("file", help="strategy file (one Strategy subclass)")
    add_run_options(command)
    add_output_options(command, "the results, tables, plot and report")
    command.add_argument("--stream", action="store_true",
                         help="read --data (Parquet) in chunks, in bounded memory: vectorised "
                              "path, metrics and --out files (equity, trades, orders) only")
    command.add_argument("--chunk-bars", type=int, default=None, metavar="N",
                         help="timestamps per chunk with --stream (100000)")
    command.add_argument("--confidence", action="store_true",
                         help="add 95%% intervals of Sharpe, CAGR, max drawdown and hit "
                              "rate (block bootstrap, exact binomial) and the PSR")
    return command


def command(args) -> int:
    """Run one backtest (or a streamed one with ``--stream``) and print or write it."""
    from engine.backtest.result import jsonable
    from engine.backtest.run import run
    from engine.report.outputs import check_output, staged_output
    from engine.report.progress import Steps, wanted
    from engine.report.terminal import warn_rejections

    if args.stream or args.chunk_bars is not None:
        return _stream(args)
    target = check_output(args.out, args.force) if args.out else None  # before the run
    name = Path(args.file).name
    with Steps(3 if args.out else 2, wanted(args.json)) as steps:
        steps.step(f"backtest {name}")
        result = run(args.file, args.data, **run_options(args), **parse_params(args.param))
        steps.step("report tables")
        tables = result.tables()
        if args.confidence:
            tables["confidence"] = result.confidence()
        if args.out:
            steps.step(f"writing {args.out}")
            from engine.report.html import write_report

            with staged_output(target) as stage:
                result.to_dir(stage, report=False)
                write_report(result, stage, tables)
    if args.json:
        payload = result.summary()
        payload["trades"] = jsonable(result.trades.height)
        for key, frame in tables.items():
            payload[key] = jsonable(frame.fill_nan(None).to_dicts())
        payload["rejections"] = jsonable([r.as_dict() for r in result.rejections()])
        print(json.dumps(payload))
        warn_rejections(result.rejections())
    else:
        from engine.report.terminal import print_result

        print_result(result, tables, args.out)
    return 0


def _stream(args) -> int:
    """``run --stream``: engine.stream_run over --data, printing the metrics."""
    from engine.backtest.result import jsonable
    from engine.backtest.streaming import DEFAULT_CHUNK_BARS, stream_run

    if not args.stream:
        raise ParameterError("--chunk-bars applies to --stream runs; add --stream or drop it")
    options = run_options(args)
    if options["mode"] == "auto":
        options["mode"] = "vector"
    chunk = args.chunk_bars if args.chunk_bars is not None else DEFAULT_CHUNK_BARS
    result = stream_run(args.file, args.data, chunk_bars=chunk, out=args.out,
                        force=args.force, **options, **parse_params(args.param))
    if args.json:
        payload = result.summary()
        payload["rejections"] = [r.as_dict() for r in result.rejections]
        print(json.dumps(jsonable(payload)))
        from engine.report.terminal import warn_rejections

        warn_rejections(result.rejections)
    else:
        from engine.report.terminal import print_stream_result

        print_stream_result(result)
    return 0
