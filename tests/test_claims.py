"""The claims of the rule book (engine/research/claims/): each measurement on a hand-built series
whose answer is known, the table on the bundled data pinned, and the command as run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import engine
from engine.analysis.stats import RateEvidence
from engine.errors import ParameterError
from engine.report.claims import write_claims
from engine.research import claims
from engine.research.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    UNTESTABLE,
    Lab,
    Settings,
    claim,
    rate_verdict,
    stance_verdict,
)
from engine.research.claims import measure as measure_module

pytestmark = pytest.mark.filterwarnings("ignore:.*is missing \\(NaN\\)")
ROOT = Path(__file__).resolve().parents[1]


def bars(close, start, freq="D", symbol=None):
    """Bars with open = high = low = close on consecutive days (or weekdays: freq="B")."""
    close = np.asarray(close, dtype=float)
    frame = pd.DataFrame({"ts": pd.date_range(start, periods=close.size, freq=freq),
                          "open": close, "high": close, "low": close, "close": close,
                          "volume": 1000.0})
    if symbol is not None:
        frame.insert(1, "symbol", symbol)
    return frame


def feed(frame, column, values):
    """A feed frame on the bars' dates."""
    return pd.DataFrame({"ts": frame["ts"].values, column: np.asarray(values, dtype=float)})


# --------------------------------------------------------------------------- A1


def fear_bars():
    """Up 1% a bar for 40 bars, then down 1% a bar for 60."""
    steps = np.r_[np.full(40, 1.01), np.full(59, 0.99)]
    return bars(100 * np.r_[1.0, np.cumprod(steps)], "2015-01-01")


#: Built series hold one episode: the measurement is what these tests check, so the
#: minimum number of episodes is lowered to 1.
ONE = {"min_episodes": 1}


def test_fear_greed_bands_on_a_built_feed():
    data = fear_bars()
    fg = feed(data, "fear_greed", np.r_[np.full(40, 10.0), np.full(60, 60.0)])
    lab = Lab(Settings(horizon=5, **ONE), overrides={"fear_contrarian.py": {
        "data": data, "feeds": {"fear_greed": engine.Feed(fg, columns=["fear_greed"])}}})
    # Extreme fear on bars 0-39 (the top is bar 40): the 5-bar return is positive up to
    # bar 37; from bar 38 it holds more down bars than up ones (1.01^2 * 0.99^3 < 1): 38/40.
    fear = claim("A1.fg.extreme_fear").evaluate(lab)
    assert fear.cases == 40
    assert fear.measured_value == pytest.approx(38 / 40)
    assert fear.claimed_value == 0.85 and fear.verdict == HOLDS
    assert fear.rate_low <= 38 / 40 <= fear.rate_high and fear.episodes == 1
    # the sample is the first and last signal day, not the data's range
    assert fear.sample.endswith(" 2015-01-01 → 2015-02-09")
    # with the default minimum of 5 episodes one episode is too few to judge
    alone = claim("A1.fg.extreme_fear").evaluate(Lab(Settings(horizon=5), lab.overrides))
    assert alone.verdict == INCONCLUSIVE and "too few" in alone.why
    # Greed on bars 40-99, falling: 55 forward returns (bars 40-94), none positive; a sell
    # claim (70% success = at most 30% rising) holds.
    greed = claim("A1.fg.greed").evaluate(lab)
    assert (greed.cases, greed.measured_value, greed.claimed_value) == (55, 0.0, 0.30)
    assert greed.verdict == HOLDS
    # a band that never occurs is inconclusive, and says so
    neutral = claim("A1.fg.neutral").evaluate(lab)
    assert neutral.verdict == INCONCLUSIVE and neutral.cases == 0
    assert neutral.measured == "no signal"


