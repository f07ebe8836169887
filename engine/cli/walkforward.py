"""``python -m engine walkforward FILE --grid NAME=V1,V2,... --train N --test M [options]``.

Walk-forward optimisation (:func:`engine.walk_forward`) from the command line: the
grid is swept on every training window, the best set by ``--sort-by`` is judged on
the test window after it, and the test windows' returns are stitched into one
out-of-sample equity curve. Takes the run options of ``run`` and:

``--grid NAME=V1,V2,...`` or ``--grid NAME=LO:HI[:STEP]`` (repeatable)
    As for ``sweep``.
``--train N`` / ``--test M``
    Lengths of the training and test windows, in bars.
``--anchored``
    Every training window starts at the first bar (and grows) instead of rolling.
``--sort-by NAME`` (or ``--metric``)
    The metric that picks each window's set (default ``sharpe``).
``--samples N`` / ``--seed N`` / ``--jobs N`` / ``--dask ADDRESS``
    As for ``sweep``.
``--out DIR``
    Write ``equity.parquet`` and ``equity.csv`` (the stitched out-of-sample equity:
    ``ts, equity, window``), ``windows.csv`` (one row per window), ``metrics.json``
    (out-of-sample and in-sample metrics) and ``walkforward.png``.
"""

from __future__ import annotations

import argparse
import json
import warnings

from engine.cli.common import (
    add_output_options,
    add_run_options,
    exit_status,
    parse_params,
    sweep_problems,
)
from engine.errors import ParameterError


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``walkforward`` command to the CLI's subparsers."""
    command = commands.add_parser(
        "walkforward", help="choose parameters in-sample, judge them out-of-sample",
        description="Walk-forward optimisation: sweep a grid on each training window, run "
                    "the best set on the test window after it, and stitch the test windows' "
                    "returns into one out-of-sample equity curve.")
    command.add_argument("file", help="strategy file (one Strategy subclass)")
    command.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                         help="values of one parameter: a list (fast=5,10,20) or an inclusive "
                              "range LO:HI[:STEP] (slow=20:100:10); repeatable")
    command.add_argument("--train", type=int, required=True, metavar="N",
                         help="bars in each training window")
    command.add_argument("--test", type=int, required=True, metavar="M",
                         help="bars in each test window (windows advance by M)")
    command.add_argument("--anchored", action="store_true",
                         help="every training window starts at the first bar and grows, "
                              "instead of rolling N bars")
    command.add_argument("--sort-by", "--metric", dest="metric", default="sharpe",
                         metavar="METRIC",
                         help="the metric that picks each window's set, best first (sharpe)")
    command.add_argument("--samples", type=int, metavar="N",
                         help="sweep N combinations drawn at random instead of all of them")
    command.add_argument("--seed", type=int, default=0, help="seed of --samples (0)")
    command.add_argument("--jobs", type=int, default=-1, metavar="N",
                         help="worker processes (default: every core)")
    command.add_argument("--dask", metavar="ADDRESS",
                         help="run on the Dask cluster whose scheduler is at tcp://host:port")
    add_run_options(command)
    add_output_options(command, "equity.parquet, equity.csv, windows.csv, metrics.json and "
                                "walkforward.png")
    return command


def command(args) -> int:
    """Run ``python -m engine walkforward`` for parsed ``args``; return the exit status."""
    from engine.cli.sweep import options_beside, parse_grid
    from engine.research.sweep import SweepWarning, check_metric
    from engine.research.walk_forward import walk_forward

    grid = parse_grid(args.grid)
    if not grid:
        raise ParameterError("walkforward needs at least one --grid NAME=V1,V2,... "
                             "(see python -m engine params FILE for the names)")
    check_metric(args.metric, "--sort-by")
    for name in ("train", "test"):
        value = getattr(args, name)
        if value < 1:
            raise ParameterError(f"--{name} must be a positive number of bars; got {value}")
    from engine.report.outputs import check_output, staged_output

    target = check_output(args.out, args.force) if args.out else None  # before the runs
    options = options_beside(args, grid)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        wf = walk_forward(args.file, grid, train=args.train, test=args.test,
                          metric=args.metric, anchored=args.anchored, data=args.data,
                          samples=args.samples, seed=args.seed, n_jobs=args.jobs,
                          backend="dask" if args.dask else "local", address=args.dask,
                          progress=not args.json, **options, **parse_params(args.param))
    notes = sweep_problems(caught)
    from engine.backtest.result import jsonable

    payload = {"metric": wf.metric, "anchored": args.anchored, "train": args.train,
               "test": args.test, "out_of_sample": wf.metrics, "in_sample": wf.in_sample,
               "missing": notes}
    if args.out:
        from pathlib import Path

        from engine.report.plots import walk_forward_png

        with staged_output(target) as out:
            wf.equity.write_parquet(out / "equity.parquet", statistics=False)
            wf.equity.write_csv(out / "equity.csv")
            wf.windows.write_csv(out / "windows.csv")
            (out / "metrics.json").write_text(json.dumps(jsonable(payload), indent=2) + "\n")
            kind = "anchored" if args.anchored else "rolling"
            title = (f"{Path(args.file).stem}: out-of-sample equity, {wf.windows.height} "
                     f"{kind} windows (train {args.train}, test {args.test} bars), chosen by "
                     f"{wf.metric}")
            (out / "walkforward.png").write_bytes(
                walk_forward_png(wf, options.get("cash", 100_000.0), title))
    if args.json:
        payload["windows"] = wf.windows.fill_nan(None).to_dicts()
        print(json.dumps(jsonable(payload), default=str))
    else:
        from engine.report.terminal import print_walk_forward

        print_walk_forward(args.file, wf, list(grid), args.anchored, args.out)
    return exit_status(notes, "the walk-forward is incomplete: see the warnings above; a "
                              "window chose among the sets that finished")
