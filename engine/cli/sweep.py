"""``python -m engine sweep FILE --grid NAME=V1,V2,... [options]``.

:func:`add_sweep_parser` adds the ``sweep`` command to the CLI's subparsers and
:func:`run_sweep` runs it. The command takes the run options of ``run`` (``--data``,
``--param`` for fixed parameters, ``--commission``, ``--start``, ``--json``, ...)
and:

``--grid NAME=V1,V2,...`` or ``--grid NAME=LO:HI[:STEP]`` (repeatable)
    The values of one parameter (or run option); a range includes ``HI`` and steps
    by 1 unless ``STEP`` is given.
``--samples N`` / ``--seed N``
    Run N combinations drawn at random (seeded) instead of all of them.
``--optuna N`` / ``--seed N``
    A Bayesian search of N sets (Optuna, seeded) over the strategy's ``param``
    ranges instead of the whole grid; ``--grid`` then restricts names to the values
    listed (see :mod:`engine.research.search`).
``--jobs N``
    Worker processes (default: every core); ``--dask ADDRESS`` runs on a Dask
    cluster instead (``tcp://host:port``).
``--metric NAME`` (or ``--sort-by NAME``) / ``--top K``
    Rank the sets by this metric (default ``sharpe``) and show the best K (10).
``--stats`` / ``--no-stats``
    The deflated Sharpe ratio of every set (column ``dsr``) and the probability of
    backtest overfitting, printed under the ranking (default: on from 10 sets or
    10 ``--optuna`` trials; a search prints why its PBO is not computed, and the
    best set's DSR over the sets it tried).
``--out DIR``
    Write ``sweep.parquet`` and ``sweep.csv`` (every set, in grid order; best first
    with ``--optuna``) and, for a two-parameter grid, ``heatmap.png`` of the metric
    (not with ``--optuna``).

An interrupted sweep (Ctrl-C) still prints and writes the sets that finished, says
how many are missing, and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from engine.cli.common import (
    add_output_options,
    add_run_options,
    exit_status,
    parse_params,
    run_options,
    sweep_problems,
)
from engine.errors import ParameterError

#: Rows of the ranking shown by default.
TOP = 10


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the CLI's subparsers."""
    command = commands.add_parser(
        "sweep", help="run a strategy over a grid of parameter sets, in parallel",
        description="Run a strategy once per parameter set of a grid (every combination, "
                    "or --samples of them) and rank the sets by a metric.")
    command.add_argument("file", help="strategy file (one Strategy subclass)")
    command.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                         help="values of one parameter: a list (fast=5,10,20) or an inclusive "
                              "range LO:HI[:STEP] (slow=20:100:10); repeatable")
    command.add_argument("--samples", type=int, metavar="N",
                         help="run N combinations drawn at random instead of all of them")
    command.add_argument("--optuna", type=int, metavar="N",
                         help="a Bayesian search of N parameter sets (Optuna) over the "
                              "strategy's param ranges and choices instead of the whole grid; "
                              "--grid restricts a name to its values")
    command.add_argument("--seed", type=int, default=0, help="seed of --samples or --optuna (0)")
    command.add_argument("--jobs", type=int, default=-1, metavar="N",
                         help="worker processes (default: every core)")
    command.add_argument("--dask", metavar="ADDRESS",
                         help="run on the Dask cluster whose scheduler is at tcp://host:port")
    command.add_argument("--metric", "--sort-by", dest="metric", default="sharpe",
                         help="rank by this metric, best first (sharpe); also the heatmap's")
    command.add_argument("--top", type=int, default=TOP, metavar="K",
                         help=f"show the best K sets ({TOP})")
    command.add_argument("--stats", action=argparse.BooleanOptionalAction, default=None,
                         help="the deflated Sharpe ratio of each set (dsr) and the "
                              "probability of backtest overfitting (default: on from 10 sets; "
                              "with --optuna the DSR only, PBO not being defined for it)")
    add_run_options(command)
    add_output_options(command, "sweep.parquet, sweep.csv and heatmap.png")


# --------------------------------------------------------------------------- grid
    return command


def _value(text: str):
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _range(name: str, spec: str) -> list:
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ParameterError(f"--grid {name}={spec}: a range is LO:HI or LO:HI:STEP")
    numbers = [_value(p) for p in parts] + ([] if len(parts) == 3 else [1])
    if not all(isinstance(n, (int, float)) for n in numbers):
        raise ParameterError(f"--grid {name}={spec}: LO, HI and STEP must be numbers")
    lo, hi, step = numbers
    if step == 0 or (hi - lo) * step < 0:
        raise ParameterError(f"--grid {name}={spec}: STEP must move from LO towards HI")
    if all(isinstance(n, int) for n in numbers):
        return list(range(lo, hi + (1 if step > 0 else -1), step))
    count = int((hi - lo) / step + 1e-9) + 1
    return [round(lo + i * step, 12) for i in range(count)]


