"""The claims audit's vocabulary: settings, claims, findings and verdicts.

The audit measures every checkable claim of the rule book (``RULES.md``) by running the engine.

``python -m engine claims`` (or :func:`measure_all`) goes through :data:`CLAIMS`, a
registry with one :class:`Claim` per statement of the source notes, in the order
of ``RULES.md``. A claim names the strategy plugin (``strategies/*.py``) whose run
measures it and a ``measure`` function that reads the figure off that run: an
event-study row (:mod:`engine.analysis.event_study`), the calendar-month table, the run's
trades, or the run's data at a date. Nothing is computed beside the engine, so
the claims table and the backtests (``python -m engine run strategies/...``)
cannot disagree. A claim about data the bundle does not have carries ``needs``
(the data it would take) instead of a ``measure``.

Verdicts
--------
``holds``, ``fails``, ``inconclusive``, or ``cannot be tested`` (with the reason).
How a verdict is decided depends on what the claim states (tolerances are
:class:`Settings`, printed with the table).

Rates over signal days (the Fear & Greed and VIX bands, days-to-cover, the credit
and SKEW warnings, the bitcoin reclaim, the trend streak) carry their evidence,
from :func:`engine.analysis.stats.rate_evidence`: the signal days, the independent
episodes (runs split at gaps longer than the horizon), the measured rate with its
95% interval, the base rate over every bar from the first to the last signal (the
same period and bars), and their difference with its interval and p-value, from a
seeded stationary block bootstrap (block ``max(2h, n^(1/3))``). The verdict is
decided by the intervals (:func:`rate_verdict`, :func:`stance_verdict`); fewer than
``Settings.min_episodes`` (5) independent episodes are *inconclusive*.

Claimed success rate (e.g. "0–25: 85% success")
    "Success" is a forward return ``> 0`` from the signal bar's close over
    ``Settings.horizon`` bars (21, one month: the notes speak of 1-month and
    3-month horizons and of a 1–4 week stance; 63 is available with
    ``--horizon 63``). A buy claim holds when the rate's interval reaches the
    claimed rate less ``rate_tolerance`` (5 points) and fails when it lies wholly
    below. A sell claim ("take profit 70%") succeeds when the price does not rise:
    it holds when the interval of the share of rising prices reaches down to
    ``1 - claimed`` plus the tolerance, and fails when it lies wholly above.
Stance with no figure (e.g. "VIX 30–40: consider contrarian buying")
    Compared with the base rate: a buy stance holds when the difference's interval
    lies above 0 (significantly above the base rate), fails when it lies below 0,
    and is inconclusive otherwise; a sell or cautious stance the mirror; "wait and
    see" (no edge claimed) holds when the interval lies within ``stance_tolerance``
    (5 points) of 0, fails when it lies wholly outside, inconclusive otherwise.
Warning or precursor (credit spreads, VIX with SKEW, days-to-cover)
    A buy-like stance on the share of signals followed by the move named (a fall,
    or for a squeeze a rise, of ``move`` or more from the signal close within the
    horizon: the event study's ``share_fell``/``share_rose``, bar by bar).
"Every case" (the 138-day streak)
    Holds only if every case is up: one counterexample fails it, whatever the
    interval.
Levels, averages and dated facts
    A level holds within ``level_tolerance`` (1%, relative), an average monthly
    return within ``average_tolerance`` (0.25 percentage points), a percentage
    move within ``move_tolerance`` (1 point), an index reading within
    ``reading_tolerance`` (5 points). The notes are dated 2025-11-21 but their
    levels fit 2024-11-21 (``RULES.md``, dating note): a level "on the note's date"
    is checked on both days and holds if either matches.
Untestable
    The data it would need is named in the ``why`` column.

Across claims, ``q_value`` is the Benjamini–Hochberg q-value of each ``p_value``
(:func:`engine.analysis.stats.benjamini_hochberg`), and :func:`multiple_testing`
says in one line how many would look significant by chance. The ``fragility``
column gives the same verdict at the other horizons of 5, 21 and 63 bars and on
the sub-periods of :data:`DATA_PERIODS` where the data changes character (Fear &
Greed before 2021-01-29 is a third-party reconstruction; the VIX before
2003-09-22 is CBOE's back-calculation). ``sample`` is the first → last signal.

Each claim's parameters (its ``params``, and the strategy's parameters of its
run) are the definitions of its vague words, stated in the table's
``definition`` column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from engine.errors import ParameterError

if TYPE_CHECKING:
    from engine.research.claims.measure import Lab

HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "fails", "inconclusive", "cannot be tested"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE)

#: Where the strategy plugins live (the repository's ``strategies/`` folder).
STRATEGIES = Path(__file__).resolve().parents[3] / "strategies"

#: The source notes' date, and the date a year earlier whose market their levels fit.
NOTE_DATES = ("2025-11-21", "2024-11-21")

#: First day of the VIX history (and of SKEW): VIX claims run from here.
VIX_START = "1990-01-02"

#: The evidence of a claim measured as a rate over signal days (None for the others).
EVIDENCE_COLUMNS = ("episodes", "non_overlapping", "rate", "rate_low", "rate_high", "base",
                    "base_low", "base_high", "difference", "difference_low",
                    "difference_high", "p_value", "q_value")

CLAIM_COLUMNS = ("id", "claim", "source", "strategy", "definition", "sample", "cases",
                 "claimed", "measured", "verdict", "why", "claimed_value", "measured_value",
                 "base_value", *EVIDENCE_COLUMNS, "fragility")

#: Sub-periods where a feed changes character: (feed field, label, first day, last day).
#: Fear & Greed up to 2021-01-29 is a third-party reconstruction (integers, ratings
#: back-filled), CNN's own values from 2021-02-01 (datasets/README.md); the VIX before
#: 2003-09-22 is CBOE's back-calculation of the index it introduced that day.
DATA_PERIODS = {
    "fear_greed": (("pre-2021", None, "2021-01-29"), ("2021+", "2021-02-01", None)),
    "vix": (("pre-2003", None, "2003-09-19"), ("2003+", "2003-09-22", None)),
}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How vague words are read and how close a measure must come to hold.

    Attributes
    ----------
    horizon : int
        Bars of the forward return that defines "success" for stock-index and
        stock claims (21: one month of trading days).
    crypto_horizon : int
        The same for bitcoin, whose bars are calendar days (30: one month).
    rate_tolerance : float
        A claimed success rate holds within this many points (0.05 = 5 points).
    stance_tolerance : float
        "Wait and see" holds if the band is within this of the base rate (0.05).
    level_tolerance : float
        A price or spread level holds within this fraction of it (0.01 = 1%).
    average_tolerance : float
        An average monthly return holds within this (0.0025 = 0.25 points).
    move_tolerance : float
        A quoted percentage move ("about 21%") holds within this (0.01 = 1 point).
    reading_tolerance : float
        A Fear & Greed reading holds within this many index points (5).
    level : float
        Coverage of the intervals (0.95).
    reps : int
        Bootstrap resamples per interval (1000).
    min_episodes : int
        A rate over fewer independent episodes than this is inconclusive (5).
    seed : int
        Seed of every bootstrap: reruns give the same table.
    """

    horizon: int = 21
    crypto_horizon: int = 30
    rate_tolerance: float = 0.05
    stance_tolerance: float = 0.05
    level_tolerance: float = 0.01
    average_tolerance: float = 0.0025
    move_tolerance: float = 0.01
    reading_tolerance: float = 5.0
    level: float = 0.95
    reps: int = 1000
    min_episodes: int = 5
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ParameterError(f"claims setting {f.name} must be a number >= 0; "
                                     f"got {value!r}")
        for name in ("horizon", "crypto_horizon"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ParameterError(f"claims setting {name} must be a whole number of bars "
                                     f">= 1; got {value!r}")
        if not 0 < self.level < 1:
            raise ParameterError(f"claims setting level must be a probability between 0 and "
                                 f"1, e.g. 0.95; got {self.level!r}")
        if int(self.reps) != self.reps or self.reps < 100:
            raise ParameterError(f"claims setting reps must be a whole number of bootstrap "
                                 f"resamples >= 100; got {self.reps!r}")


@dataclass
class Finding:
    """A claim's measurement: what was measured, on what, the figures and the verdict."""

    definition: str
    sample: str
    cases: int | None
    claimed: str
    measured: str
    verdict: str
    why: str = ""
    claimed_value: float | None = None
    measured_value: float | None = None
    base_value: float | None = None
    episodes: int | None = None
    non_overlapping: int | None = None
    rate: float | None = None
    rate_low: float | None = None
    rate_high: float | None = None
    base: float | None = None
    base_low: float | None = None
    base_high: float | None = None
    difference: float | None = None
    difference_low: float | None = None
    difference_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    fragility: str = ""


@dataclass(frozen=True)
class Claim:
    """One statement of the source notes and how it is measured.

    Attributes
    ----------
    id : str
        Short identifier, by the rule book's section (``A1.fg.extreme_fear``).
    claim : str
        The claim in one short sentence.
    source : str
        The source note and section (``004 glossary``, ``000/001 §4``).
    quote : str
        The claim as ``RULES.md`` words it.
    strategy : str or None
        The plugin whose run measures it (a file in ``strategies/``).
    measure : callable or None
        ``measure(lab, **params) -> Finding``; None for an untestable claim.
    params : mapping
        The claim's definitions (documented defaults), passed to ``measure``.
    needs : str
        For an untestable claim: why, and the data it would need.
    """

    id: str
    claim: str
    source: str
    quote: str
    strategy: str | None = None
    measure: Callable | None = None
    params: Mapping = field(default_factory=dict)
    needs: str = ""

    def evaluate(self, lab: Lab, **params) -> Finding:
        """Measure the claim (``params`` replace the claim's own)."""
        if self.measure is None:
            return Finding(definition="—", sample="—", cases=None, claimed="—",
                           measured="—", verdict=UNTESTABLE, why=self.needs)
        return self.measure(lab, **{**self.params, **params})


def _points(fraction: float) -> str:
    """0.05 -> "5 pt" (percentage points)."""
    return f"{fraction * 100:g} pt"


# --------------------------------------------------------------------------- verdict rules

#: An interval ending this close to a stated rate's threshold is flagged "borderline":
#: the bootstrap's own Monte Carlo error (1,000 resamples) is about half a point there.
BORDERLINE = 0.01


def _few(evidence, min_episodes: int):
    """The inconclusive verdict of a rate with too little evidence, or None."""
    if evidence.signals == 0:
        return INCONCLUSIVE, "no signal day with a full forward window"
    if evidence.episodes < min_episodes:
        return INCONCLUSIVE, (f"{evidence.episodes} independent episode"
                              f"{'s' if evidence.episodes != 1 else ''} (< {min_episodes}): "
                              f"too few to judge")
    if not math.isfinite(evidence.rate_high):
        return INCONCLUSIVE, ("the signals span fewer bars than two bootstrap blocks: no "
                              "interval, cannot tell")
    return None


def rate_verdict(evidence, claimed: float, sell: bool, tolerance: float,
                 min_episodes: int) -> tuple[str, str]:
    """The verdict on a stated success rate, from the rate's interval.

    A buy claim ("85% success") states a share of forward returns ``> 0`` of at
    least ``claimed``: it *holds* when the interval's upper end reaches
    ``claimed - tolerance`` (the interval contains the stated rate within the
    tolerance, or lies above it) and *fails* when the whole interval is below
    that. A sell claim ("70% success" of taking profit) states that at most
    ``claimed`` of forward returns are ``> 0`` (``claimed`` here is already
    ``1 - 0.70``): it holds when the interval's lower end is at most ``claimed +
    tolerance`` and fails when the whole interval is above. With no signal or
    fewer than ``min_episodes`` independent episodes the verdict is
    *inconclusive*. An interval ending within :data:`BORDERLINE` of the threshold
    is called borderline in the rule.

    Returns
    -------
    (verdict, rule)
    """
    few = _few(evidence, min_episodes)
    if few:
        return few
    if sell:
        edge, line = evidence.rate_low, claimed + tolerance
        ok = edge <= line
        rule = (f"sell claim: holds if the interval reaches down to {claimed:.0%} of rises "
                f"(+{_points(tolerance)}); fails if it lies above")
    else:
        edge, line = evidence.rate_high, claimed - tolerance
        ok = edge >= line
        rule = (f"holds if the interval reaches {claimed:.0%} (−{_points(tolerance)}); fails "
                f"if it lies below")
    if abs(edge - line) < BORDERLINE:
        rule += (f"; borderline: the interval ends at {edge:.1%}, within "
                 f"{_points(BORDERLINE)} of {line:.0%}")
    return HOLDS if ok else FAILS, rule


def stance_verdict(evidence, stance: int, tolerance: float, min_episodes: int
                   ) -> tuple[str, str]:
    """The verdict on a stance, from the interval of the difference to the base rate.

    ``stance=1`` (buy, or a precursor of the move measured): *holds* when the
    difference's interval lies above 0 (the rate significantly above the base
    rate), *fails* when it lies below 0, *inconclusive* otherwise.
    ``stance=-1`` (sell, cautious): the mirror. ``stance=0`` ("wait and see": no
    edge): holds when the interval lies within ``±tolerance``, fails when it lies
    wholly outside it, inconclusive otherwise. Too few episodes: inconclusive.
    """
    few = _few(evidence, min_episodes)
    if few:
        return few
    low, high = evidence.difference_low, evidence.difference_high
    if stance > 0:
        verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
        return verdict, "holds if significantly above the base rate (interval of the " \
                        "difference > 0), fails if significantly below"
    if stance < 0:
        verdict = HOLDS if high < 0 else FAILS if low > 0 else INCONCLUSIVE
        return verdict, "holds if significantly below the base rate (interval of the " \
                        "difference < 0), fails if significantly above"
    verdict = (HOLDS if -tolerance <= low and high <= tolerance
               else FAILS if low > tolerance or high < -tolerance else INCONCLUSIVE)
    return verdict, (f"no edge claimed: holds if the difference's interval is within "
                     f"±{_points(tolerance)}, fails if wholly outside")


def multiple_testing(table: pl.DataFrame, alpha: float = 0.05) -> str:
    """One line on multiple testing: how many of the claims' p-values would fall under
    ``alpha`` by chance, and how many q-values (Benjamini–Hochberg) do."""
    p = table["p_value"].drop_nulls()
    if p.len() == 0:
        return "no claim carries a p-value"
    q = table["q_value"].drop_nulls()
    return (f"multiple testing: {p.len()} claims tested against their base rate, so about "
            f"{alpha * p.len():.1f} would look significant at {alpha:.0%} by chance alone; "
            f"{int((p <= alpha).sum())} have p ≤ {alpha:g}, {int((q <= alpha).sum())} keep "
            f"q ≤ {alpha:g} (Benjamini–Hochberg false discovery rate)")


def settings_text(settings: Settings) -> str:
    """The settings as one line, for tables and files."""
    return ("success = forward return > 0 over "
            f"{settings.horizon} bars ({settings.crypto_horizon} for bitcoin); tolerances: "
            f"rates ±{_points(settings.rate_tolerance)}, wait-and-see ±"
            f"{_points(settings.stance_tolerance)}, levels ±{settings.level_tolerance:.0%}, "
            f"average returns ±{_points(settings.average_tolerance)}, moves ±"
            f"{_points(settings.move_tolerance)}, index readings ±"
            f"{settings.reading_tolerance:g} points; {settings.level:.0%} intervals from a "
            f"seeded stationary block bootstrap ({settings.reps} resamples); fewer than "
            f"{settings.min_episodes} episodes: inconclusive")


def summary(table: pl.DataFrame) -> str:
    """``"N claims: a hold, b fail, c inconclusive, d cannot be tested"``."""
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    return (f"{table.height} claims: {counts[HOLDS]} hold, {counts[FAILS]} fail, "
            f"{counts[INCONCLUSIVE]} inconclusive, {counts[UNTESTABLE]} cannot be tested "
            f"with the bundled data")


def settings_dict(settings: Settings) -> dict:
    return asdict(settings)


def with_settings(settings: Settings, **changes) -> Settings:
    """``settings`` with some fields replaced (None leaves a field as it is)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})

