"""The frames ``engine.sweep`` and ``engine.compare`` return, with a ``plot()``.

:class:`SweepResult` and :class:`CompareResult` are ``polars.DataFrame`` subclasses:
everything a frame does works on them, and what a frame operation returns is a
plain ``polars.DataFrame`` (polars builds its results as its own class). ``plot()``
returns a Bokeh figure (shown inline in Jupyter); Bokeh is imported at the call.
"""

from __future__ import annotations

import polars as pl

from engine.errors import ParameterError


class SweepResult(pl.DataFrame):
    """The rows of :func:`engine.sweep`: parameter columns first, then metrics, ``error``."""

    @classmethod
    def of(cls, frame: pl.DataFrame) -> SweepResult:
        """``frame`` (no copy) as a SweepResult, with the attributes set on it
        (``pbo``)."""
        out = cls._from_pydf(frame._df)
        for name, value in getattr(frame, "__dict__", {}).items():
            if name != "_df":
                setattr(out, name, value)
        return out

    @property
    def parameters(self) -> list[str]:
        """The parameter columns (those before the first metric)."""
        from engine.analysis.metrics import BENCHMARK_KEYS, METRIC_KEYS

        metrics = {*METRIC_KEYS, *BENCHMARK_KEYS}
        out = []
        for name in self.columns:
            if name in metrics or name == "error":
                break
            out.append(name)
        return out

    def plot(self, metric: str = "sharpe", x: str | None = None, y: str | None = None):
        """A heatmap of ``metric`` over two parameters (default: the first two).

        Raises
        ------
        ParameterError
            The metric or a parameter is not a column, or the sweep has fewer than two
            parameters.
        """
        from engine.report.chart import heatmap_chart, show_in_notebooks

        params = self.parameters
        if metric not in self.columns:
            raise ParameterError(f"plot: metric {metric!r} is not a column of the sweep; "
                                 f"choose one of {', '.join(self.columns[len(params):])}")
        if x is None or y is None:
            rest = [p for p in params if p not in (x, y)]
            if len(rest) < (x is None) + (y is None):
                raise ParameterError(
                    f"plot: a heatmap needs two parameters; this sweep has {params}. Fix: "
                    f"sweep a grid of two parameters, or pass x= and y=")
            x = x if x is not None else rest.pop(0)
            y = y if y is not None else rest.pop(0)
        for name, value in (("x", x), ("y", y)):
            if value not in self.columns:
                raise ParameterError(f"plot: {name}={value!r} is not a column of the sweep; "
                                     f"the parameters are {params}")
        show_in_notebooks()
        return heatmap_chart(self, metric, x, y)


class CompareResult(pl.DataFrame):
    """The table of :func:`engine.compare`, holding the runs behind its rows."""

    @classmethod
    def of(cls, frame: pl.DataFrame, results: list, names: list[str]) -> CompareResult:
        out = cls._from_pydf(frame._df)
        out.results, out.names = list(results), list(names)
        return out

    def plot(self):
        """Overlaid equity curves over their drawdowns (buy-and-hold in grey)."""
        from engine.report.chart import compare_chart, show_in_notebooks

        show_in_notebooks()
        return compare_chart(self.results, self.names)
