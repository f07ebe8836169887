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
:class:`~engine.research.sweep_plan.SetOutcome` lists. The pool
(:mod:`engine.research.pool`) starts fresh interpreters that never import the
caller's ``__main__`` (no ``if __name__ == "__main__":`` guard is needed, and a
class defined in ``__main__`` travels by value); a set that kills its worker
becomes an error row naming the signal or exit status. The pool is started for
one sweep, or kept across several calls (:func:`workers`, ``pool=``: the rounds of
a search, the sweeps of a script), each panel written for it once.

The same sweep gives the same rows whatever the number of workers or the
backend: rows are put back in grid order (or sorted by ``sort_by``, ties in grid
order), and the random draw of ``samples`` depends on ``seed`` only.

The grid expansion, the plan and the tasks both backends share are in
:mod:`engine.research.sweep_plan`.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.errors import ParameterError, did_you_mean
from engine.research.sweep_plan import (
    SUMMARY_OPTION,
    THREADS_OPTION,
    Plan,
    SetOutcome,
    _Interrupted,
    batch_limit,
    batches,
    crash_message,
    error_message,
    parameter_sets,
    prepare,
    record,
    resolve_ref,
    run_batch,
    start_batch,
)

#: Metrics added by :func:`engine.run` beyond :data:`engine.analysis.metrics.METRIC_KEYS`.
EXTRA_METRICS = ("open_trades", "commissions", "borrow_costs", "same_bar_exits",
                 "margin_calls", "margin_interest", "bars", "rejected")
#: Metrics where a smaller value is better (``sort_by`` puts them in ascending order).
LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown", "max_drawdown_duration",
                             "commissions", "borrow_costs", "same_bar_exits", "rejected",
                             "margin_calls", "margin_interest"})


class SweepWarning(UserWarning):
    """A sweep that did not finish (some parameter sets are missing from the rows), or
    whose sets killed their worker process (their rows hold the error)."""


class SweepNotice(SweepWarning):
    """How some sets ran (e.g. a strategy's signals_batch raised, so they ran signals one
    by one); unlike other SweepWarnings, every row is there and as it should be."""


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
    from engine.data.panel import Panel

    folder = Path(spec["dir"])
    fields = {name: np.load(folder / f"field{k}.npy", mmap_mode="r", allow_pickle=False)
              for k, name in enumerate(spec["fields"])}
    return Panel(ts=np.load(folder / "ts.npy", allow_pickle=False),
                 symbols=tuple(spec["symbols"]), fields=fields,
                 source=spec["source"], meta=dict(spec["meta"]))


#: In a pool worker: the panels it has mapped, by their spec (kept while the spec is
#: sent again, so that a pool's next run on the same panels maps nothing).
_MAPPED: dict = {}


def _start_worker(load) -> tuple:
    """In a pool worker, at each run's set-up: the strategy class and the mapped
    panels (or the set-up error, such as a class that does not import here, then
    reported by every set). Panels of the previous set-up with the same spec are
    reused as they are."""
    global _MAPPED
    try:
        ref, specs, options = load()
        keys = [repr(sorted(spec.items())) for spec in specs]
        mapped = {key: _MAPPED.get(key) or open_panel(spec)
                  for key, spec in zip(keys, specs, strict=True)}
        _MAPPED = mapped
        state = {"cls": resolve_ref(ref), "panels": [mapped[key] for key in keys],
                 "options": options}
    except Exception as exc:
        state = {"error": error_message(exc)}
    return state, _pool_batch


def _pool_batch(state: dict, batch) -> list[SetOutcome]:
    if "error" in state:
        return [SetOutcome(row, None, state["error"]) for row, _, _ in batch]
    return run_batch(state["cls"], state["panels"], state["options"], batch)


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


def workers(n_jobs: int = -1):
    """A pool of worker processes to run several sweeps and walk-forwards on.

    ``with engine.workers(n_jobs=2) as pool:`` then ``engine.sweep(..., pool=pool)``
    and ``engine.walk_forward(..., pool=pool)``: the workers start with the first
    call that needs them and stay until the ``with`` block ends, so later calls
    skip their start-up (about half a second each). ``n_jobs`` as for
    :func:`sweep` (``-1`` every core). Nothing starts for calls that run in this
    process (one worker, or a small batched sweep with ``n_jobs=-1``).

    Returns
    -------
    engine.research.pool.WorkerPool
        Closed at the end of the ``with`` block (or by ``close()``), on an
        exception too: its workers stop and its temporary files are removed.
    """
    from engine.research.pool import WorkerPool

    return WorkerPool(workers_for(n_jobs, 1 << 30), n_jobs=n_jobs)