def test_a_success_rate_under_the_claim_by_more_than_the_tolerance_fails():
    data = fear_bars()
    fg = feed(data, "fear_greed", np.r_[np.full(40, 10.0), np.full(60, 60.0)])
    overrides = {"fear_contrarian.py": {
        "data": data, "feeds": {"fear_greed": engine.Feed(fg, columns=["fear_greed"])}}}
    # 95% against 85%: holds even with a tighter tolerance
    found = measure_module.measure_fg_band(Lab(Settings(horizon=5, rate_tolerance=0.02, **ONE),
                                                 overrides),
                                   label="extreme fear", sell=False, stated="")
    assert found.verdict == HOLDS
    found = measure_module.measure_fg_band(Lab(Settings(horizon=10, **ONE), overrides),
                                           label="extreme fear",
                                   sell=False, stated="")
    # 10-bar returns: positive up to bar 34 (1.01^5 * 0.99^5 < 1 from bar 35): 35 of 40
    assert found.measured_value == pytest.approx(35 / 40) and found.verdict == HOLDS
    # with no tolerance, 87.5% against the claimed 85% still holds; a sell claim would not
    found = measure_module.measure_fg_band(Lab(Settings(horizon=10, rate_tolerance=0.0, **ONE),
                                                 overrides),
                                   label="extreme fear", sell=False, stated="")
    assert found.verdict == HOLDS
    # greed (a sell claim: at most 30% rising) on the rising bars: 38 of 40 rose
    rising_greed = feed(data, "fear_greed", np.r_[np.full(40, 60.0), np.full(60, 10.0)])
    overrides["fear_contrarian.py"]["feeds"] = {
        "fear_greed": engine.Feed(rising_greed, columns=["fear_greed"])}
    found = claim("A1.fg.greed").evaluate(Lab(Settings(horizon=5, **ONE), overrides))
    assert found.measured_value == pytest.approx(38 / 40) and found.verdict == FAILS
    assert found.rate_low > 0.30 + 0.05  # the interval excludes the stated 30%


def cycles(n_cycles=10):
    """Cycles of 20 bars: up 1% a bar for 10, down 1% for 10. The VIX is 45 on the first
    6 bars of each rise (their 5-bar returns are up), 12 on the first 6 of each fall
    (down) and 25 elsewhere."""
    steps = np.tile(np.r_[np.full(10, 1.01), np.full(10, 0.99)], n_cycles)
    data = bars(100 * np.cumprod(np.r_[1.0, steps[:-1]]), "2015-01-01")
    phase = np.arange(len(data)) % 20
    vix = np.where(phase < 6, 45.0, np.where((phase >= 10) & (phase < 16), 12.0, 25.0))
    return data, feed(data, "close", vix)


def test_vix_band_stances_against_the_base_rate():
    data, vix = cycles()
    lab = Lab(Settings(horizon=5), overrides={"fear_contrarian.py": {
        "data": data, "start": None,
        "feeds": {"vix": engine.Feed(vix, columns={"close": "vix"})}}})
    panic = claim("A1.vix.panic").evaluate(lab)        # buy: every 5-bar return up
    calm = claim("A1.vix.extreme_optimism").evaluate(lab)  # sell: every one down
    assert panic.measured_value == 1.0 and calm.measured_value == 0.0
    assert panic.episodes == 10 and panic.difference_low > 0 and panic.verdict == HOLDS
    assert calm.difference_high < 0 and calm.verdict == HOLDS
    # the base rate is over every bar from the first to the last signal
    success = (data["close"].shift(-5) > data["close"]).to_numpy(dtype=float)[:len(data) - 5]
    first, last = 0, len(data) - 20 + 5  # the last panic bar with a 5-bar window: 185
    assert panic.base_value == pytest.approx(success[first:last + 1].mean())
    # the buy stance turned upside down (every panic day followed by a fall) fails
    fall = feed(data, "close", np.where(np.asarray(vix["close"]) == 45.0, 12.0,
                                        np.where(np.asarray(vix["close"]) == 12.0, 45.0, 25.0)))
    flipped = claim("A1.vix.panic").evaluate(Lab(Settings(horizon=5), overrides={
        "fear_contrarian.py": {"data": data, "start": None,
                               "feeds": {"vix": engine.Feed(fall, columns={"close": "vix"})}}}))
    assert flipped.measured_value == 0.0 and flipped.verdict == FAILS
    anxiety = claim("A1.vix.anxiety").evaluate(lab)
    assert anxiety.verdict in (HOLDS, FAILS, INCONCLUSIVE) and anxiety.cases > 0
    assert "5d" not in panic.fragility and "21d: " in panic.fragility


def evidence(rate, low, high, base, d_low, d_high, episodes=20, signals=200):
    """A hand-built RateEvidence: the rate's and the difference's intervals."""
    return RateEvidence(signals, episodes, episodes, 0, 10, rate, low, high, base, base, base,
                        rate - base, d_low, d_high, 0.5, 0.95, 42.0)


