"""Performance metrics of a backtest: the reference for every metric convention.

Everything here is a pure function of NumPy arrays; :func:`compute_metrics`
assembles the report the engine prints, and the building blocks it uses are
public so that the same definitions can be reused (and checked) elsewhere.

Notation
--------
``equity`` is the portfolio value marked at each bar's close, one value per bar
(``n_bars`` values). The **equity curve** prepends the starting cash::

    E = [starting_cash, equity[0], equity[1], ..., equity[n_bars - 1]]

so ``E`` has ``n_bars + 1`` points, ``E_start = E[0] = starting_cash`` and
``E_end = E[-1]`` (``= starting_cash`` when there are no bars). The **per-bar
returns** are::

    r_i = E_i / E_{i-1} - 1,        i = 1 .. n,        n = len(r) = n_bars

so the first bar's return is measured against the starting cash. A return whose
previous equity ``E_{i-1}`` is ``<= 0`` (a ruined, or short-and-underwater,
account) is undefined and is NaN; every statistic built on ``r`` is then NaN too.

``ppy`` is ``periods_per_year``, the number of bars in a year used to annualise:
``252`` (trading days, the default) or ``365`` (calendar days, e.g. crypto). It
may be given as a number or as a preset name, a key of :data:`PRESETS`
(``"252"`` or ``"365"``); any other value raises
:class:`~engine.errors.ParameterError`. Any positive number is accepted (e.g.
``52`` for weekly bars).

``risk_free`` is an **annual** rate (``0.05`` = 5 % a year). It is turned into
the equivalent compounded per-bar rate::

    rf_bar = (1 + risk_free) ** (1 / ppy) - 1

and the **excess returns** are ``x_i = r_i - rf_bar``. (For ``risk_free = 0.05``
and ``ppy = 252``, ``rf_bar = 0.0001936...``; compounding ``rf_bar`` over 252
bars gives back exactly 5 %.)

Return metrics
--------------
total_return
    ``E_end / E_start - 1``.
final_equity
    ``E_end``.
cagr
    ``(E_end / E_start) ** (ppy / n) - 1``: the growth rate per ``ppy`` bars,
    compounded. NaN when ``n = 0``; ``-1`` when ``E_end <= 0`` (money lost).
    On fewer than ``ppy`` bars this extrapolates, so it can be very large.
volatility
    ``std(r, ddof=1) * sqrt(ppy)`` (sample standard deviation). NaN when
    ``n < 2``.
sharpe
    ``mean(x) / std(r, ddof=1) * sqrt(ppy)``. NaN when ``n < 2`` or when the
    standard deviation is zero. "Zero" allows for floating-point rounding: a
    standard deviation below ``1e-12 * max|r|`` (the noise left by a constant
    return series) counts as zero.
psr
    The probabilistic Sharpe ratio (Bailey & López de Prado 2012): the
    probability that the true Sharpe ratio of ``x`` is above 0, given the
    per-bar estimate ``SR = mean(x) / std(r, ddof=1)`` over ``n`` bars and the
    skewness ``g3 = m3 / m2 ** 1.5`` and kurtosis ``g4 = m4 / m2 ** 2`` of ``r``
    (``mk = mean((r - mean(r)) ** k)``, population moments; ``g4 = 3`` for a normal
    distribution): ``Phi(SR * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR ** 2))``,
    ``Phi`` the standard normal distribution function. NaN when ``sharpe`` is NaN
    or ``n < 3``. 0.95 or more reads "the edge is unlikely to be luck", for one
    strategy tried once (after many trials, see the deflated Sharpe ratio of
    :mod:`engine.analysis.stats`).
sortino
    ``mean(x) / sqrt(mean(min(x, 0) ** 2)) * sqrt(ppy)``. The denominator (the
    downside deviation) averages the squared shortfalls over **every** bar,
    counting bars with ``x_i >= 0`` as zero shortfall; it is *not* the standard
    deviation of the negative bars alone. For ``x = [0.1, -0.1, 0.2, -0.05]``
    the denominator is ``sqrt((0.01 + 0.0025) / 4)``, not
    ``sqrt((0.01 + 0.0025) / 2)``. NaN when the denominator is zero (no bar
    below ``rf_bar``) or ``n = 0``.
max_drawdown
    ``max_t (1 - E_t / max_{s<=t} E_s)`` over the whole curve ``E``, the starting
    point included: the largest fall from a running peak, as a positive fraction
    of that peak (peak 120, trough 90: ``0.25``). ``0`` if equity never falls
    below a previous peak. It exceeds 1 only if equity goes negative.
max_drawdown_duration
    The longest time, in bars, spent below a previous peak. A drawdown starts at
    its peak bar ``p`` (the last bar at which ``E`` stood at its running maximum
    before falling below it) and ends at the first later bar ``q`` with
    ``E_q >= E_p`` (regaining the peak exactly counts); its duration is
    ``q - p``. A drawdown not recovered by the end of the data lasts until the
    last bar: ``(len(E) - 1) - p``. Indices are positions in ``E`` (so the
    starting cash is bar 0 and can be the peak). Example::

        E     = [100, 120, 90, 110, 125, 100]
        index =    0    1   2    3    4    5

    The peak 120 at index 1 is regained at index 4 (125 >= 120): duration 3.
    The peak 125 at index 4 is not regained; the data end at index 5: duration
    1. ``max_drawdown_duration = 3``. A curve that never falls below a peak
    has duration ``0``.
calmar
    ``cagr / max_drawdown``. NaN when ``max_drawdown = 0``.

Trade metrics
-------------
From the closed trades: ``pnl`` (money, after costs) and ``return_pct`` (the
trade's return as a fraction), one value each per closed trade. A closed trade
is a closed row of the FIFO trade ledger (:mod:`engine._core.broker`): the part
of one lot that one fill closed, so a partial exit is a trade of its own and a
position built by several fills and sold at once makes one trade per lot.

trades
    The number of closed trades.
hit_rate
    ``count(pnl > 0) / trades``. A trade with zero P&L is **not** a hit (it
    counts in the denominator only). NaN if there are no trades.
profit_factor
    ``sum(pnl[pnl > 0]) / |sum(pnl[pnl < 0])|``: gross profit over gross loss.
    ``inf`` if there are winners but no losers; ``0`` if losers but no winners;
    NaN if there are no trades or every trade's P&L is zero.
expectancy
    ``mean(pnl)``: the average P&L per closed trade (zeros included). NaN if
    there are no trades.
avg_win, avg_loss
    ``mean(pnl[pnl > 0])`` and ``mean(pnl[pnl < 0])`` (the latter is
    negative). NaN when there is no such trade.
best_trade, worst_trade
    ``max(return_pct)`` and ``min(return_pct)``. NaN with no trades.

Other metrics
-------------
exposure
    The fraction of bars on which a position was held: ``mean(in_market)`` for
    a boolean array with one value per bar, or a precomputed fraction in
    ``[0, 1]``. NaN if not given, or if there are no bars.
benchmark_return
    The benchmark's total return ``B_end / B_start - 1``, with
    ``B = [benchmark_start, benchmark_equity...]`` built exactly like ``E``
    (e.g. buy-and-hold of the same data with the same cash). ``engine.run``
    passes :func:`engine.backtest.benchmark.benchmark_equity`: the starting cash split
    equally over the symbols, each part bought at its symbol's first close
    (fractional, no costs) and held, marked at every close; so
    ``benchmark_return`` is the instrument's own price return for one symbol.
beta
    ``cov(r, r_b, ddof=1) / var(r_b, ddof=1)`` with ``r_b`` the benchmark's
    per-bar returns. NaN if ``n < 2`` or the benchmark's variance is zero (same
    rounding allowance as for ``sharpe``). A curve against itself has beta 1;
    one whose returns are exactly twice the benchmark's has beta 2.
psr_benchmark
    ``psr`` against the benchmark's per-bar Sharpe ratio ``mean(r_b - rf_bar) /
    std(r_b, ddof=1)`` instead of 0: the probability that the strategy's true
    Sharpe ratio beats buy-and-hold's measured one.
tracking_error, information_ratio, alpha
    Against the benchmark (with ``beta`` and ``psr_benchmark``;
    :func:`tracking_error`, :func:`information_ratio`, :func:`alpha`), with the active
    returns ``a_i = r_i - r_b,i``: ``tracking_error = std(a, ddof=1) *
    sqrt(ppy)``; ``information_ratio = mean(a) / std(a, ddof=1) * sqrt(ppy)``
    (Grinold and Kahn, *Active Portfolio Management*, 2000, ch. 5); ``alpha`` is
    Jensen's alpha per bar annualised by ``ppy``: ``(mean(r - rf_bar) - beta *
    mean(r_b - rf_bar)) * ppy`` (Jensen, "The performance of mutual funds in the
    period 1945-1964", Journal of Finance 23, 1968). NaN if ``n < 2``, if a return
    is undefined, or (information ratio, alpha) if the spread they divide by is zero.

Types
-----
:func:`compute_metrics` returns a ``dict`` whose values are all Python
``float`` -- the counts ``trades`` and ``max_drawdown_duration`` included
(integral-valued floats), so that every column of a table of reports has one
type. The building block :func:`max_drawdown_duration` returns an ``int``.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from engine.analysis.conventions import (
    BENCHMARK_KEYS,
    METRIC_KEYS,
    PRESETS,
    _check_rate,
    _check_start,
    per_bar_rate,
    resolve_periods_per_year,
)
from engine.analysis.streaming_metrics import StreamingMetrics
from engine.errors import ParameterError

__all__ = [
    "PRESETS",
    "METRIC_KEYS",
    "BENCHMARK_KEYS",
    "resolve_periods_per_year",
    "per_bar_rate",
    "equity_curve",
    "bar_returns",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "psr",
    "sortino",
    "drawdown_series",
    "max_drawdown",
    "max_drawdown_duration",
    "calmar",
    "trade_metrics",
    "exposure",
    "beta",
    "compute_metrics",
]

_NAN = float("nan")
# A spread below this fraction of the largest |value| is rounding noise: zero.
_ZERO_SPREAD = 1e-12


# --------------------------------------------------------------------------- validation


def _as_1d(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array, every element finite."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a 1-D array of numbers: {exc}") from None
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be a 1-D array of numbers; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ParameterError(
            f"{name} must be finite at every position; {int(bad.sum())} value(s) are not, "
            f"the first at index {i} ({arr[i]})"
        )
    return arr


# --------------------------------------------------------------------------- returns


def equity_curve(equity, starting_cash: float) -> np.ndarray:
    """Prepend the starting cash to the per-bar equity.

    Parameters
    ----------
    equity : array_like
        Equity marked at each bar's close, shape ``(n_bars,)``, all finite.
    starting_cash : float
        Equity before the first bar; finite and ``> 0``.

    Returns
    -------
    numpy.ndarray
        ``E = [starting_cash, *equity]``, float64, shape ``(n_bars + 1,)``.

    Raises
    ------
    ParameterError
        If ``equity`` is not a 1-D array of finite numbers or ``starting_cash``
        is not a finite positive number.
    """
    start = _check_start(starting_cash, "starting_cash")
    eq = _as_1d(equity, "equity")
    return np.concatenate(([start], eq))


def _returns_of_curve(E: np.ndarray) -> np.ndarray:
    prev = E[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = E[1:] / prev - 1.0
    return np.where(prev > 0, r, np.nan)


def bar_returns(equity, starting_cash: float) -> np.ndarray:
    """Per-bar simple returns of an equity curve that starts at ``starting_cash``.

    Parameters
    ----------
    equity : array_like
        Equity marked at each bar's close, shape ``(n_bars,)``.
    starting_cash : float
        Equity before the first bar (``> 0``).

    Returns
    -------
    numpy.ndarray
        ``r_i = E_i / E_{i-1} - 1`` with ``E = [starting_cash, *equity]``; shape
        ``(n_bars,)``. NaN where ``E_{i-1} <= 0``.

    Examples
    --------
    >>> bar_returns([110.0, 99.0, 121.0], starting_cash=100.0).round(4)
    array([ 0.1   , -0.1   ,  0.2222])
    """
    return _returns_of_curve(equity_curve(equity, starting_cash))


def total_return(E) -> float:
    """Total return ``E_end / E_start - 1`` of an equity curve ``E`` (start included)."""
    E = np.asarray(E, dtype=np.float64)
    return float(E[-1] / E[0] - 1.0)


def cagr(E, periods_per_year=252) -> float:
    """Compound annual growth rate of an equity curve.

    Parameters
    ----------
    E : array_like
        Equity curve including the starting point, shape ``(n + 1,)``,
        ``E[0] > 0``.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key.

    Returns
    -------
    float
        ``(E_end / E_start) ** (periods_per_year / n) - 1``; NaN if ``n = 0``,
        ``-1`` if ``E_end <= 0``, ``inf`` if the growth overflows.
    """
    ppy = resolve_periods_per_year(periods_per_year)
    E = np.asarray(E, dtype=np.float64)
    n = E.size - 1
    if n <= 0:
        return _NAN
    if E[-1] <= 0:
        return -1.0
    with np.errstate(over="ignore"):
        return float(np.power(E[-1] / E[0], ppy / n) - 1.0)


def _zero_spread(sd: float, x: np.ndarray) -> bool:
    return bool(sd <= _ZERO_SPREAD * np.max(np.abs(x)))


def volatility(r, periods_per_year=252) -> float:
    """Annualised volatility ``std(r, ddof=1) * sqrt(periods_per_year)``.

    Parameters
    ----------
    r : array_like
        Per-bar returns, shape ``(n,)``.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key.

    Returns
    -------
    float
        NaN if ``n < 2``.
    """
    ppy = resolve_periods_per_year(periods_per_year)
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return _NAN
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(r, periods_per_year=252, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio ``mean(r - rf_bar) / std(r, ddof=1) * sqrt(ppy)``.

    Parameters
    ----------
    r : array_like
        Per-bar returns, shape ``(n,)``.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key.
    risk_free : float, default 0.0
        Annual risk-free rate, converted with :func:`per_bar_rate`.

    Returns
    -------
    float
        NaN if ``n < 2`` or the standard deviation is zero (below
        ``1e-12 * max|r|``).
    """
    ppy = resolve_periods_per_year(periods_per_year)
    rf = per_bar_rate(risk_free, ppy)
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return _NAN
    sd = float(np.std(r, ddof=1))
    if _zero_spread(sd, r):
        return _NAN
    return float(np.mean(r - rf) / sd * math.sqrt(ppy))


