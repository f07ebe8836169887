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
import pytest

import engine
from engine.errors import ParameterError
from engine.report.claims import write_claims
from engine.research import claims
from engine.research.claims import FAILS, HOLDS, UNTESTABLE, Lab, Settings, claim, measure

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


def test_fear_greed_bands_on_a_built_feed():
    data = fear_bars()
    fg = feed(data, "fear_greed", np.r_[np.full(40, 10.0), np.full(60, 60.0)])
    lab = Lab(Settings(horizon=5), overrides={"fear_contrarian.py": {
        "data": data, "feeds": {"fear_greed": engine.Feed(fg, columns=["fear_greed"])}}})
    # Extreme fear on bars 0-39 (the top is bar 40): the 5-bar return is positive up to
    # bar 37; from bar 38 it holds more down bars than up ones (1.01^2 * 0.99^3 < 1): 38/40.
    fear = claim("A1.fg.extreme_fear").evaluate(lab)
    assert fear.cases == 40
    assert fear.measured_value == pytest.approx(38 / 40)
    assert fear.claimed_value == 0.85 and fear.verdict == HOLDS
    # Greed on bars 40-99, falling: 55 forward returns (bars 40-94), none positive; a sell
    # claim (70% success = at most 30% rising) holds.
    greed = claim("A1.fg.greed").evaluate(lab)
    assert (greed.cases, greed.measured_value, greed.claimed_value) == (55, 0.0, 0.30)
    assert greed.verdict == HOLDS
    # a band that never occurs does not hold, and says so
    neutral = claim("A1.fg.neutral").evaluate(lab)
    assert neutral.verdict == FAILS and neutral.cases == 0


def test_a_success_rate_under_the_claim_by_more_than_the_tolerance_fails():
    data = fear_bars()
    fg = feed(data, "fear_greed", np.r_[np.full(40, 10.0), np.full(60, 60.0)])
    overrides = {"fear_contrarian.py": {
        "data": data, "feeds": {"fear_greed": engine.Feed(fg, columns=["fear_greed"])}}}
    # 95% against 85%: holds even with a tighter tolerance
    found = measure.measure_fg_band(Lab(Settings(horizon=5, rate_tolerance=0.02), overrides),
                                   label="extreme fear", sell=False, stated="")
    assert found.verdict == HOLDS
    found = measure.measure_fg_band(Lab(Settings(horizon=10), overrides), label="extreme fear",
                                   sell=False, stated="")
    # 10-bar returns: positive up to bar 34 (1.01^5 * 0.99^5 < 1 from bar 35): 35 of 40
    assert found.measured_value == pytest.approx(35 / 40) and found.verdict == HOLDS
    # with no tolerance, 87.5% against the claimed 85% still holds; a sell claim would not
    found = measure.measure_fg_band(Lab(Settings(horizon=10, rate_tolerance=0.0), overrides),
                                   label="extreme fear", sell=False, stated="")
    assert found.verdict == HOLDS
    # greed (a sell claim: at most 30% rising) on the rising bars: 38 of 40 rose
    rising_greed = feed(data, "fear_greed", np.r_[np.full(40, 60.0), np.full(60, 10.0)])
    overrides["fear_contrarian.py"]["feeds"] = {
        "fear_greed": engine.Feed(rising_greed, columns=["fear_greed"])}
    found = claim("A1.fg.greed").evaluate(Lab(Settings(horizon=5), overrides))
    assert found.measured_value == pytest.approx(38 / 40) and found.verdict == FAILS


def test_vix_band_stances_against_the_base_rate():
    data = fear_bars()
    vix = feed(data, "close", np.r_[np.full(40, 45.0), np.full(60, 12.0)])
    lab = Lab(Settings(horizon=5), overrides={"fear_contrarian.py": {
        "data": data, "start": None,
        "feeds": {"vix": engine.Feed(vix, columns={"close": "vix"})}}})
    panic = claim("A1.vix.panic").evaluate(lab)        # buy: 38 of 40 up
    calm = claim("A1.vix.extreme_optimism").evaluate(lab)  # sell: 0 of 55 up
    base = 38 / 95                                     # every bar with a 5-bar return
    assert panic.measured_value == pytest.approx(38 / 40) and panic.base_value == \
        pytest.approx(base)
    assert panic.verdict == HOLDS and calm.verdict == HOLDS and calm.measured_value == 0.0
    anxiety = claim("A1.vix.anxiety").evaluate(lab)    # never in 20-30: no case
    assert anxiety.cases == 0 and anxiety.verdict == FAILS
    # "wait and see" holds within the tolerance of the base rate, either side
    assert measure._stance_verdict(0.62, 0.64, 0, 0.05)[0]
    assert not measure._stance_verdict(0.55, 0.64, 0, 0.05)[0]
    assert not measure._stance_verdict(0.64, 0.64, 1, 0.05)[0]   # a buy must beat it


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
    lab = Lab(Settings(horizon=5), overrides={"short_squeeze.py": {
        "data": data, "feeds": {"short_interest": engine.Feed(
            short, columns=["shares_sold_short"], on="settlement_date",
            available_at="first_seen", by_symbol=True)}}})
    found = claim("A2.dtc").evaluate(lab, rise=0.20)
    # HIGH has days-to-cover 20 from bar 29 (the 30-bar volume average); its bars 29-74
    # have a 5-bar window ahead, and those of bars 55-59 hold the jump: 5 of 46.
    # Base: 5 of the 150 stock-days with a window (LOW never moves).
    assert found.cases == 46
    assert found.measured_value == pytest.approx(5 / 46)
    assert found.base_value == pytest.approx(5 / 150)
    assert found.verdict == HOLDS


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
    lab = Lab(overrides={"credit_spread.py": {
        "data": data, "feeds": {"hy_oas": engine.Feed(oas, columns=["hy_oas"])}}})
    found = claim("B5.warning").evaluate(lab, horizon=30)
    # one warning (bar 150, a rise of 70 bp from 300 bp); the index then falls 15%
    assert found.cases == 1 and found.measured_value == 1.0
    # base: a close 10% under the bar's own within 30 bars follows bars 133-149 (from 100
    # to 90 or less, reached on bar 163) and 150-156 (the fall goes on to 85): 24 of 270
    assert found.base_value == pytest.approx(24 / 270)
    assert found.verdict == HOLDS
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
    # signal on bars 140-144, each followed by the 15% fall within 30 bars
    assert found.cases == 5 and found.measured_value == 1.0 and found.verdict == HOLDS
    assert "1 separate runs" in found.definition


