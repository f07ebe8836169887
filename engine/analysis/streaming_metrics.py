"""The metrics of :mod:`engine.analysis.metrics`, accumulated chunk by chunk.

:func:`engine.stream_run` never holds the whole equity curve, so it cannot call
:func:`engine.analysis.metrics.compute_metrics`. :class:`StreamingMetrics` takes the curve
(and the trades, and the benchmark) a chunk at a time and produces the same
dictionary, with every definition and convention of :mod:`engine.analysis.metrics` (read
its docstring; nothing is redefined here). The results agree with
``compute_metrics`` on the same curve to rounding (a test checks ~1e-9 relative;
in practice ~1e-14):

* means, variances and the covariance behind ``volatility``, ``sharpe`` and
  ``beta`` are merged from per-chunk two-pass statistics (Chan, Golub and
  LeVeque's pairwise update of Welford's sums), which is as accurate as the
  two-pass formulas NumPy applies to the whole array;
* the sums behind ``sortino`` and the trade statistics are Neumaier-compensated
  across chunks;
* the running peak, the drawdowns and their durations, the counts, ``best`` and
  ``worst`` are exact: they are the same comparisons in the same order.

:class:`BenchmarkStream` produces the buy-and-hold curve of
:func:`engine.backtest.benchmark.benchmark_equity` chunk by chunk (the same arithmetic, in
the same order), so ``benchmark_return`` and ``beta`` are available in streaming
mode too. Every metric of ``compute_metrics`` is produced; none is left out.
"""

from __future__ import annotations

import math

import numpy as np

from engine.analysis.conventions import (
    BENCHMARK_KEYS,
    METRIC_KEYS,
    _check_rate,
    _check_start,
    per_bar_rate,
    resolve_periods_per_year,
)
from engine.analysis.stats import psr_from_moments
from engine.errors import ParameterError

__all__ = ["BenchmarkStream", "StreamingMetrics"]

_NAN = float("nan")
# The allowance of engine.analysis.metrics for a spread that is rounding noise (kept equal).
_ZERO_SPREAD = 1e-12


