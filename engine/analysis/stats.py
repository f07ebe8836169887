"""Statistics of evidence: how far a backtest's numbers can be trusted.

Every rate, Sharpe ratio and verdict the engine reports is a point estimate. The
functions here put an interval, a base rate and a multiple-testing correction
beside it. They take plain NumPy arrays, so they serve claims, event studies,
runs and sweeps alike. Resampling of paths uses ``arch.bootstrap``, rates use
:func:`stationary_block_sums` (the same resampling law, computed per block rather
than per bar), exact binomial intervals ``scipy.stats``; the libraries are imported
at the call, not with the module.

Rates over signal days (:func:`rate_evidence`)
----------------------------------------------
A *success* is an outcome per bar (e.g. the forward return over ``h`` bars is
``> 0``), undefined (NaN) where the window runs past the data. A *signal* is a
boolean per bar. With an ``h``-bar forward window, signals on consecutive days
share most of their window, so 617 signal days are far fewer independent
trials. Counted:

* ``signals``: signal days with a defined outcome;
* ``episodes``: runs of signal days split where two signals are more than
  ``h`` bars apart (a gap longer than the window starts a new episode);
* ``non_overlapping``: signal days kept greedily from the first, each at least
  ``h`` bars after the last kept one (windows that share no bar).

The *window* is the bars from the first to the last signal. The *base rate* is
the share of successes over every bar of that window with a defined outcome:
the same period and bars, so a claim is compared like for like. The interval
of the rate, of the base rate and of their difference come from one stationary
block bootstrap (Politis & Romano 1994) of the window's bars, resampled jointly
(signal, outcome), with a mean block length of ``max(2h, ceil(n ** (1/3)))``
bars: the window starting on a bar shares bars with every window starting up to
``h - 1`` bars before or after it, a span of ``2h - 1`` bars, which a block then
covers. (Measured on random walks with no edge, 21-bar windows and 8 episodes of
30 signal days: the difference's p-value falls below 0.05 in about 9% of trials,
against 54% for a binomial test that counts every signal day as a trial, and
about 13% with blocks of ``h``. With few episodes the intervals are still
somewhat too narrow: read them with the episode count.) Intervals are
percentile intervals at ``level``; the p-value of the difference is two-sided,
from the bootstrap distribution centred on the estimate:
``p = (1 + #{|d* - d| >= |d|}) / (1 + reps)``. The bootstrap is seeded: the same
inputs give the same intervals. A window shorter than two blocks (``n < 2 * block``)
holds no two independent pieces to resample: its intervals and p-value are NaN,
which reads as "cannot tell".

Runs (:func:`probabilistic_sharpe`, :func:`run_intervals`, :func:`hit_rate_interval`)
-------------------------------------------------------------------------------------
The probabilistic Sharpe ratio (Bailey & López de Prado 2012, "The Sharpe Ratio
Efficient Frontier", J. of Risk 15(2)) is the probability that the true
per-bar Sharpe ratio exceeds a benchmark ``SR*`` given the estimate ``SR`` over
``n`` bars, the skewness ``g3`` and the (non-excess) kurtosis ``g4`` of the
returns::

    PSR(SR*) = Phi( (SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) )

``SR`` is per bar (mean over standard deviation with ``ddof=1``), not
annualised. The intervals of Sharpe (annualised by ``sqrt(ppy)``), CAGR and
maximum drawdown come from a stationary block bootstrap of the per-bar returns
whose mean block length is Politis & White's (2004) optimal length
(``arch.bootstrap.optimal_block_length``, at least 1). The hit rate's interval
is the exact (Clopper–Pearson) binomial interval.

Sweeps (:func:`deflated_sharpe`, :func:`probability_of_overfitting`)
--------------------------------------------------------------------
After ``N`` trials, the best Sharpe ratio is inflated by selection. The
deflated Sharpe ratio (Bailey & López de Prado 2014, "The Deflated Sharpe
Ratio", J. of Portfolio Management 40(5)) is the PSR against the Sharpe ratio
expected of the best of ``N`` trials with no skill::

    SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

with ``V`` the variance of the trials' per-bar Sharpe ratios and ``gamma`` the
Euler–Mascheroni constant. The probability of backtest overfitting (Bailey,
Borwein, López de Prado & Zhu 2017, "The Probability of Backtest Overfitting",
J. of Computational Finance 20(4)) splits the bars into ``S`` contiguous blocks;
for every choice of ``S/2`` blocks as the in-sample half (combinatorially
symmetric cross-validation) it takes the set with the best in-sample Sharpe
ratio, ranks its out-of-sample Sharpe among all sets (relative rank
``w = rank / (N + 1)``) and computes the logit ``log(w / (1 - w))``; PBO is the
share of splits whose logit is ``<= 0`` (the in-sample winner did no better
than the out-of-sample median).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from engine.errors import ParameterError

#: Euler–Mascheroni constant, in the expected maximum of N normal draws.
EULER_GAMMA = 0.5772156649015329
#: Bootstrap resamples unless told otherwise.
DEFAULT_REPS = 1000
#: Resamples gathered per matrix product (bounds the temporary arrays).
_BATCH = 100


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ParameterError(f"level must be a probability between 0 and 1, e.g. 0.95; "
                             f"got {level!r}")
    return float(level)


def _check_reps(reps) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 100:
        raise ParameterError(f"reps must be a whole number of bootstrap resamples >= 100; "
                             f"got {reps!r}")
    return int(reps)


def _bootstrap(n: int, block: float, reps: int, seed: int):
    """Yield arrays of resampled positions ``0 .. n-1``: one stationary bootstrap
    resample each, from ``arch`` (seeded, so reruns are identical)."""
    from arch.bootstrap import StationaryBootstrap

    sampler = StationaryBootstrap(block, np.arange(n), seed=np.random.default_rng(seed))
    for (positions,), _ in sampler.bootstrap(reps):
        yield positions


def stationary_block_sums(columns, block: float, reps: int, seed: int = 0) -> np.ndarray:
    """Column sums of ``reps`` stationary bootstrap resamples of the rows of ``columns``.

    A stationary bootstrap resample (Politis & Romano 1994) of ``n`` rows
    concatenates blocks of consecutive rows, each starting at a uniformly drawn
    row and running for a geometric number of rows with mean ``block``,
    wrapping from the last row to the first, until ``n`` rows are drawn (the
    last block is cut). This is the same law as ``arch``'s
    ``StationaryBootstrap``, which restarts at a random row with probability
    ``1 / block`` after each row. Statistics that are ratios of column sums
    (rates, base rates and their difference) need only each resample's sums,
    and a block's sum is a difference of two prefix sums, so the cost is one
    draw per block rather than per row: about ``reps * n / block`` draws.
    ``arch`` draws every row of every resample in Python (2 ms per resample of
    25,000 rows here), which made ``engine claims`` take minutes.

    Parameters
    ----------
    columns : array of float, shape ``(n, k)``
        The per-row values to sum (e.g. 0/1 indicators).
    block : float
        Mean block length in rows (at least 1).
    reps : int
        Resamples.
    seed : int
        Seed of ``numpy.random.default_rng``: the same inputs give the same sums.

    Returns
    -------
    numpy.ndarray, shape ``(reps, k)``
    """
    from engine._core.kernels import block_sums

    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns.reshape(-1, 1)
    n, k = columns.shape
    out = np.zeros((reps, k))
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    chance = min(1.0, 1.0 / max(float(block), 1.0))
    # Twice the rows, so a block that wraps past the last row is one slice; one
    # contiguous row per column, because gathering from 1-D arrays is the fastest.
    prefix = np.zeros((k, 2 * n + 1))
    np.cumsum(np.concatenate([columns, columns]).T, axis=1, out=prefix[:, 1:])
    expected = n * chance
    per_rep = int(math.ceil(expected + 6 * math.sqrt(expected) + 8))
    batch = max(1, min(reps, 4_000_000 // max(1, per_rep * k)))
    for first in range(0, reps, batch):
        b = min(batch, reps - first)
        lengths = rng.geometric(chance, size=(b, per_rep))
        starts = rng.integers(0, n, size=(b, per_rep), dtype=np.int64)
        reach = np.cumsum(lengths, axis=1)
        short = reach[:, -1] < n
        while short.any():  # rare: draw more blocks for the resamples that fell short
            more = rng.geometric(chance, size=(b, per_rep))
            lengths = np.concatenate([lengths, more], axis=1)
            starts = np.concatenate([starts, rng.integers(0, n, size=(b, per_rep),
                                                          dtype=np.int64)], axis=1)
            reach = np.cumsum(lengths, axis=1)
            short = reach[:, -1] < n
        # Cut each resample at n rows: the crossing block is shortened, later ones emptied.
        taken = np.clip(n - (reach - lengths), 0, lengths)
        block_sums(prefix, starts, taken.astype(np.int64), out[first:first + b])
    return out


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- rates


def episodes(positions, horizon: int) -> int:
    """Runs of signal bars split where two signals are more than ``horizon`` bars apart."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return 0
    return int(1 + np.count_nonzero(np.diff(positions) > horizon))


