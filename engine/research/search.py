"""``engine.sweep(..., method="optuna")``: a Bayesian search instead of a whole grid.

The search space is read off the strategy's parameter declarations
(:func:`engine.strategy.params.param`):

* a name given in ``grid`` takes exactly the values listed there, as a categorical
  choice (a grid name may also be a run option such as ``commission``);
* a parameter with ``choices``, or of type ``bool``, takes those values;
* an ``int`` or ``float`` parameter with both ``min`` and ``max`` ranges over
  ``[min, max]`` (integers for ``int``);
* a parameter given a fixed value (``fast=5`` as a keyword, ``--param fast=5``)
  is not searched;
* any other parameter cannot be searched: :class:`~engine.errors.ParameterError`
  names it and the three ways to fix it.

Optuna's TPE sampler (Bergstra et al., "Algorithms for Hyper-Parameter
Optimization", NeurIPS 2011), seeded with ``seed``, proposes the sets; each set runs
through the same plan, tasks and backends as a grid sweep
(:mod:`engine.research.sweep_plan`), and its ``sort_by`` metric is told back to the
sampler (maximised, or minimised for the metrics of
:data:`engine.research.sweep.LOWER_IS_BETTER`). A set that fails, or whose metric is
undefined (NaN), is told as a failed trial and stays in the rows with its error.

Trials are asked in rounds of :data:`TRIALS_PER_ROUND` and a round's sets run in
parallel as one small sweep (``n_jobs`` workers, or Dask), with the faults handling
of a grid sweep (a set that kills its worker is an error row); the sampler's
"constant liar" keeps the sets of one round apart. The local workers start once
for the whole search (with the first round that needs them, or earlier as the
``pool`` given) and every round runs on them: a round costs a message per worker
and the data is written for them once (:class:`engine.research.pool.WorkerPool`).
For a strategy that runs in milliseconds, ``n_jobs=1`` is still faster: the
workers' start-up (about half a second) is paid once, not per round. The round
size does not depend on ``n_jobs`` or the backend, so the same ``seed`` gives the
same rows whatever runs them. A set proposed again is not run twice (the sampler is
told its known value), so there are at most ``trials`` rows, one per distinct set;
the search stops early once every set of a finite space has run.

With ``stats`` (on from :data:`engine.research.sweep.STATS_MIN_SETS` trials), the rows
hold the ``dsr`` column of a grid sweep: each set's deflated Sharpe ratio with ``N``
the distinct sets tried that ran, ``V`` the variance of their per-bar Sharpe ratios
(:func:`engine.research.sweep.add_statistics`). The probability of backtest
overfitting is **not** computed: CSCV ranks, on one half of the bars, the set chosen
on the other half, among sets fixed before looking at the data. The sampler chose
each set after seeing the earlier sets' results on every bar, so no half is out of
sample for the sets it tried: the statistic would mix the search's selection with
CSCV's, in no known direction (on pure-noise random walks it came out neither above
nor below a random sample's), so it is neither a bound nor an estimate of the
overfitting of the best. ``frame.pbo`` says so (``pbo`` None and the ``reason``);
walk-forward (:func:`engine.walk_forward`) tests a choice on bars it never saw.

Optuna is an optional dependency (``pip install -e ".[optuna]"``), imported here only.
"""

from __future__ import annotations

import math
import warnings

from engine.errors import ParameterError

#: Trials asked before their results are told back; the sets of a round run in parallel.
TRIALS_PER_ROUND = 8
#: What ``pip`` needs for ``method="optuna"``.
INSTALL_HINT = 'pip install -e ".[optuna]"'


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ParameterError(
            f"method='optuna' needs the optuna package, an optional extra: {INSTALL_HINT} "
            f"(or pip install optuna)"
        ) from None
    return optuna


class _Dimension:
    """One searched name: a list of ``values`` (categorical), or an ``int``/``float``
    range ``[low, high]``."""

    def __init__(self, name: str, *, values=None, kind=None, low=None, high=None):
        self.name, self.values, self.kind, self.low, self.high = name, values, kind, low, high

    def suggest(self, trial):
        if self.values is not None:
            # Chosen by position: the values themselves may be of any type.
            return self.values[trial.suggest_categorical(self.name,
                                                         list(range(len(self.values))))]
        if self.kind is int:
            return trial.suggest_int(self.name, self.low, self.high)
        return trial.suggest_float(self.name, self.low, self.high)

    def size(self) -> float:
        if self.values is not None:
            return len(self.values)
        return self.high - self.low + 1 if self.kind is int else math.inf


