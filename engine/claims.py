"""Every checkable claim of the rule book (``RULES.md``), measured by running the engine.

``python -m engine claims`` (or :func:`measure_all`) goes through :data:`CLAIMS`, a
registry with one :class:`Claim` per statement of the source notes, in the order
of ``RULES.md``. A claim names the strategy plugin (``strategies/*.py``) whose run
measures it and a ``measure`` function that reads the figure off that run: an
event-study row (:mod:`engine.event_study`), the calendar-month table, the run's
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

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import ParameterError

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "cannot be tested"
VERDICTS = (HOLDS, FAILS, UNTESTABLE)

#: Where the strategy plugins live (the repository's ``strategies/`` folder).
STRATEGIES = Path(__file__).resolve().parents[1] / "strategies"

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


# --------------------------------------------------------------------------- the runs


class Lab:
    """Runs strategies once each and hands out their results and event studies.

    Parameters
    ----------
    settings : Settings, optional
    overrides : mapping, optional
        Strategy file name -> run options that replace the claim's own (e.g.
        ``{"trend_streak.py": {"data": frame}}``): how tests measure a claim on a
        hand-built series.
    strategies : path, optional
        The folder of the strategy plugins (default :data:`STRATEGIES`).
    """

    def __init__(self, settings: Settings | None = None, overrides: Mapping | None = None,
                 strategies: str | Path | None = None):
        self.settings = settings or Settings()
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        self.strategies = Path(strategies) if strategies is not None else STRATEGIES
        if not self.strategies.is_dir():
            raise ParameterError(
                f"the claims are measured by the strategy plugins in {self.strategies}, "
                f"which does not exist: run from a clone of the repository installed with "
                f"'pip install -e .' (the strategies/ and datasets/ folders are not "
                f"installed with the package)"
            )
        self._runs: dict = {}
        self._events: dict = {}

    def _options(self, file: str, options: dict) -> dict:
        return {**options, **self.overrides.get(file, {})}

    def run(self, file: str, **options):
        """``engine.run(strategies/<file>, **options)``, once per distinct options."""
        from engine.api import run

        options = self._options(file, options)
        key = (file, _key(options))
        if key not in self._runs:
            self._runs[key] = run(self.strategies / file, **options)
        return self._runs[key]

    def events(self, file: str, horizons, *, signals_from=None, move_threshold=None,
               **options) -> pl.DataFrame:
        """The event study of :meth:`run` ``(file, **options)``."""
        from engine.event_study import event_study

        result = self.run(file, **options)
        key = (file, _key(self._options(file, options)), tuple(horizons), str(signals_from),
               move_threshold)
        if key not in self._events:
            self._events[key] = event_study(result, tuple(horizons), signals_from=signals_from,
                                            move_threshold=move_threshold)
        return self._events[key]


def _key(options: dict) -> tuple:
    return tuple(sorted((k, id(v) if not isinstance(v, (str, int, float, bool, type(None)))
                         else v) for k, v in options.items()))


def event_row(table: pl.DataFrame, signal: str, horizon: int) -> dict | None:
    """The event-study row of ``signal`` at ``horizon`` (None if the signal never occurs)."""
    rows = table.filter((pl.col("signal") == signal) & (pl.col("horizon") == horizon))
    return rows.row(0, named=True) if rows.height else None


# --------------------------------------------------------------------------- claims


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


# --------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}%}" if sign else f"{x:.{digits}%}"


def _points(fraction: float) -> str:
    """0.05 -> "5 pt" (percentage points)."""
    return f"{fraction * 100:g} pt"


def _band(low: float, high: float) -> str:
    return f"{low:g}+" if math.isinf(high) else f"{low:g}–{high:g}"


def _month_name(month: str) -> str:
    return _MONTHS[int(month) - 1][:3]


def _num(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def _day(ts) -> str:
    return str(np.datetime64(ts, "D"))


def _sample(result, first=None) -> str:
    s = result.settings
    return f"{result.panel.symbols[0] if result.panel.n_symbols == 1 else 'universe'} " \
           f"{first or s['start']} → {s['end']}"


def _params_text(result, names) -> str:
    return ", ".join(f"{n}={result.params[n]}" for n in names)


def _at_date(result, field_name: str, day: str):
    """(bar date, value) of a panel field at the last bar on or before ``day``."""
    panel = result.panel
    i = int(np.searchsorted(panel.ts, np.datetime64(day, "ns"), side="right")) - 1
    if i < 0:
        return None, math.nan
    return _day(panel.ts[i]), float(panel.fields[field_name][i, 0])


def _months_mask(ts, month: str) -> np.ndarray:
    """Bars of the calendar month ``"YYYY-MM"``."""
    return np.asarray(ts).astype("datetime64[M]") == np.datetime64(month, "M")


# --------------------------------------------------------------------------- A1: fear bands


def measure_fg_band(lab: Lab, *, label: str, sell: bool, stated: str) -> Finding:
    """A CNN Fear & Greed band's claimed success rate (A1, glossary ``004``).

    RULES.md: "CNN Fear & Greed index ... Bands and the stance the glossary gives
    each, with the 'success rate' it claims: 0–25 extreme fear, aggressive buy, 85%;
    25–45 fear, buy the dip, 75%; 45–55 neutral, follow the trend, 60%; 55–75 greed,
    consider taking profit, 70%; 75–100 extreme greed, aggressive sell, 80%."

    Measured on ``fear_contrarian.py`` (default run, S&P 500 from 2011 with the
    Fear & Greed feed): the event study's ``label:<band>`` row at
    ``Settings.horizon``; the claimed rate is that row's ``claimed_rate`` (the
    strategy's ``claims``: a sell band's claim is stored as ``1 - claimed``).

    Parameters
    ----------
    label : str
        The band (the strategy's ``entry_labels`` value).
    sell : bool
        A sell claim: success is the price not rising.
    stated : str
        The claim's wording of the figure, shown in the table.
    """
    s = lab.settings
    h = s.horizon
    table = lab.events("fear_contrarian.py", (h,))
    result = lab.run("fear_contrarian.py")
    row, base = event_row(table, f"label:{label}", h), event_row(table, "all_bars", h)
    definition = (f"every bar with Fear & Greed in the band (fear_contrarian.py, "
                  f"{_params_text(result, ['fg_lag', 'feed_max_age'])}); success = S&P 500 "
                  f"forward return > 0 over {h} bars from the signal close")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, stated, "no bar in the band", FAILS,
                       "the band never occurs in the data")
    claimed, measured = row["claimed_rate"], row["share_positive"]
    if sell:
        ok = measured <= claimed + s.rate_tolerance
        rule = (f"sell claim: holds if at most {_pct(claimed, 0)} of forward returns are > 0 "
                f"(+{_points(s.rate_tolerance)} tolerance)")
    else:
        ok = measured >= claimed - s.rate_tolerance
        rule = (f"holds if the share > 0 is at least {_pct(claimed, 0)} "
                f"(−{_points(s.rate_tolerance)} tolerance)")
    return Finding(
        definition, _sample(result), row["count"], stated,
        f"{_pct(measured)} > 0 (base rate {_pct(base['share_positive'])}; mean "
        f"{_pct(row['mean_return'], 2, True)})",
        HOLDS if ok else FAILS, rule, claimed, measured, base["share_positive"])


def _stance_verdict(measured: float, base: float, stance: int, tolerance: float):
    if stance > 0:
        return measured > base, "buy stance: holds if the band's share > 0 beats the base rate"
    if stance < 0:
        return measured < base, ("sell/cautious stance: holds if the band's share > 0 is "
                                 "below the base rate")
    return abs(measured - base) <= tolerance, (f"no edge claimed: holds if within "
                                               f"{_points(tolerance)} of the base rate")


def measure_vix_band(lab: Lab, *, label: str, stance: int, stated: str) -> Finding:
    """A VIX band's stance (A1, glossary ``004``).

    RULES.md: "VIX bands: 10–15 extreme optimism (consider contrarian selling);
    15–20 optimistic (slightly cautious); 20–30 anxiety (wait and see); 30–40 fear
    (consider contrarian buying; e.g. Mar 2020, Oct 2022); 40+ panic (aggressive
    buying; 2008, Mar 2020)."

    Measured on ``fear_contrarian.py`` with ``signal="vix"`` from the VIX's first
    day (1990-01-02): the event study's ``label:<band>`` row against ``all_bars``
    at ``Settings.horizon``. The lowest band also holds readings under 10.

    Parameters
    ----------
    label : str
        The band (the strategy's ``entry_labels`` value with ``signal="vix"``).
    stance : {1, 0, -1}
        Buy, no edge ("wait and see"), or sell/cautious.
    stated : str
        The stance as the notes word it.
    """
    s = lab.settings
    h = s.horizon
    options = {"signal": "vix", "start": VIX_START}
    table = lab.events("fear_contrarian.py", (h,), **options)
    result = lab.run("fear_contrarian.py", **options)
    row, base = event_row(table, f"label:{label}", h), event_row(table, "all_bars", h)
    definition = (f"every bar with the VIX close in the band (fear_contrarian.py, "
                  f"signal=vix); S&P 500 forward return > 0 over {h} bars vs every bar")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, stated, "no bar in the band", FAILS,
                       "the band never occurs in the data")
    measured = row["share_positive"]
    ok, rule = _stance_verdict(measured, base["share_positive"], stance, s.stance_tolerance)
    return Finding(
        definition, _sample(result), row["count"], stated,
        f"{_pct(measured)} > 0 vs base {_pct(base['share_positive'])}; mean "
        f"{_pct(row['mean_return'], 2, True)} vs {_pct(base['mean_return'], 2, True)}",
        HOLDS if ok else FAILS, rule, None, measured, base["share_positive"])


def measure_vix_examples(lab: Lab, *, examples: tuple) -> Finding:
    """The VIX band examples: the named months saw VIX closes in the named band (A1).

    RULES.md: "30–40 fear (consider contrarian buying; e.g. Mar 2020, Oct 2022);
    40+ panic (aggressive buying; 2008, Mar 2020)."

    Parameters
    ----------
    examples : tuple of (period, low, high)
        ``period`` "YYYY" or "YYYY-MM"; the band ``low <= VIX < high``.
    """
    result = lab.run("fear_contrarian.py", signal="vix", start=VIX_START)
    panel = result.panel
    vix = panel.fields["vix"][:, 0]
    unit = {4: "Y", 7: "M"}
    found, ok = [], True
    for period, low, high in examples:
        mask = np.asarray(panel.ts).astype(f"datetime64[{unit[len(period)]}]") \
            == np.datetime64(period, unit[len(period)])
        values = vix[mask & np.isfinite(vix)]
        inside = int(((values >= low) & (values < high)).sum())
        ok &= inside > 0
        top = f"{values.max():.1f}" if values.size else "—"
        found.append(f"{period}: {inside} closes in {_band(low, high)} (max {top})")
    return Finding(
        "VIX closes in each named month (or year) within the named band", _sample(result),
        len(examples), "; ".join(f"{p} in {_band(lo, hi)}" for p, lo, hi in examples),
        "; ".join(found), HOLDS if ok else FAILS,
        "holds if every named period had at least one close in its band")


def measure_btc_fear_bottoms(lab: Lab, *, reading: float, months: tuple, window: int
                             ) -> Finding:
    """The crypto Fear & Greed reading at the named bitcoin bottoms (A1, ``000/001 §7``).

    RULES.md: "Bitcoin Fear & Greed at 18 (extreme fear) matched the Jun 2022 and
    Mar 2023 bottoms."

    Measured on ``btc_fear.py`` (BTC/USDT with the crypto Fear & Greed feed): the
    bottom of each named month is its lowest close; "matched" means a reading
    within ``Settings.reading_tolerance`` of ``reading`` on a bar within
    ``window`` bars of the bottom.

    Parameters
    ----------
    reading : float
        The claimed reading (18).
    months : tuple of str
        The bottoms' months, ``"YYYY-MM"``.
    window : int
        Bars either side of the bottom searched for the reading.
    """
    tolerance = lab.settings.reading_tolerance
    result = lab.run("btc_fear.py")
    panel = result.panel
    close, fg = panel.fields["close"][:, 0], panel.fields["crypto_fear_greed"][:, 0]
    parts, ok = [], True
    for month in months:
        bars = np.flatnonzero(_months_mask(panel.ts, month))
        if bars.size == 0:
            parts.append(f"{month}: no data")
            ok = False
            continue
        bottom = int(bars[np.argmin(close[bars])])
        near = fg[max(0, bottom - window): bottom + window + 1]
        near = near[np.isfinite(near)]
        match = near.size and np.abs(near - reading).min() <= tolerance
        ok &= bool(match)
        span = f"{near.min():.0f}–{near.max():.0f}" if near.size else "—"
        parts.append(f"{_day(panel.ts[bottom])} low close {_num(close[bottom])}: F&G "
                     f"{fg[bottom]:.0f} ({span} within ±{window} days)")
    return Finding(
        f"the lowest BTC close of each month and the crypto Fear & Greed reading within "
        f"±{window} bars (btc_fear.py)", _sample(result), len(months),
        f"F&G about {reading:g} at the {' and '.join(months)} bottoms", "; ".join(parts),
        HOLDS if ok else FAILS,
        f"holds if each bottom has a reading within ±{tolerance:g} points of {reading:g}",
        reading)


# --------------------------------------------------------------------------- A2


def measure_squeeze(lab: Lab, *, rise: float) -> Finding:
    """Days-to-cover above 10 as a short-squeeze precursor (A2, ``003``).

    RULES.md: "> 10.0 extreme positioning, traditionally a short-squeeze
    precursor."

    Measured on ``short_squeeze.py`` (the 4,663-stock universe, short interest
    point-in-time): the event study's ``label:> 10`` row (every stock-day with
    days-to-cover > 10, no confirmation) against ``all_bars``: the share of
    stock-days followed by a close ``rise`` or more above the signal close within
    ``Settings.horizon`` bars (``share_rose``).

    Parameters
    ----------
    rise : float
        The size of a squeeze, as a fraction (0.20 = +20%).
    """
    h = lab.settings.horizon
    table = lab.events("short_squeeze.py", (h,), move_threshold=rise)
    result = lab.run("short_squeeze.py")
    row, base = event_row(table, "label:> 10", h), event_row(table, "all_bars", h)
    definition = (f"every stock-day with days-to-cover > 10 (short_squeeze.py, "
                  f"{_params_text(result, ['adv_window', 'si_lag_days'])}); a squeeze = a "
                  f"close ≥ +{rise:.0%} above the signal close within {h} bars")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, "precursor", "no such stock-day",
                       FAILS, "no stock-day with days-to-cover > 10")
    measured = row["share_rose"]
    return Finding(
        definition, _sample(result), row["count"], "a short-squeeze precursor",
        f"{_pct(measured)} squeezed vs {_pct(base['share_rose'])} of all stock-days; "
        f"share > 0 {_pct(row['share_positive'])} vs {_pct(base['share_positive'])}",
        HOLDS if measured > base["share_rose"] else FAILS,
        "holds if squeezes follow more often than after any stock-day", None, measured,
        base["share_rose"])


# --------------------------------------------------------------------------- A3


def _breakout_run(lab: Lab, start: str, **params):
    return lab.run("breakout_failure.py", entry="always", max_hold=0, start=start, **params)


def measure_zone_peak(lab: Lab, *, start: str, end: str, peak: float, day: str) -> Finding:
    """The 2025 test of the 6180–6200 zone fell short (A3, dating note).

    RULES.md: "the 6180–6200 zone was tested from December 2024 to February 2025:
    the index peaked at 6147.43 intraday on 2025-02-19, short of the zone".

    Measured on ``breakout_failure.py`` (``entry="always"``, ``max_hold=0``, from
    ``start``): the highest high from ``start`` to ``end``, its date, the closes
    above the zone's bottom, and the run's exit.

    Parameters
    ----------
    start, end : str
        The test period.
    peak : float
        The claimed intraday high; ``day`` its date.
    """
    tolerance = lab.settings.level_tolerance
    result = _breakout_run(lab, start)
    panel = result.panel
    zone_low = result.params["zone_low"]
    window = np.flatnonzero(panel.ts <= np.datetime64(end, "ns"))
    high, close = panel.fields["high"][window, 0], panel.fields["close"][window, 0]
    top = int(np.argmax(high))
    above = int((close >= zone_low).sum())
    exits = result.trades.filter(pl.col("exit_ts").is_not_null())
    exit_text = (f"; breakout_failure, long from {start}, left on "
                 f"'{exits['exit_reason'][0]}' at the open of {_day(exits['exit_ts'][0])}"
                 if exits.height else "")
    ok = (abs(high[top] / peak - 1) <= tolerance and _day(panel.ts[window[top]]) == day
          and high[top] < zone_low and above == 0)
    return Finding(
        f"highest high {start} → {end} and closes at or above zone_low={zone_low:g} "
        f"(breakout_failure.py, entry=always)", f"SPX {start} → {end}", 1,
        f"peak {_num(peak, 2)} on {day}, under {zone_low:g}",
        f"peak {_num(high[top], 2)} on {_day(panel.ts[window[top]])}; {above} closes at or "
        f"above {zone_low:g}{exit_text}",
        HOLDS if ok else FAILS,
        f"holds if the peak is within {tolerance:.0%} on that day, under the zone, with no "
        f"close in or above it", peak, float(high[top]))


def measure_zone_fall(lab: Lab, *, start: str, end: str, claimed: float) -> Finding:
    """The fall from the February 2025 peak into April 2025 (A3, dating note).

    RULES.md: "... and then fell about 21% into April 2025".

    Measured on the same run as :func:`measure_zone_peak`: from the highest high
    from ``start`` up to the lowest low after it, to ``end`` (intraday high to
    intraday low; the close-to-close fall is shown too).

    Parameters
    ----------
    start, end : str
        From the period's peak to the end of the fall.
    claimed : float
        The claimed fall, a fraction (0.21).
    """
    tolerance = lab.settings.move_tolerance
    result = _breakout_run(lab, start)
    panel = result.panel
    window = np.flatnonzero(panel.ts <= np.datetime64(end, "ns"))
    high, low = panel.fields["high"][window, 0], panel.fields["low"][window, 0]
    close = panel.fields["close"][window, 0]
    top = int(np.argmax(high))
    bottom = top + int(np.argmin(low[top:]))
    fall = low[bottom] / high[top] - 1
    top_c = int(np.argmax(close))
    close_fall = close[top_c + int(np.argmin(close[top_c:]))] / close[top_c] - 1
    ok = abs(-fall - claimed) <= tolerance
    return Finding(
        f"highest high {start} → {end}, then the lowest low after it (breakout_failure.py)",
        f"SPX {start} → {end}", 1, f"about −{claimed:.0%}",
        f"{_pct(fall)} ({_num(high[top], 2)} on {_day(panel.ts[window[top]])} → "
        f"{_num(low[bottom], 2)} on {_day(panel.ts[window[bottom]])}); close to close "
        f"{_pct(close_fall)}", HOLDS if ok else FAILS,
        f"holds within ±{_points(tolerance)} (intraday high to low)", -claimed, float(fall))


def measure_zone_breakout(lab: Lab, *, after: str, start: str, month: str, last_bars: int
                          ) -> Finding:
    """The break of the zone at the end of June 2025 held (A3, dating note).

    RULES.md: "it broke through the zone only at the end of June 2025 and held
    above it".

    Measured on ``breakout_failure.py`` (``entry="always"``, ``max_hold=0``,
    ``fail_mode="break_and_fail"``, from ``start``): the first close above
    ``zone_high`` after ``after`` must fall in the last ``last_bars`` bars of
    ``month`` and the run must record no ``failed_breakout`` (a close back under
    ``zone_low`` within ``fail_window`` bars).

    Parameters
    ----------
    after : str
        The breakout is looked for after this day (the February peak).
    start : str
        The run's first day.
    month : str
        "YYYY-MM" of the claimed breakout; ``last_bars`` its "end".
    """
    result = _breakout_run(lab, start, fail_mode="break_and_fail")
    panel = result.panel
    close = panel.fields["close"][:, 0]
    zone_low, zone_high = result.params["zone_low"], result.params["zone_high"]
    later = np.flatnonzero((panel.ts > np.datetime64(after, "ns")) & (close > zone_high))
    if later.size == 0:
        return Finding("first close above the zone", _sample(result), 0,
                       f"break at the end of {month}, held", "no close above the zone",
                       FAILS, "")
    first = int(later[0])
    in_month = np.flatnonzero(_months_mask(panel.ts, month))
    at_end = in_month.size and first in in_month[-last_bars:]
    failed = int((result.trades["exit_reason"] == "failed_breakout").sum())
    since = close[first:]
    lowest = int(np.argmin(since))
    ok = bool(at_end) and failed == 0
    return Finding(
        f"first close above zone_high={zone_high:g} after {after}; held = no close under "
        f"zone_low={zone_low:g} within fail_window={result.params['fail_window']} bars "
        f"(breakout_failure.py, fail_mode=break_and_fail)", _sample(result), 1,
        f"break at the end of {month} (last {last_bars} bars), held",
        f"first close above on {_day(panel.ts[first])} ({_num(close[first], 2)}); "
        f"failed breakouts: {failed}; lowest close since {_num(since[lowest], 2)} on "
        f"{_day(panel.ts[first + lowest])}", HOLDS if ok else FAILS,
        "holds if the first close above is at the month's end and no failure follows")


def measure_zone_target(lab: Lab, *, start: str) -> Finding:
    """A breakout that holds reaches the 6450–6500 target (A3, ``000/001 §4``).

    RULES.md: "A breakout that holds targets 6450–6500."

    Measured on the run of :func:`measure_zone_breakout`: its trade must end on
    the ``target`` exit (a close at or above ``target_low``).
    """
    result = _breakout_run(lab, start, fail_mode="break_and_fail")
    trades = result.trades
    target = result.params["target_low"]
    if trades.height == 0:
        return Finding("the run's exit", _sample(result), 0, "reaches the target",
                       "no trade", FAILS, "")
    reason = trades["exit_reason"][0]
    when = _day(trades["exit_ts"][0]) if trades["exit_ts"][0] is not None else "—"
    return Finding(
        f"long from {start} until an exit (breakout_failure.py, entry=always, max_hold=0, "
        f"fail_mode=break_and_fail); target = a close ≥ target_low={target:g}",
        _sample(result), 1, f"a close ≥ {target:g} after the breakout",
        f"exit: {reason or 'still open'} (sold at the open of {when}, "
        f"return {_pct(trades['return_pct'][0], 1, True)})",
        HOLDS if reason == "target" else FAILS,
        "holds if the run leaves on the target, not on a failure or the stop")


def measure_weekly_support(lab: Lab, *, level: float, dates: tuple) -> Finding:
    """The weekly 20-period average "about 5950" on the note's date (A3, ``000/001 §4``).

    RULES.md: "Support: the weekly 20-period moving average (about 5950 on
    2025-11-21)."; dating note: "the S&P 500 closed at 5948.71 on 2024-11-21 (the
    'weekly 20 MA, about 5950')".

    Measured with ``breakout_failure.py``'s own ``weekly_sma`` (``weekly_window``
    weeks, the current week's latest close included) on its run's S&P 500 data.

    Parameters
    ----------
    level : float
        The claimed level.
    dates : tuple of str
        The days checked (the note's date and a year earlier).
    """
    tolerance = lab.settings.level_tolerance
    result = lab.run("breakout_failure.py", start="2023-01-01")
    panel = result.panel
    module = inspect.getmodule(type(result.instance))
    weeks = result.params["weekly_window"]
    average = module.weekly_sma(panel.ts, panel.fields["close"][:, 0], weeks)
    parts, ok, values = [], False, []
    for day in dates:
        i = int(np.searchsorted(panel.ts, np.datetime64(day, "ns"), side="right")) - 1
        value, close = float(average[i]), float(panel.fields["close"][i, 0])
        values.append(value)
        ok |= abs(value / level - 1) <= tolerance
        parts.append(f"{_day(panel.ts[i])}: {_num(value)} (close {_num(close, 2)})")
    return Finding(
        f"weekly {weeks}-period average of the close (breakout_failure.weekly_sma)",
        _sample(result), len(dates), f"about {_num(level)} on {dates[0]}", "; ".join(parts),
        HOLDS if ok else FAILS,
        f"holds within {tolerance:.0%} on either day; 5948.71 was the close of 2024-11-21, "
        f"not its weekly average", level, values[0])


# --------------------------------------------------------------------------- B3, B4


def measure_trend_streak(lab: Lab, *, since: str, cases: str) -> Finding:
    """Up 3 months later in every case of a streak above the 50-day average (B3).

    RULES.md: "B3 Trend streak: S&P 500 above its 50-day average for more than
    138 trading days → up over the next 3 months in every case since 1950."

    Measured on ``trend_streak.py`` (the whole S&P 500 history, so streaks that
    began before 1950 are counted from their start): the event study with
    ``signals_from=since`` at the strategy's ``hold`` horizon (63 bars).

    Parameters
    ----------
    since : str
        First day a case may fall on.
    cases : {"episodes", "bars"}
        A case is a streak (its first bar past 138 days: ``entry_episode``) or
        every bar of it (``entry_condition``).
    """
    from engine.event_study import episodes, forward_returns, strategy_hooks

    if cases not in ("episodes", "bars"):
        raise ParameterError(f"cases must be 'episodes' or 'bars'; got {cases!r}")
    result = lab.run("trend_streak.py")
    h = result.params["hold"]
    table = lab.events("trend_streak.py", (h,), signals_from=since)
    signal = "entry_episode" if cases == "episodes" else "entry_condition"
    row = event_row(table, signal, h)
    # the cases that were not up, for the table (the same condition and forward returns)
    condition = strategy_hooks(result)["condition"][:, 0]
    marks = episodes(condition) if cases == "episodes" else condition
    forward = forward_returns(result.panel.fields["close"][:, 0], h)
    counted = marks & np.isfinite(forward) & (result.panel.ts >= np.datetime64(since, "ns"))
    down = np.flatnonzero(counted & (forward <= 0))
    misses = ", ".join(f"{_day(result.panel.ts[i])} {_pct(forward[i], 1, True)}"
                       for i in down[:5])
    count = row["count"] if row else 0
    share = row["share_positive"] if row and count else math.nan
    ok = count > 0 and share == 1.0
    return Finding(
        f"{'first bar of each streak' if cases == 'episodes' else 'every bar'} with more "
        f"than {result.params['min_streak']} consecutive closes above the "
        f"{result.params['window']}-day average; up = forward return > 0 over {h} bars "
        f"(trend_streak.py)", _sample(result, since), count,
        "up in every case (100%)",
        f"{round(share * count) if count else 0} of {count} up ({_pct(share)})"
        + (f"; down: {misses}" if misses else ""),
        HOLDS if ok else FAILS, "'every case' holds only at 100%", 1.0, share)


def _calendar(lab: Lab, years: int):
    from engine.event_study import calendar_study, monthly_returns

    result = lab.run("seasonality.py")
    table = calendar_study(result, years)
    months = monthly_returns(result.panel.fields["close"][:, 0], result.panel.ts).tail(
        12 * years)
    sample = (f"SPX {months['month_end'][0].strftime('%Y-%m')} → "
              f"{months['month_end'][-1].strftime('%Y-%m')} ({months.height} months)"
              if months.height else "no complete month")
    return result, table, sample


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def measure_december_rank(lab: Lab, *, month: int, years: int) -> Finding:
    """December the strongest month over 75 years (B4, ``000/001 §9``).

    RULES.md: "B4 Seasonality: December the strongest month over 75 years,
    average +1.8%."

    Measured on ``seasonality.py``'s run with
    :func:`engine.event_study.calendar_study` (``last_years=years``): the rank of
    the month's mean return among the 12 (month-end closes, price index).

    Parameters
    ----------
    month : int
        1–12 (12 = December).
    years : int
        The last ``years`` years of complete months.
    """
    _, table, sample = _calendar(lab, years)
    row = table.filter(pl.col("month") == month).row(0, named=True)
    best = table.sort("rank").head(3)
    ranking = ", ".join(f"{_MONTHS[m - 1]} {_pct(r, 2, True)}"
                        for m, r in zip(best["month"], best["mean_return"], strict=True))
    return Finding(
        f"mean return of each calendar month from month-end closes, last {years} years "
        f"(seasonality.py, engine.event_study.calendar_study)", sample, row["count"],
        f"{_MONTHS[month - 1]} ranks 1st of 12",
        f"ranks {row['rank']} of 12 ({_pct(row['mean_return'], 2, True)}); best: {ranking}",
        HOLDS if row["rank"] == 1 else FAILS, "holds if the month's mean return is the highest",
        1.0, float(row["rank"]))


def measure_december_average(lab: Lab, *, month: int, years: int, claimed: float) -> Finding:
    """December's average return of +1.8% over 75 years (B4, ``000/001 §9``).

    RULES.md: "B4 Seasonality: December the strongest month over 75 years,
    average +1.8%."

    Measured as :func:`measure_december_rank`: the month's mean return. The data
    is the price index: dividends (about 0.2–0.3 points a month over the period)
    are not in it.

    Parameters
    ----------
    month, years
        As :func:`measure_december_rank`.
    claimed : float
        The claimed average (0.018).
    """
    tolerance = lab.settings.average_tolerance
    _, table, sample = _calendar(lab, years)
    row = table.filter(pl.col("month") == month).row(0, named=True)
    ok = abs(row["mean_return"] - claimed) <= tolerance
    return Finding(
        f"mean of the {_MONTHS[month - 1]} returns from month-end closes, last {years} "
        f"years (seasonality.py, calendar_study; price index, no dividends)", sample,
        row["count"], f"average {_pct(claimed, 1, True)}",
        f"{_pct(row['mean_return'], 2, True)} (median {_pct(row['median_return'], 2, True)}, "
        f"{_pct(row['share_positive'], 0)} of them up)", HOLDS if ok else FAILS,
        f"holds within ±{_points(tolerance)}", claimed, row["mean_return"])


# --------------------------------------------------------------------------- B5


def measure_spread_levels(lab: Lab, *, from_level: float, month: str, to_level: float,
                          day: str, years: tuple) -> Finding:
    """High-yield spreads "from 320 bp in October to 385 bp on November 24" (B5).

    RULES.md: "B5 Credit: high-yield OAS up from 320 to 385 bp ..." (the note:
    "from 320 bps in October to 385 bps (November 24)").

    Measured on ``credit_spread.py``'s run: the ``hy_oas`` feed as joined onto
    the S&P 500 bars (ICE BofA US High Yield OAS, percent), in the notes' year and
    the year before (the dating note).

    Parameters
    ----------
    from_level, to_level : float
        The levels in basis points.
    month : str
        "MM" of the start level; ``day`` "MM-DD" of the end level.
    years : tuple of int
        The years checked.
    """
    tolerance = lab.settings.level_tolerance
    result = lab.run("credit_spread.py")
    panel = result.panel
    oas = panel.fields["hy_oas"][:, 0] * 100.0
    parts, ok = [], False
    for year in years:
        in_month = _months_mask(panel.ts, f"{year}-{month}") & np.isfinite(oas)
        got_day, end = _at_date(result, "hy_oas", f"{year}-{day}")
        end *= 100.0
        values = oas[in_month]
        start_ok = values.size and np.any(np.abs(values / from_level - 1) <= tolerance)
        end_ok = abs(end / to_level - 1) <= tolerance
        ok |= bool(start_ok and end_ok)
        span = f"{values.min():.0f}–{values.max():.0f}" if values.size else "—"
        parts.append(f"{year}: {_month_name(month)} {span} bp, {got_day} {end:.0f} bp")
    return Finding(
        "ICE BofA US HY OAS (hy_oas feed of credit_spread.py), in the note's year and the "
        "year before", _sample(result), len(years),
        f"{from_level:g} bp in {_month_name(month)} → {to_level:g} bp on "
        f"{_month_name(day[:2])} {int(day[3:])}", "; ".join(parts), HOLDS if ok else FAILS,
        f"holds if, in one of the years, a {_month_name(month)} value and the "
        f"{_month_name(day[:2])} {int(day[3:])} value are within {tolerance:.0%} of the levels",
        to_level, None)


def measure_credit_warning(lab: Lab, *, horizon: int, fall: float) -> Finding:
    """Widening high-yield spreads warn ahead of equities (B5, ``000/001 §6``).

    RULES.md: "B5 Credit: high-yield OAS up from 320 to 385 bp warns ahead of
    equities."

    Measured on ``credit_spread.py`` (its warning: a rise of ``widening`` from a
    low at or under ``tight_level`` within ``window`` bars): the event study's
    ``entry_episode`` (the first bar of each warning) against ``all_bars``: the
    share followed by an S&P 500 close ``fall`` or more under the signal close
    within ``horizon`` bars (``share_fell``).

    Parameters
    ----------
    horizon : int
        Bars after the warning (63: three months).
    fall : float
        The fall that counts, a fraction (0.10).
    """
    table = lab.events("credit_spread.py", (horizon,), move_threshold=fall)
    result = lab.run("credit_spread.py")
    row, base = event_row(table, "entry_episode", horizon), event_row(table, "all_bars",
                                                                      horizon)
    names = ["tight_level", "widening", "window"]
    definition = (f"first bar of each warning ({_params_text(result, names)}; "
                  f"credit_spread.py); a fall = an S&P 500 close ≥ {fall:.0%} under the "
                  f"signal close within {horizon} bars")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, "warns", "no warning", FAILS,
                       "no warning in the data")
    measured = row["share_fell"]
    return Finding(
        definition, _sample(result), row["count"], "equities fall after the warning",
        f"{_pct(measured)} fell vs {_pct(base['share_fell'])} of all bars; share > 0 "
        f"{_pct(row['share_positive'])} vs {_pct(base['share_positive'])}",
        HOLDS if measured > base["share_fell"] else FAILS,
        "holds if falls follow warnings more often than any bar", None, measured,
        base["share_fell"])


# --------------------------------------------------------------------------- B6


def measure_btc_average(lab: Lab, *, low: float, high: float, window: int, dates: tuple
                        ) -> Finding:
    """Bitcoin's 20-day average in the 93,000–94,000 zone (B6, ``000/001 §7``).

    RULES.md: "must reclaim 93,000–94,000 (20-day average plus congestion)."

    Measured on ``level_reclaim.py``'s run (BTC/USDT): the simple moving average
    of ``window`` closes (:func:`engine.indicators.sma`) on the note's date and a
    year earlier.

    Parameters
    ----------
    low, high : float
        The zone.
    window : int
        Bars of the average (20).
    dates : tuple of str
        Days checked.
    """
    from engine.indicators import sma

    tolerance = lab.settings.level_tolerance
    result = lab.run("level_reclaim.py")
    panel = result.panel
    average = sma(panel.fields["close"][:, 0], window)
    parts, ok, first = [], False, None
    for day in dates:
        i = int(np.searchsorted(panel.ts, np.datetime64(day, "ns"), side="right")) - 1
        value = float(average[i])
        first = value if first is None else first
        ok |= low * (1 - tolerance) <= value <= high * (1 + tolerance)
        parts.append(f"{_day(panel.ts[i])}: {_num(value)} (close "
                     f"{_num(panel.fields['close'][i, 0])})")
    return Finding(
        f"{window}-day simple average of the BTC close (level_reclaim.py data)",
        _sample(result), len(dates), f"{_num(low)}–{_num(high)}", "; ".join(parts),
        HOLDS if ok else FAILS, f"holds if in the zone (±{tolerance:.0%}) on either day",
        (low + high) / 2, first)


def measure_btc_reclaim(lab: Lab) -> Finding:
    """After bitcoin reclaims 93,000–94,000 it does better than usual (B6).

    RULES.md: "must reclaim 93,000–94,000 (20-day average plus congestion)."

    Read as a buy stance. Measured on ``level_reclaim.py`` (a reclaim: a close above
    ``level_high`` with a close under ``level_low`` in the previous ``lookback``
    bars): the event study's ``entry_episode`` against ``all_bars`` at
    ``Settings.crypto_horizon``.
    """
    h = lab.settings.crypto_horizon
    table = lab.events("level_reclaim.py", (h,))
    result = lab.run("level_reclaim.py")
    row, base = event_row(table, "entry_episode", h), event_row(table, "all_bars", h)
    names = ["level_low", "level_high", "lookback"]
    definition = (f"first bar of each reclaim ({_params_text(result, names)}; "
                  f"level_reclaim.py); BTC forward return > 0 over {h} bars vs every bar")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, "bullish", "no reclaim", FAILS, "")
    measured = row["share_positive"]
    ok, rule = _stance_verdict(measured, base["share_positive"], 1, 0.0)
    return Finding(
        definition, _sample(result), row["count"], "a reclaim is bullish",
        f"{_pct(measured)} > 0 vs base {_pct(base['share_positive'])}; mean "
        f"{_pct(row['mean_return'], 2, True)} vs {_pct(base['mean_return'], 2, True)}",
        HOLDS if ok else FAILS, rule.replace("band's", "reclaim's"), None, measured,
        base["share_positive"])


# --------------------------------------------------------------------------- B8


def measure_skew_vix(lab: Lab, *, horizon: int, fall: float) -> Finding:
    """Low VIX with high SKEW precedes crashes (B8, ``002``).

    RULES.md: "B8 Nasdaq crash risk: VIX low (~15) with CBOE SKEW high (148–155,
    > 150) is a classic precursor; ... flash crash = > 10% fall within days".

    Measured on ``skew_vix.py``: the event study's ``entry_condition`` (every bar
    with VIX ≤ ``vix_max`` and SKEW > ``skew_min``) against ``all_bars``: the share
    followed by a close ``fall`` or more under the signal close within ``horizon``
    bars. The bundle has no Nasdaq series: the S&P 500 stands in for it.

    Parameters
    ----------
    horizon : int
        Bars after the signal (21: "within days", read as within a month).
    fall : float
        The fall that counts (0.10: the notes' flash crash).
    """
    from engine.event_study import episodes, strategy_hooks

    table = lab.events("skew_vix.py", (horizon,), move_threshold=fall)
    result = lab.run("skew_vix.py")
    row, base = event_row(table, "entry_condition", horizon), event_row(table, "all_bars",
                                                                        horizon)
    runs = int(episodes(strategy_hooks(result)["condition"]).sum())
    definition = (f"every bar with {_params_text(result, ['vix_max', 'skew_min'])} "
                  f"(skew_vix.py; {runs} separate runs); a crash = an S&P 500 close "
                  f"≥ {fall:.0%} under the signal close within {horizon} bars; the S&P 500 "
                  f"stands in for the Nasdaq (no Nasdaq data)")
    if row is None or not row["count"]:
        return Finding(definition, _sample(result), 0, "precursor", "no signal", FAILS, "")
    measured = row["share_fell"]
    return Finding(
        definition, _sample(result), row["count"], "a crash precursor",
        f"{_pct(measured)} fell vs {_pct(base['share_fell'])} of all bars; share > 0 "
        f"{_pct(row['share_positive'])} vs {_pct(base['share_positive'])}",
        HOLDS if measured > base["share_fell"] else FAILS,
        "holds if falls follow the signal more often than any bar", None, measured,
        base["share_fell"])


def measure_targets_arithmetic(lab: Lab, *, high: float, low: float, targets: tuple,
                               pe_from: float, pe_to: float, pe_change: float) -> Finding:
    """The Nasdaq downside targets follow from the quoted levels (B8, ``002``).

    RULES.md: "Downside targets from a 24,000 high and a 10,300 low: Fibonacci
    38.2% → 18,766, 50% → 17,150, 61.8% → 15,533; ... P/E 28 → 18 is −35.7%."

    Arithmetic on the quoted numbers only (no data, no run): a retracement ``r``
    of the rise from ``low`` to ``high`` is ``high - r * (high - low)``.

    Parameters
    ----------
    high, low : float
        The quoted high and low.
    targets : tuple of (ratio, level)
        The quoted retracements.
    pe_from, pe_to, pe_change : float
        The quoted multiples and the change claimed.
    """
    tolerance = lab.settings.level_tolerance
    parts, ok = [], True
    for ratio, level in targets:
        value = high - ratio * (high - low)
        ok &= abs(value / level - 1) <= tolerance
        parts.append(f"{ratio:.1%} → {_num(value)}")
    change = pe_to / pe_from - 1
    ok &= abs(change - pe_change) <= lab.settings.move_tolerance
    parts.append(f"P/E {pe_from:g} → {pe_to:g}: {_pct(change)}")
    return Finding(
        "retracement = high − r × (high − low); P/E change = new / old − 1 (no data)",
        "arithmetic", len(targets) + 1,
        ", ".join(f"{r:.1%} → {_num(v)}" for r, v in targets) + f", {_pct(pe_change)}",
        "; ".join(parts), HOLDS if ok else FAILS,
        "arithmetic only: the Nasdaq levels themselves cannot be checked (no Nasdaq data)")


# --------------------------------------------------------------------------- the registry


def _fg(label, sell, band, stated, quote) -> Claim:
    return Claim(f"A1.fg.{label.replace(' ', '_')}", f"Fear & Greed {band}, {stated}",
                 "004 glossary", quote, "fear_contrarian.py", measure_fg_band,
                 {"label": label, "sell": sell, "stated": stated})


def _vix(label, stance, band, stated) -> Claim:
    return Claim(f"A1.vix.{label.replace(' ', '_')}", f"VIX {band}: {stated}",
                 "004 glossary", f"VIX {band} {label} ({stated})", "fear_contrarian.py",
                 measure_vix_band, {"label": label, "stance": stance, "stated": stated})


_FG_QUOTE = "| {} | {} | {} | {} |"

#: Every claim of RULES.md, in its order.
CLAIMS: tuple[Claim, ...] = (
    _fg("extreme fear", False, "0–25: aggressive buy", "85% success",
        _FG_QUOTE.format("0–25", "extreme fear", "aggressive buy", "85%")),
    _fg("fear", False, "25–45: buy the dip", "75% success",
        _FG_QUOTE.format("25–45", "fear", "buy the dip", "75%")),
    _fg("neutral", False, "45–55: follow the trend", "60% success",
        _FG_QUOTE.format("45–55", "neutral", "follow the trend", "60%")),
    _fg("greed", True, "55–75: consider taking profit", "70% success (a sell: ≤ 30% rise)",
        _FG_QUOTE.format("55–75", "greed", "consider taking profit", "70%")),
    _fg("extreme greed", True, "75–100: aggressive sell", "80% success (a sell: ≤ 20% rise)",
        _FG_QUOTE.format("75–100", "extreme greed", "aggressive sell", "80%")),
    _vix("extreme optimism", -1, "10–15", "consider contrarian selling"),
    _vix("optimistic", -1, "15–20", "slightly cautious"),
    _vix("anxiety", 0, "20–30", "wait and see"),
    _vix("fear", 1, "30–40", "consider contrarian buying"),
    _vix("panic", 1, "40+", "aggressive buying"),
    Claim("A1.vix.examples", "VIX examples: 30–40 in Mar 2020 and Oct 2022; 40+ in 2008 and "
          "Mar 2020", "004 glossary",
          "30–40 fear (consider contrarian buying; e.g. Mar 2020, Oct 2022); 40+ panic "
          "(aggressive buying; 2008, Mar 2020)", "fear_contrarian.py", measure_vix_examples,
          {"examples": (("2020-03", 30.0, 40.0), ("2022-10", 30.0, 40.0),
                        ("2008", 40.0, math.inf), ("2020-03", 40.0, math.inf))}),
    Claim("A1.btc_fg", "Bitcoin Fear & Greed at 18 matched the Jun 2022 and Mar 2023 bottoms",
          "000/001 §7", "Bitcoin Fear & Greed at 18 (extreme fear) matched the Jun 2022 and "
          "Mar 2023 bottoms.", "btc_fear.py", measure_btc_fear_bottoms,
          {"reading": 18.0, "months": ("2022-06", "2023-03"), "window": 3}),
    Claim("A2.dtc", "Days-to-cover above 10 is a short-squeeze precursor", "003",
          "> 10.0 extreme positioning, traditionally a short-squeeze precursor.",
          "short_squeeze.py", measure_squeeze, {"rise": 0.20}),
    Claim("A3.peak", "The 6180–6200 test peaked at 6147.43 on 2025-02-19, short of the zone",
          "dating note", "the index peaked at 6147.43 intraday on 2025-02-19, short of the "
          "zone", "breakout_failure.py", measure_zone_peak,
          {"start": "2024-12-01", "end": "2025-02-28", "peak": 6147.43, "day": "2025-02-19"}),
    Claim("A3.fall", "Then the index fell about 21% into April 2025", "dating note",
          "and then fell about 21% into April 2025", "breakout_failure.py", measure_zone_fall,
          {"start": "2024-12-01", "end": "2025-04-30", "claimed": 0.21}),
    Claim("A3.breakout", "It broke through the zone at the end of June 2025 and held",
          "dating note", "it broke through the zone only at the end of June 2025 and held "
          "above it", "breakout_failure.py", measure_zone_breakout,
          {"after": "2025-02-19", "start": "2025-05-01", "month": "2025-06", "last_bars": 5}),
    Claim("A3.target", "A breakout that holds targets 6450–6500", "000/001 §4",
          "A breakout that holds targets 6450–6500.", "breakout_failure.py",
          measure_zone_target, {"start": "2025-05-01"}),
    Claim("A3.support", "Weekly 20-period average about 5950 on 2025-11-21", "000/001 §4",
          "Support: the weekly 20-period moving average (about 5950 on 2025-11-21).",
          "breakout_failure.py", measure_weekly_support,
          {"level": 5950.0, "dates": NOTE_DATES}),
    Claim("B1", "After 3x inverse ETF liquidations the S&P 500 rose a month later every "
          "time; 3-month median +11.8%", "000/001 §1",
          "> $4B of 3x short S&P ETFs (SPXU, SQQQ…) squeezed in one day on 2025-11-21, the "
          "4th largest ever; earlier ones: Mar 2020 bottom, Oct 2022, Oct 2023 low. Claim: "
          "the S&P 500 rose over the next month every time; 3-month median +11.8%.",
          needs="no ETF flow data: needs the daily creations/redemptions (shares outstanding "
                "× NAV) of the 3x inverse S&P 500 and Nasdaq-100 ETFs (SPXU, SQQQ, SDS, …) to "
                "date every liquidation day"),
    Claim("B2", "Fund-manager cash < 4% with leveraged-ETF assets up > 80% → median 6-month "
          "drawdown 18.7%", "000/001 §2",
          "fund-manager cash 3.7% (< 4.0%) and leveraged-ETF assets up > 80% year on year → "
          "S&P 500 median maximum drawdown of 18.7% over the next 6 months.",
          needs="no positioning data: needs the monthly BofA Global Fund Manager Survey cash "
                "level and the total assets of leveraged ETFs (TQQQ, SOXL, SPXL, …) over "
                "time"),
    Claim("B3", "Above the 50-day average > 138 days → up 3 months later in every case since "
          "1950", "000/001 §4",
          "S&P 500 above its 50-day average for more than 138 trading days → up over the "
          "next 3 months in every case since 1950.", "trend_streak.py", measure_trend_streak,
          {"since": "1950-01-01", "cases": "episodes"}),
    Claim("B4.rank", "December is the strongest month over 75 years", "000/001 §9",
          "December the strongest month over 75 years, average +1.8%.", "seasonality.py",
          measure_december_rank, {"month": 12, "years": 75}),
    Claim("B4.average", "December averages +1.8% over 75 years", "000/001 §9",
          "December the strongest month over 75 years, average +1.8%.", "seasonality.py",
          measure_december_average, {"month": 12, "years": 75, "claimed": 0.018}),
    Claim("B5.levels", "HY OAS rose from 320 bp (October) to 385 bp (November 24)",
          "000/001 §6", "high-yield OAS up from 320 to 385 bp", "credit_spread.py",
          measure_spread_levels, {"from_level": 320.0, "month": "10", "to_level": 385.0,
                                  "day": "11-24", "years": (2025, 2024)}),
    Claim("B5.warning", "HY OAS widening from tight levels warns ahead of equities",
          "000/001 §6", "high-yield OAS up from 320 to 385 bp warns ahead of equities.",
          "credit_spread.py", measure_credit_warning, {"horizon": 63, "fall": 0.10}),
    Claim("B6.etf_cost", "Bitcoin is below the spot-ETF average cost (~$94,200)", "000/001 §7",
          "below the spot-ETF average cost (~$94,200)",
          needs="no ETF data: needs the daily flows and prices of the US spot bitcoin ETFs "
                "to compute their average cost"),
    Claim("B6.average", "Bitcoin's 20-day average sits at 93,000–94,000", "000/001 §7",
          "must reclaim 93,000–94,000 (20-day average plus congestion).", "level_reclaim.py",
          measure_btc_average, {"low": 93_000.0, "high": 94_000.0, "window": 20,
                                "dates": NOTE_DATES}),
    Claim("B6.reclaim", "Reclaiming 93,000–94,000 is bullish for bitcoin", "000/001 §7",
          "must reclaim 93,000–94,000 (20-day average plus congestion).", "level_reclaim.py",
          measure_btc_reclaim),
    Claim("B7.gold", "Gold: cup and handle near $2,630, target $4,200", "000/001 §8",
          "gold cup-and-handle near $2,630, target $4,200",
          needs="no gold data: needs a daily gold price (spot or front futures)"),
    Claim("B7.dollar", "Dollar index above 106; a break of 107.35 confirms an uptrend",
          "000/001 §8", "dollar index above 106, a break of 107.35 confirms an uptrend",
          needs="no dollar data: needs the daily ICE US Dollar Index (DXY)"),
    Claim("B7.oil", "WTI capped at $63", "000/001 §8", "WTI capped at $63",
          needs="no oil data: needs daily WTI crude prices"),
    Claim("B8.skew", "VIX ≤ 15 with SKEW > 150 precedes crashes", "002",
          "VIX low (~15) with CBOE SKEW high (148–155, > 150) is a classic precursor; ... "
          "flash crash = > 10% fall within days", "skew_vix.py", measure_skew_vix,
          {"horizon": 21, "fall": 0.10}),
    Claim("B8.usdjpy", "USD/JPY under 145 triggers the crash", "002",
          "USD/JPY under 145 a trigger",
          needs="no currency data: needs daily USD/JPY"),
    Claim("B8.nasdaq", "Nasdaq: 200-week average 16,500–17,500; targets from the 24,000 high",
          "002", "Downside targets from a 24,000 high and a 10,300 low ...; 200-week average "
                 "16,500–17,500",
          needs="no Nasdaq data: needs Nasdaq-100 (or Composite) daily history; the S&P 500 "
                "proxy cannot check Nasdaq levels"),
    Claim("B8.arithmetic", "Fibonacci targets 18,766 / 17,150 / 15,533; P/E 28 → 18 is −35.7%",
          "002", "Fibonacci 38.2% → 18,766, 50% → 17,150, 61.8% → 15,533; ... P/E 28 → 18 "
                 "is −35.7%.", None, measure_targets_arithmetic,
          {"high": 24_000.0, "low": 10_300.0,
           "targets": ((0.382, 18_766.0), (0.5, 17_150.0), (0.618, 15_533.0)),
           "pe_from": 28.0, "pe_to": 18.0, "pe_change": -0.357}),
)


def claim(claim_id: str) -> Claim:
    """The registered claim with this id."""
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    from engine.errors import did_you_mean

    raise ParameterError(f"no claim {claim_id!r}." + did_you_mean(claim_id,
                                                                   [c.id for c in CLAIMS]))


# --------------------------------------------------------------------------- the table


def _strategy_cell(c: Claim) -> str:
    return f"strategies/{c.strategy}" if c.strategy else "—"


def measure_all(settings: Settings | None = None, claims=None, lab: Lab | None = None,
                progress=None) -> pl.DataFrame:
    """Measure every claim (or the given ones) and return the claims table.

    Parameters
    ----------
    settings : Settings, optional
    claims : iterable of Claim, optional
        Default: :data:`CLAIMS`.
    lab : Lab, optional
        Where runs are cached (a new one by default).
    progress : callable, optional
        ``progress(index, total, claim)`` before each claim.

    Returns
    -------
    polars.DataFrame
        Columns :data:`CLAIM_COLUMNS`, one row per claim.
    """
    lab = lab or Lab(settings)
    claims = tuple(claims or CLAIMS)
    rows = []
    for index, c in enumerate(claims):
        if progress is not None:
            progress(index, len(claims), c)
        found = c.evaluate(lab)
        if found.verdict not in VERDICTS:
            raise ValueError(f"claim {c.id}: verdict {found.verdict!r} is not one of "
                             f"{VERDICTS}")
        record = asdict(found)
        rows.append({"id": c.id, "claim": c.claim, "source": c.source,
                     "strategy": _strategy_cell(c), **record})
    schema = {"id": pl.String, "claim": pl.String, "source": pl.String, "strategy": pl.String,
              "definition": pl.String, "sample": pl.String, "cases": pl.Int64,
              "claimed": pl.String, "measured": pl.String, "verdict": pl.String,
              "why": pl.String, "claimed_value": pl.Float64, "measured_value": pl.Float64,
              "base_value": pl.Float64}
    return pl.DataFrame(_clean(rows), schema=schema, orient="row").select(CLAIM_COLUMNS)


def _clean(rows):
    out = []
    for row in rows:
        fixed = {}
        for key, value in row.items():
            if isinstance(value, (np.floating, np.integer)):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            fixed[key] = value
        out.append(fixed)
    return out


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


def _md(text) -> str:
    return "—" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pl.DataFrame, settings: Settings) -> str:
    """The claims table as Markdown: the table, then each claim's definition and reasoning."""
    quotes = {c.id: c.quote for c in CLAIMS}
    lines = ["# Claims of the source notes, measured on the bundled data", "",
             f"{summary(table)}. Settings: {settings_text(settings)}. Definitions and "
             f"verdict rules: `engine/claims.py`.", "",
             "| id | claim | source | cases | claimed | measured | verdict |",
             "|---|---|---|---:|---|---|---|"]
    for r in table.iter_rows(named=True):
        lines.append("| " + " | ".join(_md(r[k]) for k in ("id", "claim", "source", "cases",
                                                             "claimed", "measured", "verdict"))
                     + " |")
    lines += ["", "## Definitions", ""]
    for r in table.iter_rows(named=True):
        lines.append(f"**{r['id']}** — {_md(r['claim'])} ({r['source']}). "
                     f"RULES.md: “{_md(quotes.get(r['id'], ''))}”  ")
        if r["verdict"] == UNTESTABLE:
            lines.append(f"Cannot be tested: {_md(r['why'])}.")
        else:
            lines.append(f"Measured: {_md(r['definition'])}; {_md(r['strategy'])}; sample "
                         f"{_md(r['sample'])}. Verdict: {r['verdict']} ({_md(r['why'])}).")
        lines.append("")
    return "\n".join(lines)


def write_claims(table: pl.DataFrame, out, settings: Settings) -> Path:
    """Write ``claims.csv``, ``claims.md`` and ``claims.html`` into the folder ``out``."""
    from engine.report import render_claims_html, write_csv

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    write_csv(table, path / "claims.csv")
    (path / "claims.md").write_text(to_markdown(table, settings), encoding="utf-8")
    (path / "claims.html").write_text(
        render_claims_html(table, f"{summary(table)}. {settings_text(settings)}."),
        encoding="utf-8")
    return path


_VERDICT_STYLE = {HOLDS: "green", FAILS: "red", UNTESTABLE: "yellow"}


def print_table(table: pl.DataFrame, settings: Settings, console=None) -> None:
    """The claims table on a terminal (rich): one row per claim, text cells wrapped.

    Columns: the claim (id, sentence, source), what was measured (definition, the
    strategy, the sample and the number of cases), the claimed and the measured
    figure, and the verdict with its rule or, for an untestable claim, the data it
    would need.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    grid = Table(title="Claims of the source notes, measured on the bundled data",
                 caption=f"{summary(table)}. {settings_text(settings)}. Definitions: "
                         f"engine/claims.py; --out writes claims.csv, claims.md, claims.html.",
                 caption_justify="left", header_style="bold", show_lines=True, expand=True)
    grid.add_column("claim", ratio=3, overflow="fold")
    grid.add_column("measured as", ratio=4)
    grid.add_column("claimed", ratio=2)
    grid.add_column("measured", ratio=4)
    grid.add_column("verdict", ratio=3)
    for r in table.iter_rows(named=True):
        claim_cell = Text(f"{r['id']}\n", style="bold")
        claim_cell.append(f"{r['claim']}\n")
        claim_cell.append(r["source"], style="dim")
        if r["verdict"] == UNTESTABLE:
            measured_as = Text("—", style="dim")
        else:
            cases = f"{r['cases']:,} cases" if r["cases"] is not None else ""
            measured_as = Text(f"{r['definition']}\n")
            measured_as.append(f"{r['sample']}; {cases}", style="dim")
        verdict = Text(r["verdict"], style=f"bold {_VERDICT_STYLE[r['verdict']]}")
        if r["why"]:
            verdict.append(f"\n{r['why']}", style="dim")
        grid.add_row(claim_cell, measured_as, r["claimed"] or "—", r["measured"] or "—",
                     verdict)
    console.print(grid)


def settings_dict(settings: Settings) -> dict:
    return asdict(settings)


def with_settings(settings: Settings, **changes) -> Settings:
    """``settings`` with some fields replaced (None leaves a field as it is)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})

