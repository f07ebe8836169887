"""``engine.sweep``: one strategy over many parameter sets, in parallel.

A sweep expands a grid (every combination of the listed values, the last name
varying fastest, like :func:`itertools.product`) or draws ``samples`` random
combinations from it, runs :func:`engine.run` once per set, and returns one row
per set: the parameter columns, every metric, and ``error`` (null on success,
the message when that set failed).

The data is loaded, validated and joined with the strategy's feeds **once**, in
the calling process. The local backend then writes each field of that panel to
a ``.npy`` file in a temporary folder, and every worker of the process pool maps
those files read-only (``numpy.load(mmap_mode="r")``): the pages are shared
through the operating system's page cache, and no task carries a copy of the
data. Tasks are batches of parameter dicts; results come back per batch as
lists of metric dicts. The pool uses the ``spawn`` start method: ``fork`` after
polars has started its threads (it does on import) can deadlock the children.

The same sweep gives the same rows whatever the number of workers or the
backend: rows are put back in grid order (or sorted by ``sort_by``, ties in grid
order), and the random draw of ``samples`` depends on ``seed`` only.

(The module is ``engine.sweeps``, not ``engine.sweep``, so that the package
attribute ``engine.sweep`` stays the function; see :mod:`engine.comparison`.)
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import EngineError, ParameterError, did_you_mean

#: Metrics added by :func:`engine.run` beyond :data:`engine.metrics.METRIC_KEYS`.
EXTRA_METRICS = ("open_trades", "commissions", "borrow_costs", "same_bar_exits", "bars")
#: Metrics where a smaller value is better (``sort_by`` puts them in ascending order).
LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown", "max_drawdown_duration",
                             "commissions", "borrow_costs", "same_bar_exits"})
#: Options of :func:`engine.run` that a sweep handles itself (never a grid name).
RESERVED = ("data", "feeds", "start", "end", "strategy")
#: Parameter sets per task, at most; fewer when that leaves a worker idle.
MAX_BATCH = 50
#: Batches per worker, at least, when there are enough sets (balances the load).
BATCHES_PER_WORKER = 8


class SweepWarning(UserWarning):
    """A sweep that did not finish: some parameter sets are missing from the rows."""


# --------------------------------------------------------------------------- grid


def normalise_grid(grid) -> tuple[list[str], list[list]]:
    """``{"fast": [5, 10], "slow": 30}`` → ``(["fast", "slow"], [[5, 10], [30]])``."""
    if grid is None:
        return [], []
    if not isinstance(grid, Mapping):
        raise ParameterError(
            "grid must be a dict of parameter name -> list of values, e.g. "
            "{'fast': [5, 10, 20], 'slow': [50, 100]}"
        )
    names, values = [], []
    for name, given in grid.items():
        if not isinstance(name, str) or not name:
            raise ParameterError(f"grid names must be parameter names; got {name!r}")
        if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__"):
            given = [given]
        given = [v.item() if isinstance(v, np.generic) else v for v in given]
        if not given:
            raise ParameterError(f"grid {name!r} has no values")
        names.append(name)
        values.append(given)
    return names, values


def grid_size(values: list[list]) -> int:
    return math.prod(len(v) for v in values)


def combination(values: list[list], k: int) -> tuple:
    """The ``k``-th combination in :func:`itertools.product` order."""
    picked = []
    for options in reversed(values):
        k, digit = divmod(k, len(options))
        picked.append(options[digit])
    return tuple(reversed(picked))


def parameter_sets(grid, samples: int | None = None, seed: int = 0) -> list[dict]:
    """Every combination of ``grid``, or ``samples`` of them drawn without replacement
    with ``numpy.random.default_rng(seed)`` (kept in grid order; all of them when
    ``samples`` is at least the grid's size)."""
    names, values = normalise_grid(grid)
    total = grid_size(values)
    if samples is None or samples >= total:
        if samples is not None and samples < 1:
            raise ParameterError(f"samples must be a positive integer; got {samples!r}")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ParameterError(f"samples must be a positive integer; got {samples!r}")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, size=int(samples), replace=False))
    return [dict(zip(names, combination(values, int(k)), strict=True)) for k in picks]


