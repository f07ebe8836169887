"""The benchmark: buy-and-hold of the same data, or a series given as ``benchmark=``.

Two forms, for two uses:

* :func:`benchmark_equity` -- the frictionless reference curve the metrics
  (``benchmark_return``, ``beta``) and the plots measure a run against: the
  starting cash split equally over the symbols, each part invested at that
  symbol's first close (fractional quantity, no commission, no slippage) and
  held to the end, marked at every close (a missing close keeps the last one).
  A part whose symbol has not traded yet stays in cash. For one symbol this is
  ``cash * close_t / close_first``.
* :class:`BuyAndHold` -- the same rule as a strategy run through the simulator
  (whole shares, filled at the next open, with the run's costs), the row that
  :func:`engine.compare` always adds. It is built in, so that it is available
  after a ``pip install`` (the ``strategies/`` folder is not installed); it
  behaves like ``strategies/buy_and_hold.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine._core.kernels import hold_curve
from engine.data.panel import Panel
from engine.errors import ParameterError
from engine.strategy.base import Signals, Strategy


def benchmark_equity(panel: Panel, cash: float) -> np.ndarray | None:
    """Equal-weight, frictionless buy-and-hold of every symbol, one value per bar.

    Parameters
    ----------
    panel : Panel
        The run's bars.
    cash : float
        The starting cash.

    Returns
    -------
    numpy.ndarray or None
        ``sum_j (cash / k) * c_j(t) / c_j(first_j)`` over the ``k`` symbols,
        where ``c_j`` is symbol ``j``'s close carried forward and ``first_j``
        its first bar with a close; before ``first_j`` that part counts as cash.
        None when no symbol has a single close.
    """
    close = panel.fields["close"]
    if close.size == 0 or not np.isfinite(close).any():
        return None
    k = close.shape[1]
    total = np.empty(close.shape[0])
    hold_curve(np.ascontiguousarray(close, dtype=np.float64), float(cash) / k,
               np.full(k, np.nan), np.full(k, np.nan), total)
    return total


class BuyAndHold(Strategy):
    """Put the cash into every symbol in equal parts at the first bar and hold.

    One symbol: all the cash (whole shares). Several: ``cash / k`` each. Orders
    are placed at the first bar and fill at the next open like any market order.
    """

    def on_bar(self, bar):
        if bar.index != 0:
            return
        symbols = self.data.symbols
        if len(symbols) == 1:
            self.buy()
            return
        budget = self.cash / len(symbols)
        for symbol in symbols:
            self.buy(cash=budget, symbol=symbol)

    def signals(self, data):
        shape = (len(data), len(data.symbols))
        entries = np.zeros(shape, dtype=bool)
        entries[0] = True
        exits = np.zeros(shape, dtype=bool)
        if len(data.symbols) == 1:
            return Signals(entries=entries, exits=exits)
        return Signals(entries=entries, exits=exits, size=self.cash / len(data.symbols),
                       size_type="cash")


#: Where ``benchmark="sp500_daily"`` (a bundled dataset's name) is looked up.
DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def benchmark_from(spec, panel: Panel, cash: float) -> tuple[np.ndarray, str]:
    """The curve of ``benchmark=`` on the run's bars, and a label saying what it is.

    Parameters
    ----------
    spec : str, pathlib.Path, DataFrame or Panel
        A symbol of the run's data (``"SPY"``); a bar file, optionally with the
        symbol to take from it (``"bars.parquet:SPX"``); a bundled dataset's name
        (``"sp500_daily"``, in ``datasets/``), also with ``:SYMBOL``; or bars as a
        DataFrame or Panel. A file of several symbols needs ``:SYMBOL``.
    panel : Panel
        The run's bars.
    cash : float
        The starting cash.

    Returns
    -------
    (numpy.ndarray, str)
        ``cash * c(t) / c(first)``, one value per bar of the run, where ``c(t)`` is
        the benchmark's last close at or before bar ``t``'s timestamp (as of, so a
        benchmark that trades on other days keeps its last close) and ``first`` the
        run's first bar at which it has one (cash until then); and the label.

    Raises
    ------
    engine.errors.ParameterError
        When ``spec`` names nothing readable, a file of several symbols without
        ``:SYMBOL``, or a series with no close at or before the run's last bar.
    """
    from engine.data.bars import load_bars

    if isinstance(spec, str) and spec in panel.symbols:
        close = panel.fields["close"][:, [panel.symbols.index(spec)]]
        return _held(close, cash), f"{spec} (a symbol of the data)"
    if isinstance(spec, Panel):
        bars, label = spec, spec.source
    elif isinstance(spec, (str, Path)):
        source, symbol = _benchmark_source(str(spec), panel)
        bars = load_bars(source, symbol=symbol)
        label = f"{Path(source).name}" + (f":{symbol}" if symbol else "")
    else:
        bars, label = load_bars(spec), "<DataFrame>"
    if bars.n_symbols != 1:
        few = ", ".join(bars.symbols[:10]) + (", ..." if bars.n_symbols > 10 else "")
        raise ParameterError(
            f"benchmark {label} holds {bars.n_symbols} symbols ({few}); name one: "
            f"benchmark='{label}:{bars.symbols[0]}' (CLI --benchmark {label}:{bars.symbols[0]})")
    rows = np.searchsorted(bars.ts, panel.ts, side="right") - 1
    values = np.where(rows >= 0, bars.fields["close"][np.maximum(rows, 0), 0], np.nan)
    if not np.isfinite(values).any():
        raise ParameterError(
            f"benchmark {label} has no close at or before {str(panel.ts[-1])[:10]}, the run's "
            f"last bar: it starts {str(bars.ts[0])[:10]}; give a series covering the run")
    return _held(values.reshape(-1, 1), cash), label


def _held(close: np.ndarray, cash: float) -> np.ndarray:
    total = np.empty(close.shape[0])
    hold_curve(np.ascontiguousarray(close, dtype=np.float64), float(cash),
               np.full(1, np.nan), np.full(1, np.nan), total)
    return total


def _benchmark_source(spec: str, panel: Panel) -> tuple[str, str | None]:
    """``(file, symbol or None)`` of a ``PATH[:SYMBOL]`` or ``DATASET[:SYMBOL]`` spec."""
    candidates = [(spec, None)]
    if ":" in spec:
        head, _, tail = spec.rpartition(":")
        candidates.append((head, tail))
    for name, symbol in candidates:
        for path in (Path(name), DATASETS / name, DATASETS / f"{name}.parquet"):
            if path.is_file():
                return str(path), symbol
    bundled = sorted(p.stem for p in DATASETS.glob("*.parquet")) if DATASETS.is_dir() else []
    few = ", ".join(panel.symbols[:5]) + (", ..." if panel.n_symbols > 5 else "")
    raise ParameterError(
        f"benchmark {spec!r} is neither a symbol of the data ({few}), nor a file, nor a "
        f"bundled dataset ({', '.join(bundled) or 'none found'}). Fix: give a bar file "
        f"(PATH or PATH:SYMBOL), a dataset name such as sp500_daily, or a symbol of the data "
        f"(CLI --benchmark)")
