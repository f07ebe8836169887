"""Vectorised technical indicators, computed once over all bars.

Conventions shared by every function
------------------------------------
Input
    A 1-D array-like of ``n_bars`` values (numpy array, list, pandas or polars
    Series), or a 2-D float array of shape ``(n_bars, n_symbols)`` (pandas and polars
    DataFrames too) processed column by column along axis 0. Nulls (pandas ``NA``,
    polars ``null``) count as NaN.
Output
    float64 numpy arrays of the input's shape (bool for :func:`crossover` and
    :func:`crossunder`).
Causality
    ``out[t]`` depends on ``x[0..t]`` only: the result on a prefix of the data is the
    prefix of the result, bit for bit (the engine checks this for every indicator a
    strategy declares).
Warm-up and gaps
    NaN until the first full window, and NaN wherever the window touches a NaN input.
    Leading NaN (a symbol that starts trading later) only delays the warm-up. The
    recursive indicators (:func:`ema`, :func:`rsi`, :func:`macd`) restart their
    warm-up after a NaN. Each function documents its exact policy, including ±inf.
Parameters
    Bad parameters raise :class:`engine.errors.ParameterError` naming the function,
    the parameter, the value received and the fix. A window longer than the data is
    not an error: the result is all NaN.

The loops numpy cannot express without drift or an ``O(n * window)`` cost run in
the compiled kernels of :mod:`engine._core.kernels`.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from engine._core import kernels as _kernels
from engine.errors import ParameterError
from engine.strategy.resample import resample

__all__ = [
    "MACD",
    "crossings",
    "crossover",
    "crossunder",
    "days_to_cover",
    "ema",
    "macd",
    "resample",
    "returns",
    "rolling_corr",
    "rolling_high",
    "rolling_low",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rsi",
    "sma",
    "volatility",
]


class MACD(NamedTuple):
    """Result of :func:`macd`: three arrays of the input's shape."""

    macd: np.ndarray
    signal: np.ndarray
    histogram: np.ndarray


# --------------------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------------------

def _as_float(x, func: str, name: str = "x", *, allow_scalar: bool = False) -> np.ndarray:
    """``x`` as a C-contiguous float64 array of 1 or 2 dimensions (or 0 if allowed)."""
    module = type(x).__module__ or ""
    try:
        if module.startswith("polars"):
            import polars as pl

            x = x.cast(pl.Float64).to_numpy()
        elif module.startswith("pandas"):
            x = x.to_numpy(dtype=np.float64, na_value=np.nan)
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            if arr.dtype.kind != "O":
                raise TypeError(arr.dtype)
            arr = arr.astype(np.float64)
        arr = np.asarray(arr, dtype=np.float64, order="C")
    except (TypeError, ValueError, AttributeError) as exc:
        what = f"dtype {arr.dtype}" if "arr" in locals() else type(x).__name__
        raise ParameterError(
            f"{func}: {name} must hold numbers; got {what} ({exc}). Fix: pass a numeric "
            f"array, list or Series of bar values (missing values as NaN or null)."
        ) from None
    ndims = (0, 1, 2) if allow_scalar else (1, 2)
    if arr.ndim not in ndims:
        raise ParameterError(
            f"{func}: {name} must be 1-D (n_bars,) or 2-D (n_bars, n_symbols)"
            f"{' or a scalar' if allow_scalar else ''}; got shape {arr.shape}. Fix: pass "
            f"one column of bars, or a bars x symbols panel."
        )
    return arr


def _as_columns(arr: np.ndarray) -> np.ndarray:
    """A view of a 1-D or 2-D array as ``(n_bars, n_cols)``."""
    return arr.reshape(arr.shape[0], 1) if arr.ndim == 1 else arr


def _pair(a, b, func: str, names: tuple[str, str], *, allow_scalar: bool = False):
    """Two inputs of the same number of bars; a 1-D one pairs with every column of a 2-D one."""
    a = _as_float(a, func, names[0], allow_scalar=allow_scalar)
    b = _as_float(b, func, names[1], allow_scalar=allow_scalar)
    if a.ndim == 0 and b.ndim == 0:
        raise ParameterError(
            f"{func}: {names[0]} and {names[1]} are both scalars. Fix: pass an array of "
            f"bars for at least one of them."
        )
    if a.ndim and b.ndim:
        if a.shape[0] != b.shape[0] or (
            a.ndim == b.ndim == 2 and a.shape[1] != b.shape[1]
        ):
            raise ParameterError(
                f"{func}: {names[0]} has shape {a.shape} but {names[1]} has shape "
                f"{b.shape}. Fix: pass arrays with the same bars (rows) and, when both "
                f"are 2-D, the same symbols (columns); a 1-D array pairs with every column."
            )
        if a.ndim != b.ndim:
            a, b = _as_columns(a), _as_columns(b)
    return a, b