def non_overlapping(positions, horizon: int) -> int:
    """Signal bars kept greedily from the first, each ``>= horizon`` bars after the last kept."""
    kept, last = 0, None
    for p in np.asarray(positions, dtype=np.int64):
        if last is None or p - last >= horizon:
            kept, last = kept + 1, p
    return kept


@dataclass(frozen=True)
class RateEvidence:
    """A rate over signal days with its uncertainty (see the module docstring)."""

    signals: int
    episodes: int
    non_overlapping: int
    first: int | None
    last: int | None
    rate: float
    rate_low: float
    rate_high: float
    base: float
    base_low: float
    base_high: float
    difference: float
    difference_low: float
    difference_high: float
    p_value: float
    level: float
    block: float

    def to_dict(self) -> dict:
        return asdict(self)


def rate_evidence(success, signal, horizon: int, *, level: float = 0.95,
                  reps: int = DEFAULT_REPS, seed: int = 0) -> RateEvidence:
    """The success rate over signal bars, its base rate, and their difference, with
    intervals from a stationary block bootstrap.

    Parameters
    ----------
    success : array of float, shape ``(n,)`` or ``(n, m)``
        Per bar (and symbol): 1.0 for a success, 0.0 for a failure, NaN where the
        outcome is undefined (the forward window runs past the data).
    signal : array of bool or of whole counts, the shape of ``success``
        Per bar (and symbol): whether the signal holds, or how many times (an
        event counted twice on one bar weighs twice).
    horizon : int
        The forward window in bars (``h``): it sets the episode gap, the spacing
        of non-overlapping windows and the least block length (``2h``).
    level : float, default 0.95
        Coverage of the intervals.
    reps : int, default 1000
        Bootstrap resamples (at least 100).
    seed : int, default 0
        Seed of the resampling.

    Returns
    -------
    RateEvidence
        Counts, the rate, the base rate over the window from the first to the
        last signal, the difference, each with its interval, and the
        difference's two-sided p-value. With no signal bar, the rates are NaN.

    Notes
    -----
    With several symbols (2-D inputs) the rates pool them: the bootstrap
    resamples whole bars, each with every symbol's outcome on it, so outcomes
    that move together across symbols on one day stay together. ``episodes``
    and ``non_overlapping`` are counted per symbol and added.
    """
    level, reps = _check_level(level), _check_reps(reps)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ParameterError(f"horizon must be a whole number of bars >= 1; got {horizon!r}")
    success = np.asarray(success, dtype=np.float64)
    signal = np.asarray(signal)
    if success.shape != signal.shape or success.ndim not in (1, 2):
        raise ParameterError(f"success and signal must be 1-D (or 2-D: bars x symbols) and of "
                             f"one shape; got shapes {success.shape} and {signal.shape}")
    if signal.dtype != bool and (not np.issubdtype(signal.dtype, np.integer)
                                 or (signal < 0).any()):
        raise ParameterError(f"signal must be booleans or whole counts >= 0; got {signal.dtype}")
    if success.ndim == 1:
        success, signal = success.reshape(-1, 1), signal.reshape(-1, 1)
    defined = np.isfinite(success)
    hits = defined & (success > 0)
    weight = np.where(defined, signal, 0).astype(np.float64)
    rows = np.flatnonzero(weight.any(axis=1))
    nan = math.nan
    if rows.size == 0:
        return RateEvidence(0, 0, 0, None, None, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                            nan, level, nan)
    first, last = int(rows[0]), int(rows[-1])
    window = slice(first, last + 1)
    # The four sums every statistic is a ratio of, per bar of the window.
    columns = np.column_stack([
        weight[window].sum(axis=1), (weight * hits)[window].sum(axis=1),
        defined[window].sum(axis=1), hits[window].sum(axis=1),
    ]).astype(np.float64)
    per_symbol = [np.flatnonzero(weight[:, j]) for j in range(weight.shape[1])]
    n = columns.shape[0]
    block = float(max(2 * horizon, math.ceil(n ** (1 / 3))))

    def ratios(sums):
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = sums[..., 1] / sums[..., 0]
            base = sums[..., 3] / sums[..., 2]
        return rate, base, rate - base

    rate, base, difference = (float(x) for x in ratios(columns.sum(axis=0)))
    if n < 2 * block:
        # One block would span the window: resamples are rotations of it, whose
        # sums never change, so the intervals would be points.
        rate_d = base_d = diff_d = np.full(1, nan)
    else:
        rate_d, base_d, diff_d = ratios(stationary_block_sums(columns, block, reps, seed))
    finite = diff_d[np.isfinite(diff_d)]
    p_value = (1 + np.count_nonzero(np.abs(finite - difference) >= abs(difference))) \
        / (1 + finite.size) if finite.size else nan
    (rate_low, rate_high), (base_low, base_high), (diff_low, diff_high) = (
        _percentile_interval(d, level) for d in (rate_d, base_d, diff_d))
    return RateEvidence(
        signals=int(weight.sum()), episodes=sum(episodes(p, horizon) for p in per_symbol),
        non_overlapping=sum(non_overlapping(p, horizon) for p in per_symbol),
        first=first, last=last,
        rate=rate, rate_low=rate_low, rate_high=rate_high,
        base=base, base_low=base_low, base_high=base_high,
        difference=difference, difference_low=diff_low, difference_high=diff_high,
        p_value=float(p_value), level=level, block=block)


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg q-values (false discovery rate) of ``p_values``; NaN stays NaN.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the ``m`` finite p-values sorted
    ascending, capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


