"""``engine.compare``: several strategies and buy-and-hold on the same data.

Every strategy runs on the same bars with the same account settings, and a
buy-and-hold row (:class:`engine.backtest.benchmark.BuyAndHold`, built in) is always
added last unless a strategy named ``BuyAndHold`` is already in the list. That row is
the runs' own benchmark (``benchmark_return``): equal weight, fractional shares bought
at each symbol's first close, with no costs (:data:`BENCHMARK_SETTINGS`), so that on a
universe of thousands of symbols no part rounds to zero shares. The
result is one table, a row per strategy, the headline metrics as columns (see
:mod:`engine.analysis.metrics` for their definitions).

Which data: with ``data`` given, every strategy runs on it (and ``start``,
``end``). With ``data=None`` each strategy runs on its own default data and
date range (``default_data``, ``default_start``, ``default_end``), never on
another's: strategies that share them form one group, with one buy-and-hold row
for the group, and the table's ``data`` and ``period`` columns say what each row
ran on. A strategy with no default data needs ``data``. ``start`` and ``end``
given with ``data=None`` apply to every group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl

from engine.errors import ParameterError, RejectedOrdersError
from engine.research.frames import CompareResult

#: The account of the buy-and-hold row compare adds: frictionless, fractional shares,
#: filled at the first close, so that its return is the ``benchmark_return`` of every
#: run on the same bars (:func:`engine.backtest.benchmark.benchmark_equity`).
BENCHMARK_SETTINGS = {
    "fractional": True, "fill": "close", "mode": "auto", "commission": 0.0,
    "commission_per_share": 0.0, "commission_fixed": 0.0, "commission_minimum": 0.0,
    "slippage_bps": 0.0, "slippage_fixed": 0.0, "leverage": 1.0, "max_volume_share": None,
    "strict": False,
}

#: The metrics shown per strategy, in order.
HEADLINE = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
            "max_drawdown_duration", "trades", "hit_rate", "profit_factor", "exposure", "beta",
            "final_equity", "rejected")


def _keys(target, cls) -> list:
    keys = [cls.__name__]
    if isinstance(target, (str, Path)):
        path = Path(target)
        keys = [str(target), str(path.resolve()), path.name, path.stem, *keys]
    elif isinstance(target, type):
        keys.insert(0, target)
    return keys


def _params_for(i: int, target, cls, params, used: set) -> dict:
    if params is None:
        return {}
    if isinstance(params, Mapping):
        for key in _keys(target, cls):
            if key in params:
                used.add(key)
                return dict(params[key])
        return {}
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        return dict(params[i] or {}) if i < len(params) else {}
    raise ParameterError("params must be a dict keyed by strategy (file, file name or class "
                         "name) or a list of dicts, one per strategy")


def _default_bars(cls, start, end) -> tuple:
    """``(data, start, end)`` of ``cls``'s own default data; ``start``/``end`` override."""
    from engine.backtest.run import _default_data_path

    if cls.default_data is None:
        raise ParameterError(f"{cls.__name__} declares no default_data, so it has no data of "
                             f"its own to run on; pass data= (CLI --data PATH) to run every "
                             f"strategy on the same bars")
    return (str(_default_data_path(cls)),
            start if start is not None else cls.default_start,
            end if end is not None else cls.default_end)


def _group_key(bars: tuple) -> tuple:
    data, start, end = bars
    return (id(data) if not isinstance(data, (str, Path)) else str(Path(data).resolve()),
            str(start), str(end))


def _data_name(result) -> str:
    source = str(result.settings["data"])
    return Path(source).name if not source.startswith("<") else source


def _period(result) -> str:
    return f"{result.settings['start']} → {result.settings['end']}"


def groups_of(table: pl.DataFrame) -> int:
    """How many distinct (data, period) a comparison table's rows ran on."""
    return table.select("data", "period").unique().height


def _label(result) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    return f"{result.strategy}({params})" if params else result.strategy