def test_verdict_rules_on_hand_built_evidence():
    # a rate clearly above its base rate: a buy stance holds, a sell stance fails
    above = evidence(0.80, 0.74, 0.86, 0.60, 0.12, 0.28)
    assert stance_verdict(above, 1, 0.05, 5)[0] == HOLDS
    assert stance_verdict(above, -1, 0.05, 5)[0] == FAILS
    # a tiny gap with a wide interval: inconclusive either way, and for "no edge" too
    tiny = evidence(0.635, 0.43, 0.94, 0.64, -0.20, 0.30)
    assert stance_verdict(tiny, 1, 0.05, 5)[0] == INCONCLUSIVE
    assert stance_verdict(tiny, -1, 0.05, 5)[0] == INCONCLUSIVE
    assert stance_verdict(tiny, 0, 0.05, 5)[0] == INCONCLUSIVE
    # "no edge" holds when the whole interval is within the tolerance, fails when outside
    assert stance_verdict(evidence(0.64, 0.6, 0.68, 0.64, -0.03, 0.04), 0, 0.05, 5)[0] == HOLDS
    assert stance_verdict(above, 0, 0.05, 5)[0] == FAILS
    # a stated rate outside the interval (beyond the tolerance) fails; inside holds
    assert rate_verdict(above, 0.95, False, 0.05, 5)[0] == FAILS    # 0.86 < 0.90
    assert rate_verdict(above, 0.90, False, 0.05, 5)[0] == HOLDS    # 0.86 >= 0.85
    assert rate_verdict(above, 0.60, False, 0.05, 5)[0] == HOLDS    # at least 60%: above
    # a sell claim (at most 20% of rises) against 74-86% rises fails; at most 70% holds
    assert rate_verdict(above, 0.20, True, 0.05, 5)[0] == FAILS
    assert rate_verdict(above, 0.70, True, 0.05, 5)[0] == HOLDS
    # too few episodes, or no signal: inconclusive whatever the interval says
    few = evidence(0.80, 0.74, 0.86, 0.60, 0.12, 0.28, episodes=3)
    assert rate_verdict(few, 0.95, False, 0.05, 5)[0] == INCONCLUSIVE
    assert stance_verdict(few, 1, 0.05, 5) == (
        INCONCLUSIVE, "3 independent episodes (< 5): too few to judge")
    none = RateEvidence(0, 0, 0, None, None, *[math.nan] * 9, math.nan, 0.95, math.nan)
    assert stance_verdict(none, 1, 0.05, 5)[0] == INCONCLUSIVE


def btc_bars_and_fear(bottom_readings):
    """BTC from 2022-05-01 to 2023-04-30, its June and March lows on 06-18 and 03-10,
    and a crypto F&G of 50 except ``bottom_readings`` on those two days."""
    days = pd.date_range("2022-05-01", "2023-04-30", freq="D")
    close = np.full(days.size, 25_000.0)
    fg = np.full(days.size, 50.0)
    for day, reading, price in zip(("2022-06-18", "2023-03-10"), bottom_readings,
                                   (18_000.0, 20_000.0), strict=True):
        i = days.get_loc(pd.Timestamp(day))
        close[i], fg[i] = price, reading
    frame = bars(close, "2022-05-01")
    return frame, feed(frame, "crypto_fear_greed", fg)


@pytest.mark.parametrize("readings, verdict", [((18, 20), HOLDS), ((18, 34), FAILS),
                                               ((6, 18), FAILS)])
def test_bitcoin_fear_at_the_named_bottoms(readings, verdict):
    data, fg = btc_bars_and_fear(readings)
    lab = Lab(overrides={"btc_fear.py": {
        "data": data, "feeds": {"crypto_fear_greed": engine.Feed(
            fg, columns=["crypto_fear_greed"])}}})
    found = claim("A1.btc_fg").evaluate(lab)
    assert found.verdict == verdict and found.cases == 2
    assert "2022-06-18" in found.measured and "2023-03-10" in found.measured


# --------------------------------------------------------------------------- A2


def test_days_to_cover_squeeze_on_a_built_universe():
    n = 80
    flat = np.full(n, 10.0)
    jump = flat.copy()
    jump[60:] = 13.0  # +30% on bar 60
    data = pd.concat([bars(jump, "2021-01-01", symbol="HIGH"),
                      bars(flat, "2021-01-01", symbol="LOW")], ignore_index=True)
    short = pd.DataFrame({"symbol": ["HIGH", "LOW"],
                          "settlement_date": pd.to_datetime(["2021-01-05"] * 2),
                          "first_seen": pd.to_datetime(["2021-01-06"] * 2),
                          "shares_sold_short": [20_000.0, 1_000.0]})  # 20 and 1 days
    def squeeze_lab(**feed_options):
        return Lab(Settings(horizon=5, **ONE), overrides={"short_squeeze.py": {
            "data": data, "feeds": {"short_interest": engine.Feed(
                short, columns=["shares_sold_short"], on="settlement_date",
                available_at="first_seen", by_symbol=True, **feed_options)}}})

    found = claim("A2.dtc").evaluate(squeeze_lab(), rise=0.20)
    # HIGH has days-to-cover 20 from bar 29 (the 30-bar volume average); its bars 29-74
    # have a 5-bar window ahead, and those of bars 55-59 hold the jump: 5 of 46.
    # Base, like for like: the stock-days of bars 29-74 (first to last signal) of both
    # symbols, 5 of 92 (LOW never moves) -- not the 5 of 150 of every bar.
    assert found.cases == 46
    assert found.measured_value == pytest.approx(5 / 46)
    assert found.base_value == pytest.approx(5 / 92)
    assert found.sample == "universe 2021-01-30 → 2021-03-16"
    # one squeeze in one episode: the interval of the difference reaches 0
    assert found.difference_low <= 0 < found.difference_high
    assert found.verdict == INCONCLUSIVE
    # short interest settled 2021-01-05 expires after 30 days: no signal from 2021-02-05
    stale = claim("A2.dtc").evaluate(squeeze_lab(max_age="30D"), rise=0.20)
    assert stale.cases == 6 and stale.sample == "universe 2021-01-30 → 2021-02-04"