# --------------------------------------------------------------------------- runs


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """(per-bar Sharpe with ddof=1, skewness, non-excess kurtosis) of ``returns``."""
    r = returns[np.isfinite(returns)]
    if r.size < 3:
        return math.nan, math.nan, math.nan
    sd = r.std(ddof=1)
    if not sd > 0:
        return math.nan, math.nan, math.nan
    z = (r - r.mean()) / r.std(ddof=0)
    return float(r.mean() / sd), float(np.mean(z ** 3)), float(np.mean(z ** 4))


def psr_from_moments(sharpe: float, n: int, skew: float, kurtosis: float,
                     benchmark: float = 0.0) -> float:
    """The probabilistic Sharpe ratio from its inputs (per-bar Sharpe ratios).

    The normal distribution function is ``(1 + erf(z / sqrt(2))) / 2``, from the
    standard library, so a run's ``psr`` metric needs no SciPy.
    """
    if not all(math.isfinite(x) for x in (sharpe, skew, kurtosis, benchmark)) or n < 2:
        return math.nan
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe ** 2
    if not spread > 0:
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(spread)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _python_power(values: np.ndarray, exponent: float) -> np.ndarray:
    # Python's float ** (C pow) per value: numpy's power may round differently
    return np.array([v ** exponent for v in values.tolist()], dtype=np.float64)


