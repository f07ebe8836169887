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
``holds``, ``does not hold``, or ``cannot be tested`` (with the reason). How a
verdict is decided depends on what the claim states (tolerances are
:class:`Settings`, printed with the table):

Claimed success rate (e.g. "0–25: 85% success")
    "Success" is a forward return ``> 0`` from the signal bar's close over
    ``Settings.horizon`` bars (21, one month: the notes speak of 1-month and
    3-month horizons and of a 1–4 week stance; 63 is available with
    ``--horizon 63``); the measured rate is the event study's ``share_positive``
    of every bar in the band. A buy claim holds if the measured rate is at least
    the claimed one less ``rate_tolerance`` (5 points). A sell claim ("take
    profit 70%") succeeds when the price does not rise, so it holds if the share
    of rising prices is at most ``1 - claimed`` plus the tolerance.
Stance with no figure (e.g. "VIX 30–40: consider contrarian buying")
    Compared with the base rate (``share_positive`` of every bar of the same run
    and horizon): a buy stance holds if the band's share is above it, a sell or
    cautious stance if it is below, "wait and see" (no edge claimed) if it is
    within ``stance_tolerance`` (5 points) of it.
Warning or precursor (credit spreads, VIX with SKEW, days-to-cover)
    The share of signals followed by the move named (a fall, or for a squeeze a
    rise, of ``move`` or more from the signal close within the horizon: the event
    study's ``share_fell``/``share_rose``) must exceed that share over every bar.
"Every case" (the 138-day streak)
    Holds only if every case is up: 100%.
Levels, averages and dated facts
    A level holds within ``level_tolerance`` (1%, relative), an average monthly
    return within ``average_tolerance`` (0.25 percentage points), a percentage
    move within ``move_tolerance`` (1 point), an index reading within
    ``reading_tolerance`` (5 points). The notes are dated 2025-11-21 but their
    levels fit 2024-11-21 (``RULES.md``, dating note): a level "on the note's date"
    is checked on both days and holds if either matches.
Untestable
    The data it would need is named in the ``why`` column.

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

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "cannot be tested"
VERDICTS = (HOLDS, FAILS, UNTESTABLE)

#: Where the strategy plugins live (the repository's ``strategies/`` folder).
STRATEGIES = Path(__file__).resolve().parents[3] / "strategies"

#: The source notes' date, and the date a year earlier whose market their levels fit.
NOTE_DATES = ("2025-11-21", "2024-11-21")

#: First day of the VIX history (and of SKEW): VIX claims run from here.
VIX_START = "1990-01-02"

CLAIM_COLUMNS = ("id", "claim", "source", "strategy", "definition", "sample", "cases",
                 "claimed", "measured", "verdict", "why", "claimed_value", "measured_value",
                 "base_value")


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
    """

    horizon: int = 21
    crypto_horizon: int = 30
    rate_tolerance: float = 0.05
    stance_tolerance: float = 0.05
    level_tolerance: float = 0.01
    average_tolerance: float = 0.0025
    move_tolerance: float = 0.01
    reading_tolerance: float = 5.0

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


def settings_text(settings: Settings) -> str:
    """The settings as one line, for tables and files."""
    return ("success = forward return > 0 over "
            f"{settings.horizon} bars ({settings.crypto_horizon} for bitcoin); tolerances: "
            f"rates ±{_points(settings.rate_tolerance)}, wait-and-see ±"
            f"{_points(settings.stance_tolerance)}, levels ±{settings.level_tolerance:.0%}, "
            f"average returns ±{_points(settings.average_tolerance)}, moves ±"
            f"{_points(settings.move_tolerance)}, index readings ±"
            f"{settings.reading_tolerance:g} points")


def summary(table: pl.DataFrame) -> str:
    """``"N claims: a hold, b do not hold, c cannot be tested"``."""
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    return (f"{table.height} claims: {counts[HOLDS]} hold, {counts[FAILS]} do not hold, "
            f"{counts[UNTESTABLE]} cannot be tested with the bundled data")


def settings_dict(settings: Settings) -> dict:
    return asdict(settings)


def with_settings(settings: Settings, **changes) -> Settings:
    """``settings`` with some fields replaced (None leaves a field as it is)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})

