"""``engine.compare``: several strategies and buy-and-hold on the same data.

Every strategy runs on the same bars with the same account settings, and a
buy-and-hold row (:class:`engine.backtest.benchmark.BuyAndHold`, built in) is always
added last unless a strategy named ``BuyAndHold`` is already in the list. The
result is one table, a row per strategy, the headline metrics as columns (see
:mod:`engine.analysis.metrics` for their definitions).

Same data: with ``data=None`` the bars are the first strategy's default data
(and its default date range); each strategy then runs on that file, never on its
own default. (The module is ``engine.research.compare``, not ``engine.compare``, so
that the package attribute ``engine.compare`` stays the function.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl

from engine.errors import ParameterError

#: The metrics shown per strategy, in order.
HEADLINE = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
            "max_drawdown_duration", "trades", "hit_rate", "profit_factor", "exposure", "beta",
            "final_equity")


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


def _resolve_data(first_cls, data, start, end):
    """The bars every strategy runs on: ``data`` or the first strategy's default data."""
    if data is not None:
        return data, start, end
    from engine.backtest.run import _default_data_path

    if first_cls.default_data is None:
        raise ParameterError(f"{first_cls.__name__} declares no default_data; pass data= "
                             f"(CLI --data PATH) so that every strategy runs on the same bars")
    return (_default_data_path(first_cls),
            start if start is not None else first_cls.default_start,
            end if end is not None else first_cls.default_end)


def _label(result) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    return f"{result.strategy}({params})" if params else result.strategy


def run_all(strategies, data=None, params=None, *,
            progress: Callable[[int, int, str], None] | None = None, **run_options):
    """Run every strategy and buy-and-hold on the same data.

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
    if not any(c.__name__ == "BuyAndHold" for c in classes):
        strategies.append(BuyAndHold)
        classes.append(BuyAndHold)
        chosen.append({})
    start, end = run_options.pop("start", None), run_options.pop("end", None)
    bars, start, end = _resolve_data(classes[0], data, start, end)
    results = []
    for index, (cls, values) in enumerate(zip(classes, chosen, strict=True)):
        if progress is not None:
            progress(index, len(classes), cls.__name__)
        results.append(run(cls, bars, start=start, end=end,
                           **run_options, **values))
    names = [r.strategy for r in results]
    duplicated = {n for n in names if names.count(n) > 1}
    names = [_label(r) if r.strategy in duplicated else r.strategy for r in results]
    table = pl.DataFrame({
        "strategy": names,
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
        The bars for every strategy. Default: the first strategy's default data
        and date range.
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
    polars.DataFrame
        ``strategy, params`` then the :data:`HEADLINE` metrics; the last row is
        buy-and-hold (``BuyAndHold``). Names repeated with different
        parameters get them appended, e.g. ``SmaCross(fast=5, slow=20)``.
    """
    table, _, _ = run_all(strategies, data, params, **run_options)
    return table
