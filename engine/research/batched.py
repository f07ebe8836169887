"""Batched sweeps: the parameter sets of a vectorised strategy as columns of one pass.

:func:`engine.sweep` hands each task (a batch of parameter sets) to
:func:`start_batched` (:func:`run_batched` waits for it) when the strategy has a
vectorised path (``signals``). There,

* the sets are grouped by their panel and their run options (a grid over
  ``commission`` makes one group per value);
* each set's ``signals`` runs once, with the indicators of
  :mod:`engine.indicators` that its module calls memoised (:class:`IndicatorMemo`):
  ten distinct ``fast`` windows cost ten moving averages however many sets use
  them. A strategy with ``signals_batch`` gives the signals of all the group's sets
  in one call instead (:func:`_hooked`), checked against ``signals`` and audited for
  every parameter value not seen yet in the worker;
* the signals of a group are stacked as ``(n_bars, n_sets, n_symbols)`` arrays and
  :func:`engine._core.batch.simulate` advances every set's account in one compiled
  loop, then computes the statistics behind the metrics; the metrics are finished
  by :class:`~engine.analysis.streaming_metrics.StreamingMetrics`, the code
  :func:`engine.run` uses, so a row equals the set's run alone bit for bit.

What the batched path does not cover goes through the per-set path
(:func:`engine.run` per set), decided per group and per set:

* per plan: a strategy without ``signals``, ``mode="event"``, ``audit="full"``,
  run options other than :data:`OPTIONS`, ``feeds`` other than none, data with a
  missing close, more than :data:`MAX_BARS` bars, or run options that
  :func:`engine.run` refuses (the per-set path gives the error);
* per set: a set whose parameters or ``signals`` raise (the per-set path gives the
  error row, with the same message), ``Signals`` fields beyond ``entries, exits,
  size, size_type, direction`` set away from their defaults, orders placed from
  inside ``signals``, an account that leaves the simulator's model (an exit order
  rejected; non-finite equity), and with ``strict=True`` any set with a rejected
  order.

The look-ahead audit. The per-set path audits every set's ``signals`` by prefix
cuts (:mod:`engine.strategy.lookahead`), 4-6 times the cost of the signals. The
batched path audits a set by the same cuts when one of its parameter values has
not been audited yet in this worker process for this strategy and data; the other
sets run with ``audit="off"``. Every value of every parameter is thus audited at
least once, but not every combination: a leak that appears only for a combination
of values none of whose parts leaked alone goes through. Once a leak is found, every
later set in that worker is audited; the sets run unaudited before keep their rows, and
which ones those are depends on how the sets were split among the workers.
``audit="full"`` runs the per-set path (every set, every bar);
``ENGINE_SWEEP_BATCHED=0`` turns batching off.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import threading

import numpy as np

from engine._core.batch import sealed_key as _sealed_key

#: Environment switch: "0" runs every set on the per-set path (the workers inherit it).
ENV = "ENGINE_SWEEP_BATCHED"
#: Run options the batched path supports (any other sends the plan to the per-set path).
OPTIONS = frozenset({
    "cash", "commission", "commission_per_share", "commission_fixed", "commission_minimum",
    "slippage_bps", "slippage_fixed", "fill", "mode", "fractional", "shorting",
    "borrow_rate", "periods_per_year", "risk_free", "feeds", "strict", "audit", "start",
    "end",
})
#: account/time-in-force options the batched path covers at their defaults only (a cash
#: account, whole fills, buy-and-hold of the data as the benchmark, prices as given).
DEFAULT_ONLY = {"leverage": 1.0, "maintenance_margin": 0.25, "margin_rate": 0.0,
                "max_volume_share": None, "benchmark": None, "adjust": False}
#: The fields of ``Signals`` the simulator reads; any other set away from its default
#: (a stop-loss, weights, ...) sends that set to the per-set path.
SIGNAL_FIELDS = frozenset({"entries", "exits", "size", "size_type", "direction",
                           "indicators"})  # indicators: for the chart, they do not trade
#: The values of Signals.size_type and direction (engine.backtest.run checks the same).
SIZE_TYPES = ("all_cash", "shares", "cash", "percent", "target_percent")
DIRECTIONS = ("long", "short")
#: The plan option asking each set for its returns' summary (sweep_plan.SUMMARY_OPTION).
SUMMARY_OPTION = "_set_summaries"
#: The plan option giving the threads each worker may use (sweep_plan.THREADS_OPTION).
THREADS_OPTION = "_threads"
#: Longest data batched: compute_metrics feeds StreamingMetrics in slices of this many
#: bars, and the compiled statistics reproduce one slice.
MAX_BARS = 1 << 16
#: Results the indicator memo keeps per worker process (the audit's cuts of the data
#: are kept too: the sets audited after the first share them), and their memory.
MEMO_ENTRIES = 8192
MEMO_BYTES = 256 << 20
#: Memory ParameterSets.map's kept columns may hold per worker process, and how many
#: functions' columns (then emptied: a function made per batch is never found again).
COLUMNS_BYTES = 256 << 20
COLUMNS_STORES = 64


#: Environment switch: "0" leaves the C allocator's settings alone (see keep_freed_memory).
MALLOC_ENV = "ENGINE_SWEEP_MALLOC"
#: glibc's mallopt settings made by keep_freed_memory: the thresholds its own dynamic
#: rule reaches once arrays of up to 32 MB have been freed (M_MMAP_THRESHOLD's maximum
#: on 64-bit systems, and twice that for M_TRIM_THRESHOLD).
MALLOC_SETTINGS = {-3: 32 << 20, -1: 64 << 20}   # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
_MALLOC_DONE: list = []


def keep_freed_memory() -> bool:
    """Let the process reuse the memory of freed large arrays (glibc only; once).

    A batch's signals are several arrays of a few megabytes each, made and freed for
    every batch. With glibc's default settings each one is mapped from the system
    anew (or the heap is trimmed back after each batch), and every page of it faults
    when first written: about 14,000 page faults for 1,000 sets of 2,520 bars, a fifth
    of the sweep's time. With the thresholds of :data:`MALLOC_SETTINGS`, arrays below
    32 MB come from the heap, and up to 64 MB of freed memory stays with the process
    for the next batch. ``ENGINE_SWEEP_MALLOC=0`` leaves the allocator alone.
    Returns whether the settings were made.
    """
    if _MALLOC_DONE:
        return _MALLOC_DONE[0]
    done = False
    if os.environ.get(MALLOC_ENV, "1").strip().lower() not in ("0", "off", "false", "no") \
            and sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            try:
                import ctypes

                mallopt = ctypes.CDLL(None).mallopt
                done = all(mallopt(option, value) == 1
                           for option, value in MALLOC_SETTINGS.items())
            except (OSError, AttributeError):
                done = False
    _MALLOC_DONE.append(done)
    return done


def enabled() -> bool:
    """Whether sweeps batch vectorised strategies (``ENGINE_SWEEP_BATCHED``, default on)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