def run_all(strategies, data=None, params=None, *,
            progress: Callable[[int, int, str], None] | None = None, **run_options):
    """Run every strategy and buy-and-hold, each group on its bars (see :func:`compare`).

    ``progress(index, total, name)`` is called before each run, if given.

    Returns
    -------
    (polars.DataFrame, list of Result, list of str)
        The comparison table, the results in its row order, and the row names.
    """
    from engine.backtest.benchmark import BuyAndHold
    from engine.backtest.run import run
    from engine.strategy.plugins import load_strategy

    if isinstance(strategies, (str, Path, type)):
        strategies = [strategies]
    strategies = list(strategies)
    if not strategies:
        raise ParameterError("compare needs at least one strategy")
    classes = [load_strategy(s) for s in strategies]
    used: set = set()
    chosen = [_params_for(i, s, c, params, used) for i, (s, c) in
              enumerate(zip(strategies, classes, strict=True))]
    if isinstance(params, Mapping):
        unknown = [k for k in params if k not in used]
        if unknown:
            names = ", ".join(str(s) for s in strategies)
            raise ParameterError(f"params given for {', '.join(map(str, unknown))}, which is not "
                                 f"one of the strategies compared ({names})")
    start, end = run_options.pop("start", None), run_options.pop("end", None)
    # Runs grouped by the bars they use, in order of first appearance; each group
    # ends with buy-and-hold of its bars unless it holds BuyAndHold already.
    groups: dict[tuple, list[int]] = {}
    for i, cls in enumerate(classes):
        key = (data, start, end) if data is not None else _default_bars(cls, start, end)
        groups.setdefault(_group_key(key), []).append(i)
    plan = []
    for indices in groups.values():
        bars = (data, start, end) if data is not None else _default_bars(
            classes[indices[0]], start, end)
        plan += [(classes[i], chosen[i], bars) for i in indices]
        if not any(classes[i].__name__ == "BuyAndHold" for i in indices):
            plan.append((BuyAndHold, None, bars))
    results = []
    for index, (cls, values, (bars, first, last)) in enumerate(plan):
        if progress is not None:
            progress(index, len(plan), cls.__name__)
        options = run_options
        if values is None:
            # the benchmark row: the same figure as every run's benchmark_return
            options, values = {**run_options, **BENCHMARK_SETTINGS}, {}
        try:
            results.append(run(cls, bars, start=first, end=last, **options, **values))
        except RejectedOrdersError as exc:  # strict=True: say whose orders they were
            raise RejectedOrdersError(f"{cls.__name__}: {exc}", count=exc.count,
                                      rejections=exc.rejections) from None
    names = [r.strategy for r in results]
    duplicated = {n for n in names if names.count(n) > 1}
    names = [_label(r) if r.strategy in duplicated else r.strategy for r in results]
    if len(groups) > 1:  # several benchmarks: say whose bars each one holds
        names = [f"{n} ({Path(_data_name(r)).stem} from {r.settings['start']})"
                 if r.strategy == "BuyAndHold" else n for n, r in zip(names, results, strict=True)]
    table = pl.DataFrame({
        "strategy": names,
        "data": [_data_name(r) for r in results],
        "period": [_period(r) for r in results],
        "params": [", ".join(f"{k}={v}" for k, v in r.params.items()) for r in results],
        **{key: pl.Series([r.metrics.get(key) for r in results], dtype=pl.Float64)
           for key in HEADLINE},
    }).fill_nan(None)
    return table, results, names


def compare(strategies, data=None, params=None, **run_options) -> pl.DataFrame:
    """Run strategies and buy-and-hold on the same data; one row per strategy.

    Parameters
    ----------
    strategies : sequence of (str, pathlib.Path, module or Strategy subclass)
        The strategies, as for :func:`engine.run`.
    data : path, DataFrame or Panel, optional
        The bars for every strategy. Default: each strategy's own default data
        and date range, one buy-and-hold row per distinct data and range.
    params : dict or list of dict, optional
        Parameters per strategy: a dict keyed by the strategy as given (path or
        class), its file name or stem (``"sma_cross"``) or its class name, each
        value a dict of parameters; or a list of dicts in the order of
        ``strategies``.
    **run_options
        Account and run settings passed to every :func:`engine.run` (``cash``,
        ``commission``, ``start``, ``end``, ``periods_per_year``, ...).

    Returns
    -------
    CompareResult
        A polars DataFrame (:class:`engine.research.frames.CompareResult`, whose
        ``plot()`` overlays the equity curves): ``strategy, data, period, params``
        then the :data:`HEADLINE` metrics
        (the last, ``rejected``, counts the strategy's rejected orders);
        each group of rows on the same bars ends with buy-and-hold
        (``BuyAndHold``, its data's name and first day appended to the name when
        there are several groups). Names repeated with different parameters get them
        appended, e.g. ``SmaCross(fast=5, slow=20)``.
    """
    table, results, names = run_all(strategies, data, params, **run_options)
    return CompareResult.of(table, results, names)
