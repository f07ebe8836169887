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
``--jobs N``
    Worker processes (default: every core); ``--dask ADDRESS`` runs on a Dask
    cluster instead (``tcp://host:port``).
``--metric NAME`` / ``--top K``
    Rank the sets by this metric (default ``sharpe``) and show the best K (10).
``--out DIR``
    Write ``sweep.parquet`` and ``sweep.csv`` (every set, in grid order) and, for a
    two-parameter grid, ``heatmap.png`` of the metric.

An interrupted sweep (Ctrl-C) still prints and writes the sets that finished, says
how many are missing, and exits with status 130.

``python -m engine.sweep_cli FILE --grid ...`` runs the command on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from engine.errors import EngineError, ParameterError

#: Rows of the ranking shown by default.
TOP = 10
#: Metrics shown beside the ranking metric, as the width allows.
SHOWN_METRICS = ("sharpe", "total_return", "cagr", "max_drawdown", "trades", "hit_rate",
                 "exposure", "sortino", "calmar", "volatility", "profit_factor", "final_equity")
EXIT_INTERRUPTED = 130


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to ``subparsers`` (from ``add_subparsers``)."""
    from engine.cli import _add_run_options

    command = subparsers.add_parser(
        "sweep", help="run a strategy over a grid of parameter sets, in parallel",
        description="Run a strategy once per parameter set of a grid (every combination, "
                    "or --samples of them) and rank the sets by a metric.")
    command.add_argument("file", help="strategy file (one Strategy subclass)")
    command.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                         help="values of one parameter: a list (fast=5,10,20) or an inclusive "
                              "range LO:HI[:STEP] (slow=20:100:10); repeatable")
    command.add_argument("--samples", type=int, metavar="N",
                         help="run N combinations drawn at random instead of all of them")
    command.add_argument("--seed", type=int, default=0, help="seed of --samples (0)")
    command.add_argument("--jobs", type=int, default=-1, metavar="N",
                         help="worker processes (default: every core)")
    command.add_argument("--dask", metavar="ADDRESS",
                         help="run on the Dask cluster whose scheduler is at tcp://host:port")
    command.add_argument("--metric", default="sharpe",
                         help="rank by this metric, best first (sharpe); also the heatmap's")
    command.add_argument("--top", type=int, default=TOP, metavar="K",
                         help=f"show the best K sets ({TOP})")
    _add_run_options(command)
    command.add_argument("--out", help="write sweep.parquet, sweep.csv and heatmap.png here")
    command.add_argument("--force", action="store_true", help="replace an existing --out folder")
    return command


# --------------------------------------------------------------------------- grid


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


# --------------------------------------------------------------------------- heatmap


def _axis(values: list) -> list:
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    return sorted(distinct) if numeric else distinct


def heatmap_png(frame, grid: dict[str, list], metric: str) -> bytes:
    """The metric over a two-parameter grid: the first name across, the second up.

    A blank cell is a set that failed, was not sampled, or has no value (NaN).
    """
    import numpy as np
    from matplotlib.figure import Figure

    from engine.plots import _png

    x, y = list(grid)[:2]
    xcol = x if x in frame.columns and x != metric else f"param_{x}"
    ycol = y if y in frame.columns and y != metric else f"param_{y}"
    xs, ys = _axis(frame[xcol].to_list()), _axis(frame[ycol].to_list())
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    z = np.full((len(ys), len(xs)), np.nan)
    for a, b, value in zip(frame[xcol].to_list(), frame[ycol].to_list(),
                           frame[metric].to_list(), strict=True):
        if value is not None:
            z[yi[b], xi[a]] = value
    fig = Figure(figsize=(min(14, 4 + 0.3 * len(xs)), min(10, 3 + 0.25 * len(ys))), dpi=100,
                 layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(z), origin="lower", aspect="auto",
                      interpolation="nearest", cmap="viridis")
    fig.colorbar(image, ax=ax, label=metric)
    for values, setter, labeler in ((xs, ax.set_xticks, ax.set_xticklabels),
                                    (ys, ax.set_yticks, ax.set_yticklabels)):
        every = max(1, int(np.ceil(len(values) / 20)))
        ticks = list(range(0, len(values), every))
        setter(ticks)
        labeler([f"{values[i]:g}" if isinstance(values[i], float) else str(values[i])
                 for i in ticks])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{metric} by {x} and {y} (blank: failed, not sampled or undefined)",
                 fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- command


def _sweep_frame(args, grid: dict):
    """Run the sweep; return the frame and the SweepWarning messages (other warnings
    pass through)."""
    from engine.cli import _run_options, parse_params
    from engine.sweeps import SweepWarning, sweep

    fixed = parse_params(args.param)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        frame = sweep(args.file, grid, samples=args.samples, seed=args.seed, data=args.data,
                      n_jobs=args.jobs, backend="dask" if args.dask else "local",
                      address=args.dask, progress=not args.json, **_run_options(args),
                      **fixed)
    notes = []
    for item in caught:
        if issubclass(item.category, SweepWarning):
            notes.append(str(item.message))
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)
    return frame, notes


def run_sweep(args) -> int:
    """Run ``python -m engine sweep`` for parsed ``args``; return the exit status."""
    from engine.sweeps import check_metric, sort_rows

    grid = parse_grid(args.grid)
    if not grid:
        raise ParameterError("sweep needs at least one --grid NAME=V1,V2,... "
                             "(see python -m engine params FILE for the names)")
    check_metric(args.metric, "--metric")
    if args.top < 1:
        raise ParameterError(f"--top must be at least 1; got {args.top}")
    from engine.outputs import check_output, staged_output

    if args.out:
        check_output(args.out, args.force)
    frame, notes = _sweep_frame(args, grid)
    ranked = sort_rows(frame, args.metric)
    if args.out:
        with staged_output(args.out, args.force) as out:
            frame.write_parquet(out / "sweep.parquet")
            frame.write_csv(out / "sweep.csv")
            if len(grid) == 2 and frame.height:
                (out / "heatmap.png").write_bytes(heatmap_png(frame, grid, args.metric))
    if args.json:
        from engine.result import jsonable

        print(json.dumps({"metric": args.metric, "missing": notes,
                          "sweep": jsonable(ranked.fill_nan(None).to_dicts())}))
    else:
        _print_ranking(args, grid, frame, ranked)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return EXIT_INTERRUPTED if any("interrupted" in n for n in notes) else 0


def _plain(value) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _print_ranking(args, grid, frame, ranked) -> None:
    import polars as pl
    from rich.console import Console

    from engine.cli import SHORT_HEADERS, fit_columns, frame_table

    console = Console()
    failed = frame.filter(pl.col("error").is_not_null())
    params = frame.columns[:len(grid)]
    metrics = [args.metric] + [m for m in SHOWN_METRICS if m != args.metric]
    top = ranked.head(args.top)
    columns = params + metrics + (["error"] if top["error"].null_count() < top.height else [])
    shown = fit_columns(top.select(columns), [*params, *metrics, "error"], console.width)
    console.print(f"{Path(args.file).name}: {frame.height} parameter sets, "
                  f"{frame.height - failed.height} ran, {failed.height} failed", highlight=False)
    if not top.height:
        return
    console.print(frame_table(
        top.select(shown), f"Best {top.height} by {args.metric}", headers=SHORT_HEADERS,
        formats={p: _plain for p in params},
        caption="best first; failed sets last" + (
            f". Not shown for lack of width: {', '.join(c for c in columns if c not in shown)}"
            if len(shown) < len(columns) else "")))
    if failed.height:
        first = failed.row(0, named=True)
        where = ", ".join(f"{p}={first[p]}" for p in params)
        console.print(f"{failed.height} sets failed; the first ({where}): {first['error']}",
                      highlight=False, markup=False)
    if args.out:
        files = "sweep.parquet, sweep.csv" + (", heatmap.png" if len(grid) == 2 else "")
        console.print(f"Wrote {files} to {args.out}", highlight=False)


def main(argv=None) -> int:
    """``python -m engine.sweep_cli [sweep] FILE --grid ...``, until the main CLI has it."""
    from engine.cli import _show_warning

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["sweep"]:
        argv.insert(0, "sweep")
    parser = argparse.ArgumentParser(prog="python -m engine")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        return run_sweep(args)
    except EngineError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