def search_space(cls, grid_names: list[str], grid_values: list[list],
                 fixed: set[str]) -> list[_Dimension]:
    """The dimensions of the search, in the strategy's declaration order (then the
    grid's run options); ParameterError naming every parameter that has no range."""
    specs = cls.parameters()
    given = dict(zip(grid_names, grid_values, strict=True))
    dims, unbounded = [], []
    for name, spec in specs.items():
        if name in given:
            dims.append(_Dimension(name, values=[_typed(spec, v, cls) for v in given[name]]))
            continue
        if name in fixed:
            continue
        kind = spec.type or type(spec.default)
        if spec.choices is not None:
            dims.append(_Dimension(name, values=list(spec.choices)))
        elif kind is bool:
            dims.append(_Dimension(name, values=[False, True]))
        elif kind in (int, float) and spec.min is not None and spec.max is not None:
            low, high = spec.min, spec.max
            if kind is int:
                low, high = math.ceil(low), math.floor(high)
            if low > high:
                raise ParameterError(f"parameter {name!r} of {cls.__name__} has an empty "
                                     f"range: min={spec.min}, max={spec.max}")
            dims.append(_Dimension(name, kind=kind, low=low, high=high))
        else:
            unbounded.append((name, spec, kind))
    if unbounded:
        name, spec, kind = unbounded[0]
        shown = getattr(kind, "__name__", "float")
        names = ", ".join(repr(n) for n, _, _ in unbounded)
        raise ParameterError(
            f"method='optuna' cannot search {names} of {cls.__name__}: "
            f"{'it' if len(unbounded) == 1 else 'each'} has no min and max (nor choices), "
            f"so there is no range to search. Fix, for each: list its values in the grid "
            f"({{{name!r}: [...]}}, --grid {name}=V1,V2 or --grid {name}=LO:HI), declare a "
            f"range in the strategy (`{name}: {shown} = param({spec.default!r}, min=..., "
            f"max=...)`), or fix its value ({name}=... as a keyword, --param {name}=VALUE)"
        )
    dims += [_Dimension(name, values=list(values)) for name, values in given.items()
             if name not in specs]
    return dims


def _typed(spec, value, cls):
    """A grid value converted to the parameter's type when it converts; otherwise as
    given, to fail as its set's error (as in a grid sweep)."""
    from engine.errors import EngineError

    try:
        return spec.convert(value, cls.__name__)
    except EngineError:
        return value


def _key(params: dict) -> str:
    return repr(sorted((k, repr(v)) for k, v in params.items()))


#: ``frame.pbo["reason"]`` of a search (see the module's docstring).
NO_PBO = ("an Optuna search chose each set after seeing the results of earlier sets on "
          "every bar, so no half of the bars is out of sample for them; walk-forward tests "
          "a choice on bars it never saw")


def search(strategy, grid=None, *, trials: int, sort_by: str | None = None, seed: int = 0,
           data=None, n_jobs: int = -1, backend: str = "local", address=None,
           progress: bool = True, run_options: dict | None = None, sweep,
           stats: bool = False, pool=None):
    """Run the Bayesian search of ``engine.sweep(..., method="optuna")``; see the
    module's docstring. Returns the rows of a grid sweep, best first.

    ``sweep`` is the module :mod:`engine.research.sweep`, which calls this function
    and hands itself over (its metric checks, execution, pool workers and row
    frame): imports then go one way only, from the sweep to the search. ``stats``:
    add the ``dsr`` column and ``frame.pbo`` (with the reason PBO is not computed).
    ``pool``: the :class:`~engine.research.pool.WorkerPool` to run the rounds on
    (default: one for this search, closed at its end).
    """
    from engine.research.sweep_plan import (
        SUMMARY_OPTION,
        Plan,
        check_names,
        normalise_grid,
        prepare,
    )
    from engine.strategy.base import Strategy

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ParameterError(f"trials must be a positive integer (the number of parameter "
                             f"sets to try); got {trials!r}")
    metric = sort_by or "sharpe"
    sweep.check_metric(metric)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParameterError(f"seed must be an integer; got {seed!r}")
    options = dict(run_options or {})
    names, values = normalise_grid(grid)
    optuna = _optuna()
    base = prepare(strategy, [], data, options)  # the strategy and the data, loaded once
    if stats:
        base.options[SUMMARY_OPTION] = True
    cls = base.cls
    check_names(cls, names, "grid name")
    clash = [n for n in names if n in options]
    if clash:
        raise ParameterError(f"{clash[0]!r} is both in the grid and given as a fixed value")
    dims = search_space(cls, names, values, set(options))
    if not dims:
        raise ParameterError(f"{cls.__name__} has nothing to search: every parameter is "
                             f"fixed; give a grid or leave a parameter free")
    space = math.prod(d.size() for d in dims)
    fixed_feeds = "feeds" in options or cls.feed_specs is Strategy.feed_specs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    direction = "minimize" if metric in sweep.LOWER_IS_BETTER else "maximize"
    study = optuna.create_study(direction=direction, sampler=sampler)

    sweep.workers_for(n_jobs, TRIALS_PER_ROUND)  # a bad n_jobs fails before any work
    own = None
    if pool is None and backend == "local":
        pool = own = sweep.workers(n_jobs)  # started by the first round that needs workers
    try:
        rounds = _Rounds(sweep, base, strategy, data, options, fixed_feeds, n_jobs, backend,
                         address, pool, stats)
        with sweep._Bar(trials, progress, "optuna") as bar:
            tasks, done, asked, reason = _trials(study, dims, space, trials, rounds, bar,
                                                 metric)
    finally:
        if own is not None:
            own.close()
    ran = [task for task in tasks if task[0] in done]
    if reason is not None:
        sweep.warn_missing(trials - asked + len(tasks) - len(ran), trials, reason)
    sweep.warn_crashed(Plan(base.ref, cls, [], ran, {}, crashed=rounds.crashed))
    names_out = [d.name for d in dims]
    tried = Plan(base.ref, cls, [], ran, {}, names_out, extras=rounds.extras)
    frame = sweep.frame_of(tried, done)
    pbo = None
    if stats:
        frame = sweep.add_statistics(tried, done, frame, no_pbo=NO_PBO)
        pbo = frame.pbo
    frame = sweep.sort_rows(frame, metric)
    frame.pbo = pbo
    return sweep.as_sweep_result(frame)