def psr(r, periods_per_year=252, risk_free: float = 0.0, r_b=None) -> float:
    """Probabilistic Sharpe ratio of the excess returns of ``r`` (see the module docstring).

    Against 0, or with ``r_b`` against the benchmark's per-bar Sharpe ratio
    (``psr_benchmark``); computed on the whole arrays by
    :func:`engine.analysis.stats.probabilistic_sharpe`.
    """
    from engine.analysis.stats import per_bar_sharpe, probabilistic_sharpe

    rf_bar = per_bar_rate(risk_free, periods_per_year)
    x = np.asarray(r, dtype=np.float64) - rf_bar
    threshold = 0.0 if r_b is None else per_bar_sharpe(np.asarray(r_b, dtype=np.float64)
                                                      - rf_bar)
    return probabilistic_sharpe(x, threshold)


def sortino(r, periods_per_year=252, risk_free: float = 0.0) -> float:
    """Annualised Sortino ratio, downside deviation averaged over every bar.

    ``mean(x) / sqrt(mean(min(x, 0) ** 2)) * sqrt(ppy)`` with
    ``x = r - rf_bar``; bars at or above ``rf_bar`` contribute zero to the
    mean in the denominator but still count in its length.

    Parameters
    ----------
    r : array_like
        Per-bar returns, shape ``(n,)``.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key.
    risk_free : float, default 0.0
        Annual risk-free rate, converted with :func:`per_bar_rate`.

    Returns
    -------
    float
        NaN if ``n = 0`` or no bar's excess return is negative.
    """
    ppy = resolve_periods_per_year(periods_per_year)
    rf = per_bar_rate(risk_free, ppy)
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        return _NAN
    x = r - rf
    downside = math.sqrt(np.mean(np.square(np.minimum(x, 0.0))))
    if downside == 0:
        return _NAN
    return float(np.mean(x) / downside * math.sqrt(ppy))