# --------------------------------------------------------------------------- A3


def zone_story():
    """Weekdays 2024-01-01 → 2025-11-28: 5700, then 6000 from December 2024 with a
    6147.43 high on 2025-02-19, a 4835.04 low on 2025-04-07, 6300 from 2025-06-30 and
    6500 from 2025-08-01."""
    days = pd.bdate_range("2024-01-01", "2025-11-28")
    close = np.where(days < "2024-12-01", 5700.0, 6000.0)
    close = np.where(days >= "2025-06-30", 6300.0, close)
    close = np.where(days >= "2025-08-01", 6500.0, close)
    frame = pd.DataFrame({"ts": days, "open": close, "high": close, "low": close,
                          "close": close, "volume": 1.0})
    frame.loc[frame["ts"] == "2025-02-19", "high"] = 6147.43
    frame.loc[frame["ts"] == "2025-04-07", "low"] = 4835.04
    return frame


def test_the_zone_story_on_a_built_series():
    lab = Lab(overrides={"breakout_failure.py": {"data": zone_story()}})
    peak = claim("A3.peak").evaluate(lab)
    assert peak.verdict == HOLDS and peak.measured_value == pytest.approx(6147.43)
    fall = claim("A3.fall").evaluate(lab)
    assert fall.measured_value == pytest.approx(4835.04 / 6147.43 - 1)
    assert fall.verdict == HOLDS  # -21.3% against "about 21%"
    breakout = claim("A3.breakout").evaluate(lab)
    assert breakout.verdict == HOLDS and "2025-06-30" in breakout.measured
    target = claim("A3.target").evaluate(lab)
    assert target.verdict == HOLDS and "target" in target.measured
    # The weekly average is 5700 on 2024-11-21 and 6500 on 2025-11-21: neither is 5950
    support = claim("A3.support").evaluate(lab)
    assert support.verdict == FAILS
    assert "5,700" in support.measured and "6,500" in support.measured
    assert claim("A3.support").evaluate(lab, level=5700.0).verdict == HOLDS
    # a peak claimed on another day does not hold
    assert claim("A3.peak").evaluate(lab, day="2025-02-18").verdict == FAILS


# --------------------------------------------------------------------------- B3, B4


def two_streaks():
    """Two long climbs above the 50-day average: after the first the index keeps rising,
    after the second it falls, so the 63-bar returns after the 139th day are +, -."""
    up = np.full(260, 1.002)
    down = np.full(100, 0.995)
    steps = np.r_[up, down, np.full(190, 1.002), np.full(120, 0.995)]
    return bars(100 * np.r_[1.0, np.cumprod(steps)], "1960-01-01", freq="B")


def test_trend_streak_cases_on_a_built_series():
    from engine.analysis.event_study import forward_returns

    data = two_streaks()
    lab = Lab(overrides={"trend_streak.py": {"data": data}})
    found = claim("B3").evaluate(lab)
    close = data["close"].to_numpy()
    # the first streak starts at bar 49 (the first average; a rise stays above it) and
    # passes 138 on bar 187; the second starts after the fall
    fwd = forward_returns(close, 63)
    assert fwd[187] > 0
    assert found.cases == 2 and found.measured_value == 0.5 and found.verdict == FAILS
    assert "down: " in found.measured
    # every bar of the streaks as a case: the first streak's bars are all up
    bars_found = claim("B3").evaluate(lab, cases="bars")
    assert bars_found.cases > 2 and 0 < bars_found.measured_value < 1
    # counted only from a later date, only the second streak is left
    late = claim("B3").evaluate(lab, since=str(data["ts"][300].date()))
    assert late.cases == 1 and late.measured_value == 0.0
    with pytest.raises(ParameterError):
        claim("B3").evaluate(lab, cases="weeks")


