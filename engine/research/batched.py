"""Batched sweeps: the parameter sets of a vectorised strategy as columns of one pass.

:func:`engine.sweep` hands each task (a batch of parameter sets) to
:func:`run_batched` when the strategy has a vectorised path (``signals``). There,

* the sets are grouped by their panel and their run options (a grid over
  ``commission`` makes one group per value);
* each set's ``signals`` runs once, with the indicators of
  :mod:`engine.indicators` that its module calls memoised (:class:`IndicatorMemo`):
  ten distinct ``fast`` windows cost ten moving averages however many sets use
  them;
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
of values none of whose parts leaked alone goes through. ``audit="full"`` runs the
per-set path (every set, every bar); ``ENGINE_SWEEP_BATCHED=0`` turns batching off.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

import numpy as np

#: Environment switch: "0" runs every set on the per-set path (the workers inherit it).
ENV = "ENGINE_SWEEP_BATCHED"
#: Run options the batched path supports (any other sends the plan to the per-set path).
OPTIONS = frozenset({
    "cash", "commission", "commission_per_share", "commission_fixed", "commission_minimum",
    "slippage_bps", "slippage_fixed", "fill", "mode", "fractional", "shorting",
    "borrow_rate", "periods_per_year", "risk_free", "feeds", "strict", "audit", "start",
    "end",
})
#: The fields of ``Signals`` the simulator reads; any other set away from its default
#: (a stop-loss, weights, ...) sends that set to the per-set path.
SIGNAL_FIELDS = frozenset({"entries", "exits", "size", "size_type", "direction"})
#: Longest data batched: compute_metrics feeds StreamingMetrics in slices of this many
#: bars, and the compiled statistics reproduce one slice.
MAX_BARS = 1 << 16
#: Results the indicator memo keeps per worker process.
MEMO_ENTRIES = 512


def enabled() -> bool:
    """Whether sweeps batch vectorised strategies (``ENGINE_SWEEP_BATCHED``, default on)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


# --------------------------------------------------------------------------- memo


class _Unkeyable(Exception):
    pass


def _key(value):
    from engine._core.sealed import is_sealed

    if isinstance(value, np.ndarray):
        # Only sealed arrays (the panel's bars and their views): nothing can change
        # their contents, and the memo holds them, so their memory is not reused.
        if not is_sealed(value):
            raise _Unkeyable
        return ("array", value.__array_interface__["data"][0], value.shape, value.strides,
                value.dtype.str)
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    raise _Unkeyable


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
        self.hits = 0
        self.calls = 0

    def for_panel(self, panel) -> IndicatorMemo:
        if panel is not self.panel or len(self.results) > MEMO_ENTRIES:
            self.results.clear()
            self.panel = panel
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
            else:
                self.hits += 1
            return _copy(found[0])

        memoised.__wrapped__ = func
        memoised.__name__ = getattr(func, "__name__", "indicator")
        return memoised


_MEMO = IndicatorMemo()
#: Sets run in this process by each path since it started (for tests and diagnostics).
COUNTS = {"batched": 0, "alone": 0}


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


_AUDITED: dict = {}  # (strategy class, panel id) -> (panel, audited (name, value) pairs)


def _audit_for(cls, panel, params: dict, audit: str) -> str:
    """``"cuts"`` when a value of ``params`` is not audited yet here, else ``"off"``."""
    if audit != "cuts":
        return audit
    key = (cls, id(panel))
    entry = _AUDITED.get(key)
    if entry is None or entry[0] is not panel:
        if len(_AUDITED) > 16:
            _AUDITED.clear()
        entry = _AUDITED[key] = (panel, set())
    pairs = {(name, repr(value)) for name, value in params.items()}
    if not params and not entry[1]:
        pairs = {("", "")}
    if pairs <= entry[1]:
        return "off"
    entry[1].update(pairs)
    return "cuts"


# --------------------------------------------------------------------------- batches