# --------------------------------------------------------------------------- memo


class _Unkeyable(Exception):
    pass


def _key(value):
    if isinstance(value, np.ndarray):
        # Only sealed arrays (the panel's bars and their views): nothing can change
        # their contents, and the memo holds them, so their memory is not reused.
        key = _sealed_key(value)
        if key is None:
            raise _Unkeyable
        return key
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    raise _Unkeyable


def _nbytes(result) -> int:
    if isinstance(result, np.ndarray):
        return result.nbytes
    if isinstance(result, tuple):
        return sum(_nbytes(part) for part in result)
    return 0


def _copy(result):
    if isinstance(result, np.ndarray):
        return result.copy()
    if isinstance(result, tuple):
        return type(result)(*(_copy(part) for part in result)) if hasattr(result, "_fields") \
            else tuple(_copy(part) for part in result)
    return result


class IndicatorMemo:
    """Memoised calls of the indicator functions of :mod:`engine.indicators`.

    A call is looked up by the function, and each argument: a sealed array (the
    panel's data, which nothing can change) by its memory address, shape, strides
    and dtype, a number or string by its value. Any other argument (an array the
    strategy made, writeable) is not memoised: the call runs. The memo keeps each
    keyed input alive, so no other array can take its address while its entry
    exists, and it is bound to one panel: :meth:`for_panel` empties it when the
    panel changes. Callers get a copy of the stored result, so a strategy writing
    into an indicator changes no other set's.
    """

    def __init__(self) -> None:
        self.panel = None
        self.results: dict = {}
        self.derived: dict = {}     # per panel: the benchmark, periods per year
        self.columns: dict = {}     # per panel: ParameterSets.map's results
        self.hits = 0
        self.calls = 0
        self.nbytes = 0             # of the results kept

    def for_panel(self, panel) -> IndicatorMemo:
        if panel is not self.panel:
            self.nbytes = 0
            self.results.clear()
            self.derived.clear()
            self.columns.clear()
            self.panel = panel
        elif len(self.results) > MEMO_ENTRIES or self.nbytes > MEMO_BYTES:
            self.results.clear()
            self.nbytes = 0
        return self

    def wrap(self, func):
        def memoised(*args, **kwargs):
            self.calls += 1
            try:
                key = (func, tuple(_key(a) for a in args),
                       tuple(sorted((k, _key(v)) for k, v in kwargs.items())))
            except _Unkeyable:
                return func(*args, **kwargs)
            found = self.results.get(key)
            if found is None:
                found = self.results[key] = (func(*args, **kwargs), args, kwargs)
                self.nbytes += _nbytes(found[0])
            else:
                self.hits += 1
            return _copy(found[0])

        memoised.__wrapped__ = func
        memoised.__name__ = getattr(func, "__name__", "indicator")
        return memoised


_MEMO = IndicatorMemo()
#: Sets run in this process by each path since it started (for tests and diagnostics).
COUNTS = {"batched": 0, "alone": 0, "signals_batch": 0}


def _indicator_functions() -> dict:
    from engine.strategy import indicators

    names = ("sma", "ema", "rsi", "macd", "rolling_std", "volatility", "rolling_corr",
             "rolling_max", "rolling_min", "returns")
    return {id(getattr(indicators, n)): getattr(indicators, n) for n in names}


class _Patched:
    """The strategy module's indicator names bound to memoised versions, for a batch."""

    def __init__(self, cls, memo: IndicatorMemo):
        self.module = sys.modules.get(cls.__module__)
        self.memo = memo
        self.saved: dict = {}

    def __enter__(self):
        if self.module is None:
            return self
        known = _indicator_functions()
        for name, value in list(vars(self.module).items()):
            if id(value) in known and value is known[id(value)]:
                self.saved[name] = value
                setattr(self.module, name, self.memo.wrap(value))
        return self

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            setattr(self.module, name, value)


# --------------------------------------------------------------------------- audit


_AUDITED: dict = {}  # (strategy class, panel id) -> [panel, audited pairs, leak found]


def _audit_entry(cls, panel) -> list:
    key = (cls, id(panel))
    entry = _AUDITED.get(key)
    if entry is None or entry[0] is not panel:
        if len(_AUDITED) > 16:
            _AUDITED.clear()
        # [panel, audited pairs, leak found, signals_batch failure, pairs it was checked on]
        entry = _AUDITED[key] = [panel, set(), False, None, set()]
    return entry


def _audit_for(cls, panel, params: dict, audit: str) -> tuple[str, set]:
    """``("cuts", pairs)`` when a value of ``params`` is not audited yet here (or a leak
    was found here: then every set is), else ``("off", pairs)``."""
    pairs = {(name, repr(value)) for name, value in params.items()} or {("", "")}
    if audit != "cuts":
        return audit, pairs
    entry = _audit_entry(cls, panel)
    return ("cuts" if entry[2] or not pairs <= entry[1] else "off"), pairs


def _audited(cls, panel, pairs: set, leaked: bool) -> None:
    entry = _audit_entry(cls, panel)
    if leaked:
        entry[2] = True
    else:
        entry[1].update(pairs)


#: Sets a worker process must have before a batched sweep starts one: a worker takes
#: about half a second to start (a fresh interpreter, NumPy, the engine, the data), and
#: in one process the batched path already spreads its compiled pass over every core
#: (threads), so a second process pays only from a few tens of thousands of sets.
SETS_PER_WORKER = 15_000