def test_trend_streak_every_case_up_holds():
    steps = np.r_[np.full(260, 1.002), np.full(100, 0.995), np.full(300, 1.002)]
    data = bars(100 * np.r_[1.0, np.cumprod(steps)], "1960-01-01", freq="B")
    found = claim("B3").evaluate(Lab(overrides={"trend_streak.py": {"data": data}}))
    assert found.cases == 2 and found.measured_value == 1.0 and found.verdict == HOLDS


def month_story():
    """Weekdays 2019-01-01 → 2023-01-31; the close moves on each month's first bar only:
    December +3%, April +1%, September -2%, every other month 0."""
    days = pd.bdate_range("2019-01-01", "2023-01-31")
    moves = {12: 0.03, 4: 0.01, 9: -0.02}
    close, level = [], 100.0
    for i, day in enumerate(days):
        if i and day.month != days[i - 1].month:
            level *= 1 + moves.get(day.month, 0.0)
        close.append(level)
    return pd.DataFrame({"ts": days, "open": close, "high": close, "low": close,
                         "close": close, "volume": 1.0})


def test_december_rank_and_average_on_a_built_series():
    lab = Lab(overrides={"seasonality.py": {"data": month_story()}})
    rank = claim("B4.rank").evaluate(lab, years=4)
    assert rank.verdict == HOLDS and rank.measured_value == 1.0 and rank.cases == 4
    average = claim("B4.average").evaluate(lab, years=4)
    assert average.measured_value == pytest.approx(0.03)
    assert average.verdict == FAILS  # +3% against +1.8%
    assert claim("B4.average").evaluate(lab, years=4, claimed=0.029).verdict == HOLDS
    # April (+1%) is not the strongest
    assert claim("B4.rank").evaluate(lab, years=4, month=4).measured_value == 2.0


def test_seasonality_trades_are_the_calendar_months_returns():
    from engine.analysis.event_study import monthly_returns

    data = month_story()
    result = engine.run(ROOT / "strategies" / "seasonality.py", data=data, fill="close",
                        fractional=True)
    months = monthly_returns(data["close"].to_numpy(), data["ts"].values)
    december = months.filter(months["month"] == 12)["return"].to_list()
    assert result.trades["return_pct"].to_list() == pytest.approx(december)
    assert result.trades["exit_reason"].to_list() == ["month_end"] * len(december)


# --------------------------------------------------------------------------- B5, B6, B8


def spread_story():
    """Flat index at 100 from 2020-01-01, falling 15% over 20 bars from bar 150; spreads
    at 3.0% until bar 149, then 3.70%."""
    n = 300
    close = np.full(n, 100.0)
    close[150:170] = np.linspace(99.25, 85.0, 20)
    close[170:] = 85.0
    data = bars(close, "2020-01-01")
    oas = np.where(np.arange(n) >= 150, 3.70, 3.0)
    return data, feed(data, "hy_oas", oas)


def test_credit_warning_on_a_built_series():
    data, oas = spread_story()
    lab = Lab(Settings(**ONE), overrides={"credit_spread.py": {
        "data": data, "feeds": {"hy_oas": engine.Feed(oas, columns=["hy_oas"])}}})
    found = claim("B5.warning").evaluate(lab, horizon=30)
    # one warning (bar 150, a rise of 70 bp from 300 bp); the index then falls 15%
    assert found.cases == 1 and found.measured_value == 1.0
    # base over the signal's own period (one bar): the warning bar itself
    assert found.base_value == 1.0 and found.difference == 0.0
    # one warning is no evidence of an edge over its own period
    assert found.verdict == INCONCLUSIVE
    # a rise of 65 bp needs a tight start: from 340 bp there is no warning
    wide = feed(data, "hy_oas", np.where(np.arange(300) >= 150, 4.10, 3.40))
    lab = Lab(overrides={"credit_spread.py": {
        "data": data, "feeds": {"hy_oas": engine.Feed(wide, columns=["hy_oas"])}}})
    assert claim("B5.warning").evaluate(lab, horizon=30).cases == 0


