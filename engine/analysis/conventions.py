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
    "psr",
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
BENCHMARK_KEYS: tuple[str, ...] = ("benchmark_return", "beta", "psr_benchmark",
                                   "tracking_error", "information_ratio", "alpha")

_NAN = float("nan")


def resolve_periods_per_year(periods_per_year) -> float:
    """Return the annualisation factor for a number or a preset name.

    Parameters
    ----------
    periods_per_year : int, float or str
        A positive finite number of bars per year, as a number or as text
        (``"250"``, ``"98280"``; :data:`PRESETS` names ``"252"`` and ``"365"``).

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
    if isinstance(periods_per_year, str):
        key = periods_per_year.strip()
        if key in PRESETS:
            return float(PRESETS[key])
        try:
            number = float(key)
        except ValueError:
            number = _NAN
        if math.isfinite(number) and number > 0:
            return number
        raise ParameterError(_periods_message(periods_per_year))
    if (
        isinstance(periods_per_year, Real)
        and not isinstance(periods_per_year, bool)
        and math.isfinite(periods_per_year)
        and periods_per_year > 0
    ):
        return float(periods_per_year)
    raise ParameterError(_periods_message(periods_per_year))


def _periods_message(value) -> str:
    return (f"periods_per_year={value!r} is not a positive number of bars per year. Fix: "
            f"give one, e.g. '252' (exchange days), '365' (markets that trade every day) or "
            f"'98280' (one-minute bars of a 390-minute session), or leave it out to read it "
            f"off the data (CLI --periods-per-year N)")


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


#: Share of a daily series' days that fall on a Saturday or Sunday above which the
#: market is taken to trade every day (bitcoin: 2/7 ≈ 29%; exchanges: about 0).
WEEKEND_SHARE = 0.1


def infer_periods_per_year(ts) -> tuple[float, str]:
    """Bars per year read off the timestamps, and how it was read.

    Parameters
    ----------
    ts : array of datetime64
        The bars' timestamps, increasing.

    Returns
    -------
    (float, str)
        The annualisation factor and a short reason, e.g. ``(252.0, "daily bars,
        weekdays only")``. Days per year are 365 when more than
        :data:`WEEKEND_SHARE` of the days with bars are weekends (the market
        trades every day), else 252 (exchange days). Intraday bars (more than
        one bar on the median day) give that median count times the days per
        year (one-minute bars of a 390-minute session: 98,280). Bars a week
        apart (median gap of 5 to 27 days) give 52, a month or more apart 12.
        Fewer than two bars give 252.
    """
    stamps = np.asarray(ts, dtype="datetime64[ns]")
    days, per_day = np.unique(stamps.astype("datetime64[D]"), return_counts=True)
    return periods_from_days(days, per_day)


def periods_from_days(days, per_day) -> tuple[float, str]:
    """:func:`infer_periods_per_year` from the distinct days with bars (increasing)
    and the number of bars on each: what a streamed run gathers chunk by chunk."""
    days = np.asarray(days, dtype="datetime64[D]")
    if int(np.sum(per_day)) < 2:
        return 252.0, "fewer than two bars: exchange days"
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
    every_day = np.mean(weekday >= 5) > WEEKEND_SHARE
    days_per_year = 365 if every_day else 252
    week = "weekends included" if every_day else "weekdays only"
    bars_per_day = float(np.median(per_day))
    if bars_per_day > 1:
        return (bars_per_day * days_per_year,
                f"intraday: {bars_per_day:g} bars a day × {days_per_year} days, {week}")
    gap = float(np.median(np.diff(days).astype(np.int64))) if days.size > 1 else 1.0
    if gap >= 28:
        return 12.0, "monthly bars"
    if gap >= 5:
        return 52.0, "weekly bars"
    return float(days_per_year), f"daily bars, {week}"


def choose_periods_per_year(periods_per_year, ts) -> tuple[float, str]:
    """The annualisation factor of a run: the one given, or inferred from ``ts``.

    ``None`` or ``"auto"`` infers it (:func:`infer_periods_per_year`); anything
    else goes through :func:`resolve_periods_per_year`. Returns the factor and
    how it was chosen (``"given"`` or the inference's reason).
    """
    if periods_per_year is None or (isinstance(periods_per_year, str)
                                    and periods_per_year.strip().lower() == "auto"):
        return infer_periods_per_year(ts)
    return resolve_periods_per_year(periods_per_year), "given"