def likely_batched(cls, options: dict) -> bool:
    """Whether a plan's sets will (almost all) take the batched path: vectorised, with
    run options it covers. The sweep starts fewer workers for such plans."""
    if not enabled() or not cls.has_vector_path():
        return False
    run_names = _run_option_names()
    return _settings({k: v for k, v in options.items() if k in run_names}) is not None


# --------------------------------------------------------------------------- batches


def run_batched(cls, panels, options: dict, batch, run_one, outcome) -> list:
    """Run a task's ``(row, panel_number, params)`` sets; one outcome per set, in order.

    ``run_one(tasks)`` is the per-set path, for what the batched path does not cover;
    ``outcome(row, metrics, error)`` makes a set's result as it returns them
    (:class:`engine.research.sweep_plan.SetOutcome`).
    """
    return start_batched(cls, panels, options, batch, run_one, outcome)()


def start_batched(cls, panels, options: dict, batch, run_one, outcome):
    """:func:`run_batched` in two halves: the signals now, the simulation in threads;
    returns ``finish()``, which waits for it and gives the outcomes. A sweep in one
    process starts the next task's signals while this one's simulation runs."""
    if not cls.has_vector_path() or options.get("mode", "auto") == "event":
        COUNTS["alone"] += len(batch)
        outcomes = run_one(batch)
        return lambda: outcomes
    keep_freed_memory()
    with _STATE_LOCK, no_cyclic_gc():
        finish = _start_batched(cls, panels, options, batch, run_one, outcome)

    def finished() -> list:
        with _STATE_LOCK, no_cyclic_gc():
            return finish()

    return finished


#: The worker process's memo, audit records and patched strategy modules are shared:
#: tasks that run in threads of one process (a Dask worker's) take turns with them.
_STATE_LOCK = threading.RLock()


class no_cyclic_gc:  # noqa: N801 - a context manager, named as one
    """The cyclic garbage collector paused (then restored as it was).

    A batch makes a few objects per set (rows, parameter dicts) that hold no cycles;
    left on, the collector would walk them, and at times every object of the process
    (a notebook's whole heap), several times per batch. Reference counting frees them
    as usual; cycles made meanwhile are collected once the collector is back on.
    """

    def __enter__(self):
        import gc

        self.was = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        import gc

        if self.was:
            gc.enable()


def _start_batched(cls, panels, options: dict, batch, run_one, outcome):
    # The caller's options object is the same for every task of one sweep (in this
    # process, or in a pool worker): a signals_batch failure applies to that sweep only.
    token = options
    options = dict(options)
    summaries = bool(options.pop(SUMMARY_OPTION, False))
    threads = int(options.pop(THREADS_OPTION, 1))
    run_names = _run_option_names()
    base_run = {k: v for k, v in options.items() if k in run_names}
    base_strategy = {k: v for k, v in options.items() if k not in run_names}
    groups: dict = {}
    for task in batch:
        row, number, params = task
        if params.keys().isdisjoint(run_names):    # the usual case: a grid of parameters
            run_opts, strategy = base_run, {**base_strategy, **params}
        else:
            merged = {**options, **params}
            run_opts = {k: v for k, v in merged.items() if k in run_names}
            strategy = {k: v for k, v in merged.items() if k not in run_names}
        key = (number, repr(sorted(run_opts.items(), key=lambda item: item[0]))
               if run_opts is not base_run else None)
        groups.setdefault(key, (number, run_opts, []))[2].append((task, strategy, params))
    started = [_start_group(cls, panels[number], run_opts, members, run_one, outcome,
                            summaries, threads, token)
               for number, run_opts, members in groups.values()]

    def finish() -> list:
        done: dict = {}
        for group in started:
            for result in group():
                done[result[0]] = result
        return [done[row] for row, _, _ in batch]

    return finish