def test_bitcoin_reclaim_and_average_on_a_built_series():
    close = np.r_[np.full(40, 95_000.0), np.full(20, 92_000.0), np.full(5, 95_000.0),
                  np.linspace(96_000, 110_000, 60)]
    data = bars(close, "2025-10-01")
    lab = Lab(Settings(crypto_horizon=10), overrides={"level_reclaim.py": {"data": data}})
    found = claim("B6.reclaim").evaluate(lab)
    # one reclaim (bar 60); the price then rises: its 10-bar return is positive
    assert found.cases == 1 and found.measured_value == 1.0 and found.verdict == HOLDS
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


# --------------------------------------------------------------------------- bundled data

# id -> (cases, measured figure rounded, verdict), on the bundled data with the defaults.
# A change here is a change of the data or of a definition: check it, then update.
PINNED = {
    "A1.fg.extreme_fear": (617, 0.692, FAILS),
    "A1.fg.fear": (1009, 0.689, FAILS),
    "A1.fg.neutral": (594, 0.655, HOLDS),
    "A1.fg.greed": (1238, 0.647, FAILS),
    "A1.fg.extreme_greed": (385, 0.717, FAILS),
    "A1.vix.extreme_optimism": (2948, 0.654, FAILS),
    "A1.vix.optimistic": (2832, 0.632, HOLDS),
    "A1.vix.anxiety": (2690, 0.612, HOLDS),
    "A1.vix.fear": (528, 0.742, HOLDS),
    "A1.vix.panic": (208, 0.635, FAILS),
    "A1.vix.examples": (4, None, HOLDS),
    "A1.btc_fg": (2, None, FAILS),
    "A2.dtc": (48849, 0.127, FAILS),
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
    "B5.warning": (11, 0.455, HOLDS),
    "B6.etf_cost": (None, None, UNTESTABLE),
    "B6.average": (2, 98879.645, FAILS),
    "B6.reclaim": (8, 0.625, HOLDS),
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
    """The A1 rows are the event study of `run strategies/fear_contrarian.py`, unchanged."""
    result = engine.run(ROOT / "strategies" / "fear_contrarian.py")
    study = result.event_study(horizons=(21,))
    rows = {r["signal"]: r for r in study.to_dicts()}
    table = {r["id"]: r for r in bundled_table.iter_rows(named=True)}
    for band in ("extreme fear", "fear", "neutral", "greed", "extreme greed"):
        row = table[f"A1.fg.{band.replace(' ', '_')}"]
        assert row["measured_value"] == rows[f"label:{band}"]["share_positive"]
        assert row["claimed_value"] == rows[f"label:{band}"]["claimed_rate"]
        assert row["base_value"] == rows["all_bars"]["share_positive"]
    # the December average is the mean of the seasonality strategy's December trades
    result = engine.run(ROOT / "strategies" / "seasonality.py", fill="close", fractional=True,
                        start="1951-07-01")
    december = result.trades["return_pct"].to_numpy()
    assert table["B4.average"]["measured_value"] == pytest.approx(december.mean(), abs=1e-12)


def test_markdown_and_html_hold_every_claim(bundled_table, tmp_path):
    settings = Settings()
    write_claims(bundled_table, tmp_path, settings)
    markdown = (tmp_path / "claims.md").read_text(encoding="utf-8")
    page = (tmp_path / "claims.html").read_text(encoding="utf-8")
    for claim_id in PINNED:
        assert f"| {claim_id} |" in markdown and f"**{claim_id}**" in markdown
        assert f"<td>{claim_id}</td>" in page
    assert "<script" not in page and "http" not in page
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