# --------------------------------------------------------------------------- drawdowns


def drawdown_series(E) -> np.ndarray:
    """Drawdown at each point of an equity curve, as a positive fraction of the peak.

    Parameters
    ----------
    E : array_like
        Equity curve including the starting point, ``E[0] > 0``.

    Returns
    -------
    numpy.ndarray
        ``1 - E_t / max_{s<=t} E_s``, same shape as ``E``; ``0`` at every new
        peak.

    Examples
    --------
    >>> drawdown_series([100.0, 120.0, 90.0, 130.0]).tolist()
    [0.0, 0.0, 0.25, 0.0]
    """
    E = np.asarray(E, dtype=np.float64)
    return 1.0 - E / np.maximum.accumulate(E)


def max_drawdown(E) -> float:
    """Largest drawdown of an equity curve, a positive fraction (``0`` if none).

    Parameters
    ----------
    E : array_like
        Equity curve including the starting point.

    Returns
    -------
    float
        ``max_t (1 - E_t / max_{s<=t} E_s)``.
    """
    dd = drawdown_series(E)
    return float(max(dd.max(), 0.0)) if dd.size else 0.0


def max_drawdown_duration(E) -> int:
    """Longest time in bars from a peak until equity regains it (or the data end).

    A drawdown runs from its peak bar ``p`` (the last bar at the running
    maximum before a fall) to the first later bar ``q`` with ``E_q >= E_p``:
    ``q - p`` bars. Unrecovered, it runs to the last bar: ``len(E) - 1 - p``.
    Computed from the runs of consecutive bars below the running maximum.

    Parameters
    ----------
    E : array_like
        Equity curve including the starting point.

    Returns
    -------
    int
        The longest duration; ``0`` if equity never falls below a peak.

    Examples
    --------
    >>> max_drawdown_duration([100, 120, 90, 110, 125, 100])
    3
    """
    E = np.asarray(E, dtype=np.float64)
    under = E < np.maximum.accumulate(E)
    if not under.any():
        return 0
    edges = np.diff(np.concatenate(([0], under.view(np.int8), [0])))
    first_under = np.flatnonzero(edges == 1)  # first bar below the peak; peak = this - 1
    after_under = np.flatnonzero(edges == -1)  # recovery bar, or len(E) if unrecovered
    durations = np.minimum(after_under, E.size - 1) - (first_under - 1)
    return int(durations.max())


