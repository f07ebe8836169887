"""How each claim of the registry is measured: one function per kind of claim.

A :class:`Lab` runs each strategy plugin once per distinct set of options and
hands out its result and event studies; every ``measure_*`` function reads its
figure off those runs (an event-study row, the calendar-month table, the run's
trades, or the run's data at a date) and returns a
:class:`~engine.research.claims.model.Finding` with its verdict. The rules each
verdict follows are in :mod:`engine.research.claims.model`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import ParameterError
from engine.research.claims.model import (
    DATA_PERIODS,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    STRATEGIES,
    VIX_START,
    Finding,
    Settings,
    _points,
    rate_verdict,
    stance_verdict,
)

#: Horizons (bars) at which every rate claim is also judged, besides its own.
FRAGILITY_HORIZONS = (5, 21, 63)

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
        self._outcomes: dict = {}
        self._evidence: dict = {}

    def _options(self, file: str, options: dict) -> dict:
        return {**options, **self.overrides.get(file, {})}

    def run(self, file: str, **options):
        """``engine.run(strategies/<file>, **options)``, once per distinct options."""
        from engine.backtest.run import run

        options = self._options(file, options)
        key = (file, _key(options))
        if key not in self._runs:
            self._runs[key] = run(self.strategies / file, **options)
        return self._runs[key]

    def events(self, file: str, horizons, *, signals_from=None, move_threshold=None,
               **options) -> pl.DataFrame:
        """The event study of :meth:`run` ``(file, **options)``."""
        from engine.analysis.event_study import event_study

        result = self.run(file, **options)
        key = (file, _key(self._options(file, options)), tuple(horizons), str(signals_from),
               move_threshold)
        if key not in self._events:
            self._events[key] = event_study(result, tuple(horizons), signals_from=signals_from,
                                            move_threshold=move_threshold)
        return self._events[key]


    def outcomes(self, file: str, horizon: int, kind: str = "positive",
                 move: float | None = None, /, **options) -> np.ndarray:
        """Per bar and symbol of :meth:`run`: 1.0 for a success over ``horizon`` bars, 0.0
        for a failure, NaN without a full forward window.

        ``kind="positive"``: the forward return (:func:`~engine.analysis.event_study.
        forward_returns`) is ``> 0``; ``"fell"``/``"rose"``: the worst/best close within
        the window (:func:`~engine.analysis.event_study.forward_extremes`) is at least
        ``move`` under/over the signal close -- the event study's ``share_positive``,
        ``share_fell`` and ``share_rose``, bar by bar.
        """
        from engine.analysis.event_study import forward_returns

        result = self.run(file, **options)
        run_key = (file, _key(self._options(file, options)))
        key = (*run_key, horizon, kind, move)
        if key not in self._outcomes:
            close = result.panel.fields["close"]
            if kind == "positive":
                ahead = forward_returns(close, horizon)
                hit = ahead > 0
            elif kind in ("fell", "rose"):
                if (*run_key, "extremes") not in self._outcomes:
                    self._outcomes[(*run_key, "extremes")] = extremes_by_horizon(
                        close, sorted({*FRAGILITY_HORIZONS, horizon}))
                extremes = self._outcomes[(*run_key, "extremes")]
                if horizon not in extremes:
                    extremes.update(extremes_by_horizon(close, [horizon]))
                worst, best = extremes[horizon]
                ahead = worst if kind == "fell" else best
                hit = worst <= -move if kind == "fell" else best >= move
            else:
                raise ParameterError(f"kind must be 'positive', 'fell' or 'rose'; got {kind!r}")
            self._outcomes[key] = np.where(np.isfinite(ahead), hit.astype(np.float64), np.nan)
        return self._outcomes[key]

    def evidence(self, file: str, signal: str, horizon: int, kind: str = "positive",
                 move: float | None = None, /, *, since=None, until=None, **options):
        """:func:`engine.analysis.stats.rate_evidence` of a signal of :meth:`run`: its
        success rate, the base rate over the bars from its first to its last signal, the
        difference, with intervals (seeded: the Lab's settings).

        ``signal`` is an event-study signal name (``"label:<value>"``,
        ``"entry_condition"``, ``"entry_episode"``); ``since``/``until`` keep the signal
        bars in those days (inclusive).
        """
        from engine.analysis.stats import rate_evidence

        key = (file, _key(self._options(file, options)), signal, horizon, kind, move,
               str(since), str(until))
        if key not in self._evidence:
            result = self.run(file, **options)
            mask = signal_mask(result, signal)
            ts = result.panel.ts
            if since is not None:
                mask = mask & (ts >= np.datetime64(since, "ns"))[:, None]
            if until is not None:
                mask = mask & (ts <= np.datetime64(until, "ns"))[:, None]
            s = self.settings
            self._evidence[key] = rate_evidence(
                self.outcomes(file, horizon, kind, move, **options), mask, int(horizon),
                level=s.level, reps=int(s.reps), seed=int(s.seed))
        return self._evidence[key]


def extremes_by_horizon(close, horizons) -> dict:
    """:func:`engine.analysis.event_study.forward_extremes` at several horizons in one
    pass: ``{h: (worst, best)}``, the running min and max of the ``k``-bar forward
    returns for ``k = 1..h`` (NaN where the ``h``-bar return is NaN)."""
    from engine.analysis.event_study import forward_returns

    out, worst, best = {}, None, None
    wanted = set(horizons)
    for k in range(1, max(wanted) + 1):
        step = forward_returns(close, k)
        worst = step.copy() if worst is None else np.fmin(worst, step)
        best = step.copy() if best is None else np.fmax(best, step)
        if k in wanted:
            missing = np.isnan(step)
            out[k] = (np.where(missing, np.nan, worst), np.where(missing, np.nan, best))
    return out


def signal_mask(result, signal: str) -> np.ndarray:
    """The bool mask ``(n_bars, n_symbols)`` of an event-study signal of ``result``."""
    from engine.analysis.event_study import episodes, strategy_hooks

    hooks = strategy_hooks(result)
    shape = (result.panel.n_bars, result.panel.n_symbols)
    if signal.startswith("label:"):
        names = hooks["label_names"]
        label = signal[len("label:"):]
        if hooks["labels"] is None or label not in names:
            return np.zeros(shape, dtype=bool)
        return hooks["labels"] == names.index(label)
    if signal in ("entry_condition", "entry_episode"):
        if hooks["condition"] is None:
            return np.zeros(shape, dtype=bool)
        return hooks["condition"] if signal == "entry_condition" \
            else episodes(hooks["condition"])
    raise ParameterError(f"signal must be 'label:<value>', 'entry_condition' or "
                         f"'entry_episode'; got {signal!r}")


def _key(options: dict) -> tuple:
    return tuple(sorted((k, id(v) if not isinstance(v, (str, int, float, bool, type(None)))
                         else v) for k, v in options.items()))


def event_row(table: pl.DataFrame, signal: str, horizon: int) -> dict | None:
    """The event-study row of ``signal`` at ``horizon`` (None if the signal never occurs)."""
    rows = table.filter((pl.col("signal") == signal) & (pl.col("horizon") == horizon))
    return rows.row(0, named=True) if rows.height else None


# --------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}%}" if sign else f"{x:.{digits}%}"


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


# --------------------------------------------------------------------------- rates over signal days


def _interval(low, high, digits: int = 0, sign: bool = False) -> str:
    return f"[{_pct(low, digits, sign)}, {_pct(high, digits, sign)}]"


def _signal_sample(result, evidence) -> str:
    """The first and the last signal day (not the data's range)."""
    panel = result.panel
    name = panel.symbols[0] if panel.n_symbols == 1 else "universe"
    if evidence.first is None:
        return f"{name}: no signal"
    return f"{name} {_day(panel.ts[evidence.first])} → {_day(panel.ts[evidence.last])}"


def _judge(evidence, s: Settings, *, claimed, sell, stance):
    if claimed is not None:
        return rate_verdict(evidence, claimed, sell, s.rate_tolerance, s.min_episodes)
    return stance_verdict(evidence, stance, s.stance_tolerance, s.min_episodes)


def _fragile(label: str, evidence, verdict: str) -> str:
    return f"{label}: {verdict if evidence.signals else 'no signal'}"


def _alternative_horizons(horizon: int) -> tuple[int, ...]:
    others = tuple(h for h in FRAGILITY_HORIZONS if h != horizon)
    return others if len(others) == 2 else (others[0], others[-1])


def rate_finding(lab: Lab, file: str, signal: str, horizon: int, *, definition: str,
                 stated: str, kind: str = "positive", move: float | None = None,
                 claimed: float | None = None, sell: bool = False, stance: int = 1,
                 periods=(), since=None, options: Mapping | None = None) -> Finding:
    """A claim measured as a rate over signal days, with its evidence and fragility.

    The rate, base rate and difference with their intervals come from
    :meth:`Lab.evidence`; the verdict from
    :func:`~engine.research.claims.model.rate_verdict` (a stated ``claimed`` rate;
    ``sell`` for a sell claim) or
    :func:`~engine.research.claims.model.stance_verdict` (``stance``). The
    ``fragility`` column repeats the verdict at the other horizons of
    :data:`FRAGILITY_HORIZONS` and on each sub-period of ``periods`` ((label,
    first day, last day), from :data:`~engine.research.claims.model.DATA_PERIODS`).
    """
    s = lab.settings
    options = dict(options or {})
    result = lab.run(file, **options)
    what = {"positive": "> 0", "fell": "fell", "rose": "rose"}[kind]
    ev = lab.evidence(file, signal, horizon, kind, move, since=since, **options)
    verdict, rule = _judge(ev, s, claimed=claimed, sell=sell, stance=stance)
    fragile = []
    for h in _alternative_horizons(horizon):
        other = lab.evidence(file, signal, h, kind, move, since=since, **options)
        fragile.append(_fragile(f"{h}d", other, _judge(other, s, claimed=claimed, sell=sell,
                                                        stance=stance)[0]))
    for label, first, last in periods:
        part = lab.evidence(file, signal, horizon, kind, move, since=first or since,
                            until=last, **options)
        fragile.append(_fragile(label, part, _judge(part, s, claimed=claimed, sell=sell,
                                                    stance=stance)[0]))
    if ev.signals:
        measured = (f"{_pct(ev.rate)} {what} {_interval(ev.rate_low, ev.rate_high)} vs base "
                    f"{_pct(ev.base)}; difference {_pct(ev.difference, 1, True)} "
                    f"{_interval(ev.difference_low, ev.difference_high, 1, True)}, "
                    f"{ev.episodes} episodes")
    else:
        measured = "no signal"
    evidence = {k: v for k, v in ev.to_dict().items()
                if k in ("episodes", "non_overlapping", "rate", "rate_low", "rate_high", "base",
                         "base_low", "base_high", "difference", "difference_low",
                         "difference_high", "p_value")}
    return Finding(definition, _signal_sample(result, ev), ev.signals, stated, measured,
                   verdict, rule, claimed, ev.rate, ev.base, **evidence,
                   fragility=" · ".join(fragile))


# --------------------------------------------------------------------------- A1: fear bands


def measure_fg_band(lab: Lab, *, label: str, sell: bool, stated: str) -> Finding:
    """A CNN Fear & Greed band's claimed success rate (A1, glossary ``004``).

    RULES.md: "CNN Fear & Greed index ... Bands and the stance the glossary gives
    each, with the 'success rate' it claims: 0–25 extreme fear, aggressive buy, 85%;
    25–45 fear, buy the dip, 75%; 45–55 neutral, follow the trend, 60%; 55–75 greed,
    consider taking profit, 70%; 75–100 extreme greed, aggressive sell, 80%."

    Measured on ``fear_contrarian.py`` (default run, S&P 500 from 2011 with the
    Fear & Greed feed): the event study's ``label:<band>`` signal at
    ``Settings.horizon``, through :func:`rate_finding` (rate, base rate over the
    band's first → last signal, difference, intervals; fragility at 5/63 bars and
    before/after 2021-01-29, where the reconstruction ends); the claimed rate is the
    strategy's ``claims`` (a sell band's claim is stored as ``1 - claimed``).

    Parameters
    ----------
    label : str
        The band (the strategy's ``entry_labels`` value).
    sell : bool
        A sell claim: success is the price not rising.
    stated : str
        The claim's wording of the figure, shown in the table.
    """
    from engine.analysis.event_study import strategy_hooks

    h = lab.settings.horizon
    result = lab.run("fear_contrarian.py")
    claimed = strategy_hooks(result)["claims"].get(label)
    definition = (f"every bar with Fear & Greed in the band (fear_contrarian.py, "
                  f"{_params_text(result, ['fg_lag', 'feed_max_age'])}); success = S&P 500 "
                  f"forward return > 0 over {h} bars from the signal close")
    return rate_finding(lab, "fear_contrarian.py", f"label:{label}", h, definition=definition,
                        stated=stated, claimed=claimed, sell=sell,
                        periods=DATA_PERIODS["fear_greed"])


def measure_vix_band(lab: Lab, *, label: str, stance: int, stated: str) -> Finding:
    """A VIX band's stance (A1, glossary ``004``).

    RULES.md: "VIX bands: 10–15 extreme optimism (consider contrarian selling);
    15–20 optimistic (slightly cautious); 20–30 anxiety (wait and see); 30–40 fear
    (consider contrarian buying; e.g. Mar 2020, Oct 2022); 40+ panic (aggressive
    buying; 2008, Mar 2020)."

    Measured on ``fear_contrarian.py`` with ``signal="vix"`` from the VIX's first
    day (1990-01-02): the event study's ``label:<band>`` signal against its base
    rate at ``Settings.horizon`` (:func:`rate_finding`, a stance). The lowest band
    also holds readings under 10.

    Parameters
    ----------
    label : str
        The band (the strategy's ``entry_labels`` value with ``signal="vix"``).
    stance : {1, 0, -1}
        Buy, no edge ("wait and see"), or sell/cautious.
    stated : str
        The stance as the notes word it.
    """
    h = lab.settings.horizon
    definition = (f"every bar with the VIX close in the band (fear_contrarian.py, "
                  f"signal=vix); S&P 500 forward return > 0 over {h} bars vs every bar from "
                  f"the first to the last signal")
    return rate_finding(lab, "fear_contrarian.py", f"label:{label}", h, definition=definition,
                        stated=stated, stance=stance, periods=DATA_PERIODS["vix"],
                        options={"signal": "vix", "start": VIX_START})


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
    point-in-time, expiring ``max_age="auto"`` -- 35 days -- after settlement): the
    event study's ``label:> 10`` signal (every stock-day with days-to-cover > 10, no
    confirmation) as a precursor (:func:`rate_finding`): the share of stock-days
    followed by a close ``rise`` or more above the signal close within
    ``Settings.horizon`` bars (``share_rose``) against that share over every
    stock-day from the first to the last signal (from 2020-12-21, when short interest
    starts: like for like, not from the universe's 2020-08-03).

    Parameters
    ----------
    rise : float
        The size of a squeeze, as a fraction (0.20 = +20%).
    """
    h = lab.settings.horizon
    result = lab.run("short_squeeze.py")
    max_age = result.panel.meta["feeds"]["short_interest"]["max_age"]
    definition = (f"every stock-day with days-to-cover > 10 (short_squeeze.py, "
                  f"{_params_text(result, ['adv_window', 'si_lag_days'])}; short interest "
                  f"expires {max_age} after settlement: the publication gap + delay + a week); "
                  f"a squeeze = a close ≥ +{rise:.0%} above the signal close within {h} bars; "
                  f"base = every stock-day from the first to the last signal")
    return rate_finding(lab, "short_squeeze.py", "label:> 10", h, definition=definition,
                        stated="a short-squeeze precursor", kind="rose", move=rise)


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
    from engine.analysis.event_study import episodes, forward_returns, strategy_hooks

    if cases not in ("episodes", "bars"):
        raise ParameterError(f"cases must be 'episodes' or 'bars'; got {cases!r}")
    result = lab.run("trend_streak.py")
    h = result.params["hold"]
    signal = "entry_episode" if cases == "episodes" else "entry_condition"
    ev = lab.evidence("trend_streak.py", signal, h, since=since)
    # the cases that were not up, for the table (the same condition and forward returns)
    condition = strategy_hooks(result)["condition"][:, 0]
    marks = episodes(condition) if cases == "episodes" else condition
    forward = forward_returns(result.panel.fields["close"][:, 0], h)
    counted = marks & np.isfinite(forward) & (result.panel.ts >= np.datetime64(since, "ns"))
    down = np.flatnonzero(counted & (forward <= 0))
    misses = ", ".join(f"{_day(result.panel.ts[i])} {_pct(forward[i], 1, True)}"
                       for i in down[:5])
    count = ev.signals
    share = ev.rate if count else math.nan

    def every_case(found) -> str:
        # One counterexample refutes "every case"; no case leaves it open.
        return INCONCLUSIVE if not found.signals else HOLDS if found.rate == 1.0 else FAILS

    fragility = " · ".join(
        _fragile(f"{other}d", found, every_case(found)) for other in _alternative_horizons(h)
        for found in [lab.evidence("trend_streak.py", signal, other, since=since)])
    evidence = {k: v for k, v in ev.to_dict().items()
                if k in ("episodes", "non_overlapping", "rate", "rate_low", "rate_high", "base",
                         "base_low", "base_high", "difference", "difference_low",
                         "difference_high", "p_value")}
    return Finding(
        f"{'first bar of each streak' if cases == 'episodes' else 'every bar'} with more "
        f"than {result.params['min_streak']} consecutive closes above the "
        f"{result.params['window']}-day average; up = forward return > 0 over {h} bars "
        f"(trend_streak.py)", _signal_sample(result, ev), count,
        "up in every case (100%)",
        f"{round(share * count) if count else 0} of {count} up ({_pct(share)}) vs base "
        f"{_pct(ev.base)}" + (f"; down: {misses}" if misses else ""),
        every_case(ev), "'every case' holds only at 100%: one counterexample refutes it",
        1.0, share, ev.base, **evidence, fragility=fragility)


def _calendar(lab: Lab, years: int):
    from engine.analysis.event_study import calendar_study, monthly_returns

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
    :func:`engine.analysis.event_study.calendar_study` (``last_years=years``): the rank of
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
        f"(seasonality.py, engine.analysis.event_study.calendar_study)", sample, row["count"],
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
    ``entry_episode`` (the first bar of each warning) as a precursor
    (:func:`rate_finding`): the share followed by an S&P 500 close ``fall`` or more
    under the signal close within ``horizon`` bars (``share_fell``) against its base
    rate.

    Parameters
    ----------
    horizon : int
        Bars after the warning (63: three months).
    fall : float
        The fall that counts, a fraction (0.10).
    """
    result = lab.run("credit_spread.py")
    names = ["tight_level", "widening", "window"]
    definition = (f"first bar of each warning ({_params_text(result, names)}; "
                  f"credit_spread.py); a fall = an S&P 500 close ≥ {fall:.0%} under the "
                  f"signal close within {horizon} bars")
    return rate_finding(lab, "credit_spread.py", "entry_episode", horizon,
                        definition=definition, stated="equities fall after the warning",
                        kind="fell", move=fall)


# --------------------------------------------------------------------------- B6


def measure_btc_average(lab: Lab, *, low: float, high: float, window: int, dates: tuple
                        ) -> Finding:
    """Bitcoin's 20-day average in the 93,000–94,000 zone (B6, ``000/001 §7``).

    RULES.md: "must reclaim 93,000–94,000 (20-day average plus congestion)."

    Measured on ``level_reclaim.py``'s run (BTC/USDT): the simple moving average
    of ``window`` closes (:func:`engine.strategy.indicators.sma`) on the note's date and a
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
    from engine.strategy.indicators import sma

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
    bars): the event study's ``entry_episode`` against its base rate at
    ``Settings.crypto_horizon`` (:func:`rate_finding`).
    """
    h = lab.settings.crypto_horizon
    result = lab.run("level_reclaim.py")
    names = ["level_low", "level_high", "lookback"]
    definition = (f"first bar of each reclaim ({_params_text(result, names)}; "
                  f"level_reclaim.py); BTC forward return > 0 over {h} bars vs every bar")
    return rate_finding(lab, "level_reclaim.py", "entry_episode", h, definition=definition,
                        stated="a reclaim is bullish", stance=1)


# --------------------------------------------------------------------------- B8


def measure_skew_vix(lab: Lab, *, horizon: int, fall: float) -> Finding:
    """Low VIX with high SKEW precedes crashes (B8, ``002``).

    RULES.md: "B8 Nasdaq crash risk: VIX low (~15) with CBOE SKEW high (148–155,
    > 150) is a classic precursor; ... flash crash = > 10% fall within days".

    Measured on ``skew_vix.py``: the event study's ``entry_condition`` (every bar
    with VIX ≤ ``vix_max`` and SKEW > ``skew_min``) as a precursor
    (:func:`rate_finding`): the share followed by a close ``fall`` or more under the
    signal close within ``horizon`` bars against its base rate. The bundle has no
    Nasdaq series: the S&P 500 stands in for it.

    Parameters
    ----------
    horizon : int
        Bars after the signal (21: "within days", read as within a month).
    fall : float
        The fall that counts (0.10: the notes' flash crash).
    """
    result = lab.run("skew_vix.py")
    definition = (f"every bar with {_params_text(result, ['vix_max', 'skew_min'])} "
                  f"(skew_vix.py); a crash = an S&P 500 close ≥ {fall:.0%} under the signal "
                  f"close within {horizon} bars; the S&P 500 stands in for the Nasdaq (no "
                  f"Nasdaq data)")
    return rate_finding(lab, "skew_vix.py", "entry_condition", horizon, definition=definition,
                        stated="a crash precursor", kind="fell", move=fall,
                        periods=DATA_PERIODS["vix"])


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