def run_batched(cls, panels, options: dict, batch, run_one) -> list[tuple]:
    """Run a task's ``(row, panel_number, params)`` sets; return ``(row, metrics, error)``.

    ``run_one(tasks)`` is the per-set path, for what the batched path does not cover.
    """
    if not cls.has_vector_path() or options.get("mode", "auto") == "event":
        COUNTS["alone"] += len(batch)
        return run_one(batch)
    run_names = _run_option_names()
    groups: dict = {}
    for task in batch:
        row, number, params = task
        merged = {**options, **params}
        run_opts = {k: v for k, v in merged.items() if k in run_names}
        strategy = {k: v for k, v in merged.items() if k not in run_names}
        key = (number, repr(sorted(run_opts.items(), key=lambda item: item[0])))
        groups.setdefault(key, (number, run_opts, []))[2].append((task, strategy, params))
    done: dict = {}
    for number, run_opts, members in groups.values():
        for row, metrics, error in _run_group(cls, panels[number], run_opts, members, run_one):
            done[row] = (row, metrics, error)
    return [done[row] for row, _, _ in batch]


def _run_option_names() -> frozenset:
    import inspect

    from engine.backtest.run import run

    return frozenset(name for name, p in inspect.signature(run).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _settings(run_opts: dict) -> dict | None:
    """The account settings of a group, or None when the batched path does not cover it."""
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


def _run_group(cls, panel, run_opts: dict, members: list, run_one) -> list[tuple]:
    from engine._core.batch import SIZE_MODES, STAT_NAMES, simulate
    from engine._core.broker import Broker
    from engine._core.loop import Cursor
    from engine.analysis.conventions import choose_periods_per_year, per_bar_rate
    from engine.backtest.run import _vector_signals, check_commission
    from engine.strategy.lookahead import check_audit

    tasks = [task for task, _, _ in members]
    settings = _settings(run_opts)
    close = panel.fields["close"]
    if settings is None or not 0 < panel.n_bars <= MAX_BARS or not np.isfinite(close).all():
        COUNTS["alone"] += len(tasks)
        return run_one(tasks)
    try:  # what engine.run refuses, it refuses with its own message on the per-set path
        audit = check_audit(run_opts.get("audit", "cuts"))
        check_commission(run_opts.get("commission", 0.0))
        ppy, _ = choose_periods_per_year(run_opts.get("periods_per_year"), panel.local_ts)
        risk_free = float(run_opts.get("risk_free", 0.0))
        rf_bar = per_bar_rate(risk_free, ppy)
        account = {k: v for k, v in settings.items() if k != "cash"}

        def new_broker():
            return Broker(panel.fields["open"], panel.fields["high"], panel.fields["low"],
                          close, settings["cash"], periods_per_year=float(ppy), **account)

        broker = new_broker()
        bench = _benchmark(panel, settings["cash"])
        if bench is not None and not bench["finite"]:
            raise ValueError("benchmark not finite")
    except Exception:
        COUNTS["alone"] += len(tasks)
        return run_one(tasks)

    strict = bool(run_opts.get("strict", False))
    kept, entries, exits, sizes, modes, directions, alone = [], [], [], [], [], [], []
    memo = _MEMO.for_panel(panel)
    with _Patched(cls, memo):
        for task, strategy, params in members:
            try:
                instance = cls(**strategy)
                instance._bind(panel, broker, Cursor(), audit=audit)
                signals, entry, exit_, size = _vector_signals(
                    instance, panel, _audit_for(cls, panel, params, audit))
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
    out = []
    if kept:
        n = panel.n_bars
        if any(s.shape[0] != 1 for s in sizes):
            sizes = [np.broadcast_to(s, (n, s.shape[1])) for s in sizes]
        result = simulate(
            np.ascontiguousarray(panel.fields["open"]), np.ascontiguousarray(close),
            np.stack(entries, axis=1), np.stack(exits, axis=1), np.stack(sizes, axis=1),
            np.asarray(modes, dtype=np.int8), np.asarray(directions, dtype=np.int8),
            settings["cash"], periods_per_year=float(ppy), rf_bar=rf_bar,
            bench_dy=None if bench is None or bench["nan"] else bench["dy"],
            bench_mean=0.0 if bench is None else bench["mean"],
            bench_m2=0.0 if bench is None else bench["m2"],
            **{k: v for k, v in account.items()},
        )
        stats = dict(zip(STAT_NAMES, result["stats"], strict=True))
        for j, task in enumerate(kept):
            if stats["outside"][j] or (strict and stats["rejected"][j]):
                alone.append(task)
                continue
            out.append((task[0], _metrics(stats, j, n, settings["cash"], ppy, risk_free,
                                          bench), None))
    COUNTS["batched"] += len(out)
    if alone:
        COUNTS["alone"] += len(alone)
        out.extend(run_one(alone))
    return out


def _metrics(stats: dict, j: int, n: int, cash: float, ppy: float, risk_free: float,
             bench) -> dict:
    """The metric row of set ``j``: compute_metrics' and engine.run's steps, from the
    compiled statistics (StreamingMetrics is the code compute_metrics runs)."""
    from engine.analysis.streaming_metrics import StreamingMetrics

    acc = StreamingMetrics(cash, periods_per_year=ppy, risk_free=risk_free,
                           benchmark_start=cash if bench is not None else None)
    acc.last = float(stats["last"][j])
    acc.n = n
    returns_nan = bool(stats["returns_nan"][j])
    acc.returns_nan = returns_nan
    with_bench = bench is not None and not bench["nan"]
    if not returns_nan:
        acc.max_abs_r = max(0.0, float(stats["max_abs_r"][j]))
        acc.downside.add(float(stats["downside"][j]))
        mom = acc.returns
        mom.n = n
        mom.mean_x = float(stats["mean_x"][j])
        mom.m2_x = float(stats["m2_x"][j])
        mom.m3_x = float(stats["m3_x"][j])
        mom.m4_x = float(stats["m4_x"][j])
        mom.c_xy = float(stats["c_xy"][j])
        # _Moments.add's update of the second series from a fresh state (a = 0)
        my, m2y = (bench["mean"], bench["m2"]) if with_bench else (0.0, 0.0)
        a = 0
        weight = a * n / n
        delta_y = my - 0.0
        mom.m2_y = 0.0 + (m2y + delta_y * delta_y * weight)
        mom.mean_y = 0.0 + delta_y * n / n
    acc.peak = float(stats["peak"][j])
    acc.max_dd = float(stats["max_dd"][j])
    acc.under_since = int(stats["under_since"][j])
    acc.max_duration = int(stats["max_duration"][j])
    in_market = int(stats["in_market"][j])
    acc.in_market = in_market
    if bench is not None:
        acc.b_last = bench["last"]
        acc.b_nan = bench["nan"]
        acc.max_abs_rb = bench["max_abs"]
    trades = int(stats["trades"][j])
    acc.trades = trades
    acc.wins = int(stats["wins"][j])
    acc.losses = int(stats["losses"][j])
    acc.gross_win.add(float(stats["gross_win"][j]))
    acc.gross_loss.add(float(stats["gross_loss"][j]))
    acc.pnl_sum.add(float(stats["pnl_sum"][j]))
    if trades:
        acc.best = max(acc.best, float(stats["best"][j]))
        acc.worst = min(acc.worst, float(stats["worst"][j]))
    acc.returns_given = trades
    out = acc.result()
    out["exposure"] = in_market / n
    metrics = {k: float(v) for k, v in out.items()}
    # engine.run's additions (backtest/run.py, _result)
    metrics["open_trades"] = float(stats["open_trades"][j])
    metrics["commissions"] = float(stats["commissions"][j])
    metrics["borrow_costs"] = float(stats["borrow"][j])
    metrics["same_bar_exits"] = 0.0
    metrics["bars"] = float(n)
    metrics["rejected"] = float(stats["rejected"][j])
    for key, value in metrics.items():
        if isinstance(value, float) and math.isnan(value):
            metrics[key] = float("nan")
    return metrics