@functools.lru_cache(maxsize=1)
def _run_option_names() -> frozenset:
    import inspect

    from engine.backtest.run import run

    return frozenset(name for name, p in inspect.signature(run).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _settings(run_opts: dict) -> dict | None:
    """The account settings of a group, or None when the batched path does not cover it."""
    if any(run_opts.get(name, default) != default for name, default in DEFAULT_ONLY.items()):
        return None
    run_opts = {k: v for k, v in run_opts.items() if k not in DEFAULT_ONLY}
    if not set(run_opts) <= OPTIONS:
        return None
    if run_opts.get("mode", "auto") not in ("auto", "vector"):
        return None
    if run_opts.get("fill", "open") not in ("open", "close"):
        return None
    if run_opts.get("audit", "cuts") not in ("cuts", "off"):
        return None
    if run_opts.get("feeds") or run_opts.get("start") is not None \
            or run_opts.get("end") is not None:
        return None
    return {
        "cash": float(run_opts.get("cash", 100_000.0)),
        "commission_percent": float(run_opts.get("commission", 0.0)),
        "commission_per_share": float(run_opts.get("commission_per_share", 0.0)),
        "commission_fixed": float(run_opts.get("commission_fixed", 0.0)),
        "commission_minimum": float(run_opts.get("commission_minimum", 0.0)),
        "slippage_bps": float(run_opts.get("slippage_bps", 0.0)),
        "slippage_fixed": float(run_opts.get("slippage_fixed", 0.0)),
        "borrow_rate": float(run_opts.get("borrow_rate", 0.0)),
        "fractional": bool(run_opts.get("fractional", False)),
        "shorting": bool(run_opts.get("shorting", False)),
        "fill_on_close": run_opts.get("fill", "open") == "close",
    }


def _benchmark(panel, cash: float):
    """The benchmark's curve and the statistics StreamingMetrics.add_bars takes of it."""
    from engine.backtest.benchmark import benchmark_equity

    bench = benchmark_equity(panel, cash)
    if bench is None:
        return None
    prev = np.empty(bench.size)
    prev[0] = cash
    prev[1:] = bench[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = bench / prev - 1.0
    rb = np.where(prev > 0, rb, np.nan)
    b_nan = bool(np.isnan(rb).any())
    info = {"last": float(bench[-1]), "nan": b_nan, "max_abs": 0.0, "dy": None,
            "mean": 0.0, "m2": 0.0, "finite": bool(np.isfinite(bench).all())}
    if not b_nan:
        info["max_abs"] = max(0.0, float(np.max(np.abs(rb))))
        my = float(rb.mean())
        dy = rb - my
        info.update(dy=np.ascontiguousarray(dy), mean=my, m2=float(np.sum(dy * dy)))
    return info


def instance_factory(cls):
    """``cls(**params)`` for many sets: Strategy.__init__'s steps with the class's
    parameter declarations collected once (``resolve_params`` collects them per call).

    A class with its own ``__init__``, or parameters it does not declare, goes through
    ``cls(**params)`` itself (the latter for its error message).
    """
    from engine.strategy.base import Strategy
    from engine.strategy.params import collect_params

    if cls.__init__ is not Strategy.__init__:
        return cls
    specs = collect_params(cls)
    name = cls.__name__

    defaults = {key: spec.default for key, spec in specs.items()}
    converted: dict = {}   # (name, type, value) -> the converted value: convert is pure

    def make(**given):
        if not given.keys() <= specs.keys():
            return cls(**given)
        values = dict(defaults)
        for key, value in given.items():
            found = converted.get((key, type(value), value), converted)
            if found is converted:
                found = specs[key].convert(value, name)
                if isinstance(value, (int, float, str, bool)) and len(converted) < 100_000:
                    converted[(key, type(value), value)] = found
            values[key] = found
        instance = cls.__new__(cls)
        instance.params = values
        for key, value in values.items():
            setattr(instance, key, value)
        instance.validate()
        return instance

    return make


def _plain_arrays(signals, shape: tuple, no_size: np.ndarray):
    """_signal_arrays' output for the common case it would pass unchanged (boolean
    C-contiguous entries and exits of the panel's shape, no size, valid settings), else
    None (then _signal_arrays checks and converts, with its messages)."""
    if type(signals).__name__ != "Signals" or signals.size is not None \
            or signals.size_type not in SIZE_TYPES or signals.direction not in DIRECTIONS:
        return None
    out = []
    for arr in (signals.entries, signals.exits):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.bool_ \
                or not arr.flags.c_contiguous:
            return None
        if arr.ndim == 1 and shape[1] == 1:
            arr = arr.reshape(-1, 1)
        if arr.shape != shape:
            return None
        out.append(arr.view(np.uint8))
    out.append(no_size)
    return out


def _other_fields_set(signals) -> bool:
    """Whether ``signals`` sets a field the simulator does not read (a stop-loss, ...)."""
    for f in dataclasses.fields(signals):
        if f.name in SIGNAL_FIELDS:
            continue
        value = getattr(signals, f.name)
        if value is f.default:
            continue
        try:
            if bool(value == f.default):
                continue
        except Exception:
            pass
        return True
    return False


def _run_group(cls, panel, run_opts: dict, members: list, run_one, outcome,
               summaries: bool = False, threads: int = 1) -> list:
    """One group's outcomes (:func:`_start_group`, finished)."""
    return _start_group(cls, panel, run_opts, members, run_one, outcome, summaries,
                        threads, object())()


def _now(outcomes: list):
    return lambda: outcomes


def _start_group(cls, panel, run_opts: dict, members: list, run_one, outcome,
                 summaries: bool = False, threads: int = 1, sweep_token=None):
    """A group's signals, and its simulation started in threads; returns ``finish()``
    (the outcomes, in any order)."""
    from engine._core.batch import SIZE_MODES, STAT_NAMES, simulate
    from engine._core.broker import Broker
    from engine._core.loop import Cursor
    from engine.analysis.conventions import choose_periods_per_year, per_bar_rate
    from engine.backtest.run import _signal_arrays, _vector_signals, check_commission
    from engine.errors import LookAheadError
    from engine.strategy.base import VectorData
    from engine.strategy.lookahead import check_audit

    tasks = [task for task, _, _ in members]
    settings = _settings(run_opts)
    close = panel.fields["close"]
    if settings is None or not 0 < panel.n_bars <= MAX_BARS or not np.isfinite(close).all():
        COUNTS["alone"] += len(tasks)
        return _now(run_one(tasks))
    try:  # what engine.run refuses, it refuses with its own message on the per-set path
        audit = check_audit(run_opts.get("audit", "cuts"))
        check_commission(run_opts.get("commission", 0.0))
        memo = _MEMO.for_panel(panel)
        key = ("ppy", repr(run_opts.get("periods_per_year")))
        if key not in memo.derived:
            memo.derived[key] = choose_periods_per_year(run_opts.get("periods_per_year"),
                                                        panel.local_ts)[0]
        ppy = memo.derived[key]
        risk_free = float(run_opts.get("risk_free", 0.0))
        rf_bar = per_bar_rate(risk_free, ppy)
        account = {k: v for k, v in settings.items() if k != "cash"}

        def new_broker():
            return Broker(panel.fields["open"], panel.fields["high"], panel.fields["low"],
                          close, settings["cash"], periods_per_year=float(ppy), **account)

        broker = new_broker()
        key = ("benchmark", settings["cash"])
        if key not in memo.derived:
            memo.derived[key] = _benchmark(panel, settings["cash"])
        bench = memo.derived[key]
        if bench is not None and not bench["finite"]:
            raise ValueError("benchmark not finite")
    except Exception:
        COUNTS["alone"] += len(tasks)
        return _now(run_one(tasks))

    strict = bool(run_opts.get("strict", False))
    kept, entries, exits, sizes, modes, directions, alone = [], [], [], [], [], [], []
    make = instance_factory(cls)
    shape = (panel.n_bars, panel.n_symbols)
    no_size = np.zeros((1, panel.n_symbols))
    out, stacked, note, noted = [], None, None, frozenset()
    if cls.has_batch_path() and not _audit_entry(cls, panel)[2]:
        kept, stacked, failed, fallback, note = _hooked(
            cls, panel, members, make, memo, audit, new_broker, alone, sweep_token)
        if failed is not None:           # the hook disagrees or is malformed: its sets say so
            message, tasks = failed
            out = [outcome(task[0], None, message) for task in tasks]
        members = fallback or []         # the hook raised, or a leak: signals per set
        if note:
            noted = frozenset(task[0] for task, _, _ in members)
    with _Patched(cls, memo):
        for task, strategy, params in members:
            try:
                instance = make(**strategy)
                instance._bind(panel, broker, Cursor(), audit=audit)
                mode, pairs = _audit_for(cls, panel, params, audit)
                if mode == "off":  # _vector_signals without its audit machinery
                    signals = instance.signals(VectorData(panel))
                    entry, exit_, size = _plain_arrays(signals, shape, no_size) or \
                        _signal_arrays(signals, panel, cls.__name__)
                else:
                    signals, entry, exit_, size = _vector_signals(instance, panel, mode)
                    if mode == "cuts":
                        _audited(cls, panel, pairs, False)
            except LookAheadError:
                _audited(cls, panel, set(), True)  # from now on every set is audited here
                alone.append(task)
                continue
            except Exception:
                alone.append(task)
                continue
            if broker.n_orders:  # signals placed orders itself: the per-set path runs them
                broker = new_broker()
                alone.append(task)
                continue
            if _other_fields_set(signals):
                alone.append(task)
                continue
            kept.append(task)
            entries.append(entry)
            exits.append(exit_)
            sizes.append(size)
            modes.append(SIZE_MODES[signals.size_type])
            directions.append(1 if signals.direction == "long" else -1)
    if kept and not stacked:
        n = panel.n_bars
        if any(s.shape[0] != 1 for s in sizes):
            sizes = [np.broadcast_to(s, (n, s.shape[1])) for s in sizes]
        stacked = (np.stack(entries, axis=1), np.stack(exits, axis=1),
                   np.stack(sizes, axis=1), np.asarray(modes, dtype=np.int8),
                   np.asarray(directions, dtype=np.int8))
    simulated = None
    if kept:
        simulated = _in_threads(
            simulate, threads,
            np.ascontiguousarray(panel.fields["open"]), np.ascontiguousarray(close),
            *stacked,
            settings["cash"], periods_per_year=float(ppy), rf_bar=rf_bar,
            bench_dy=None if bench is None or bench["nan"] else bench["dy"],
            bench_mean=0.0 if bench is None else bench["mean"],
            bench_m2=0.0 if bench is None else bench["m2"],
            summary_edges=_summary_edges(panel.n_bars) if summaries else None,
            **{k: v for k, v in account.items()},
        )

    def finish() -> list:
        if simulated is not None:
            n = panel.n_bars
            stats_rows, set_rows = simulated()
            stats = dict(zip(STAT_NAMES, stats_rows, strict=True))
            rows = _metric_rows(stats, n, settings["cash"], ppy, risk_free, bench)
            extras = set_rows
            ran = 0
            for j, task in enumerate(kept):
                if stats["outside"][j] or (strict and stats["rejected"][j]):
                    alone.append(task)
                    continue
                out.append(outcome(task[0], rows[j], None,
                                   None if extras is None else extras[j]))
                ran += 1
            COUNTS["batched"] += ran
        if alone:
            COUNTS["alone"] += len(alone)
            out.extend(run_one(alone))
        if note:
            return [o._replace(note=note) if o.row in noted else o for o in out]
        return out

    return finish


def _hooked(cls, panel, members: list, make, memo: IndicatorMemo, audit: str, new_broker,
            alone: list, sweep_token):
    """The signals of a group's sets from one ``cls.signals_batch`` call, checked.

    Returns ``(kept, stacked, failed, fallback, note)``: the tasks simulated and
    ``simulate``'s signal arguments for them; ``(message, tasks)`` when the hook
    disagreed with ``signals`` or returned something malformed (those sets' rows are
    errors, and every later group's of this sweep in this worker); ``fallback``, the
    members to run with ``signals`` per set instead (the hook raised, or a leak was
    found), with ``note`` saying why. Sets whose parameters are invalid, or whose own
    ``signals`` raise or place orders, are appended to ``alone`` (the per-set path
    gives their rows).

    Checked: every set with a parameter value whose columns were not compared with its
    own ``signals`` yet in this worker, and (``audit="cuts"``) every set with a value
    not audited yet, whose own ``signals`` are audited by cuts as ``engine.run`` does.
    A set whose values were all checked in other sets takes the hook's columns
    unchecked: a hook that is wrong only for some combinations of checked values goes
    through (:func:`engine.research.check.check_signals_batch` compares every set).
    """
    import inspect

    from engine._core.loop import Cursor
    from engine.errors import LookAheadError
    from engine.strategy.base import VectorData
    from engine.strategy.parameter_sets import ParameterSets

    valid = []
    for task, strategy, params in members:
        try:
            valid.append((task, params, make(**strategy)))
        except Exception:
            alone.append(task)
    if not valid:
        return [], None, None, None, None
    tasks = [task for task, _, _ in valid]
    name = cls.__name__
    entry = _audit_entry(cls, panel)
    if entry[3] is not None and entry[3][1] is sweep_token:
        return [], None, (entry[3][0], tasks), None, None
    if entry[2]:        # a leak was found here: every set is audited, signals per set
        return [], None, None, members, None
    if not isinstance(inspect.getattr_static(cls, "signals_batch"), classmethod):
        return [], None, None, members, (
            f"{name}.signals_batch is not a classmethod: add @classmethod above "
            f"`def signals_batch(cls, data, sets)`; the sets ran signals one by one")
    if sum(store.nbytes for store in memo.columns.values()) > COLUMNS_BYTES \
            or len(memo.columns) > COLUMNS_STORES:
        memo.columns.clear()       # many distinct values of long data: start afresh
    sets = ParameterSets([_parameters_of(instance) for _, _, instance in valid],
                         cache=memo.columns)
    try:
        signals = cls.signals_batch(VectorData(panel), sets)
    except Exception as exc:
        return [], None, None, members, (
            f"{name}.signals_batch raised {_located(exc)} on a batch of {len(valid)} "
            f"parameter sets; those sets ran signals one by one")
    try:
        stacked = batch_arrays(signals, panel, len(valid), name)
    except Exception as exc:
        entry[3] = (f"{exc}. Fix signals_batch, or remove it (the sweep then calls "
                    f"signals once per set)", sweep_token)
        return [], None, (entry[3][0], tasks), None, None
    work, checked, audited = [], set(entry[4]), set(entry[1])
    for j, (_, params, _) in enumerate(valid):
        pairs = {(key, repr(value)) for key, value in params.items()} or {("", "")}
        audit_it = audit == "cuts" and not pairs <= audited
        if audit_it or not pairs <= checked:
            checked |= pairs
            if audit_it:
                audited |= pairs
            work.append((j, pairs, audit_it))
    drop = []
    with _Patched(cls, memo):
        for j, pairs, audit_it in work:
            instance = valid[j][2]
            params = valid[j][1]
            broker = new_broker()
            try:
                instance._bind(panel, broker, Cursor(), audit=audit)
                own = _own_signals(instance, panel, "cuts" if audit_it else "off")
            except LookAheadError:
                _audited(cls, panel, set(), True)   # every later set is audited here
                return [], None, None, members, None
            except Exception:
                drop.append(j)
                continue
            if broker.n_orders:
                drop.append(j)
                continue
            difference = _difference(own, stacked, j, panel, name)
            if difference is not None:
                shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the defaults"
                entry[3] = (f"{name}.signals_batch disagrees with {name}.signals for the set "
                            f"{shown}: {difference}. A sweep's row must be what engine.run "
                            f"gives that set. Fix signals_batch (column j of its arrays is set "
                            f"j of the batch), or remove it (the sweep then calls signals once "
                            f"per set)", sweep_token)
                return [], None, (entry[3][0], tasks), None, None
            entry[4].update(pairs)
            if audit_it:
                _audited(cls, panel, pairs, False)
    if drop:
        alone.extend(valid[j][0] for j in drop)
        keep = np.setdiff1d(np.arange(len(valid)), drop)
        if not keep.size:
            return [], None, None, None, None
        stacked = tuple(np.ascontiguousarray(a[:, keep] if a.ndim == 3 else a[keep])
                        for a in stacked)
        tasks = [tasks[j] for j in keep.tolist()]
    COUNTS["signals_batch"] += len(tasks)
    return tasks, stacked, None, None, None


def _parameters_of(instance) -> dict:
    """A set's parameters as its ``signals`` sees them on ``self`` (``validate`` may
    have changed them)."""
    return {name: getattr(instance, name, value) for name, value in instance.params.items()}


def _located(exc: BaseException) -> str:
    """``KeyError: 'oops' (strat.py, line 12, in signals_batch)``: the error and the
    last line of the strategy's code it went through."""
    import traceback

    engine_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(engine_dir)]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno}, in {frames[-1].name})" \
        if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _own_signals(instance, panel, mode: str):
    """A set's own ``signals`` (``(signals, entries, exits, size)``), converted as the
    per-set path converts them, and audited by cuts with ``mode="cuts"``."""
    from engine.backtest.run import _signal_arrays, _vector_signals
    from engine.strategy.base import VectorData

    if mode == "cuts":
        return _vector_signals(instance, panel, "cuts")
    signals = instance.signals(VectorData(panel))
    return (signals, *_signal_arrays(signals, panel, type(instance).__name__)[:3])