def psr_from_moments_many(sharpe: np.ndarray, n: int, skew: np.ndarray,
                          kurtosis: np.ndarray, benchmark: float = 0.0) -> np.ndarray:
    """:func:`psr_from_moments` for arrays of sets, value for value the same floats.

    The same operations in the same order: numpy's ``+ - * /`` and ``sqrt`` round as
    Python's floats do, and the powers and ``erf`` are Python's, applied per value.
    """
    sharpe = np.asarray(sharpe, dtype=np.float64)
    skew = np.asarray(skew, dtype=np.float64)
    kurtosis = np.asarray(kurtosis, dtype=np.float64)
    out = np.full(sharpe.shape, math.nan)
    if n < 2 or not math.isfinite(benchmark):
        return out
    ok = np.isfinite(sharpe) & np.isfinite(skew) & np.isfinite(kurtosis)
    with np.errstate(all="ignore"):
        spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * _python_power(sharpe, 2)
        ok &= spread > 0
        z = (sharpe - benchmark) * math.sqrt(n - 1) / np.sqrt(spread)
        scaled = z / math.sqrt(2.0)
    erf = np.array([math.erf(v) if keep else math.nan
                    for v, keep in zip(scaled.tolist(), ok.tolist(), strict=True)])
    out[ok] = (0.5 * (1.0 + erf))[ok]
    return out