def test_spread_levels_on_a_built_feed():
    days = pd.date_range("2025-09-01", "2025-12-31", freq="D")
    data = bars(np.full(days.size, 100.0), "2025-09-01")
    values = np.where(days < "2025-11-01", 3.20, 3.85)
    oas = pd.DataFrame({"ts": days, "hy_oas": values})
    lab = Lab(overrides={"credit_spread.py": {
        "data": data, "start": None, "feeds": {"hy_oas": engine.Feed(oas, columns=["hy_oas"])}}})
    assert claim("B5.levels").evaluate(lab, years=(2025,)).verdict == HOLDS
    assert claim("B5.levels").evaluate(lab, years=(2025,), to_level=400.0).verdict == FAILS


def test_skew_vix_crash_precursor_on_a_built_series():
    data, _ = spread_story()
    n = len(data)
    vix = feed(data, "close", np.full(n, 20.0))
    vix.loc[140:144, "close"] = 14.0
    skew = feed(data, "skew", np.full(n, 140.0))
    skew.loc[140:144, "skew"] = 155.0
    lab = Lab(overrides={"skew_vix.py": {"data": data, "start": None, "feeds": {
        "vix": engine.Feed(vix, columns={"close": "vix"}),
        "skew": engine.Feed(skew, columns=["skew"])}}})
    found = claim("B8.skew").evaluate(lab, horizon=30)
    # signal on bars 140-144, each followed by the 15% fall within 30 bars: one episode
    assert found.cases == 5 and found.measured_value == 1.0 and found.episodes == 1
    assert found.verdict == INCONCLUSIVE and "too few" in found.why


def test_bitcoin_reclaim_and_average_on_a_built_series():
    close = np.r_[np.full(40, 95_000.0), np.full(20, 92_000.0), np.full(5, 95_000.0),
                  np.linspace(96_000, 110_000, 60)]
    data = bars(close, "2025-10-01")
    lab = Lab(Settings(crypto_horizon=10), overrides={"level_reclaim.py": {"data": data}})
    found = claim("B6.reclaim").evaluate(lab)
    # one reclaim (bar 60); the price then rises: its 10-bar return is positive
    assert found.cases == 1 and found.measured_value == 1.0 and found.verdict == INCONCLUSIVE
    # the 20-day average on 2025-11-21 (bar 51, bars 32-51): 8 closes of 95,000, 12 of 92,000
    average = claim("B6.average").evaluate(lab, dates=("2025-11-21",))
    expected = (8 * 95_000 + 12 * 92_000) / 20
    assert average.measured_value == pytest.approx(expected)
    assert average.verdict == HOLDS  # 93,200 is in 93,000-94,000


# --------------------------------------------------------------------------- the rest


def test_arithmetic_of_the_nasdaq_targets():
    found = claim("B8.arithmetic").evaluate(Lab())
    assert found.verdict == HOLDS
    wrong = claim("B8.arithmetic").evaluate(Lab(), targets=((0.382, 19_000.0),))
    assert wrong.verdict == FAILS


def test_untestable_claims_name_the_data_they_need():
    untestable = [c for c in claims.CLAIMS if c.measure is None]
    assert {c.id for c in untestable} >= {"B1", "B2", "B6.etf_cost", "B7.gold", "B7.dollar",
                                           "B7.oil", "B8.usdjpy", "B8.nasdaq"}
    for c in untestable:
        found = c.evaluate(Lab())
        assert found.verdict == UNTESTABLE and found.why.startswith("no ")


def test_registry_ids_are_unique_and_every_measure_is_documented():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in claims.CLAIMS:
        assert c.quote and c.source and c.claim
        if c.measure is not None:
            assert "RULES.md" in (c.measure.__doc__ or ""), c.measure.__name__
            assert c.strategy is None or (ROOT / "strategies" / c.strategy).exists()
    with pytest.raises(ParameterError, match="Did you mean 'B3'"):
        claim("B33")


def test_settings_are_checked():
    with pytest.raises(ParameterError, match="horizon"):
        Settings(horizon=0)
    with pytest.raises(ParameterError, match="rate_tolerance"):
        Settings(rate_tolerance=-0.1)
    with pytest.raises(ParameterError, match="level must be a probability"):
        Settings(level=95)
    with pytest.raises(ParameterError, match="reps"):
        Settings(reps=10)


# --------------------------------------------------------------------------- bundled data