def _difference(own, stacked, j: int, panel, name: str) -> str | None:
    """Where set ``j``'s columns of ``signals_batch`` differ from its own signals."""
    from engine.strategy.lookahead import where

    signals, entries, exits, size = own
    if _other_fields_set(signals):
        used = ", ".join(signals.options_used()) or "a field beyond entries and exits"
        return (f"signals sets {used}, which signals_batch cannot give (a batched sweep "
                f"simulates entries, exits and sizes only)")
    b_entries, b_exits, b_size, b_modes, b_directions = stacked
    k = panel.n_symbols
    for label, mine, theirs in (("entries", b_entries[:, j, :], entries),
                                ("exits", b_exits[:, j, :], exits)):
        unequal = np.flatnonzero((mine != 0).ravel() != (np.asarray(theirs) != 0).ravel())
        if unequal.size:
            row, col = divmod(int(unequal[0]), k)
            return (f"{label} differ at {where(panel, row, col, k)} (signals_batch: "
                    f"{bool(mine[row, col])}, signals: {bool(theirs[row, col])})")
    from engine._core.batch import SIZE_MODES

    if int(b_modes[j]) != SIZE_MODES[signals.size_type]:
        return f"size_type differs (signals: {signals.size_type!r})"
    if int(b_directions[j]) != (1 if signals.direction == "long" else -1):
        return f"direction differs (signals: {signals.direction!r})"
    mine = np.broadcast_to(b_size[:, j, :], (panel.n_bars, k))
    theirs = np.broadcast_to(size, (panel.n_bars, k))
    unequal = np.flatnonzero(~((mine == theirs) | (np.isnan(mine) & np.isnan(theirs))).ravel())
    if unequal.size:
        row, col = divmod(int(unequal[0]), k)
        return (f"size differs at {where(panel, row, col, k)} (signals_batch: "
                f"{mine[row, col]!r}, signals: {theirs[row, col]!r})")
    return None