def calmar(cagr_value: float, max_drawdown_value: float) -> float:
    """Calmar ratio ``cagr / max_drawdown``; NaN when ``max_drawdown`` is 0."""
    if max_drawdown_value == 0:
        return _NAN
    return float(cagr_value / max_drawdown_value)


# --------------------------------------------------------------------------- trades etc.


def trade_metrics(pnl=(), return_pct=()) -> dict[str, float]:
    """Statistics of closed trades.

    Parameters
    ----------
    pnl : array_like, default ()
        P&L of each closed trade, in money.
    return_pct : array_like, default ()
        Return of each closed trade as a fraction; the same length as ``pnl``,
        or empty (then ``best_trade`` and ``worst_trade`` are NaN).

    Returns
    -------
    dict of str to float
        ``trades, hit_rate, profit_factor, expectancy, avg_win, avg_loss,
        best_trade, worst_trade`` as defined in the module docstring.

    Raises
    ------
    ParameterError
        On non-finite values or mismatched lengths.

    Examples
    --------
    >>> trade_metrics([10.0, 0.0, -5.0])["profit_factor"]
    2.0
    """
    pnl = _as_1d(pnl, "trade_pnl")
    ret = _as_1d(return_pct, "trade_return")
    if ret.size not in (0, pnl.size):
        raise ParameterError(
            f"trade_return has {ret.size} values but trade_pnl has {pnl.size}; "
            f"give one return per closed trade (or none)"
        )
    n = pnl.size
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    if gross_loss > 0:
        pf = gross_win / gross_loss
    elif gross_win > 0:
        pf = math.inf
    else:
        pf = _NAN
    return {
        "trades": float(n),
        "hit_rate": wins.size / n if n else _NAN,
        "profit_factor": pf,
        "expectancy": float(pnl.mean()) if n else _NAN,
        "avg_win": float(wins.mean()) if wins.size else _NAN,
        "avg_loss": float(losses.mean()) if losses.size else _NAN,
        "best_trade": float(ret.max()) if ret.size else _NAN,
        "worst_trade": float(ret.min()) if ret.size else _NAN,
    }