# --------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """What the workers need: the strategy, the shared panels and the tasks.

    ``tasks`` holds ``(row, panel_number, params)``; ``options`` are the keyword
    arguments of :func:`engine.run` common to every task.
    """

    ref: tuple
    cls: type
    panels: list
    tasks: list[tuple[int, int, dict]]
    options: dict
    names: list[str] = field(default_factory=list)


def run_option_names() -> tuple[str, ...]:
    from engine.api import run

    return tuple(name for name, p in inspect.signature(run).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY)


def strategy_ref(strategy, cls) -> tuple:
    """How a worker finds the strategy: ``("file", path, source)`` for a plugin file
    (the source travels too, for workers that cannot read the path), else
    ``("class", cls)``, pickled by reference."""
    from engine.api import _strategy_file

    path = None
    if isinstance(strategy, (str, Path)):
        path = Path(strategy).resolve()
    elif cls.__module__.startswith("engine_strategy_"):  # loaded from a file by load_strategy
        path = _strategy_file(cls)
    if path is not None and path.exists():
        return ("file", str(path), path.read_text())
    return ("class", cls)


def check_names(cls, names, where: str) -> None:
    """Every name is a strategy parameter or a run option, else ParameterError."""
    params = cls.parameters()
    options = [o for o in run_option_names() if o not in RESERVED]
    for name in names:
        if name in RESERVED:
            raise ParameterError(f"{where} {name!r} cannot be swept; pass {name}= to the sweep")
        if name not in params and name not in options:
            valid = ", ".join(params) or "(none)"
            raise ParameterError(
                f"{where} {name!r} is neither a parameter of {cls.__name__} (parameters: "
                f"{valid}) nor a run option." + did_you_mean(name, [*params, *options])
            )


def _converted(cls, sets: list[dict]) -> list[dict]:
    """Grid values converted to the parameters' types where they convert (``"5"`` → 5);
    a value that does not convert stays as given and fails as that set's error."""
    specs = cls.parameters()
    out = []
    for values in sets:
        row = {}
        for name, value in values.items():
            if name in specs:
                try:
                    value = specs[name].convert(value, cls.__name__)
                except EngineError:
                    pass
            row[name] = value
        out.append(row)
    return out


def prepare(strategy, sets: list[dict], data, run_options: dict) -> Plan:
    """Load the strategy and the data once, join the feeds, and lay out the tasks."""
    from engine.api import _join_strategy_feeds, _panel_for
    from engine.plugins import load_strategy
    from engine.strategy import Strategy

    cls = load_strategy(strategy)
    options = dict(run_options)
    check_names(cls, [n for n in options if n not in RESERVED], "option")
    names = list(sets[0]) if sets else []
    check_names(cls, names, "grid name")
    clash = [n for n in names if n in options]
    if clash:
        raise ParameterError(f"{clash[0]!r} is both in the grid and given as a fixed value")
    sets = _converted(cls, sets)
    start, end = options.pop("start", None), options.pop("end", None)
    feeds = options.pop("feeds", None)
    bars = _panel_for(cls, data, start, end, feeds={})  # loaded and validated once
    panels, where = [], []
    if feeds is not None or cls.feed_specs is Strategy.feed_specs:
        panels.append(_join_strategy_feeds(cls, bars, None, feeds))
        where = [0] * len(sets)
    else:  # feed_specs depends on the parameters: one joined panel per distinct spec
        params = cls.parameters()
        seen: dict[str, int] = {}
        for values in sets:
            try:
                instance = cls(**{k: v for k, v in values.items() if k in params},
                               **{k: v for k, v in options.items() if k in params})
                key = repr(sorted((k, repr(v)) for k, v in instance.feed_specs().items()))
            except Exception:  # the same error comes back from the run, as that set's error
                key, instance = "", None
            if key not in seen:
                seen[key] = len(panels)
                panels.append(_join_strategy_feeds(cls, bars, instance, None))
            where.append(seen[key])
    options.update(feeds={}, start=None, end=None)
    tasks = [(i, where[i], values) for i, values in enumerate(sets)]
    return Plan(strategy_ref(strategy, cls), cls, panels, tasks, options, names)