def batch_arrays(signals, panel, n_sets: int, name: str) -> tuple:
    """``signals_batch``'s Signals as :func:`engine._core.batch.simulate` takes them:
    ``(entries, exits, size, modes, directions)``, or a StrategyError saying what is
    wrong with them."""
    from engine._core.batch import SIZE_MODES
    from engine.errors import StrategyError
    from engine.strategy.base import Signals

    where = f"{name}.signals_batch"
    if not isinstance(signals, Signals):
        raise StrategyError(f"{where} must return engine.Signals(entries=..., exits=...); "
                            f"got {type(signals).__name__}")
    used = signals.options_used()
    if used:
        raise StrategyError(f"{where} sets {', '.join(used)}; a batched sweep simulates "
                            f"entries, exits and sizes only")
    n, k = panel.n_bars, panel.n_symbols
    expected = (n, n_sets) if k == 1 else (n, n_sets, k)
    out = []
    for label in ("entries", "exits"):
        arr = getattr(signals, label)
        arr = np.asarray(arr) if arr is not None else None
        if arr is None or arr.shape not in (expected, (n, n_sets, k)):
            raise StrategyError(
                f"{where}: {label} has shape {None if arr is None else arr.shape}; expected "
                f"{expected} (one row per bar, one column per set"
                f"{', then the symbols' if k > 1 else ''})")
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "biu":
                raise StrategyError(f"{where}: {label} must be boolean; got dtype {arr.dtype}")
            arr = arr != 0
        # a copy: the hook may reuse its arrays for the next batch while this one's
        # simulation still runs in its threads
        out.append(np.array(arr, order="C", copy=True).view(np.uint8).reshape(n, n_sets, k))
    size = signals.size
    if size is None:
        size_arr = np.zeros((1, n_sets, k))
    else:
        size_arr = np.asarray(size, dtype=np.float64)
        if size_arr.ndim == 0:
            size_arr = np.full((1, n_sets, k), float(size_arr))
        elif size_arr.shape == (n_sets,):
            size_arr = np.repeat(size_arr.reshape(1, n_sets, 1), k, axis=2)
        elif size_arr.shape in (expected, (n, n_sets, k)):
            size_arr = np.array(size_arr.reshape(n, n_sets, k), order="C", copy=True)
        else:
            raise StrategyError(
                f"{where}: size has shape {size_arr.shape}; expected a scalar, one value per "
                f"set ({n_sets},) or {expected}")
    out.append(size_arr)
    for label, codes in (("size_type", SIZE_MODES),
                         ("direction", {"long": 1, "short": -1})):
        value = getattr(signals, label)
        values = [value] * n_sets if isinstance(value, str) else list(np.asarray(value)
                                                                         .tolist())
        if len(values) != n_sets or any(v not in codes for v in values):
            raise StrategyError(
                f"{where}: {label} must be one of {', '.join(map(repr, codes))} or one of "
                f"them per set ({n_sets}); got {value!r}")
        out.append(np.fromiter((codes[v] for v in values), dtype=np.int8, count=n_sets))
    return tuple(out)