def exposure(in_market, n_bars: int) -> float:
    """Fraction of bars with a position.

    Parameters
    ----------
    in_market : array_like of bool, float or None
        One flag per bar (``True`` = a position was held), or an already
        computed fraction in ``[0, 1]``, or ``None`` (unknown).
    n_bars : int
        The number of bars, which a flag array must match.

    Returns
    -------
    float
        ``mean(in_market)``, the given fraction, or NaN for ``None`` or no bars.
    """
    if in_market is None:
        return _NAN
    if isinstance(in_market, Real) and not isinstance(in_market, bool):
        v = float(in_market)
        if not 0.0 <= v <= 1.0:
            raise ParameterError(f"in_market={in_market!r} is not a fraction in [0, 1]")
        return v
    flags = np.asarray(in_market)
    if flags.dtype != np.bool_:
        ok = flags.ndim == 1 and flags.dtype.kind in "iuf" and np.isin(flags, (0, 1)).all()
        if not ok:
            raise ParameterError(
                f"in_market must be a 1-D boolean array (one flag per bar) or a fraction; "
                f"got dtype {flags.dtype}, shape {flags.shape}"
            )
        flags = flags.astype(np.bool_)
    if flags.shape != (n_bars,):
        raise ParameterError(
            f"in_market has shape {flags.shape} but there are {n_bars} bars; give one flag per bar"
        )
    return float(flags.mean()) if n_bars else _NAN