def _check_int(func: str, name: str, value, minimum: int, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(
            f"{func}: {name} must be a whole number of bars (int); got {value!r} "
            f"({type(value).__name__}). Fix: pass e.g. {name}={example}."
        )
    if value < minimum:
        raise ParameterError(
            f"{func}: {name} must be >= {minimum}; got {value}. Fix: pass e.g. "
            f"{name}={example}."
        )
    return int(value)


def _check_real(func: str, name: str, value, example, *, low: float, high: float = math.inf,
                low_open: bool = True) -> float:
    ok_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok_type else math.nan
    above = v > low if low_open else v >= low
    if not (ok_type and above and v <= high):
        bounds = f"{'>' if low_open else '>='} {low:g}" + (
            f" and <= {high:g}" if math.isfinite(high) else ""
        )
        raise ParameterError(
            f"{func}: {name} must be a number {bounds}; got {value!r}. Fix: pass e.g. "
            f"{name}={example}."
        )
    return v


def _nan_like(arr: np.ndarray) -> np.ndarray:
    return np.full(arr.shape, np.nan)


def _run(kernel, arr: np.ndarray, window: int, *args) -> np.ndarray:
    """Apply a rolling kernel column by column; all NaN when the window exceeds the data."""
    if window > arr.shape[0]:
        return _nan_like(arr)
    cols = _as_columns(arr)
    out = np.empty(cols.shape)
    kernel(cols, window, *args, out)
    return out.reshape(arr.shape)


# --------------------------------------------------------------------------------------
# Moving averages
# --------------------------------------------------------------------------------------

def sma(x, window: int) -> np.ndarray:
    r"""Simple moving average.

    .. math:: \mathrm{sma}[t] = \frac{1}{w} \sum_{i=t-w+1}^{t} x[i]

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Values, e.g. closing prices.
    window : int
        Number of bars ``w >= 1``.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN for ``t < w - 1``; NaN where the window holds a NaN, or both +inf and
        -inf; ±inf where it holds infinities of one sign only.

    Notes
    -----
    Ties stay ties. When every value in the window is a decimal with at most 8
    places (``round(x * 10**d) / 10**d == x`` for some ``d <= 8``, true of prices read
    from text) and ``|x| * 10**d * w < 2**53``, the window sum is computed exactly in
    int64 ticks and divided once by ``w * 10**d``: the result is the correctly rounded
    mean of the decimal values, so two windows whose true means are equal give the
    same double and ``sma(x, 10) - sma(x, 20)`` is exactly 0 at a true tie (a running
    sum of doubles gives ~1e-12 after a million bars and a false cross). This is
    decided per window, from the window's own values, so it stays causal. Other
    windows use a compensated (Neumaier) running sum, restarted whenever such a
    stretch begins: no error accumulates over the series.

    Examples
    --------
    >>> sma([1.0, 2.0, 3.0, 4.0], 2)
    array([nan, 1.5, 2.5, 3.5])
    """
    window = _check_int("sma", "window", window, 1, 20)
    return _run(_kernels.rolling_mean, _as_float(x, "sma"), window)


def ema(x, span: int | None = None, *, alpha: float | None = None) -> np.ndarray:
    r"""Exponential moving average, seeded with a simple moving average.

    .. math::

        e[s - 1] = \frac{1}{s} \sum_{i=0}^{s-1} x[i], \qquad
        e[t] = e[t-1] + \alpha\,(x[t] - e[t-1]) = \alpha\,x[t] + (1-\alpha)\,e[t-1]

    with :math:`\alpha = 2 / (\mathrm{span} + 1)` and seed window :math:`s =
    \mathrm{span}` (the seed is ``sma(x, span)`` at that bar, bit for bit).

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
    span : int, optional
        Span ``>= 1``: sets ``alpha = 2 / (span + 1)`` and the seed window.
    alpha : float, optional, keyword-only
        Smoothing factor in ``(0, 1]``. Alone, the seed window is 1 (``e`` starts at
        the first value). With ``span`` too, ``span`` is only the seed window: e.g.
        Wilder's smoothing of period ``n`` is ``ema(x, n, alpha=1/n)``.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN before the seed bar ``s - 1``. A NaN input gives NaN there and restarts
        the average: the next value is the SMA seed of the ``s`` values after it.
        Leading NaN just delay the seed. ±inf inputs propagate by IEEE arithmetic
        until the recursion turns NaN, which restarts it the same way.

    Notes
    -----
    pandas ``ewm(span=..., adjust=False)`` starts from ``x[0]`` instead of an SMA
    seed, so the two differ during the first few spans.
    """
    if span is None and alpha is None:
        raise ParameterError(
            "ema: give span or alpha; got neither. Fix: pass e.g. ema(x, 20) or "
            "ema(x, alpha=0.1)."
        )
    seed = 1 if span is None else _check_int("ema", "span", span, 1, 20)
    if alpha is None:
        alpha = 2.0 / (seed + 1.0)
    else:
        alpha = _check_real("ema", "alpha", alpha, 0.1, low=0.0, high=1.0)
    arr = _as_float(x, "ema")
    return _ema(arr, seed, alpha)


def _ema(arr: np.ndarray, seed: int, alpha: float) -> np.ndarray:
    if seed > arr.shape[0]:
        return _nan_like(arr)
    cols = _as_columns(arr)
    start = _run(_kernels.rolling_mean, cols, seed)
    out = np.empty(cols.shape)
    _kernels.ema_seeded(cols, start, alpha, out)
    return out.reshape(arr.shape)


def rsi(x, window: int = 14) -> np.ndarray:
    r"""Relative strength index, Wilder's smoothing.

    With changes :math:`d[t] = x[t] - x[t-1]`, gains :math:`G = \max(d, 0)` and losses
    :math:`L = \max(-d, 0)`:

    .. math::

        \bar G[w] = \frac{1}{w} \sum_{t=1}^{w} G[t], \qquad
        \bar G[t] = \frac{(w - 1)\,\bar G[t-1] + G[t]}{w} \quad (t > w)

    and :math:`\bar L` likewise; :math:`\mathrm{RSI} = 100 - 100 / (1 + \bar G / \bar
    L)`, 100 when :math:`\bar L = 0 < \bar G` and 50 when both are 0 (no movement).

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Prices.
    window : int, default 14
        ``w >= 1`` changes.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``, values in [0, 100]
        NaN for ``t < w`` (first value at index ``w``). A NaN or infinite price makes
        the change into and out of it undefined: the averages restart and need ``w``
        new changes (first value ``w + 1`` bars after the bad one).
    """
    window = _check_int("rsi", "window", window, 1, 14)
    arr = _as_float(x, "rsi")
    if window >= arr.shape[0]:
        return _nan_like(arr)
    return _run(_kernels.wilder_rsi, arr, window)


def macd(x, fast: int = 12, slow: int = 26, signal: int = 9) -> MACD:
    r"""Moving average convergence/divergence.

    .. math::

        \mathrm{macd} = \mathrm{ema}(x, \mathrm{fast}) - \mathrm{ema}(x, \mathrm{slow}),
        \quad \mathrm{signal} = \mathrm{ema}(\mathrm{macd}, \mathrm{signal}),
        \quad \mathrm{histogram} = \mathrm{macd} - \mathrm{signal}

    Each EMA is :func:`ema`, seeded with the SMA of its first ``span`` values; the
    signal line is the EMA of the valid part of the MACD line (seeded with the mean of
    its first ``signal`` values).

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
    fast, slow, signal : int, default 12, 26, 9
        Spans, ``1 <= fast < slow`` and ``signal >= 1``.

    Returns
    -------
    MACD
        Named tuple ``(macd, signal, histogram)`` of float64 arrays shaped like ``x``.
        ``macd`` is NaN before index ``slow - 1``, ``signal`` and ``histogram`` before
        ``slow + signal - 2``; NaN inputs restart the EMAs as in :func:`ema`.
    """
    fast = _check_int("macd", "fast", fast, 1, 12)
    slow = _check_int("macd", "slow", slow, 2, 26)
    signal = _check_int("macd", "signal", signal, 1, 9)
    if fast >= slow:
        raise ParameterError(
            f"macd: fast must be shorter than slow; got fast={fast}, slow={slow}. Fix: "
            f"pass e.g. fast=12, slow=26."
        )
    arr = _as_float(x, "macd")
    line = _ema(arr, fast, 2.0 / (fast + 1.0)) - _ema(arr, slow, 2.0 / (slow + 1.0))
    sig = _ema(line, signal, 2.0 / (signal + 1.0))
    return MACD(line, sig, line - sig)


# --------------------------------------------------------------------------------------
# Dispersion and dependence
# --------------------------------------------------------------------------------------

def rolling_std(x, window: int, ddof: int = 1) -> np.ndarray:
    r"""Rolling standard deviation.

    .. math::

        \mathrm{std}[t] = \sqrt{\frac{1}{w - \mathrm{ddof}}
            \sum_{i=t-w+1}^{t} \left(x[i] - \bar x_t\right)^2},
        \qquad \bar x_t = \frac{1}{w} \sum_{i=t-w+1}^{t} x[i]

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
    window : int
        ``w > ddof`` bars.
    ddof : int, default 1
        Delta degrees of freedom (1: sample, 0: population).

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN for ``t < w - 1`` and where the window holds a NaN or ±inf. Exactly 0 for a
        window of equal values.

    Notes
    -----
    Computed from compensated sums of deviations from a value inside the window,
    recomputed from scratch every ``w`` bars: no cancellation against a large mean
    and no drift along the series.
    """
    window = _check_int("rolling_std", "window", window, 1, 20)
    ddof = _check_int("rolling_std", "ddof", ddof, 0, 1)
    if ddof >= window:
        raise ParameterError(
            f"rolling_std: window must be larger than ddof; got window={window}, "
            f"ddof={ddof}. Fix: pass window >= {ddof + 1} or a smaller ddof."
        )
    out = _run(_kernels.rolling_var, _as_float(x, "rolling_std"), window, ddof)
    return np.sqrt(out, out=out)


def volatility(close, window: int, periods_per_year: float = 252) -> np.ndarray:
    r"""Annualised volatility of simple returns.

    .. math:: \mathrm{vol}[t] = \mathrm{std}_{\mathrm{ddof}=1}\left(r[t-w+1..t]\right)
              \cdot \sqrt{P}, \qquad r[t] = \frac{c[t]}{c[t-1]} - 1

    Parameters
    ----------
    close : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Prices.
    window : int
        Number of returns ``w >= 2``.
    periods_per_year : float, default 252
        ``P``: bars per year (252 trading days, 365 calendar days, 52 weeks, 12).

    Returns
    -------
    numpy.ndarray of float64, shape of ``close``
        The first return is at index 1, so the first value is at index ``w``. NaN
        where the window holds an undefined return (see :func:`returns` and
        :func:`rolling_std`).
    """
    window = _check_int("volatility", "window", window, 2, 20)
    ppy = _check_real("volatility", "periods_per_year", periods_per_year, 252, low=0.0)
    r = returns(_as_float(close, "volatility", "close"))
    out = _run(_kernels.rolling_var, r, window, 1)
    return np.sqrt(out * ppy, out=out)


def rolling_corr(x, y, window: int) -> np.ndarray:
    r"""Rolling Pearson correlation.

    .. math::

        \rho[t] = \frac{\sum (x_i - \bar x)(y_i - \bar y)}
                       {\sqrt{\sum (x_i - \bar x)^2 \, \sum (y_i - \bar y)^2}}

    over ``i = t-w+1 .. t``, with the window means :math:`\bar x, \bar y`.

    Parameters
    ----------
    x, y : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Same number of bars. A 1-D series pairs with every column of a 2-D panel
        (e.g. each stock against the index).
    window : int
        ``w >= 2`` bars.

    Returns
    -------
    numpy.ndarray of float64, shape of the 2-D input (or 1-D if both are 1-D)
        In [-1, 1]. NaN for ``t < w - 1``, where either window holds a NaN or ±inf,
        and where either side is constant over the window (zero variance: undefined).
    """
    window = _check_int("rolling_corr", "window", window, 2, 20)
    a, b = _pair(x, y, "rolling_corr", ("x", "y"))
    if a.ndim == 2 and a.shape[1] == 1 and b.shape[1] > 1:
        a, b = b, a             # symmetric: the kernel pairs a 1-column y with every x
    if window > a.shape[0]:
        return _nan_like(a)
    out = np.empty(_as_columns(a).shape)
    _kernels.rolling_corr(_as_columns(a), _as_columns(b), window, out)
    return out.reshape(a.shape)


# --------------------------------------------------------------------------------------
# Highs and lows
# --------------------------------------------------------------------------------------

def rolling_max(x, window: int) -> np.ndarray:
    r"""Rolling maximum (highest value of the last ``window`` bars, current included).

    .. math:: \mathrm{max}[t] = \max_{t-w+1 \le i \le t} x[i]

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
    window : int
        ``w >= 1`` bars.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN for ``t < w - 1`` and where the window holds a NaN; ±inf are ordinary
        values. O(n) whatever the window (van Herk/Gil-Werman blocks).

    Notes
    -----
    For a breakout rule compare the close with the previous bars' high, e.g.
    ``close[t] > rolling_max(high, w)[t - 1]``; the value at ``t`` includes bar ``t``.
    """
    window = _check_int("rolling_max", "window", window, 1, 20)
    return _run(_kernels.rolling_max, _as_float(x, "rolling_max"), window)


def rolling_min(x, window: int) -> np.ndarray:
    r"""Rolling minimum (lowest value of the last ``window`` bars, current included).

    .. math:: \mathrm{min}[t] = \min_{t-w+1 \le i \le t} x[i]

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
    window : int
        ``w >= 1`` bars.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN for ``t < w - 1`` and where the window holds a NaN; ±inf are ordinary
        values. O(n) whatever the window.
    """
    window = _check_int("rolling_min", "window", window, 1, 20)
    return _run(_kernels.rolling_min, _as_float(x, "rolling_min"), window)


rolling_high = rolling_max
rolling_low = rolling_min


# --------------------------------------------------------------------------------------
# Returns, crossings, short interest
# --------------------------------------------------------------------------------------

def returns(x) -> np.ndarray:
    r"""Simple returns.

    .. math:: r[t] = \frac{x[t] - x[t-1]}{x[t-1]} \quad (= x[t] / x[t-1] - 1),
              \qquad r[0] = \mathrm{NaN}

    Parameters
    ----------
    x : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Prices.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        NaN at index 0 and wherever ``x[t]`` or ``x[t-1]`` is NaN (the return across a
        missing bar is not bridged). A zero previous price gives ±inf (NaN for 0/0),
        without a warning.
    """
    arr = _as_float(x, "returns")
    out = np.empty(arr.shape)
    if arr.shape[0]:
        out[0] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            np.subtract(arr[1:], arr[:-1], out=out[1:])
            np.divide(out[1:], arr[:-1], out=out[1:])
    return out


def _cross_signs(a, b, func: str) -> np.ndarray:
    if getattr(a, "ndim", 0) == 3 or getattr(b, "ndim", 0) == 3:
        # (n_bars, n_sets, n_symbols) of ParameterSets.map: columns are independent
        shape = a.shape if getattr(a, "ndim", 0) == 3 else b.shape
        laid = []
        for x in (a, b):
            ndim = getattr(x, "ndim", 0)
            if ndim == 2 and x.shape == (shape[0], shape[2]):
                x = np.broadcast_to(x[:, None, :], shape)   # the bars' own (n_bars, k)
            elif ndim == 1 and x.shape == (shape[0],) and shape[2] == 1:
                x = np.broadcast_to(x[:, None, None], shape)
            elif ndim not in (0, 3) or (ndim == 3 and x.shape != shape):
                raise ParameterError(
                    f"{func}: a has shape {np.shape(a)} but b has shape {np.shape(b)}. Fix: "
                    f"pass two (n_bars, n_sets, n_symbols) arrays of the same shape, or one "
                    f"and a scalar or an (n_bars, n_symbols) array of the bars.")
            laid.append(x)
        flat = [x.reshape(shape[0], -1) if getattr(x, "ndim", 0) == 3 else x for x in laid]
        return _cross_signs(flat[0], flat[1], func).reshape(shape)
    by_row = _by_row(a, b)
    if by_row is not None:
        return by_row
    a, b = _pair(a, b, func, ("a", "b"), allow_scalar=True)
    with np.errstate(invalid="ignore"):
        diff = np.ascontiguousarray(np.subtract(a, b))
    signs = np.empty(diff.shape, dtype=np.int8)
    if diff.size:
        _kernels.cross_signs(_as_columns(diff), _as_columns(signs))
    return signs


def _by_row(a, b) -> np.ndarray | None:
    """The signs of two float64 ``(n_bars, n_cols)`` arrays stored column by column
    (Fortran order, as ``ParameterSets.map`` gives them), computed in that layout with
    no transposing copy; None for any other input."""
    arrays = [x for x in (a, b) if isinstance(x, np.ndarray) and x.ndim]
    if not arrays or any(
            x.ndim != 2 or x.dtype != np.float64 or not x.flags.f_contiguous
            or x.flags.c_contiguous or x.shape != arrays[0].shape for x in arrays):
        return None
    if any(not isinstance(x, np.ndarray) and not isinstance(x, (int, float)) for x in (a, b)):
        return None
    with np.errstate(invalid="ignore"):
        diff = np.subtract(a, b, order="F")
    signs = np.empty(diff.shape, dtype=np.int8, order="F")
    if diff.size:
        _kernels.cross_signs_by_row(diff.T, signs.T)
    return signs


def _cross(a, b, func: str, sign: int) -> np.ndarray:
    return _cross_signs(a, b, func) == sign


def crossings(a, b) -> tuple[np.ndarray, np.ndarray]:
    """``(crossover(a, b), crossunder(a, b))`` from one pass over ``a - b``.

    Parameters
    ----------
    a, b : array-like, shape (n_bars,) or (n_bars, n_symbols), or a scalar
        (also ``(n_bars, n_sets, n_symbols)``, as :meth:`ParameterSets.map
        <engine.strategy.parameter_sets.ParameterSets.map>` gives them)

    Returns
    -------
    tuple of two numpy.ndarray of bool
        The bars where ``a`` crosses above ``b``, and where it crosses below, as
        defined by :func:`crossover` and :func:`crossunder`.
    """
    signs = _cross_signs(a, b, "crossings")
    return signs == 1, signs == -1


def crossover(a, b) -> np.ndarray:
    r"""Bars where ``a`` crosses above ``b``.

    With :math:`s[t] = \operatorname{sign}(a[t] - b[t])` and :math:`p[t]` the last
    non-zero, non-NaN sign before ``t``:

    .. math:: \mathrm{crossover}[t] = \left(s[t] = +1\right) \wedge \left(p[t] = -1\right)

    A tie (``s = 0``) neither crosses nor resets the sign: below, tie, above is one
    cross (at the bar above); above, tie, above is none. The first non-zero sign
    (after the warm-up) is not a cross. NaN bars (warm-up, gaps) are False and keep
    the last sign, so a crossing that happens across a gap shows at the first bar
    after it.

    Parameters
    ----------
    a, b : array-like, shape (n_bars,) or (n_bars, n_symbols), or a scalar
        E.g. a fast and a slow moving average, or an oscillator and a level
        (``crossover(rsi(x), 30)``). A 1-D series pairs with every column of a 2-D
        panel.

    Returns
    -------
    numpy.ndarray of bool, the broadcast shape of ``a`` and ``b``
    """
    return _cross(a, b, "crossover", 1)


def crossunder(a, b) -> np.ndarray:
    r"""Bars where ``a`` crosses below ``b``.

    .. math:: \mathrm{crossunder}[t] = \left(s[t] = -1\right) \wedge \left(p[t] = +1\right)

    with :math:`s` and :math:`p` as in :func:`crossover` (ties keep the sign, the first
    sign is not a cross, NaN bars are False and keep the sign).

    Parameters
    ----------
    a, b : array-like, shape (n_bars,) or (n_bars, n_symbols), or a scalar

    Returns
    -------
    numpy.ndarray of bool, the broadcast shape of ``a`` and ``b``
    """
    return _cross(a, b, "crossunder", -1)


def days_to_cover(shares_short, volume, window: int = 30) -> np.ndarray:
    r"""Days to cover: short interest over average daily volume.

    .. math::

        \mathrm{dtc}[t] = \frac{\mathrm{shares\_short}[t]}{\mathrm{sma}(\mathrm{volume}, w)[t]}

    Parameters
    ----------
    shares_short : array-like, shape (n_bars,) or (n_bars, n_symbols)
        Shares sold short, aligned to the bars (e.g. an as-of joined feed).
    volume : array-like, same number of bars
        Traded volume per bar. A 1-D series pairs with every column of a 2-D panel.
    window : int, default 30
        Bars in the average volume, ``w >= 1``.

    Returns
    -------
    numpy.ndarray of float64, the shape of the 2-D input (or 1-D if both are 1-D)
        NaN during the warm-up of the average (``t < w - 1``), where the volume window
        holds a NaN, or ``shares_short`` is NaN. Zero average volume gives +inf for
        a positive short interest and NaN for zero (0/0), without a warning.
    """
    window = _check_int("days_to_cover", "window", window, 1, 30)
    short, vol = _pair(shares_short, volume, "days_to_cover", ("shares_short", "volume"))
    with np.errstate(divide="ignore", invalid="ignore"):
        return short / sma(vol, window)