def pool_of(pool, n_jobs, backend: str):
    """``n_jobs`` of a call given ``pool=`` (checked), or ``n_jobs`` as given."""
    if pool is None:
        return n_jobs
    from engine.research.pool import WorkerPool

    if not isinstance(pool, WorkerPool):
        raise ParameterError(f"pool must be a pool from engine.workers(n_jobs=...); got "
                             f"{type(pool).__name__}")
    if backend != "local":
        raise ParameterError("pool= is for backend='local'; a Dask cluster has its own workers")
    if pool.closed:
        raise ParameterError("pool= is closed (its with block has ended); start another with "
                             "engine.workers(n_jobs=...)")
    wanted = pool.n_jobs
    if n_jobs not in (-1, wanted):
        raise ParameterError(f"n_jobs={n_jobs!r} and pool= disagree: the pool was made with "
                             f"engine.workers(n_jobs={wanted}); drop n_jobs (the pool's workers "
                             f"run the call)")
    return wanted


def run_local(plan: Plan, n_jobs, advance: Callable[[int], None], pool=None) -> dict:
    """Run the plan on a local process pool (in this process for one worker).

    ``pool``: a :class:`~engine.research.pool.WorkerPool` whose workers run the
    plan and stay alive after it (default: a pool started and closed for this
    plan). Returns row → ``(metrics, error)``. On Ctrl-C the workers are killed
    and ``_Interrupted`` carries the rows that finished.
    """
    done: dict = {}
    workers = workers_for(n_jobs, len(plan.tasks))
    if workers > 1 and n_jobs < 0:
        from engine.research import batched

        if batched.likely_batched(plan.cls, plan.options):
            # Starting a worker costs more than the few thousand sets it would run.
            workers = max(1, min(workers, len(plan.tasks) // batched.SETS_PER_WORKER))
    if pool is not None:
        workers = min(workers, pool.size)
    # batched simulations share the cores left to each worker among threads
    options = {**plan.options, THREADS_OPTION: max(1, cpu_count() // workers)}
    if workers == 1:
        try:
            # one task's simulation runs in threads while the next one's signals are made
            pending = None
            for batch in batches(plan.tasks, 1, batch_limit(plan)):
                started = start_batch(plan.cls, plan.panels, options, batch)
                if pending is not None:
                    advance(record(plan, done, pending()))
                pending = started
            if pending is not None:
                advance(record(plan, done, pending()))
        except KeyboardInterrupt:
            raise _Interrupted(done, "interrupted") from None
        return done
    if pool is None:
        from engine.research.pool import WorkerPool

        with WorkerPool(workers) as own:
            return _run_on(own, plan, options, workers, done, advance)
    return _run_on(pool, plan, options, workers, done, advance)


def _run_on(pool, plan: Plan, options: dict, workers: int, done: dict, advance) -> dict:
    def on_answer(batch, outcomes) -> None:
        advance(record(plan, done, outcomes))

    def on_crash(task, how: str) -> None:
        row, _, params = task
        done[row] = (None, crash_message(params, how))
        crashed.append(row)
        advance(1)

    crashed = plan.crashed
    try:
        forget_panels(pool, plan.panels)
        specs = [shared_panel(pool, panel) for panel in plan.panels]
        pool.run(_start_worker, (plan.ref, specs, options),
                 batches(plan.tasks, workers, batch_limit(plan)), on_answer, on_crash,
                 workers=workers)
    except KeyboardInterrupt:
        raise _Interrupted(done, "interrupted") from None
    return done


def shared_panel(pool, panel) -> dict:
    """:func:`share_panel` into the pool's folder, once per panel while the pool's runs
    name it (a search's rounds on the same panels write nothing)."""
    found = pool.shared.get(id(panel))
    if found is None:  # the panel is kept with its spec: its id is never reused meanwhile
        folder = Path(tempfile.mkdtemp(prefix="panel", dir=pool.scratch())) / "arrays"
        found = pool.shared[id(panel)] = (panel, share_panel(panel, folder))
    return found[1]


def forget_panels(pool, keep) -> None:
    """Remove the pool's files of every panel but ``keep`` (a worker that has one mapped
    keeps its pages until its next set-up), so that a long-lived pool holds the data of
    its last run only."""
    kept = {id(panel) for panel in keep}
    for key in [key for key in pool.shared if key not in kept]:
        _, spec = pool.shared.pop(key)
        shutil.rmtree(Path(spec["dir"]).parent, ignore_errors=True)


# --------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar over the parameter sets, on stderr, when it is a terminal."""

    def __init__(self, total: int, enabled: bool, label: str):
        from engine.report.progress import wanted

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
            label="sweep", pool=None) -> tuple[dict, str | None]:
    """Run every task of ``plan``; return row → ``(metrics, error)`` and, when some
    sets did not finish, the reason (else None). ``pool``: the
    :class:`~engine.research.pool.WorkerPool` of the local backend (default: one for
    this call)."""
    if backend not in ("local", "dask"):
        raise ParameterError(f"backend must be 'local' or 'dask'; got {backend!r}")
    if backend == "local" and address is not None:
        raise ParameterError("address= is for backend='dask'")
    with _Bar(len(plan.tasks), progress, label) as bar:
        try:
            if backend == "dask":
                from engine.research.dask_backend import run_dask

                return run_dask(plan, address, bar.advance), None
            return run_local(plan, n_jobs, bar.advance, pool), None
        except _Interrupted as stop:
            return stop.done, stop.reason


def warn_missing(missing: int, total: int, reason: str | None) -> None:
    if missing:
        why = f" ({reason})" if reason and reason != "interrupted" else ""
        word = "interrupted" if reason == "interrupted" else "incomplete"
        warnings.warn(f"sweep {word}: {missing} of {total} parameter sets missing{why}",
                      SweepWarning, stacklevel=3)


def warn_notes(plan: Plan) -> None:
    """A SweepNotice per note the sets sent (:attr:`SetOutcome.note`), with how many."""
    for note, count in plan.notes.items():
        warnings.warn(f"{note} ({count} of {len(plan.tasks)} parameter sets)", SweepNotice,
                      stacklevel=3)


def warn_crashed(plan: Plan) -> None:
    """A SweepWarning naming the sets that killed their worker process."""
    if plan.crashed:
        # The first in the plan's order, not the first to die: which worker dies first
        # depends on how the sets were shared out and on the machine's load.
        crashed = set(plan.crashed)
        first = next(params for row, _, params in plan.tasks if row in crashed)
        shown = ", ".join(f"{k}={v!r}" for k, v in first.items()) or "the defaults"
        warnings.warn(f"sweep crashed: {len(plan.crashed)} of {len(plan.tasks)} parameter sets "
                      f"killed their worker process (the first: {shown}); their rows hold "
                      f"the error", SweepWarning, stacklevel=3)


# --------------------------------------------------------------------------- frame


def known_metrics() -> tuple[str, ...]:
    from engine.analysis.metrics import BENCHMARK_KEYS, METRIC_KEYS

    return (*METRIC_KEYS, *BENCHMARK_KEYS, *EXTRA_METRICS)


#: Columns across the sets of a sweep (``stats=True``), beside each row's metrics.
SWEEP_STATISTICS = ("dsr",)
#: Sweeps of at least this many sets compute :data:`SWEEP_STATISTICS` and PBO by default.
STATS_MIN_SETS = 10


def add_statistics(plan: Plan, done: dict, frame, no_pbo: str | None = None):
    """``frame`` with the deflated Sharpe ratio of each set (``dsr``, before ``error``)
    and the sweep's probability of backtest overfitting as ``frame.pbo``.

    ``dsr`` is the probability that the set's true Sharpe ratio is above the one
    expected of the best of the sweep's sets with no skill
    (:func:`engine.analysis.stats.deflated_sharpes_from_summaries`: ``N`` the sets
    that ran, ``V`` the variance of their per-bar Sharpe ratios). ``frame.pbo`` is a
    dict (``pbo``, ``splits``, ``blocks``, ``sets``) from combinatorially symmetric
    cross-validation over 16 blocks of bars
    (:func:`engine.analysis.stats.overfitting_from_summaries`), or a dict with
    ``pbo`` None and the ``reason`` when it cannot be computed (fewer than two sets
    that ran, sets on different bars, fewer than 32 bars), or when ``no_pbo`` gives
    the reason it is not computed (a search's sets, chosen adaptively); that dict
    holds ``sets``, the ``N`` of the deflated Sharpe ratios, too.
    """
    import numpy as np
    import polars as pl

    from engine.analysis.stats import (
        PBO_BLOCKS,
        deflated_sharpes_from_summaries,
        overfitting_from_summaries,
    )

    rows = [task[0] for task in plan.tasks if task[0] in done]  # the frame's rows
    width = 1 + 5 * PBO_BLOCKS
    summaries = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        extra = plan.extras.get(row)
        if extra is not None:
            summaries[i] = extra
    dsr = deflated_sharpes_from_summaries(summaries) if len(rows) else np.zeros(0)
    at = frame.columns.index("error")
    frame = frame.insert_column(at, pl.Series("dsr", dsr, dtype=pl.Float64).fill_nan(None))
    if no_pbo is not None:
        pbo = {"pbo": None, "reason": no_pbo,
               "sets": int(np.isfinite(dsr).sum())}
        frame.pbo = pbo
        return frame
    try:
        found = overfitting_from_summaries(summaries, PBO_BLOCKS)
        pbo = {"pbo": found["pbo"], "splits": found["splits"], "blocks": PBO_BLOCKS,
               "sets": int(np.isfinite(summaries[:, 1:]).all(axis=1).sum())}
    except ParameterError as exc:
        pbo = {"pbo": None, "reason": str(exc)}
    frame.pbo = pbo
    return frame



def check_metric(name: str, what: str = "sort_by") -> None:
    known = (*known_metrics(), *SWEEP_STATISTICS)
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
    from engine.research.batched import no_cyclic_gc

    with no_cyclic_gc():
        return _frame_of(plan, done)


def _frame_of(plan: Plan, done: dict):
    import polars as pl

    rows = [task for task in plan.tasks if task[0] in done]
    metric_names: list[str] = list(known_metrics())
    seen_keys = None
    for row, _, _ in rows:
        metrics = done[row][0]
        if metrics and metrics.keys() != seen_keys:
            metric_names += [m for m in metrics if m not in metric_names]
            seen_keys = metrics.keys()
    columns = {}
    for name in plan.names:
        column = name if name not in metric_names and name != "error" else f"param_{name}"
        columns[column] = pl.Series(column, [params[name] for _, _, params in rows],
                                    strict=False)
    for name, values in _metric_columns([done[row][0] for row, _, _ in rows], metric_names):
        columns[name] = values  # every known metric, even all null: one schema per sweep
    columns["error"] = pl.Series("error", [done[row][1] for row, _, _ in rows], dtype=pl.String)
    return pl.DataFrame(columns)


def _metric_columns(metrics: list, names: list[str]):
    """``(name, polars Series)`` per metric name over the rows' metric dicts (None for a
    failed set, whose cells are null). Rows with the same keys in the same order (what
    one strategy's sets give) are read as one float table, not cell by cell."""
    import polars as pl

    shared = None
    for m in metrics:
        if m is not None:
            shared = tuple(m)
            break
    ok = [m is not None for m in metrics]
    if shared is None or any(m is not None and tuple(m) != shared for m in metrics):
        for name in names:
            yield name, pl.Series(name, [(m or {}).get(name) for m in metrics],
                                  dtype=pl.Float64)
        return
    width = len(shared)
    empty = [math.nan] * width
    table = np.array([list(m.values()) if m is not None else empty for m in metrics],
                     dtype=np.float64).reshape(len(metrics), width)
    failed = np.flatnonzero(~np.asarray(ok, dtype=bool))
    where = {name: i for i, name in enumerate(shared)}
    for name in names:
        i = where.get(name)
        if i is None:
            yield name, pl.Series(name, [None] * len(metrics), dtype=pl.Float64)
            continue
        column = pl.Series(name, table[:, i], dtype=pl.Float64)
        yield name, column.scatter(failed, None) if failed.size else column


def as_sweep_result(frame):
    """``frame`` as a :class:`~engine.research.frames.SweepResult` (polars imported here:
    workers never load it)."""
    from engine.research.frames import SweepResult

    return SweepResult.of(frame)


# --------------------------------------------------------------------------- API


def sweep(strategy, grid=None, *, samples: int | None = None, seed: int = 0, data=None,
          n_jobs: int = -1, backend: str = "local", address=None, progress: bool = True,
          sort_by: str | None = None, stats: bool | None = None, method: str = "grid",
          trials: int | None = None, pool=None, **run_options):
    """Run ``strategy`` once per parameter set of ``grid``; one row per set.

    Parameters
    ----------
    strategy : str, pathlib.Path, module or Strategy subclass
        As for :func:`engine.run`. A file path travels as its path and source; a
        class defined in ``__main__`` (a script, ``python -c``, a notebook) by value;
        any other class by reference (importable by its module name).
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
        Default: grid order. ``"dsr"`` sorts by the deflated Sharpe ratio.
    stats : bool, optional
        Add the statistics across sets that say how much of the best result is
        selection (:func:`add_statistics`): a ``dsr`` column, the deflated Sharpe
        ratio of each set given how many were tried, and ``frame.pbo``, the
        probability of backtest overfitting. Default: on from
        :data:`STATS_MIN_SETS` sets. Each set sends 81 numbers beside its metrics.
    method : {"grid", "optuna"}
        ``"grid"``: every combination of ``grid`` (or ``samples`` of them).
        ``"optuna"``: a Bayesian search (Optuna's TPE sampler, seeded with ``seed``)
        of ``trials`` sets maximising ``sort_by`` (default ``sharpe``; minimising
        the lower-is-better metrics) over the strategy's ``param`` ranges and
        choices, ``grid`` restricting names to the values listed; see
        :mod:`engine.research.search`. Needs ``pip install -e ".[optuna]"``.
    trials : int, optional
        With ``method="optuna"``: how many sets to try.
    pool : WorkerPool, optional
        Workers kept across calls, from :func:`workers` (``engine.workers``): the
        sweep runs on them (``n_jobs`` is the pool's) and leaves them running for
        the next call.
    **run_options
        Options of :func:`engine.run` (``cash``, ``commission``, ``start``, ``feeds``,
        ...) and fixed strategy parameters, the same for every set.

    Returns
    -------
    SweepResult
        A polars DataFrame (:class:`engine.research.frames.SweepResult`, whose
        ``plot(metric, x, y)`` draws a heatmap): the grid's parameter columns, every
        metric of :func:`engine.run`, and
        ``error``: null on success, else the message of that set's failure (its
        metrics are then null).

    Warns
    -----
    SweepWarning
        When the sweep was interrupted (Ctrl-C) or a Dask worker was lost: the rows
        that finished are returned and the warning says how many are missing. When
        sets killed their worker process: their rows hold the error, and the
        warning says how many.
    """
    n_jobs = pool_of(pool, n_jobs, backend)
    if method != "grid":
        return _search(strategy, grid, method, trials, samples, seed, data, n_jobs, backend,
                       address, progress, sort_by, stats, run_options, pool)
    if trials is not None:
        raise ParameterError("trials= is for method='optuna'; a grid sweep runs every "
                             "combination (or samples= of them)")
    if sort_by is not None:
        check_metric(sort_by)
    sets = parameter_sets(grid, samples, seed)
    plan = prepare(strategy, sets, data, run_options)
    if stats is None:
        stats = len(sets) >= STATS_MIN_SETS
    if sort_by in SWEEP_STATISTICS and not stats:
        raise ParameterError(f"sort_by={sort_by!r} needs the sweep's statistics: pass "
                             f"stats=True (on by default from {STATS_MIN_SETS} sets)")
    if stats:
        plan.options[SUMMARY_OPTION] = True
    done, reason = execute(plan, n_jobs=n_jobs, backend=backend, address=address,
                           progress=progress, pool=pool)
    warn_missing(len(plan.tasks) - len(done), len(plan.tasks), reason)
    warn_crashed(plan)
    warn_notes(plan)
    frame = frame_of(plan, done)
    pbo = None
    if stats:
        frame = add_statistics(plan, done, frame)
        pbo = frame.pbo
    frame = sort_rows(frame, sort_by) if sort_by else frame
    frame.pbo = pbo
    return as_sweep_result(frame)


def _search(strategy, grid, method, trials, samples, seed, data, n_jobs, backend, address,
            progress, sort_by, stats, run_options, pool):
    if method != "optuna":
        raise ParameterError(f"method must be 'grid' or 'optuna'; got {method!r}")
    if sort_by in SWEEP_STATISTICS:
        raise ParameterError(f"sort_by={sort_by!r} cannot be what a search maximises: it "
                             f"depends on every set tried. Search by a metric (sharpe, ...); "
                             f"the rows then hold the {sort_by} column (stats=True)")
    if samples is not None:
        raise ParameterError("samples= is for grid sweeps; with method='optuna', trials= "
                             "sets how many parameter sets are tried")
    if trials is None:
        raise ParameterError("method='optuna' needs trials=N, the number of parameter sets "
                             "to try")
    import sys

    from engine.research.search import search

    if stats is None:
        stats = trials >= STATS_MIN_SETS
    return search(strategy, grid, trials=trials, sort_by=sort_by, seed=seed, data=data,
                  n_jobs=n_jobs, backend=backend, address=address, progress=progress,
                  run_options=run_options, sweep=sys.modules[__name__], stats=stats,
                  pool=pool)