def beta(r, r_b) -> float:
    """Beta of returns ``r`` against benchmark returns ``r_b``.

    Parameters
    ----------
    r, r_b : array_like
        Per-bar returns of the strategy and the benchmark, same shape ``(n,)``.

    Returns
    -------
    float
        ``cov(r, r_b, ddof=1) / var(r_b, ddof=1)``; NaN if ``n < 2`` or the
        benchmark's variance is zero (below ``(1e-12 * max|r_b|) ** 2``).
    """
    r = np.asarray(r, dtype=np.float64)
    r_b = np.asarray(r_b, dtype=np.float64)
    if r.shape != r_b.shape:
        raise ParameterError(f"beta needs returns of equal length; got {r.size} and {r_b.size}")
    if r.size < 2:
        return _NAN
    db = r_b - r_b.mean()
    var_b = float(np.dot(db, db)) / (r.size - 1)
    if _zero_spread(math.sqrt(var_b), r_b):
        return _NAN
    cov = float(np.dot(r - r.mean(), db)) / (r.size - 1)
    return cov / var_b


def tracking_error(r, r_b, periods_per_year=252) -> float:
    """Annualised tracking error ``std(r - r_b, ddof=1) * sqrt(ppy)``.

    Parameters
    ----------
    r, r_b : array_like
        Per-bar returns of the strategy and the benchmark, same shape ``(n,)``.
    periods_per_year : float
        ``ppy``.

    Returns
    -------
    float
        NaN if ``n < 2`` or a return is NaN. Grinold and Kahn, *Active Portfolio
        Management* (2000), ch. 5.
    """
    ppy = resolve_periods_per_year(periods_per_year)
    a = np.asarray(r, dtype=np.float64) - np.asarray(r_b, dtype=np.float64)
    if a.size < 2 or np.isnan(a).any():
        return _NAN
    return float(np.std(a, ddof=1)) * math.sqrt(ppy)


def information_ratio(r, r_b, periods_per_year=252) -> float:
    """Annualised information ratio ``mean(a) / std(a, ddof=1) * sqrt(ppy)``, ``a = r - r_b``.

    NaN if ``n < 2``, a return is NaN, or ``std(a)`` is zero (below ``1e-12 *
    (max|r| + max|r_b|)``, the rounding allowance of ``sharpe``). Grinold and Kahn (2000).
    """
    ppy = resolve_periods_per_year(periods_per_year)
    r = np.asarray(r, dtype=np.float64)
    r_b = np.asarray(r_b, dtype=np.float64)
    a = r - r_b
    if a.size < 2 or np.isnan(a).any():
        return _NAN
    spread = float(np.std(a, ddof=1))
    if spread <= _ZERO_SPREAD * (float(np.max(np.abs(r))) + float(np.max(np.abs(r_b)))):
        return _NAN
    return float(a.mean()) / spread * math.sqrt(ppy)