def probabilistic_sharpe(returns, benchmark: float = 0.0) -> float:
    """PSR: the probability that the true per-bar Sharpe ratio of ``returns`` exceeds
    ``benchmark`` (a per-bar Sharpe ratio, e.g. the benchmark's own).

    NaN for fewer than 3 finite returns or returns with no spread.
    """
    r = np.asarray(returns, dtype=np.float64)
    sharpe, skew, kurtosis = _moments(r)
    return psr_from_moments(sharpe, int(np.isfinite(r).sum()), skew, kurtosis, benchmark)


def per_bar_sharpe(returns) -> float:
    """Mean over standard deviation (``ddof=1``) of the finite returns; NaN without spread."""
    return _moments(np.asarray(returns, dtype=np.float64))[0]


def hit_rate_interval(hits: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a binomial rate ``hits / trials``."""
    from scipy.stats import binomtest

    level = _check_level(level)
    if trials <= 0:
        return math.nan, math.nan
    interval = binomtest(int(hits), int(trials)).proportion_ci(level, method="exact")
    return float(interval.low), float(interval.high)


def _path_statistics(r: np.ndarray, ppy: float, rf_bar: float) -> np.ndarray:
    """Per row of resampled returns: annualised Sharpe, CAGR and maximum drawdown."""
    n = r.shape[1]
    sd = r.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = np.where(sd > 0, (r.mean(axis=1) - rf_bar) / sd * math.sqrt(ppy), np.nan)
        growth = np.log1p(r).sum(axis=1)
        cagr = np.expm1(growth * ppy / n)
        curve = np.exp(np.cumsum(np.log1p(r), axis=1))
        peak = np.maximum.accumulate(np.maximum(curve, 1.0), axis=1)
        drawdown = (1 - curve / peak).max(axis=1)
    return np.column_stack([sharpe, cagr, drawdown])


def run_intervals(returns, periods_per_year: float, *, risk_free: float = 0.0,
                  level: float = 0.95, reps: int = DEFAULT_REPS,
                  seed: int = 0) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of a run's Sharpe ratio (annualised), CAGR and maximum drawdown.

    Parameters
    ----------
    returns : array of float
        Per-bar returns of the equity curve (NaN bars are dropped).
    periods_per_year : float
        Bars per year, as in the metrics.
    risk_free : float, default 0.0
        Annual risk-free rate: the Sharpe ratio is of the excess returns, as in
        the metrics.
    level, reps, seed
        As for :func:`rate_evidence`.

    Returns
    -------
    dict
        ``{"sharpe": (low, high), "cagr": (low, high), "max_drawdown": (low, high),
        "block": (length, length)}`` (the block length used, for the record).
    """
    from arch.bootstrap import optimal_block_length

    level, reps = _check_level(level), _check_reps(reps)
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 3 or not r.std() > 0:
        nan = (math.nan, math.nan)
        return {"sharpe": nan, "cagr": nan, "max_drawdown": nan, "block": nan}
    block = float(max(1.0, optimal_block_length(r)["stationary"].iloc[0]))
    rf_bar = float(np.expm1(np.log1p(risk_free) / periods_per_year))
    rows, out = [], []
    for positions in _bootstrap(r.size, block, reps, seed):
        rows.append(r[positions])
        if len(rows) == _BATCH:
            out.append(_path_statistics(np.stack(rows), periods_per_year, rf_bar))
            rows = []
    if rows:
        out.append(_path_statistics(np.stack(rows), periods_per_year, rf_bar))
    draws = np.concatenate(out)
    names = ("sharpe", "cagr", "max_drawdown")
    result = {name: _percentile_interval(draws[:, i], level) for i, name in enumerate(names)}
    result["block"] = (block, block)
    return result


# --------------------------------------------------------------------------- sweeps


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """``SR0``: the per-bar Sharpe ratio expected of the best of ``n_trials`` trials with
    no skill, whose Sharpe ratios vary with ``variance`` (Bailey & López de Prado 2014)."""
    from statistics import NormalDist

    if n_trials < 2 or not (variance >= 0 and math.isfinite(variance)):
        return 0.0 if n_trials == 1 else math.nan
    ppf = NormalDist().inv_cdf
    return float(math.sqrt(variance) * (
        (1 - EULER_GAMMA) * ppf(1 - 1 / n_trials)
        + EULER_GAMMA * ppf(1 - 1 / (n_trials * math.e))))


def deflated_sharpe(sharpe: float, n: int, skew: float, kurtosis: float, n_trials: int,
                    variance: float) -> float:
    """DSR: the PSR of a per-bar Sharpe ratio against :func:`expected_max_sharpe`."""
    return psr_from_moments(sharpe, n, skew, kurtosis, expected_max_sharpe(n_trials, variance))


#: Contiguous blocks of a sweep's bars for :func:`probability_of_overfitting`: C(16, 8)
#: = 12,870 splits.
PBO_BLOCKS = 16


def set_summary(returns, n_blocks: int = PBO_BLOCKS) -> np.ndarray:
    """What the sweep statistics need of one parameter set's per-bar returns.

    A sweep's workers compute this beside each set's metrics and send it back
    instead of the returns themselves (``1 + 5 * n_blocks`` numbers instead of
    one per bar), so the deflated Sharpe ratio and the probability of
    overfitting cost little on top of the sweep.

    Parameters
    ----------
    returns : array of float
        The set's per-bar returns (NaN: no return on that bar; it adds nothing
        to the sums and is not counted in the moments).
    n_blocks : int
        Contiguous blocks of bars (the CSCV blocks).

    Returns
    -------
    numpy.ndarray of shape ``(1 + 5 * n_blocks,)``
        The count of finite returns, then per block the count of its bars and
        the sums of the returns to the powers 1, 2, 3 and 4 (NaN as 0). The
        moments of the whole series follow from the power sums
        (:func:`summary_moments`), a half's Sharpe ratio from its blocks'.
    """
    return set_summaries(np.asarray(returns, dtype=np.float64).reshape(1, -1), n_blocks)[0]


def block_edges(n_bars: int, n_blocks: int = PBO_BLOCKS) -> np.ndarray:
    """The ``n_blocks + 1`` edges of the contiguous blocks of :func:`set_summary`:
    block ``b`` is bars ``edges[b]`` to ``edges[b + 1] - 1``, ``edges[b]`` the whole
    part of ``b * n_bars / n_blocks`` (``numpy.linspace``)."""
    return np.linspace(0, n_bars, n_blocks + 1).astype(np.intp)


def set_summaries(returns, n_blocks: int = PBO_BLOCKS) -> np.ndarray:
    """:func:`set_summary` of every row of ``returns`` (sets × bars), at once.

    A block's sum is a difference of running sums, which NumPy accumulates in bar
    order whatever the number of rows: a set gives the same summary bit for bit
    alone or among others. The batched sweep computes the same rows in its compiled
    pass (``summary_edges`` of :func:`engine._core.batch.simulate`), in the same
    order of operations, so they equal this function's bit for bit.
    """
    r = np.ascontiguousarray(returns, dtype=np.float64)
    k, n = r.shape
    out = np.full((k, 1 + 5 * n_blocks), np.nan)
    finite = np.isfinite(r)
    out[:, 0] = np.count_nonzero(finite, axis=1)
    if n >= n_blocks:
        x = np.where(finite, r, 0.0)
        x2 = x * x
        edges = block_edges(n, n_blocks)
        out[:, 1:1 + n_blocks] = np.diff(edges)
        running = np.zeros((k, n + 1))
        for p, power in enumerate((x, x2, x2 * x, x2 * x2), start=1):
            np.cumsum(power, axis=1, out=running[:, 1:])
            out[:, 1 + p * n_blocks:1 + (p + 1) * n_blocks] = (
                running[:, edges[1:]] - running[:, edges[:-1]])
    return out


def summary_moments(summaries, n_blocks: int = PBO_BLOCKS) -> np.ndarray:
    """Per row of :func:`set_summary`: ``(sharpe, skew, kurtosis, n)``, as :func:`_moments`.

    From the power sums ``S_k`` over ``n`` finite returns: mean ``m = S_1 / n``,
    central moments ``mu_2 = S_2/n - m^2``, ``mu_3 = S_3/n - 3 m S_2/n + 2 m^3``,
    ``mu_4 = S_4/n - 4 m S_3/n + 6 m^2 S_2/n - 3 m^4``; Sharpe ``m / sqrt(mu_2 n /
    (n - 1))``, skewness ``mu_3 / mu_2^1.5``, kurtosis ``mu_4 / mu_2^2``. NaN where
    there are fewer than 3 returns or no spread.
    """
    summaries = np.asarray(summaries, dtype=np.float64).reshape(-1, 1 + 5 * n_blocks)
    n = summaries[:, 0]
    sums = summaries[:, 1 + n_blocks:].reshape(-1, 4, n_blocks).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sums[:, 0] / n
        e2, e3, e4 = sums[:, 1] / n, sums[:, 2] / n, sums[:, 3] / n
        mu2 = e2 - m * m
        mu3 = e3 - 3 * m * e2 + 2 * m ** 3
        mu4 = e4 - 4 * m * e3 + 6 * m * m * e2 - 3 * m ** 4
        ok = (n >= 3) & (mu2 > 1e-300)  # a constant series leaves rounding dust, not spread
        sharpe = np.where(ok, m / np.sqrt(mu2 * n / (n - 1)), np.nan)
        skew = np.where(ok, mu3 / mu2 ** 1.5, np.nan)
        kurtosis = np.where(ok, mu4 / (mu2 * mu2), np.nan)
    return np.column_stack([sharpe, skew, kurtosis, n])


def deflated_sharpes(returns_matrix) -> np.ndarray:
    """The deflated Sharpe ratio of every set of a sweep.

    Parameters
    ----------
    returns_matrix : array of shape (n_bars, n_sets)
        Per-bar returns of each parameter set (a failed set: a column of NaN).

    Returns
    -------
    numpy.ndarray
        One DSR per set, with ``N`` the number of sets that ran and ``V`` the
        variance (``ddof=1``) of their per-bar Sharpe ratios; NaN for a set that
        did not run or has no spread.
    """
    m = np.asarray(returns_matrix, dtype=np.float64)
    return deflated_sharpes_from_summaries(set_summaries(m.T, 1), 1)


def deflated_sharpes_from_summaries(summaries, n_blocks: int = PBO_BLOCKS) -> np.ndarray:
    """:func:`deflated_sharpes` from the sets' :func:`set_summary` rows (NaN rows: failed)."""
    moments = summary_moments(summaries, n_blocks)
    ran = np.isfinite(moments[:, :3]).all(axis=1)
    if ran.sum() < 2:
        return np.full(len(moments), np.nan)
    sr0 = expected_max_sharpe(int(ran.sum()), float(np.var(moments[ran, 0], ddof=1)))
    return np.array([psr_from_moments(sr, int(n), g3, g4, sr0) if ok else np.nan
                     for (sr, g3, g4, n), ok in zip(moments, ran, strict=True)])


def probability_of_overfitting(returns_matrix, n_blocks: int = PBO_BLOCKS) -> dict:
    """The probability of backtest overfitting by combinatorially symmetric
    cross-validation (see the module docstring).

    Parameters
    ----------
    returns_matrix : array of shape (n_bars, n_sets)
        Per-bar returns of each set; NaN counts as a zero return (no position).
    n_blocks : int, default 16
        ``S``, an even number of contiguous blocks (``C(S, S/2)`` splits: 12,870
        for 16).

    Returns
    -------
    dict
        ``pbo`` (share of splits whose logit is ``<= 0``), ``splits``, and
        ``logits`` (one per split, for a histogram).
    """
    m = np.asarray(returns_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ParameterError("the probability of overfitting needs a (bars, sets) matrix of "
                             "at least two parameter sets")
    _check_blocks(n_blocks, m.shape[0])
    return overfitting_from_summaries(set_summaries(m.T, n_blocks), n_blocks)


def _check_blocks(n_blocks: int, n_bars: int) -> None:
    if n_blocks < 2 or n_blocks % 2 or n_blocks > 24 or n_bars < 2 * n_blocks:
        raise ParameterError(f"n_blocks must be an even number from 2 to 24 with at least "
                             f"two bars per block; got n_blocks={n_blocks} for {n_bars} bars")


#: Fewest (split, set) pairs a thread of :func:`overfitting_from_summaries` is given:
#: below it, starting the thread costs more than it saves.
_PAIRS_PER_THREAD = 500_000


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=4)
def _split_layout(n_blocks: int) -> tuple:
    """The CSCV splits of ``n_blocks`` blocks, for :func:`overfitting_from_summaries`:
    ``(subsets, member, low_mask, high_mask)``. ``subsets`` is every subset of half the
    blocks as 0/1 rows (``2 ** (S/2)`` of them); ``member[k]`` marks the blocks of split
    ``k``'s in-sample half, the ``C(S, S/2)`` choices in the order of
    ``itertools.combinations``; ``low_mask[k]`` and ``high_mask[k]`` are that half's
    blocks among the first and the second half of the blocks, as bit masks (rows of
    ``subsets``). The same for every sweep with ``n_blocks``, so computed once."""
    from itertools import combinations

    h = n_blocks // 2
    splits = np.array(list(combinations(range(n_blocks), h)), dtype=np.int64)
    subsets = (np.arange(2 ** h)[:, None] >> np.arange(h)) & 1   # (2**h, h) 0/1
    member = np.zeros((len(splits), n_blocks), dtype=np.int64)
    member[np.arange(len(splits))[:, None], splits] = 1
    weights = 1 << np.arange(h)
    low_mask = np.ascontiguousarray(member[:, :h] @ weights)
    high_mask = np.ascontiguousarray(member[:, h:] @ weights)
    for array in (subsets, member, low_mask, high_mask):
        array.flags.writeable = False
    return subsets, member, low_mask, high_mask


def overfitting_from_summaries(summaries, n_blocks: int = PBO_BLOCKS, *,
                               threads: int | None = None) -> dict:
    """:func:`probability_of_overfitting` from the sets' :func:`set_summary` rows.

    Every row must come from the same bars (one block layout); rows of failed
    sets (NaN blocks) are left out. The loop over splits is compiled
    (:func:`engine._core.kernels.cscv_logits`, with sums over every subset of
    each half of the blocks so that a split's sums are two reads): in NumPy,
    12,870 splits of a thousand sets took seconds of temporaries. The splits are
    shared among ``threads`` threads (default: one per core this process may use,
    fewer for small sweeps); each split's logit is computed alone, so the result
    does not depend on the number of threads.
    """
    summaries = np.asarray(summaries, dtype=np.float64).reshape(-1, 1 + 5 * n_blocks)
    blocks = summaries[:, 1:]
    ok = np.isfinite(blocks).all(axis=1)
    blocks = blocks[ok]
    if blocks.shape[0] < 2:
        raise ParameterError("the probability of overfitting needs at least two parameter "
                             "sets that ran")
    count = blocks[0, :n_blocks]
    _check_blocks(n_blocks, int(count.sum()))
    if not (blocks[:, :n_blocks] == count).all():
        raise ParameterError("the probability of overfitting needs every set on the same "
                             "bars; these sets ran on different bars (a grid over start or "
                             "end?)")
    # Per block: bar count, sum and sum of squares of each set: a half's Sharpe ratio
    # is then a ratio of block totals, with no pass over the bars per split.
    from engine._core.kernels import cscv_logits

    total = blocks[:, n_blocks:2 * n_blocks]
    square = blocks[:, 2 * n_blocks:3 * n_blocks]
    # A half is some blocks of the first half of the blocks and some of the second: with
    # the sums over every subset of each (2 ** (S/2) of them) a half's sum is two reads.
    h = n_blocks // 2
    subsets, member, low_mask, high_mask = _split_layout(n_blocks)
    low_s1, low_s2 = (np.ascontiguousarray(subsets @ x[:, :h].T) for x in (total, square))
    high_s1, high_s2 = (np.ascontiguousarray(subsets @ x[:, h:].T) for x in (total, square))
    n_splits = len(member)
    n_in = np.ascontiguousarray(member @ count, dtype=np.float64)   # bars in sample
    all_s1 = np.ascontiguousarray(total.sum(axis=1))
    all_s2 = np.ascontiguousarray(square.sum(axis=1))
    logits = np.empty(n_splits)

    def part(first: int, last: int) -> None:   # the compiled loop releases the GIL
        cscv_logits(n_in[first:last], float(count.sum()), low_mask[first:last],
                    high_mask[first:last], low_s1, low_s2, high_s1, high_s2, all_s1, all_s2,
                    np.empty(2 * total.shape[0]), logits[first:last])

    wanted = _cores() if threads is None else int(threads)
    parts = max(1, min(wanted, n_splits * total.shape[0] // _PAIRS_PER_THREAD))
    if parts == 1:
        part(0, n_splits)
    else:
        from concurrent.futures import ThreadPoolExecutor

        edges = np.linspace(0, n_splits, parts + 1).astype(int).tolist()
        with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="engine-pbo") as pool:
            list(pool.map(part, edges[:-1], edges[1:]))
    return {"pbo": float(np.mean(logits <= 0)), "splits": int(n_splits), "logits": logits}