_EXECUTOR = None
#: Fewest sets a thread of simulate is given (below it, the threads cost more than
#: they save).
SETS_PER_THREAD = 32


def _in_threads(simulate, threads: int, open_, close, entries, exits, size, modes,
                directions, *args, **kwargs):
    """``simulate(...)`` started on column ranges of the sets in up to ``threads``
    threads (it releases the GIL for its loops); returns ``result()``, which waits and
    joins them: the same numbers, since sets are independent.

    The first output (statistics, one column per set) is joined along its columns, the
    others (one row per set, or None) along their rows."""
    global _EXECUTOR
    n_sets = entries.shape[1]
    parts = max(1, min(threads, n_sets // SETS_PER_THREAD))
    if _EXECUTOR is None or _EXECUTOR._max_workers < max(2, parts):
        from concurrent.futures import ThreadPoolExecutor

        # at least two: one simulates while the caller prepares the next task's signals
        _EXECUTOR = ThreadPoolExecutor(max_workers=max(2, parts),
                                       thread_name_prefix="engine-sweep")
    edges = np.linspace(0, n_sets, parts + 1).astype(int)

    def chunk(a: int, b: int):
        return simulate(open_, close, np.ascontiguousarray(entries[:, a:b]),
                        np.ascontiguousarray(exits[:, a:b]), np.ascontiguousarray(size[:, a:b]),
                        np.ascontiguousarray(modes[a:b]), np.ascontiguousarray(directions[a:b]),
                        *args, **kwargs)

    if parts == 1:
        futures = [_EXECUTOR.submit(simulate, open_, close, entries, exits, size, modes,
                                    directions, *args, **kwargs)]
    else:
        futures = [_EXECUTOR.submit(chunk, a, b) for a, b in zip(edges[:-1], edges[1:],
                                                                   strict=True)]

    def result():
        results = [future.result() for future in futures]
        if len(results) == 1:
            return results[0]
        out = [np.concatenate([r[0] for r in results], axis=1)]
        for i in range(1, len(results[0])):
            pieces = [r[i] for r in results]
            out.append(None if pieces[0] is None else np.concatenate(pieces, axis=0))
        return tuple(out)

    return result


def _summary_edges(n_bars: int) -> np.ndarray:
    """The blocks of sweep_plan.summary_of (engine.analysis.stats.set_summary), whose
    rows simulate computes for every set from the returns of its statistics: the
    returns of :func:`engine.analysis.metrics.bar_returns`, summed as
    :func:`engine.analysis.stats.set_summaries` sums them, bit for bit."""
    from engine.analysis.stats import PBO_BLOCKS, block_edges

    return block_edges(n_bars, PBO_BLOCKS)


def _one_add(value: np.ndarray) -> np.ndarray:
    """The value of a fresh Neumaier ``_Sum`` after ``add(value)``, elementwise."""
    total = 0.0 + value
    carry = np.where(0.0 >= np.abs(value), 0.0 + ((0.0 - total) + value),
                     0.0 + ((value - total) + 0.0))
    return total + carry


def _metric_rows(stats: dict, n: int, cash: float, ppy: float, risk_free: float,
                 bench) -> list[dict]:
    """Every set's metric row, as engine.run computes it.

    The formulas are StreamingMetrics.result()'s (the code compute_metrics runs),
    written elementwise over the sets in the same operations and order (numpy's
    elementwise arithmetic and square root round as Python's floats do, and
    ``numpy.power`` is what result() calls); ``psr``'s powers and ``erf`` are Python's,
    per set (:func:`engine.analysis.stats.psr_from_moments_many`), since Python's ``**``
    and numpy's power may differ in the last bit.
    """
    from engine.analysis.conventions import BENCHMARK_KEYS, METRIC_KEYS, per_bar_rate
    from engine.analysis.stats import _python_power, psr_from_moments_many

    nan = np.nan
    zero_spread = 1e-12
    rf_bar = per_bar_rate(risk_free, ppy)
    root_ppy = math.sqrt(ppy)
    last = stats["last"]
    returns_nan = stats["returns_nan"] != 0
    out: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        out["total_return"] = last / cash - 1.0
        if n == 0:
            growth = np.full(last.shape, nan)
        else:
            growth = np.where(last <= 0, -1.0, np.power(last / cash, ppy / n) - 1.0)
        out["cagr"] = growth
        m2_x, mean_raw = stats["m2_x"], stats["mean_x"]
        sd = np.sqrt(m2_x / (n - 1)) if n >= 2 else np.full(last.shape, nan)
        vol = sd * root_ppy if n >= 2 else np.full(last.shape, nan)
        mean_x = mean_raw - rf_bar
        max_abs_r = np.maximum(stats["max_abs_r"], 0.0)
        if n < 2:
            sharpe = np.full(last.shape, nan)
        else:
            sharpe = np.where(sd <= zero_spread * max_abs_r, nan, mean_x / sd * root_ppy)
        downside = np.sqrt(_one_add(stats["downside"]) / n) if n else np.zeros(last.shape)
        sortino = np.where(downside == 0, nan, mean_x / downside * root_ppy)
        out["volatility"] = np.where(returns_nan, nan, vol)
        out["sharpe"] = sharpe = np.where(returns_nan, nan, sharpe)
        out["sortino"] = np.where(returns_nan, nan, sortino)
        max_dd = stats["max_dd"]
        out["calmar"] = np.where(max_dd == 0, nan, growth / max_dd)
        out["max_drawdown"] = max_dd
        under_since = stats["under_since"]
        out["max_drawdown_duration"] = np.where(
            under_since >= 0, np.maximum(stats["max_duration"], n - (under_since - 1)),
            stats["max_duration"])
        t, wins, losses = stats["trades"], stats["wins"], stats["losses"]
        gross_win, gross_loss = _one_add(stats["gross_win"]), _one_add(stats["gross_loss"])
        out["trades"] = t
        out["hit_rate"] = np.where(t > 0, wins / t, nan)
        out["profit_factor"] = np.where(gross_loss > 0, gross_win / gross_loss,
                                        np.where(gross_win > 0, math.inf, nan))
        out["expectancy"] = np.where(t > 0, _one_add(stats["pnl_sum"]) / t, nan)
        out["avg_win"] = np.where(wins > 0, gross_win / wins, nan)
        out["avg_loss"] = np.where(losses > 0, -gross_loss / losses, nan)
        out["best_trade"] = np.where(t > 0, stats["best"], nan)
        out["worst_trade"] = np.where(t > 0, stats["worst"], nan)
        out["exposure"] = stats["in_market"] / n if n else np.full(last.shape, nan)
        out["final_equity"] = last
        with_bench = bench is not None and not bench["nan"]
        b_sharpe = nan
        if bench is not None:
            out["benchmark_return"] = np.full(last.shape, bench["last"] / cash - 1.0)
            if with_bench and n >= 2:
                # _Moments' second series from a fresh state, then _beta/_benchmark_sharpe
                a = 0
                m2_y = 0.0 + (bench["m2"] + (bench["mean"] - 0.0) ** 2 * (a * n / n))
                mean_y = 0.0 + (bench["mean"] - 0.0) * n / n
                var_b = m2_y / (n - 1)
                if math.sqrt(var_b) <= zero_spread * bench["max_abs"]:
                    beta = np.full(last.shape, nan)
                else:
                    beta = (stats["c_xy"] / (n - 1)) / var_b
                    sd_y = math.sqrt(m2_y / (n - 1))
                    b_sharpe = (mean_y - rf_bar) / sd_y
                out["beta"] = np.where(returns_nan, nan, beta)
                # tracking_error, information_ratio, alpha: StreamingMetrics._relative
                spread = np.sqrt(np.maximum(m2_x + m2_y - 2.0 * stats["c_xy"], 0.0) / (n - 1))
                bound = zero_spread * (max_abs_r + bench["max_abs"])
                alpha = ((mean_raw - rf_bar) - beta * (mean_y - rf_bar)) * ppy
                out["tracking_error"] = np.where(returns_nan, nan, spread * root_ppy)
                out["information_ratio"] = np.where(
                    returns_nan | (spread <= bound), nan, (mean_raw - mean_y) / spread * root_ppy)
                out["alpha"] = np.where(returns_nan | ~np.isfinite(beta), nan, alpha)
            else:
                out["beta"] = np.full(last.shape, nan)
    m3_x, m4_x = stats["m3_x"], stats["m4_x"]
    # StreamingMetrics' psr: moments only where the Sharpe ratio is finite, n >= 3, m2 > 0
    usable = np.isfinite(sharpe) & (m2_x > 0) & (n >= 3)
    m2_usable = np.where(usable, m2_x, nan)   # Python's (-x) ** 1.5 would be complex
    with np.errstate(all="ignore"):
        skew = np.where(usable, math.sqrt(n) * m3_x / _python_power(m2_usable, 1.5), nan)
        kurtosis = np.where(usable, n * m4_x / _python_power(m2_usable, 2), nan)
        per_bar = sharpe / math.sqrt(ppy)
    out["psr"] = np.where(usable, psr_from_moments_many(per_bar, n, skew, kurtosis, 0.0), nan)
    if bench is not None:
        out["psr_benchmark"] = np.where(
            usable, psr_from_moments_many(per_bar, n, skew, kurtosis, b_sharpe), nan)
    if bench is not None:
        for key in ("tracking_error", "information_ratio", "alpha"):
            out.setdefault(key, np.full(last.shape, nan))
    keys = METRIC_KEYS + (BENCHMARK_KEYS if bench is not None else ())
    # engine.run's additions (backtest/run.py, _result)
    out["open_trades"] = stats["open_trades"]
    out["commissions"] = stats["commissions"]
    out["borrow_costs"] = stats["borrow"]
    out["same_bar_exits"] = np.zeros(last.shape)
    out["margin_calls"] = np.zeros(last.shape)      # a cash account (leverage 1) only
    out["margin_interest"] = np.zeros(last.shape)
    out["bars"] = np.full(last.shape, float(n))
    out["rejected"] = stats["rejected"]
    keys = (*keys, "open_trades", "commissions", "borrow_costs", "same_bar_exits",
            "margin_calls", "margin_interest", "bars", "rejected")
    table = np.array([np.asarray(out[k], dtype=np.float64) for k in keys])
    table[np.isnan(table)] = np.nan
    return [dict(zip(keys, row, strict=True)) for row in table.T.tolist()]