def _trials(study, dims, space, trials: int, rounds, bar, metric: str):
    """Ask, run and tell round after round; return the distinct sets asked (as tasks),
    row -> ``(metrics, error)`` of those that ran, the number of trials asked, and why
    the search stopped early (None, ``"interrupted"``, ...)."""
    from optuna.trial import TrialState

    tasks: list[tuple[int, int, dict]] = []  # every distinct set, in the order asked
    done: dict = {}
    seen: dict[str, int] = {}  # set -> its row
    asked, reason = 0, None
    try:
        while asked < trials and len(seen) < space and reason is None:
            proposals = []  # (trial, row)
            fresh = []
            for _ in range(min(TRIALS_PER_ROUND, trials - asked)):
                trial = study.ask()
                asked += 1
                params = {d.name: d.suggest(trial) for d in dims}
                key = _key(params)
                if key not in seen:
                    seen[key] = len(tasks)
                    tasks.append((len(tasks), 0, params))
                    fresh.append(tasks[-1])
                proposals.append((trial, seen[key]))
                if len(seen) >= space:
                    break
            if fresh:
                finished, reason = rounds.run(fresh)
                done.update(finished)
            bar.advance(len(proposals))
            for trial, row in proposals:
                metrics = done[row][0] if row in done else None
                value = (metrics or {}).get(metric)
                if value is None or not math.isfinite(value):
                    # failed, undefined, or never ran (interrupted)
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, float(value))
    except KeyboardInterrupt:
        reason = "interrupted"
    return tasks, done, asked, reason


class _Rounds:
    """Runs each round's sets as one small sweep (:func:`engine.research.sweep.execute`:
    in this process for one worker, else the search's worker pool or Dask), over the
    panels loaded once, or joined for the round's sets when the strategy's feeds
    depend on its parameters. Returns row -> ``(metrics, error)``; the rows whose set
    killed its worker process are kept in ``crashed``, the sets' summaries for the
    statistics in ``extras`` (row -> summary)."""

    def __init__(self, sweep, base, strategy, data, options, fixed_feeds, n_jobs, backend,
                 address, pool, stats):
        self.sweep, self.base, self.strategy, self.data = sweep, base, strategy, data
        self.options, self.fixed_feeds = options, fixed_feeds
        self.n_jobs, self.backend, self.address = n_jobs, backend, address
        self.pool, self.stats = pool, stats
        self.crashed: list[int] = []
        self.extras: dict = {}

    def run(self, fresh: list[tuple[int, int, dict]]) -> tuple[dict, str | None]:
        from engine.research.sweep_plan import SUMMARY_OPTION, Plan, prepare

        base = self.base
        if self.fixed_feeds:
            plan = Plan(base.ref, base.cls, base.panels, fresh, base.options, [])
            rows = {row: row for row, _, _ in fresh}
        else:
            plan = prepare(self.strategy, [params for _, _, params in fresh], self.data,
                           self.options)
            if self.stats:
                plan.options[SUMMARY_OPTION] = True
            rows = {number: row for number, (row, _, _) in enumerate(fresh)}
        finished, reason = self.sweep.execute(plan, n_jobs=self.n_jobs,
                                              backend=self.backend, address=self.address,
                                              progress=False, pool=self.pool)
        self.crashed += [rows[number] for number in plan.crashed]
        self.extras.update({rows[number]: extra for number, extra in plan.extras.items()})
        return {rows[number]: outcome for number, outcome in finished.items()}, reason
