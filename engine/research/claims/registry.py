"""The registry: every claim of the rule book (``RULES.md``), in its order, and the
run that measures them all.

Each :class:`~engine.research.claims.model.Claim` names its quote, the strategy
plugin whose run measures it, its ``measure_*`` function
(:mod:`engine.research.claims.measure`) and the parameters that define its vague
words. :func:`measure_all` turns the registry into the claims table.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import polars as pl

from engine.errors import ParameterError
from engine.research.claims import measure as m
from engine.research.claims.measure import Lab
from engine.research.claims.model import (
    CLAIM_COLUMNS,
    EVIDENCE_COLUMNS,
    NOTE_DATES,
    VERDICTS,
    Claim,
    Settings,
)

# --------------------------------------------------------------------------- the registry


def _fg(label, sell, band, stated, quote) -> Claim:
    return Claim(f"A1.fg.{label.replace(' ', '_')}", f"Fear & Greed {band}, {stated}",
                 "004 glossary", quote, "fear_contrarian.py", m.measure_fg_band,
                 {"label": label, "sell": sell, "stated": stated})


def _vix(label, stance, band, stated) -> Claim:
    return Claim(f"A1.vix.{label.replace(' ', '_')}", f"VIX {band}: {stated}",
                 "004 glossary", f"VIX {band} {label} ({stated})", "fear_contrarian.py",
                 m.measure_vix_band, {"label": label, "stance": stance, "stated": stated})


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
          "(aggressive buying; 2008, Mar 2020)", "fear_contrarian.py", m.measure_vix_examples,
          {"examples": (("2020-03", 30.0, 40.0), ("2022-10", 30.0, 40.0),
                        ("2008", 40.0, math.inf), ("2020-03", 40.0, math.inf))}),
    Claim("A1.btc_fg", "Bitcoin Fear & Greed at 18 matched the Jun 2022 and Mar 2023 bottoms",
          "000/001 §7", "Bitcoin Fear & Greed at 18 (extreme fear) matched the Jun 2022 and "
          "Mar 2023 bottoms.", "btc_fear.py", m.measure_btc_fear_bottoms,
          {"reading": 18.0, "months": ("2022-06", "2023-03"), "window": 3}),
    Claim("A2.dtc", "Days-to-cover above 10 is a short-squeeze precursor", "003",
          "> 10.0 extreme positioning, traditionally a short-squeeze precursor.",
          "short_squeeze.py", m.measure_squeeze, {"rise": 0.20}),
    Claim("A3.peak", "The 6180–6200 test peaked at 6147.43 on 2025-02-19, short of the zone",
          "dating note", "the index peaked at 6147.43 intraday on 2025-02-19, short of the "
          "zone", "breakout_failure.py", m.measure_zone_peak,
          {"start": "2024-12-01", "end": "2025-02-28", "peak": 6147.43, "day": "2025-02-19"}),
    Claim("A3.fall", "Then the index fell about 21% into April 2025", "dating note",
          "and then fell about 21% into April 2025", "breakout_failure.py", m.measure_zone_fall,
          {"start": "2024-12-01", "end": "2025-04-30", "claimed": 0.21}),
    Claim("A3.breakout", "It broke through the zone at the end of June 2025 and held",
          "dating note", "it broke through the zone only at the end of June 2025 and held "
          "above it", "breakout_failure.py", m.measure_zone_breakout,
          {"after": "2025-02-19", "start": "2025-05-01", "month": "2025-06", "last_bars": 5}),
    Claim("A3.target", "A breakout that holds targets 6450–6500", "000/001 §4",
          "A breakout that holds targets 6450–6500.", "breakout_failure.py",
          m.measure_zone_target, {"start": "2025-05-01"}),
    Claim("A3.support", "Weekly 20-period average about 5950 on 2025-11-21", "000/001 §4",
          "Support: the weekly 20-period moving average (about 5950 on 2025-11-21).",
          "breakout_failure.py", m.measure_weekly_support,
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
          "next 3 months in every case since 1950.", "trend_streak.py", m.measure_trend_streak,
          {"since": "1950-01-01", "cases": "episodes"}),
    Claim("B4.rank", "December is the strongest month over 75 years", "000/001 §9",
          "December the strongest month over 75 years, average +1.8%.", "seasonality.py",
          m.measure_december_rank, {"month": 12, "years": 75}),
    Claim("B4.average", "December averages +1.8% over 75 years", "000/001 §9",
          "December the strongest month over 75 years, average +1.8%.", "seasonality.py",
          m.measure_december_average, {"month": 12, "years": 75, "claimed": 0.018}),
    Claim("B5.levels", "HY OAS rose from 320 bp (October) to 385 bp (November 24)",
          "000/001 §6", "high-yield OAS up from 320 to 385 bp", "credit_spread.py",
          m.measure_spread_levels, {"from_level": 320.0, "month": "10", "to_level": 385.0,
                                  "day": "11-24", "years": (2025, 2024)}),
    Claim("B5.warning", "HY OAS widening from tight levels warns ahead of equities",
          "000/001 §6", "high-yield OAS up from 320 to 385 bp warns ahead of equities.",
          "credit_spread.py", m.measure_credit_warning, {"horizon": 63, "fall": 0.10}),
    Claim("B6.etf_cost", "Bitcoin is below the spot-ETF average cost (~$94,200)", "000/001 §7",
          "below the spot-ETF average cost (~$94,200)",
          needs="no ETF data: needs the daily flows and prices of the US spot bitcoin ETFs "
                "to compute their average cost"),
    Claim("B6.average", "Bitcoin's 20-day average sits at 93,000–94,000", "000/001 §7",
          "must reclaim 93,000–94,000 (20-day average plus congestion).", "level_reclaim.py",
          m.measure_btc_average, {"low": 93_000.0, "high": 94_000.0, "window": 20,
                                "dates": NOTE_DATES}),
    Claim("B6.reclaim", "Reclaiming 93,000–94,000 is bullish for bitcoin", "000/001 §7",
          "must reclaim 93,000–94,000 (20-day average plus congestion).", "level_reclaim.py",
          m.measure_btc_reclaim),
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
          "flash crash = > 10% fall within days", "skew_vix.py", m.measure_skew_vix,
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
                 "is −35.7%.", None, m.measure_targets_arithmetic,
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
        Columns :data:`CLAIM_COLUMNS`, one row per claim. ``q_value`` is the
        Benjamini–Hochberg q-value of the claim's ``p_value`` (the difference to its
        base rate) across every claim that has one.
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
    from engine.analysis.stats import benjamini_hochberg

    p_values = [np.nan if r["p_value"] is None else r["p_value"] for r in rows]
    for row, q in zip(rows, benjamini_hochberg(p_values), strict=True):
        row["q_value"] = None if np.isnan(q) else float(q)
    schema = {"id": pl.String, "claim": pl.String, "source": pl.String, "strategy": pl.String,
              "definition": pl.String, "sample": pl.String, "cases": pl.Int64,
              "claimed": pl.String, "measured": pl.String, "verdict": pl.String,
              "why": pl.String, "claimed_value": pl.Float64, "measured_value": pl.Float64,
              "base_value": pl.Float64,
              **{name: pl.Int64 if name in ("episodes", "non_overlapping") else pl.Float64
                 for name in EVIDENCE_COLUMNS},
              "fragility": pl.String}
    return pl.DataFrame(_clean([{k: row[k] for k in schema} for row in rows]), schema=schema,
                        orient="row").select(CLAIM_COLUMNS)


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