# id -> (cases, measured figure rounded, verdict), on the bundled data with the defaults.
# A change here is a change of the data or of a definition: check it, then update.
PINNED = {
    "A1.fg.extreme_fear": (617, 0.692, FAILS),  # borderline: the interval ends at 79.0%
    "A1.fg.fear": (1009, 0.689, HOLDS),
    "A1.fg.neutral": (594, 0.655, HOLDS),
    "A1.fg.greed": (1238, 0.647, FAILS),
    "A1.fg.extreme_greed": (385, 0.717, FAILS),
    "A1.vix.extreme_optimism": (2948, 0.654, INCONCLUSIVE),
    "A1.vix.optimistic": (2832, 0.632, INCONCLUSIVE),
    "A1.vix.anxiety": (2690, 0.612, INCONCLUSIVE),
    "A1.vix.fear": (528, 0.742, HOLDS),
    "A1.vix.panic": (208, 0.635, INCONCLUSIVE),
    "A1.vix.examples": (4, None, HOLDS),
    "A1.btc_fg": (2, None, FAILS),
    "A2.dtc": (40247, 0.125, INCONCLUSIVE),
    "A3.peak": (1, 6147.43, HOLDS),
    "A3.fall": (1, -0.213, HOLDS),
    "A3.breakout": (1, None, HOLDS),
    "A3.target": (1, None, HOLDS),
    "A3.support": (2, 6547.678, FAILS),
    "B1": (None, None, UNTESTABLE),
    "B2": (None, None, UNTESTABLE),
    "B3": (5, 0.8, FAILS),
    "B4.rank": (75, 3.0, FAILS),
    "B4.average": (75, 0.014, FAILS),
    "B5.levels": (2, None, FAILS),
    "B5.warning": (11, 0.455, INCONCLUSIVE),
    "B6.etf_cost": (None, None, UNTESTABLE),
    "B6.average": (2, 98879.645, FAILS),
    "B6.reclaim": (8, 0.625, INCONCLUSIVE),
    "B7.gold": (None, None, UNTESTABLE),
    "B7.dollar": (None, None, UNTESTABLE),
    "B7.oil": (None, None, UNTESTABLE),
    "B8.skew": (93, 0.0, FAILS),
    "B8.usdjpy": (None, None, UNTESTABLE),
    "B8.nasdaq": (None, None, UNTESTABLE),
    "B8.arithmetic": (4, None, HOLDS),
}


@pytest.fixture(scope="module")
def bundled_table():
    return claims.measure_all()


def test_the_table_on_the_bundled_data_is_pinned(bundled_table):
    table = bundled_table
    assert table.columns == list(claims.CLAIM_COLUMNS)
    assert table["id"].to_list() == list(PINNED)
    for row in table.iter_rows(named=True):
        cases, figure, verdict = PINNED[row["id"]]
        assert (row["cases"], row["verdict"]) == (cases, verdict), row["id"]
        if figure is not None:
            digits = 3 if abs(figure) < 10 else 2
            assert round(row["measured_value"], digits) == pytest.approx(figure), row["id"]


def test_the_bundled_table_reads_the_engines_own_numbers(bundled_table):
    """The A1 rows are the event study of `run strategies/fear_contrarian.py`; the base
    rate is the share over the bars from the band's first to its last signal."""
    from engine.analysis.event_study import forward_returns

    result = engine.run(ROOT / "strategies" / "fear_contrarian.py")
    study = result.event_study(horizons=(21,))
    rows = {r["signal"]: r for r in study.to_dicts()}
    table = {r["id"]: r for r in bundled_table.iter_rows(named=True)}
    ahead = forward_returns(result.panel.fields["close"][:, 0], 21)
    days = result.panel.ts.astype("datetime64[D]").astype(str)
    for band in ("extreme fear", "fear", "neutral", "greed", "extreme greed"):
        row = table[f"A1.fg.{band.replace(' ', '_')}"]
        assert row["measured_value"] == pytest.approx(rows[f"label:{band}"]["share_positive"])
        assert row["cases"] == rows[f"label:{band}"]["count"]
        assert row["claimed_value"] == rows[f"label:{band}"]["claimed_rate"]
        first, last = row["sample"].split(" ", 1)[1].split(" → ")
        window = ahead[int(np.searchsorted(days, first)):int(np.searchsorted(days, last)) + 1]
        window = window[np.isfinite(window)]
        assert row["base_value"] == pytest.approx((window > 0).mean())
        assert row["rate_low"] <= row["rate"] <= row["rate_high"]
        assert row["difference_low"] <= row["difference"] <= row["difference_high"]
    # the December average is the mean of the seasonality strategy's December trades
    result = engine.run(ROOT / "strategies" / "seasonality.py", fill="close", fractional=True,
                        start="1951-07-01")
    december = result.trades["return_pct"].to_numpy()
    assert table["B4.average"]["measured_value"] == pytest.approx(december.mean(), abs=1e-12)


