"""What a sweep runs: the parameter sets of a grid, the plan, and the tasks.

Both backends, the local process pool (:mod:`engine.research.sweep`) and Dask
(:mod:`engine.research.dask_backend`), execute the same :class:`Plan`: the
strategy (as a reference a worker can import), the panels loaded once, the run
options, and the parameter sets cut into batches. A task is one batch; it comes
back as one :class:`SetOutcome` per set.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.errors import EngineError, ParameterError, did_you_mean

#: Options of :func:`engine.run` that a sweep handles itself (never a grid name).
RESERVED = ("data", "feeds", "start", "end", "strategy", "date_format", "tz", "adjust")
#: Parameter sets per task, at most; fewer when that leaves a worker idle.
MAX_BATCH = 50
#: Batches per worker, at least, when there are enough sets (balances the load).
BATCHES_PER_WORKER = 8


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
    #: Rows whose set killed its worker process (their error says how).
    crashed: list[int] = field(default_factory=list)
    #: Row → the :attr:`SetOutcome.extra` payload of the sets that sent one.
    extras: dict = field(default_factory=dict)
    #: :attr:`SetOutcome.note` → how many sets sent it.
    notes: dict = field(default_factory=dict)


class SetOutcome(NamedTuple):
    """What one parameter set gives back from a worker.

    ``metrics`` is None when the set failed and ``error`` None when it ran.
    ``extra`` is a per-set payload beyond the metrics row (None today; the place
    for, e.g., the per-bar returns that statistics across sets need), kept in
    :attr:`Plan.extras` by the backends.
    """

    row: int
    metrics: dict | None
    error: str | None
    extra: object = None
    #: Something the sweep should say about how this set ran (e.g. a strategy's
    #: signals_batch raised and the set ran signals alone); said once per message.
    note: str | None = None


def record(plan: Plan, done: dict, outcomes) -> int:
    """Put ``outcomes`` in ``done`` (row → ``(metrics, error)``) and their extras in
    ``plan.extras``; return how many."""
    for outcome in outcomes:
        done[outcome.row] = (outcome.metrics, outcome.error)
        if outcome.extra is not None:
            plan.extras[outcome.row] = outcome.extra
        if outcome.note is not None:
            plan.notes[outcome.note] = plan.notes.get(outcome.note, 0) + 1
    return len(outcomes)


def run_option_names() -> tuple[str, ...]:
    from engine.backtest.run import run

    return tuple(name for name, p in inspect.signature(run).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY)


def strategy_ref(strategy, cls) -> tuple:
    """How a worker finds the strategy: ``("file", path, source)`` for a plugin file
    (the source travels too, for workers that cannot read the path), else
    ``("class", cls)``, pickled by reference."""
    from engine.backtest.run import _strategy_file

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
    seen: dict = {}   # (name, type, value) -> converted: a grid repeats each value often
    out = []
    for values in sets:
        row = {}
        for name, value in values.items():
            if name in specs:
                key = (name, type(value), value) if isinstance(value, (int, float, str)) \
                    else None
                found = seen.get(key, seen) if key is not None else seen
                if found is seen:
                    found = value
                    try:
                        found = specs[name].convert(value, cls.__name__)
                    except EngineError:
                        pass
                    if key is not None:
                        seen[key] = found
                value = found
            row[name] = value
        out.append(row)
    return out


def prepare(strategy, sets: list[dict], data, run_options: dict) -> Plan:
    """Load the strategy and the data once, join the feeds, and lay out the tasks."""
    from engine.backtest.run import _join_strategy_feeds, _panel_for, check_commission
    from engine.strategy.base import Strategy
    from engine.strategy.plugins import load_strategy

    cls = load_strategy(strategy)
    options = dict(run_options)
    check_names(cls, [n for n in options if n not in RESERVED], "option")
    check_commission(options.get("commission", 0.0))  # refused once, not once per set
    names = list(sets[0]) if sets else []
    check_names(cls, names, "grid name")
    clash = [n for n in names if n in options]
    if clash:
        raise ParameterError(f"{clash[0]!r} is both in the grid and given as a fixed value")
    sets = _converted(cls, sets)
    start, end = options.pop("start", None), options.pop("end", None)
    date_format, tz = options.pop("date_format", None), options.pop("tz", None)
    feeds = options.pop("feeds", None)
    adjust = options.pop("adjust", False)
    bars = _panel_for(cls, data, start, end, feeds={}, date_format=date_format,
                      tz=tz, adjust=adjust)  # loaded and validated once
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


def resolve_ref(ref: tuple):
    """The strategy class of a reference (cached per process)."""
    if ref[0] == "class":
        return ref[1]
    _, path, source = ref
    key = (path, hashlib.sha1(source.encode()).hexdigest())
    cls = _CLASSES.get(key)
    if cls is None:
        from engine.strategy.plugins import load_strategy

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


def crash_message(params: dict, how: str) -> str:
    """The error row of a set that killed its worker process (either backend)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the defaults"
    return f"the worker process running this set died ({how}); set: {shown}"