# --------------------------------------------------------------------------- tasks


_CLASSES: dict = {}  # per process: strategy reference -> class
_WORKER: dict = {}  # per local-pool worker: ref, panels, options (or the set-up error)


def resolve_ref(ref: tuple):
    """The strategy class of a reference (cached per process)."""
    if ref[0] == "class":
        return ref[1]
    _, path, source = ref
    key = (path, hashlib.sha1(source.encode()).hexdigest())
    cls = _CLASSES.get(key)
    if cls is None:
        from engine.plugins import load_strategy

        target = Path(path)
        try:
            readable = target.read_text() == source
        except OSError:
            readable = False
        if not readable:  # another machine, or the file changed: load the copy sent along
            target = Path(tempfile.gettempdir()) / "engine-sweep-strategies" / key[1][:16] \
                / Path(path).name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(source)
        cls = _CLASSES[key] = load_strategy(target)
    return cls


def error_message(exc: BaseException) -> str:
    if isinstance(exc, EngineError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run_batch(cls, panels, options: dict, batch) -> list[tuple]:
    """Run each ``(row, panel_number, params)``; return ``(row, metrics, error)`` each."""
    from engine.api import run

    out = []
    for row, number, params in batch:
        try:
            result = run(cls, panels[number], **options, **params)
        except Exception as exc:
            out.append((row, None, error_message(exc)))
        else:
            out.append((row, result.metrics, None))
    return out


def run_batch_from_ref(ref, panels, options, batch) -> list[tuple]:
    """:func:`run_batch` with the strategy given by reference (the Dask task)."""
    try:
        cls = resolve_ref(ref)
    except Exception as exc:
        return [(row, None, error_message(exc)) for row, _, _ in batch]
    return run_batch(cls, panels, options, batch)


def batches(tasks: list, workers: int) -> list[list]:
    size = max(1, min(MAX_BATCH, math.ceil(len(tasks) / (workers * BATCHES_PER_WORKER))))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


# --------------------------------------------------------------------------- local pool


def share_panel(panel, folder: Path) -> dict:
    """Write ``panel``'s arrays as ``.npy`` files for workers to map read-only."""
    folder.mkdir(parents=True)
    # allow_pickle=False here and in open_panel: plain arrays only, never a pickle
    np.save(folder / "ts.npy", panel.ts, allow_pickle=False)
    names = list(panel.fields)
    for k, name in enumerate(names):
        np.save(folder / f"field{k}.npy", panel.fields[name], allow_pickle=False)
    return {"dir": str(folder), "fields": names, "symbols": panel.symbols,
            "source": panel.source, "meta": panel.meta}


def open_panel(spec: dict):
    """The panel of :func:`share_panel`, its arrays memory-mapped (no copy)."""
    from engine.panel import Panel

    folder = Path(spec["dir"])
    fields = {name: np.load(folder / f"field{k}.npy", mmap_mode="r", allow_pickle=False)
              for k, name in enumerate(spec["fields"])}
    return Panel(ts=np.load(folder / "ts.npy", allow_pickle=False),
                 symbols=tuple(spec["symbols"]), fields=fields,
                 source=spec["source"], meta=dict(spec["meta"]))


def _init_worker(ref, specs, options) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _WORKER.clear()
    try:
        _WORKER.update(cls=resolve_ref(ref), panels=[open_panel(s) for s in specs],
                       options=options)
    except Exception as exc:  # reported per set: a raising initializer respawns forever
        _WORKER["error"] = error_message(exc)


def _pool_batch(batch) -> list[tuple]:
    if "error" in _WORKER:
        return [(row, None, _WORKER["error"]) for row, _, _ in batch]
    return run_batch(_WORKER["cls"], _WORKER["panels"], _WORKER["options"], batch)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_for(n_jobs, n_tasks: int) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ParameterError(f"n_jobs must be a positive integer, or -1 for every core (-2 "
                             f"for all but one, ...); got {n_jobs!r}")
    wanted = n_jobs if n_jobs > 0 else max(1, cpu_count() + 1 + n_jobs)
    return max(1, min(wanted, n_tasks))


def run_local(plan: Plan, n_jobs, advance: Callable[[int], None]) -> dict:
    """Run the plan on a local process pool (in this process for one worker).

    Returns row → ``(metrics, error)``. On Ctrl-C the pool is terminated and
    ``_Interrupted`` carries the rows that finished.
    """
    done: dict = {}
    workers = workers_for(n_jobs, len(plan.tasks))
    if workers == 1:
        try:
            for batch in batches(plan.tasks, 1):
                for row, metrics, error in run_batch(plan.cls, plan.panels, plan.options, batch):
                    done[row] = (metrics, error)
                advance(len(batch))
        except KeyboardInterrupt:
            raise _Interrupted(done, "interrupted") from None
        return done
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    folder = Path(tempfile.mkdtemp(prefix="engine-sweep-"))
    try:
        specs = [share_panel(p, folder / f"panel{i}") for i, p in enumerate(plan.panels)]
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(plan.ref, specs, plan.options))
        try:
            pending = {pool.submit(_pool_batch, part) for part in batches(plan.tasks, workers)}
            broken = None
            while pending and broken is None:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        rows = future.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        continue
                    for row, metrics, error in rows:
                        done[row] = (metrics, error)
                    advance(len(rows))
            if broken is not None:
                if not done:
                    raise EngineError(
                        "a worker process of the sweep died before any parameter set "
                        "finished: the strategy crashed the interpreter, or engine.sweep was "
                        "called from a script without `if __name__ == \"__main__\":` (the "
                        "workers import the script, which must not start a sweep again)"
                    ) from broken
                raise _Interrupted(done, "a worker process died")
        except KeyboardInterrupt:
            _stop(pool)
            raise _Interrupted(done, "interrupted") from None
        except BaseException:
            _stop(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return done


def _stop(pool) -> None:
    """Terminate the pool's workers now (the executor has no public way before 3.14)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.terminate()
        except (OSError, ValueError, AttributeError):
            pass


class _Interrupted(Exception):
    """A backend stopped early: the finished rows, and why."""

    def __init__(self, done: dict, reason: str):
        super().__init__(reason)
        self.done = done
        self.reason = reason


# --------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar over the parameter sets, on stderr, when it is a terminal."""

    def __init__(self, total: int, enabled: bool, label: str):
        from engine.progress import wanted

        self.total, self.label = total, label
        self.enabled = enabled and wanted()
        self._bar = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
            self._task = self._bar.add_task(self.label, total=self.total)
            self._bar.start()
        return self

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def execute(plan: Plan, *, n_jobs=-1, backend="local", address=None, progress=True,
            label="sweep") -> tuple[dict, str | None]:
    """Run every task of ``plan``; return row → ``(metrics, error)`` and, when some
    sets did not finish, the reason (else None)."""
    if backend not in ("local", "dask"):
        raise ParameterError(f"backend must be 'local' or 'dask'; got {backend!r}")
    if backend == "local" and address is not None:
        raise ParameterError("address= is for backend='dask'")
    with _Bar(len(plan.tasks), progress, label) as bar:
        try:
            if backend == "dask":
                from engine.dask_backend import run_dask

                return run_dask(plan, address, bar.advance), None
            return run_local(plan, n_jobs, bar.advance), None
        except _Interrupted as stop:
            return stop.done, stop.reason


def warn_missing(missing: int, total: int, reason: str | None) -> None:
    if missing:
        why = f" ({reason})" if reason and reason != "interrupted" else ""
        word = "interrupted" if reason == "interrupted" else "incomplete"
        warnings.warn(f"sweep {word}: {missing} of {total} parameter sets missing{why}",
                      SweepWarning, stacklevel=3)


# --------------------------------------------------------------------------- frame


def known_metrics() -> tuple[str, ...]:
    from engine.metrics import BENCHMARK_KEYS, METRIC_KEYS

    return (*METRIC_KEYS, *BENCHMARK_KEYS, *EXTRA_METRICS)


def check_metric(name: str, what: str = "sort_by") -> None:
    known = known_metrics()
    if name not in known:
        raise ParameterError(f"{what} {name!r} is not a metric; metrics: {', '.join(known)}."
                             + did_you_mean(name, known))


def sort_rows(frame, metric: str):
    """Best first by ``metric`` (ascending for :data:`LOWER_IS_BETTER`); NaN and failed
    sets last; ties keep their order."""
    import polars as pl

    if metric not in frame.columns:
        return frame
    return frame.sort(pl.col(metric).fill_nan(None), descending=metric not in LOWER_IS_BETTER,
                      nulls_last=True, maintain_order=True)


def frame_of(plan: Plan, done: dict):
    """One row per finished task, in grid order: parameters, metrics, ``error``."""
    import polars as pl

    rows = [task for task in plan.tasks if task[0] in done]
    metric_names: list[str] = list(known_metrics())
    for row, _, _ in rows:
        metrics = done[row][0]
        if metrics:
            metric_names += [m for m in metrics if m not in metric_names]
    columns = {}
    for name in plan.names:
        column = name if name not in metric_names and name != "error" else f"param_{name}"
        columns[column] = pl.Series(column, [params[name] for _, _, params in rows],
                                    strict=False)
    for name in metric_names:  # every known metric, even all null: one schema per sweep
        values = [(done[row][0] or {}).get(name) for row, _, _ in rows]
        columns[name] = pl.Series(name, values, dtype=pl.Float64)
    columns["error"] = pl.Series("error", [done[row][1] for row, _, _ in rows], dtype=pl.String)
    return pl.DataFrame(columns)


# --------------------------------------------------------------------------- API


def sweep(strategy, grid=None, *, samples: int | None = None, seed: int = 0, data=None,
          n_jobs: int = -1, backend: str = "local", address=None, progress: bool = True,
          sort_by: str | None = None, **run_options):
    """Run ``strategy`` once per parameter set of ``grid``; one row per set.

    Parameters
    ----------
    strategy : str, pathlib.Path, module or Strategy subclass
        As for :func:`engine.run`. A file path is best: workers load the file
        themselves (a class must be importable by its module name).
    grid : dict of str to list
        Parameter name → values; every combination is run (the last name varies
        fastest). A name may also be a run option such as ``commission``. A single
        value stands for a one-value list. ``None``: one set, the defaults.
    samples : int, optional
        Run this many combinations drawn at random (without replacement) instead of
        all of them; all of them when the grid has no more.
    seed : int
        Seed of the draw (``numpy.random.default_rng``).
    data : path, DataFrame or Panel, optional
        The bars, loaded once for the whole sweep; default the strategy's data.
    n_jobs : int
        Worker processes: ``-1`` every core, ``-2`` all but one, ``1`` in this
        process.
    backend : {"local", "dask"}
        A local process pool, or an existing Dask cluster at ``address``.
    address : str or distributed.Client, optional
        The Dask scheduler (``"tcp://host:port"``) or a client, for ``backend="dask"``.
    progress : bool
        Show a progress bar on stderr when stderr is a terminal.
    sort_by : str, optional
        A metric to sort by, best first (ascending for ``volatility``,
        ``max_drawdown`` and ``max_drawdown_duration``); failed sets last.
        Default: grid order.
    **run_options
        Options of :func:`engine.run` (``cash``, ``commission``, ``start``, ``feeds``,
        ...) and fixed strategy parameters, the same for every set.

    Returns
    -------
    polars.DataFrame
        The grid's parameter columns, every metric of :func:`engine.run`, and
        ``error``: null on success, else the message of that set's failure (its
        metrics are then null).

    Warns
    -----
    SweepWarning
        When the sweep was interrupted (Ctrl-C) or a Dask worker was lost: the rows
        that finished are returned and the warning says how many are missing.
    """
    if sort_by is not None:
        check_metric(sort_by)
    sets = parameter_sets(grid, samples, seed)
    plan = prepare(strategy, sets, data, run_options)
    done, reason = execute(plan, n_jobs=n_jobs, backend=backend, address=address,
                           progress=progress)
    warn_missing(len(plan.tasks) - len(done), len(plan.tasks), reason)
    frame = frame_of(plan, done)
    return sort_rows(frame, sort_by) if sort_by else frame