def test_q_values_are_benjamini_hochberg_across_the_claims(bundled_table):
    from engine.analysis.stats import benjamini_hochberg

    tested = bundled_table.filter(pl.col("p_value").is_not_null())
    assert tested.height == 15 and bundled_table["q_value"].null_count() == \
        bundled_table["p_value"].null_count()
    assert tested["q_value"].to_numpy() == pytest.approx(
        benjamini_hochberg(tested["p_value"].to_numpy()))
    assert (tested["q_value"] >= tested["p_value"]).all()
    line = claims.multiple_testing(bundled_table)
    assert line.startswith("multiple testing: 15 claims tested") and "0.8 would" in line


def test_a_rerun_gives_the_same_table(bundled_table):
    """Seeded bootstraps: the intervals, p- and q-values are identical run to run."""
    again = claims.measure_all()
    assert again.equals(bundled_table)
    # another seed moves the intervals, not the rates
    other = claims.measure_all(Settings(seed=1), claims=[claim("A1.vix.panic")])
    row = bundled_table.filter(pl.col("id") == "A1.vix.panic")
    assert other["rate"][0] == row["rate"][0] and other["rate_low"][0] != row["rate_low"][0]


def test_the_days_to_cover_claim_compares_like_for_like_and_drops_stale_data(bundled_table):
    row = bundled_table.filter(pl.col("id") == "A2.dtc").row(0, named=True)
    # signals from 2020-12-21 (short interest starts), against a base from that day on,
    # not from the universe's 2020-08-03; short interest expires 35 days after settlement
    assert row["sample"] == "universe 2020-12-21 → 2021-08-04"
    assert round(row["base_value"], 3) == 0.137
    assert "expires 35D after settlement" in row["definition"]
    fear = bundled_table.filter(pl.col("id") == "A1.fg.extreme_fear").row(0, named=True)
    assert "borderline" in fear["why"]


def test_markdown_and_html_hold_every_claim(bundled_table, tmp_path):
    settings = Settings()
    write_claims(bundled_table, tmp_path, settings)
    markdown = (tmp_path / "claims.md").read_text(encoding="utf-8")
    page = (tmp_path / "claims.html").read_text(encoding="utf-8")
    for claim_id in PINNED:
        assert f"| {claim_id} |" in markdown and f"**{claim_id}**" in markdown
        assert f"<td>{claim_id}</td>" in page
    assert "<script" not in page and "http" not in page
    for column in ("rate [95%]", "base [95%]", "difference [95%]", "fragility", "episodes"):
        assert f"<th>{column}</th>" in page or f"<th class=num>{column}</th>" in page
        assert f" {column} |" in markdown or column == "fragility"
    assert "| fragility |" in markdown and "Multiple testing: 15 claims" in markdown
    assert (tmp_path / "claims.csv").read_text(encoding="utf-8").startswith(
        ",".join(claims.CLAIM_COLUMNS))


# --------------------------------------------------------------------------- the command


def cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_claims_command_json_and_out(tmp_path):
    out = tmp_path / "claims"
    proc = cli("claims", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["settings"]["horizon"] == 21
    assert [r["id"] for r in payload["claims"]] == list(PINNED)
    assert all(r["verdict"] in claims.VERDICTS for r in payload["claims"])
    assert sorted(p.name for p in out.iterdir()) == ["claims.csv", "claims.html", "claims.md"]
    # each data warning once, however many runs loaded the data
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(set(warnings))
    # an existing folder is refused unless --force
    again = cli("claims", "--out", str(out))
    assert again.returncode == 2 and again.stderr.count("error:") == 1
    assert "--force" in again.stderr


def test_claims_command_prints_the_table_and_checks_its_options():
    proc = cli("claims")
    assert proc.returncode == 0, proc.stderr
    assert "Claims of the source notes" in proc.stdout and "cannot be tested" in proc.stdout
    bad = cli("claims", "--horizon", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("error:") == 1 and "horizon" in bad.stderr


def test_a_longer_horizon_changes_the_success_rates():
    proc = cli("claims", "--json", "--horizon", "63")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)["claims"]}
    assert rows["A1.fg.extreme_fear"]["measured_value"] == pytest.approx(0.768233, abs=1e-6)
    assert not math.isnan(rows["A1.vix.fear"]["measured_value"])


def test_extremes_at_several_horizons_are_the_event_studys():
    from engine.analysis.event_study import forward_extremes

    rng = np.random.default_rng(3)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.02, size=(120, 3)), axis=0)
    close[40:45, 1] = np.nan  # a gap in one symbol: its own bars count
    both = measure_module.extremes_by_horizon(close, [5, 21, 63])
    for h in (5, 21, 63):
        worst, best = forward_extremes(close, h)
        np.testing.assert_array_equal(both[h][0], worst)
        np.testing.assert_array_equal(both[h][1], best)