def error_message(exc: BaseException) -> str:
    if isinstance(exc, EngineError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: A key of a plan's options (not passed to :func:`engine.run`): when true, each set
#: also sends :func:`engine.analysis.stats.set_summary` of its per-bar returns as its
#: :attr:`SetOutcome.extra`, for the sweep's deflated Sharpe ratios and PBO.
SUMMARY_OPTION = "_set_summaries"
#: The plan option giving each worker the threads its batched simulation may use.
THREADS_OPTION = "_threads"


def run_batch(cls, panels, options: dict, batch) -> list[SetOutcome]:
    """Run each ``(row, panel_number, params)``; one :class:`SetOutcome` each.

    A strategy with a vectorised path runs its sets as columns of one compiled pass
    where :mod:`engine.research.batched` covers them, and one by one otherwise.
    """
    return start_batch(cls, panels, options, batch)()


def start_batch(cls, panels, options: dict, batch):
    """:func:`run_batch` started: returns ``finish()`` giving its outcomes. A batched
    task's simulation runs in threads until then (:func:`engine.research.batched.
    start_batched`), so the caller can prepare the next task meanwhile."""
    from engine.research import batched

    if batched.enabled():
        return batched.start_batched(cls, panels, options, batch,
                                     partial(run_each, cls, panels, options), SetOutcome)
    outcomes = run_each(cls, panels, options, batch)
    return lambda: outcomes


def run_each(cls, panels, options: dict, batch) -> list[SetOutcome]:
    """:func:`run_batch` one set at a time, through :func:`engine.run`.

    Only the metrics are computed: a run's frames (trades, orders, equity) are
    built on first access, and a sweep never reads them.
    """
    from engine.backtest.run import run

    options = dict(options)
    summaries = options.pop(SUMMARY_OPTION, False)
    options.pop(THREADS_OPTION, None)
    out = []
    for row, number, params in batch:
        try:
            result = run(cls, panels[number], **options, **params)
        except Exception as exc:
            out.append(SetOutcome(row, None, error_message(exc)))
        else:
            out.append(SetOutcome(row, result.metrics, None,
                                  summary_of(result) if summaries else None))
    return out


def summary_of(result):
    """:func:`engine.analysis.stats.set_summary` of a run's per-bar returns."""
    from engine.analysis.metrics import bar_returns
    from engine.analysis.stats import set_summary

    return set_summary(bar_returns(result.equity_values, result.starting_cash))


def run_batch_from_ref(ref, panels, options, batch) -> list[SetOutcome]:
    """:func:`run_batch` with the strategy given by reference (the Dask task)."""
    try:
        cls = resolve_ref(ref)
    except Exception as exc:
        return [SetOutcome(row, None, error_message(exc)) for row, _, _ in batch]
    return run_batch(cls, panels, options, batch)


def batches(tasks: list, workers: int, largest: int = MAX_BATCH) -> list[list]:
    """``tasks`` in batches of at most ``largest`` sets, and at least
    :data:`BATCHES_PER_WORKER` batches per worker (a Ctrl-C keeps the finished ones)."""
    size = max(1, min(largest, math.ceil(len(tasks) / (workers * BATCHES_PER_WORKER))))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


#: Batched sweeps: the most sets in a task (one signals_batch call and one compiled
#: pass serve them all), and the most bars x symbols x sets (each float array of the
#: batch's signals holds 8 bytes per cell).
BATCHED_MAX = 512
BATCHED_CELLS = 1 << 19


def batch_limit(plan: Plan) -> int:
    """The largest task for :func:`batches`: larger for batched sweeps."""
    from engine.research import batched

    if not batched.likely_batched(plan.cls, plan.options):
        return MAX_BATCH
    cells = max((getattr(p, "n_bars", 0) * getattr(p, "n_symbols", 1) for p in plan.panels),
                default=0)
    return max(1, min(BATCHED_MAX, BATCHED_CELLS // max(1, cells)))


class _Interrupted(Exception):
    """A backend stopped early: the finished rows, and why."""

    def __init__(self, done: dict, reason: str):
        super().__init__(reason)
        self.done = done
        self.reason = reason