def parse_grid(pairs: list[str]) -> dict[str, list]:
    """``["fast=5,10", "slow=20:40:10"]`` → ``{"fast": [5, 10], "slow": [20, 30, 40]}``.

    Values that read as integers or numbers become them; others stay text (the
    strategy's parameter types convert them).
    """
    grid: dict[str, list] = {}
    for pair in pairs:
        name, sep, spec = pair.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise ParameterError(f"--grid takes NAME=V1,V2,... or NAME=LO:HI:STEP; got {pair!r}")
        if name in grid:
            raise ParameterError(f"--grid {name} is given twice; list its values once")
        if ":" in spec and "," not in spec:
            grid[name] = _range(name, spec)
        else:
            values = [v for v in spec.split(",") if v.strip()]
            if not values:
                raise ParameterError(f"--grid {name}: no values in {spec!r}")
            grid[name] = [_value(v) for v in values]
    return grid


# --------------------------------------------------------------------------- command


def options_beside(args, grid: dict) -> dict:
    """The run options of ``args`` less those the grid sets (refused when also given)."""
    options = run_options(args)
    for name in set(grid) & set(options):
        if options[name] != args.run_option_defaults.get(name):
            raise ParameterError(f"{name} is both in --grid and given as --"
                                 f"{name.replace('_', '-')}; give it in one place")
        del options[name]
    return options


def _sweep_frame(args, grid: dict):
    """Run the sweep; return the frame and the SweepWarning messages (other warnings
    pass through)."""
    from engine.research.sweep import SweepWarning, sweep

    fixed = parse_params(args.param)
    options = options_beside(args, grid)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        search = ({"method": "optuna", "trials": args.optuna, "sort_by": args.metric}
                  if args.optuna is not None else {})
        frame = sweep(args.file, grid, samples=args.samples, seed=args.seed, data=args.data,
                      n_jobs=args.jobs, backend="dask" if args.dask else "local",
                      address=args.dask, progress=not args.json, stats=args.stats,
                      **options, **search, **fixed)
    notes = sweep_problems(caught)
    return frame, notes


def command(args) -> int:
    """Run ``python -m engine sweep`` for parsed ``args``; return the exit status."""
    import polars as pl

    from engine.research.sweep import check_metric, known_metrics, sort_rows

    grid = parse_grid(args.grid)
    if args.optuna is not None:
        if args.samples is not None:
            raise ParameterError("--samples is for grid sweeps; --optuna N sets how many "
                                 "parameter sets are tried")
    elif not grid:
        raise ParameterError("sweep needs at least one --grid NAME=V1,V2,... "
                             "(see python -m engine params FILE for the names)")
    check_metric(args.metric, "--metric")
    if args.top < 1:
        raise ParameterError(f"--top must be at least 1; got {args.top}")
    from engine.report.outputs import check_output, staged_output

    target = check_output(args.out, args.force) if args.out else None  # before the sweep
    frame, notes = _sweep_frame(args, grid)
    ranked = sort_rows(frame, args.metric)
    if args.out:
        with staged_output(target) as out:
            frame.write_parquet(out / "sweep.parquet")
            frame.write_csv(out / "sweep.csv")
            if len(grid) == 2 and frame.height and args.optuna is None:
                from engine.report.plots import heatmap_png

                (out / "heatmap.png").write_bytes(heatmap_png(frame, grid, args.metric))
    if args.json:
        from engine.backtest.result import jsonable

        print(json.dumps({"metric": args.metric, "missing": notes,
                          "overfitting": jsonable(getattr(frame, "pbo", None)),
                          "sweep": jsonable(ranked.fill_nan(None).to_dicts())}))
    else:
        from engine.report.terminal import print_sweep_ranking

        if args.optuna is not None:  # the searched names, every column before the metrics
            first_metric = frame.columns.index(known_metrics()[0])
            grid = dict.fromkeys(frame.columns[:first_metric])
        print_sweep_ranking(args.file, grid, frame, ranked, args.metric, args.top, args.out,
                            heatmap=args.optuna is None and len(grid) == 2)
    rejected = frame.filter(pl.col("rejected") > 0).height if "rejected" in frame.columns else 0
    if rejected:
        print(f"warning: {rejected} of {frame.height} parameter sets had rejected orders (the "
              f"rejected column counts them; run one with python -m engine run for the first "
              f"case of each reason, or add --strict to make them errors)", file=sys.stderr)
    return exit_status(notes, "the sweep is incomplete: see the warnings above; the rows "
                              "shown and written are the sets that finished")
