"""The conventions every metric shares: the keys, annualisation and rates.

:mod:`engine.analysis.metrics` (whole curves) and
:mod:`engine.analysis.streaming_metrics` (curves fed chunk by chunk) both build
on these definitions; the conventions themselves are documented in
:mod:`engine.analysis.metrics`.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from engine.errors import ParameterError

#: Annualisation presets: name -> bars per year.
PRESETS: dict[str, int] = {"252": 252, "365": 365}

#: Keys of :func:`~engine.analysis.metrics.compute_metrics`, in order (without a benchmark).
METRIC_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "trades",
    "hit_rate",
    "profit_factor",
    "expectancy",
    "avg_win",
    "avg_loss",
    "best_trade",
    "worst_trade",
    "exposure",
    "final_equity",
)

#: Keys appended by :func:`~engine.analysis.metrics.compute_metrics` when a benchmark is given.
BENCHMARK_KEYS: tuple[str, ...] = ("benchmark_return", "beta")

_NAN = float("nan")


def resolve_periods_per_year(periods_per_year) -> float:
    """Return the annualisation factor for a number or a preset name.

    Parameters
    ----------
    periods_per_year : int, float or str
        A positive finite number of bars per year, or a key of :data:`PRESETS`
        (``"252"``, ``"365"``).

    Returns
    -------
    float
        Bars per year.

    Raises
    ------
    ParameterError
        For an unknown preset name, a non-positive or non-finite number, or any
        other type.
    """
    choices = ", ".join(repr(k) for k in PRESETS)
    if isinstance(periods_per_year, str):
        key = periods_per_year.strip()
        if key in PRESETS:
            return float(PRESETS[key])
        raise ParameterError(
            f"periods_per_year={periods_per_year!r} is not a known preset; valid choices "
            f"are {choices} or a positive number of bars per year"
        )
    if (
        isinstance(periods_per_year, Real)
        and not isinstance(periods_per_year, bool)
        and math.isfinite(periods_per_year)
        and periods_per_year > 0
    ):
        return float(periods_per_year)
    raise ParameterError(
        f"periods_per_year={periods_per_year!r} is invalid; valid choices are {choices} "
        f"or a positive number of bars per year"
    )


def _check_rate(risk_free) -> float:
    if (
        not isinstance(risk_free, Real)
        or isinstance(risk_free, bool)
        or not math.isfinite(risk_free)
        or risk_free <= -1
    ):
        raise ParameterError(
            f"risk_free={risk_free!r} is invalid; it must be an annual rate as a finite "
            f"number greater than -1 (e.g. 0.05 for 5 % a year)"
        )
    return float(risk_free)


def _check_start(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = _NAN
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{name}={value!r} is invalid; it must be a finite number > 0")
    return v


def per_bar_rate(risk_free: float, periods_per_year=252) -> float:
    """Convert an annual rate into the equivalent compounded per-bar rate.

    Parameters
    ----------
    risk_free : float
        Annual rate, e.g. ``0.05`` for 5 % a year; must be greater than -1.
    periods_per_year : int, float or str, default 252
        Bars per year or a :data:`PRESETS` key.

    Returns
    -------
    float
        ``(1 + risk_free) ** (1 / periods_per_year) - 1``.
    """
    ppy = resolve_periods_per_year(periods_per_year)
    return float(np.expm1(np.log1p(_check_rate(risk_free)) / ppy))