def alpha(r, r_b, periods_per_year=252, risk_free=0.0) -> float:
    """Jensen's alpha, annualised: ``(mean(r - rf_bar) - beta * mean(r_b - rf_bar)) * ppy``.

    ``beta`` is :func:`beta`; NaN when it is. Jensen, "The performance of mutual
    funds in the period 1945-1964", *Journal of Finance* 23 (1968).
    """
    ppy = resolve_periods_per_year(periods_per_year)
    rf_bar = (1 + _check_rate(risk_free)) ** (1 / ppy) - 1
    r = np.asarray(r, dtype=np.float64)
    r_b = np.asarray(r_b, dtype=np.float64)
    if np.isnan(r).any() or np.isnan(r_b).any():
        return _NAN
    b = beta(r, r_b)
    if not math.isfinite(b):
        return _NAN
    return (float(np.mean(r - rf_bar)) - b * float(np.mean(r_b - rf_bar))) * ppy


# --------------------------------------------------------------------------- report

#: Bars per slice fed to the accumulator by :func:`compute_metrics`.
METRIC_SLICE = 1 << 16


def compute_metrics(
    equity,
    *,
    starting_cash,
    trade_pnl=(),
    trade_return=(),
    in_market=None,
    benchmark_equity=None,
    benchmark_start=None,
    periods_per_year=252,
    risk_free=0.0,
) -> dict[str, float]:
    """Every metric of a backtest, as defined in the module docstring.

    Parameters
    ----------
    equity : array_like
        Equity marked at each bar's close, shape ``(n_bars,)``, all finite.
    starting_cash : float
        Equity before the first bar; finite and ``> 0``.
    trade_pnl : array_like, default ()
        P&L (money) of each closed trade.
    trade_return : array_like, default ()
        Return (fraction) of each closed trade; same length as ``trade_pnl``
        or empty.
    in_market : array_like of bool or float, optional
        One flag per bar, or the exposure already computed; NaN if omitted.
    benchmark_equity : array_like, optional
        Benchmark value at each bar's close, shape ``(n_bars,)``.
    benchmark_start : float, optional
        The benchmark's value before the first bar; required with
        ``benchmark_equity``.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key (``"252"``, ``"365"``).
    risk_free : float, default 0.0
        Annual risk-free rate.

    Returns
    -------
    dict of str to float
        The keys of :data:`METRIC_KEYS` in order, then
        :data:`BENCHMARK_KEYS` if a benchmark is given; every value a Python
        ``float``.

    Raises
    ------
    ParameterError
        On invalid inputs (non-finite equity, ``starting_cash <= 0``, unknown
        ``periods_per_year``, mismatched lengths, ...).
    """
    ppy = resolve_periods_per_year(periods_per_year)
    rf = _check_rate(risk_free)
    E = equity_curve(equity, starting_cash)
    n_bars = E.size - 1
    curve = E[1:]
    trade_metrics(trade_pnl, trade_return)  # validates them, with its messages
    fraction = None
    if in_market is not None:
        fraction = exposure(in_market, n_bars)  # validates the flags or the fraction
    bench = None
    if benchmark_equity is not None:
        if benchmark_start is None:
            raise ParameterError(
                "benchmark_start is required with benchmark_equity: the benchmark's value "
                "before the first bar (e.g. the starting cash for buy-and-hold)"
            )
        bench = _as_1d(benchmark_equity, "benchmark_equity")
        _check_start(benchmark_start, "benchmark_start")
        if bench.size != n_bars:
            raise ParameterError(
                f"benchmark_equity has {bench.size} values but equity has {n_bars}; "
                f"give one benchmark value per bar"
            )
    elif benchmark_start is not None:
        raise ParameterError("benchmark_start was given without benchmark_equity")

    # One implementation for runs in memory and streamed runs: the accumulator, fed
    # slices so that its temporaries stay small beside a long curve.
    acc = StreamingMetrics(float(E[0]), periods_per_year=ppy, risk_free=rf,
                           benchmark_start=benchmark_start if bench is not None else None)
    flags = None
    if in_market is not None and not (isinstance(in_market, Real)
                                      and not isinstance(in_market, bool)):
        flags = np.asarray(in_market, dtype=np.bool_)
    for a in range(0, n_bars, METRIC_SLICE):
        b = a + METRIC_SLICE
        acc.add_bars(curve[a:b], None if flags is None else flags[a:b],
                     None if bench is None else bench[a:b])
    pnl = _as_1d(trade_pnl, "trade_pnl")
    ret = _as_1d(trade_return, "trade_return")
    acc.add_trades(pnl, ret if ret.size else None)
    out = acc.result()
    out["exposure"] = fraction if fraction is not None else _NAN
    return {k: float(v) for k, v in out.items()}