class _Sum:
    """A Neumaier-compensated running sum of floats (chunk sums are added to it)."""

    __slots__ = ("total", "carry")

    def __init__(self) -> None:
        self.total = 0.0
        self.carry = 0.0

    def add(self, value: float) -> None:
        t = self.total + value
        if abs(self.total) >= abs(value):
            self.carry += (self.total - t) + value
        else:
            self.carry += (value - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        return self.total + self.carry


class _Moments:
    """Count, mean and centred moments of one or two series, merged by chunk.

    Each chunk's mean and sums of powered deviations are computed two-pass over the
    chunk, then merged with the running ones (Chan et al. for the second moments,
    Pébay 2008 for the third and fourth of ``x``): no cancellation of large sums,
    so the moments are as accurate as NumPy's over the whole array.
    """

    __slots__ = ("n", "mean_x", "mean_y", "m2_x", "m3_x", "m4_x", "m2_y", "c_xy")

    def __init__(self) -> None:
        self.n = 0
        self.mean_x = self.mean_y = 0.0
        self.m2_x = self.m3_x = self.m4_x = self.m2_y = self.c_xy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        m = x.size
        if m == 0:
            return
        # Sums of products by NumPy's pairwise summation, not np.dot: BLAS may wake
        # its threads for a dot product, which costs milliseconds on a busy machine.
        mx = float(x.mean())
        dx = x - mx
        dx2 = dx * dx
        m2x, m3x, m4x = float(np.sum(dx2)), float(np.sum(dx2 * dx)), float(np.sum(dx2 * dx2))
        if y is not None:
            my = float(y.mean())
            dy = y - my
            m2y, cxy = float(np.sum(dy * dy)), float(np.sum(dx * dy))
        else:
            my = m2y = cxy = 0.0
        a, n = self.n, self.n + m
        delta_x, delta_y = mx - self.mean_x, my - self.mean_y
        weight = a * m / n
        # Pébay's pairwise update, written with the old moments before they change.
        self.m4_x += (m4x + delta_x ** 4 * a * m * (a * a - a * m + m * m) / n ** 3
                      + 6 * delta_x ** 2 * (a * a * m2x + m * m * self.m2_x) / n ** 2
                      + 4 * delta_x * (a * m3x - m * self.m3_x) / n)
        self.m3_x += (m3x + delta_x ** 3 * a * m * (a - m) / n ** 2
                      + 3 * delta_x * (a * m2x - m * self.m2_x) / n)
        self.m2_x += m2x + delta_x * delta_x * weight
        self.m2_y += m2y + delta_y * delta_y * weight
        self.c_xy += cxy + delta_x * delta_y * weight
        self.mean_x += delta_x * m / n
        self.mean_y += delta_y * m / n
        self.n = n


class StreamingMetrics:
    """Accumulate the metrics of a backtest from chunks of its equity curve.

    Parameters
    ----------
    starting_cash : float
        Equity before the first bar (``E[0]``), finite and ``> 0``.
    periods_per_year : int, float or str, default 252
        Bars per year or a preset name, as for
        :func:`engine.analysis.metrics.compute_metrics`.
    risk_free : float, default 0.0
        Annual risk-free rate.
    benchmark_start : float, optional
        The benchmark's value before the first bar; give it to get
        ``benchmark_return`` and ``beta`` (then every :meth:`add_bars` call passes
        ``benchmark``).

    Examples
    --------
    >>> acc = StreamingMetrics(100.0)
    >>> acc.add_bars(np.array([110.0, 99.0]), np.array([True, True]))
    >>> acc.add_bars(np.array([121.0]), np.array([False]))
    >>> acc.add_trades(np.array([21.0]), np.array([0.21]))
    >>> round(acc.result()["max_drawdown"], 6), acc.result()["exposure"]
    (0.1, 0.6666666666666666)
    """

    def __init__(self, starting_cash, *, periods_per_year=252, risk_free=0.0,
                 benchmark_start=None) -> None:
        self.ppy = resolve_periods_per_year(periods_per_year)
        self.risk_free = _check_rate(risk_free)
        self.rf_bar = per_bar_rate(self.risk_free, self.ppy)
        self.start = _check_start(starting_cash, "starting_cash")
        self.last = self.start                 # E at the last bar seen
        self.n = 0                             # bars seen (len(E) - 1)
        self.returns = _Moments()              # r, and r_b when there is a benchmark
        self.returns_nan = False               # a bar whose previous equity was <= 0
        self.max_abs_r = 0.0
        self.downside = _Sum()                 # sum of min(r - rf_bar, 0) ** 2
        self.peak = self.start
        self.max_dd = 0.0
        self.under_since = -1                  # index in E of the open drawdown's first bar
        self.max_duration = 0
        self.in_market = 0
        self.exposure_known = True
        self.bench = benchmark_start is not None
        self.b_start = _check_start(benchmark_start, "benchmark_start") if self.bench else _NAN
        self.b_last = self.b_start
        self.b_nan = False
        self.max_abs_rb = 0.0
        # trades
        self.trades = 0
        self.wins = 0
        self.losses = 0
        self.gross_win = _Sum()
        self.gross_loss = _Sum()
        self.pnl_sum = _Sum()
        self.best = -math.inf
        self.worst = math.inf
        self.returns_given = 0

    # ------------------------------------------------------------------ input

    def add_bars(self, equity, in_market=None, benchmark=None) -> None:
        """Take the next bars of the curve.

        Parameters
        ----------
        equity : array_like
            Equity at each of the next bars' closes, finite.
        in_market : array_like of bool, optional
            One flag per bar; if any chunk omits it, ``exposure`` is NaN.
        benchmark : array_like, optional
            The benchmark at the same closes; required when ``benchmark_start``
            was given.
        """
        eq = np.asarray(equity, dtype=np.float64)
        if eq.ndim != 1:
            raise ParameterError(f"equity must be a 1-D array; got shape {eq.shape}")
        bad = ~np.isfinite(eq)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ParameterError(
                f"equity must be finite at every bar; bar {self.n + i} is {eq[i]}"
            )
        m = eq.size
        if m == 0:
            return
        prev = np.empty(m)
        prev[0] = self.last
        prev[1:] = eq[:-1]
        r = _returns(eq, prev)
        rb = None
        if self.bench:
            if benchmark is None:
                raise ParameterError("benchmark is required on every chunk when "
                                     "benchmark_start was given")
            bench = np.asarray(benchmark, dtype=np.float64)
            if bench.shape != eq.shape:
                raise ParameterError(f"benchmark has shape {bench.shape}; expected {eq.shape}")
            bprev = np.empty(m)
            bprev[0] = self.b_last
            bprev[1:] = bench[:-1]
            rb = _returns(bench, bprev)
            self.b_last = float(bench[-1])
            if np.isnan(rb).any():
                self.b_nan = True
            else:
                self.max_abs_rb = max(self.max_abs_rb, float(np.max(np.abs(rb))))
        if np.isnan(r).any():
            self.returns_nan = True
        else:
            self.max_abs_r = max(self.max_abs_r, float(np.max(np.abs(r))))
            x = r - self.rf_bar
            self.downside.add(float(np.sum(np.square(np.minimum(x, 0.0)))))
        if not (self.returns_nan or (rb is not None and self.b_nan)):
            self.returns.add(r, rb)
        elif not self.returns_nan:
            self.returns.add(r)
        self._drawdowns(eq)
        if in_market is None:
            self.exposure_known = False
        else:
            flags = np.asarray(in_market)
            if flags.shape != (m,):
                raise ParameterError(f"in_market has shape {flags.shape}; expected ({m},)")
            self.in_market += int(np.count_nonzero(flags))
        self.last = float(eq[-1])
        self.n += m

    def _drawdowns(self, eq: np.ndarray) -> None:
        peaks = np.maximum.accumulate(eq)
        np.maximum(peaks, self.peak, out=peaks)
        dd = 1.0 - eq / peaks
        self.max_dd = max(self.max_dd, float(dd.max()))
        self.peak = float(peaks[-1])
        # Runs of bars below the running peak, in indices of E (E[0] = starting cash):
        # a run whose first bar is f and whose recovery bar is q lasts q - (f - 1).
        under = eq < peaks
        was = np.empty(under.size, dtype=bool)
        was[0] = self.under_since >= 0
        was[1:] = under[:-1]
        first = self.n + 1 + np.flatnonzero(under & ~was)
        recovered = self.n + 1 + np.flatnonzero(~under & was)
        starts = first if self.under_since < 0 else np.concatenate(([self.under_since], first))
        if recovered.size:
            longest = int((recovered - (starts[: recovered.size] - 1)).max())
            self.max_duration = max(self.max_duration, longest)
        self.under_since = int(starts[-1]) if starts.size > recovered.size else -1

    def add_trades(self, pnl, return_pct=None) -> None:
        """Take closed trades: their P&L (money) and return (fraction)."""
        pnl = np.asarray(pnl, dtype=np.float64)
        if pnl.size and not np.isfinite(pnl).all():
            raise ParameterError("trade pnl must be finite")
        self.trades += pnl.size
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        self.wins += wins.size
        self.losses += losses.size
        self.gross_win.add(float(wins.sum()))
        self.gross_loss.add(float(-losses.sum()))
        self.pnl_sum.add(float(pnl.sum()))
        if return_pct is not None:
            ret = np.asarray(return_pct, dtype=np.float64)
            if ret.size != pnl.size:
                raise ParameterError(f"return_pct has {ret.size} values but pnl has "
                                     f"{pnl.size}; give one return per closed trade")
            if ret.size:
                self.best = max(self.best, float(ret.max()))
                self.worst = min(self.worst, float(ret.min()))
            self.returns_given += ret.size

    # ------------------------------------------------------------------ output

    def result(self) -> dict[str, float]:
        """The metrics so far, keyed as :func:`~engine.analysis.metrics.compute_metrics`
        keys them."""
        n, ppy = self.n, self.ppy
        out: dict[str, float] = {}
        out["total_return"] = self.last / self.start - 1.0
        if n == 0:
            growth = _NAN
        elif self.last <= 0:
            growth = -1.0
        else:
            with np.errstate(over="ignore"):
                growth = float(np.power(self.last / self.start, ppy / n) - 1.0)
        out["cagr"] = growth
        mom = self.returns
        if self.returns_nan:
            vol = sharpe = sortino = _NAN
        else:
            sd = math.sqrt(mom.m2_x / (n - 1)) if n >= 2 else _NAN
            vol = sd * math.sqrt(ppy) if n >= 2 else _NAN
            mean_x = mom.mean_x - self.rf_bar
            if n < 2 or sd <= _ZERO_SPREAD * self.max_abs_r:
                sharpe = _NAN
            else:
                sharpe = mean_x / sd * math.sqrt(ppy)
            downside = math.sqrt(self.downside.value / n) if n else 0.0
            sortino = _NAN if downside == 0 else mean_x / downside * math.sqrt(ppy)
        out["volatility"] = vol
        out["sharpe"] = sharpe
        out["psr"] = self._psr(sharpe, 0.0)
        out["sortino"] = sortino
        out["calmar"] = _NAN if self.max_dd == 0 else growth / self.max_dd
        out["max_drawdown"] = self.max_dd
        duration = self.max_duration
        if self.under_since >= 0:
            duration = max(duration, n - (self.under_since - 1))
        out["max_drawdown_duration"] = float(duration)
        t = self.trades
        gross_win, gross_loss = self.gross_win.value, self.gross_loss.value
        if gross_loss > 0:
            pf = gross_win / gross_loss
        elif gross_win > 0:
            pf = math.inf
        else:
            pf = _NAN
        given = self.returns_given > 0
        out.update({
            "trades": float(t),
            "hit_rate": self.wins / t if t else _NAN,
            "profit_factor": pf,
            "expectancy": self.pnl_sum.value / t if t else _NAN,
            "avg_win": gross_win / self.wins if self.wins else _NAN,
            "avg_loss": -gross_loss / self.losses if self.losses else _NAN,
            "best_trade": self.best if given else _NAN,
            "worst_trade": self.worst if given else _NAN,
        })
        out["exposure"] = self.in_market / n if (self.exposure_known and n) else _NAN
        out["final_equity"] = self.last
        if self.bench:
            out["benchmark_return"] = self.b_last / self.b_start - 1.0
            out["beta"] = self._beta()
            out["psr_benchmark"] = self._psr(sharpe, self._benchmark_sharpe())
            out.update(self._relative(out["beta"]))
        keys = METRIC_KEYS + (BENCHMARK_KEYS if self.bench else ())
        return {k: float(out[k]) for k in keys}

    def _psr(self, sharpe: float, benchmark: float) -> float:
        """The probabilistic Sharpe ratio of the excess returns against a per-bar
        ``benchmark`` Sharpe ratio (:func:`engine.analysis.stats.psr_from_moments`)."""
        mom, n = self.returns, self.n
        if not math.isfinite(sharpe) or n < 3 or mom.m2_x <= 0:
            return _NAN
        skew = math.sqrt(n) * mom.m3_x / mom.m2_x ** 1.5
        kurtosis = n * mom.m4_x / mom.m2_x ** 2
        return psr_from_moments(sharpe / math.sqrt(self.ppy), n, skew, kurtosis, benchmark)

    def _benchmark_sharpe(self) -> float:
        """The benchmark's per-bar Sharpe ratio of its excess returns (NaN if undefined)."""
        mom, n = self.returns, self.n
        if self.returns_nan or self.b_nan or n < 2:
            return _NAN
        sd = math.sqrt(mom.m2_y / (n - 1))
        if sd <= _ZERO_SPREAD * self.max_abs_rb:
            return _NAN
        return (mom.mean_y - self.rf_bar) / sd

    def _relative(self, beta: float) -> dict[str, float]:
        """``tracking_error``, ``information_ratio`` and ``alpha`` from the merged moments:
        ``var(r - r_b) = var(r) + var(r_b) - 2 cov(r, r_b)`` and ``mean(r - r_b) =
        mean(r) - mean(r_b)`` (definitions in :mod:`engine.analysis.metrics`)."""
        mom, n = self.returns, self.n
        out = {"tracking_error": _NAN, "information_ratio": _NAN, "alpha": _NAN}
        if self.returns_nan or self.b_nan or n < 2:
            return out
        spread = math.sqrt(max(mom.m2_x + mom.m2_y - 2.0 * mom.c_xy, 0.0) / (n - 1))
        out["tracking_error"] = spread * math.sqrt(self.ppy)
        if spread > _ZERO_SPREAD * (self.max_abs_r + self.max_abs_rb):
            out["information_ratio"] = (mom.mean_x - mom.mean_y) / spread * math.sqrt(self.ppy)
        if math.isfinite(beta):
            out["alpha"] = ((mom.mean_x - self.rf_bar) - beta * (mom.mean_y - self.rf_bar)) \
                * self.ppy
        return out

    def _beta(self) -> float:
        mom, n = self.returns, self.n
        if self.returns_nan or self.b_nan:
            return _NAN
        if n < 2:
            return _NAN
        var_b = mom.m2_y / (n - 1)
        if math.sqrt(var_b) <= _ZERO_SPREAD * self.max_abs_rb:
            return _NAN
        return (mom.c_xy / (n - 1)) / var_b


def _returns(values: np.ndarray, prev: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = values / prev - 1.0
    return np.where(prev > 0, r, np.nan)


class BenchmarkStream:
    """Buy-and-hold of every symbol in equal parts, chunk by chunk.

    The curve of :func:`engine.backtest.benchmark.benchmark_equity`: ``cash / k`` put into
    each of the ``k`` symbols at its first close (fractional, no costs) and held,
    marked at every close (a missing close keeps the last one); a part whose
    symbol has not traded yet is cash. The per-symbol first and last closes carry
    over from one chunk to the next.

    Parameters
    ----------
    cash : float
        The starting cash.
    n_symbols : int
        Columns of every chunk.
    """

    def __init__(self, cash: float, n_symbols: int) -> None:
        self.part = float(cash) / n_symbols
        self.first = np.full(n_symbols, np.nan)
        self.mark = np.full(n_symbols, np.nan)

    def add(self, close: np.ndarray) -> np.ndarray:
        """The benchmark at each close of the chunk ``close`` (``(bars, n_symbols)``)."""
        from engine._core.kernels import hold_curve

        total = np.empty(close.shape[0])
        hold_curve(np.ascontiguousarray(close, dtype=np.float64), self.part, self.first,
                   self.mark, total)
        return total
