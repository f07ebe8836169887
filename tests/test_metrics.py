"""Tests of engine.analysis.metrics against values worked out by hand in each test."""

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from engine.analysis import metrics as m
from engine.errors import ParameterError

# The reference curve: starting cash 100, then closes at 110, 99, 121.
#   r1 = 110/100 - 1 = 0.1
#   r2 = 99/110 - 1  = -0.1
#   r3 = 121/99 - 1  = 22/99 = 2/9
EQUITY = [110.0, 99.0, 121.0]
CASH = 100.0
R = (0.1, -0.1, 2 / 9)
MEAN = (0.1 - 0.1 + 2 / 9) / 3  # = 2/27
SD = math.sqrt(((0.1 - MEAN) ** 2 + (-0.1 - MEAN) ** 2 + (2 / 9 - MEAN) ** 2) / 2)  # ddof=1


def approx(x, rel=1e-12):
    return pytest.approx(x, rel=rel, abs=1e-15)


def is_nan(x):
    return isinstance(x, float) and math.isnan(x)


# --------------------------------------------------------------------------- returns


def test_bar_returns_start_from_starting_cash():
    r = m.bar_returns(EQUITY, CASH)
    assert r.tolist() == approx(list(R))
    assert len(r) == len(EQUITY)


def test_hand_computed_mean_and_sd():
    # sanity of the constants themselves: 2/27 and a sample sd of ~0.16267
    assert MEAN == approx(2 / 27)
    # deviations 0.1 - 2/27 = 7/270, -0.1 - 2/27 = -47/270, 2/9 - 2/27 = 40/270
    var = ((7 / 270) ** 2 + (47 / 270) ** 2 + (40 / 270) ** 2) / 2
    assert SD == approx(math.sqrt(var))


def test_total_return_final_equity_and_cagr():
    out = m.compute_metrics(EQUITY, starting_cash=CASH)
    assert out["total_return"] == approx(0.21)
    assert out["final_equity"] == 121.0
    # 3 bars, 252 per year: 1.21 ** 84 - 1
    assert out["cagr"] == approx(1.21**84 - 1)


def test_probabilistic_sharpe_by_hand():
    # r = 0.1, -0.1, 2/9 (deviations 7, -47, 40 in 270ths): population moments
    d = [7 / 270, -47 / 270, 40 / 270]
    m2, m3, m4 = (sum(x ** k for x in d) / 3 for k in (2, 3, 4))
    g3, g4 = m3 / m2 ** 1.5, m4 / m2 ** 2
    sr = MEAN / SD
    z = sr * math.sqrt(2) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2)
    out = m.compute_metrics(EQUITY, starting_cash=CASH)
    assert out["psr"] == approx(0.5 * (1 + math.erf(z / math.sqrt(2))))
    # against a benchmark: the same formula with the benchmark's per-bar Sharpe ratio as
    # the threshold; a curve against itself sits at one half
    same = m.compute_metrics(EQUITY, starting_cash=CASH, benchmark_equity=EQUITY,
                             benchmark_start=CASH)
    assert same["psr_benchmark"] == approx(0.5)
    assert is_nan(m.compute_metrics([100.0, 101.0], starting_cash=100.0)["psr"])


def test_cagr_edge_cases():
    assert is_nan(m.cagr([100.0]))  # n = 0
    assert m.cagr([100.0, 50.0, 0.0]) == -1.0
    assert m.cagr([100.0, 50.0, -10.0]) == -1.0
    # 252 bars doubling: exactly 100 % a year
    assert m.cagr([100.0] + [100.0] * 251 + [200.0]) == approx(1.0)


def test_volatility_sharpe_sortino_by_hand():
    out = m.compute_metrics(EQUITY, starting_cash=CASH)
    assert out["volatility"] == approx(SD * math.sqrt(252))
    assert out["sharpe"] == approx(MEAN / SD * math.sqrt(252))
    # only r2 = -0.1 is below 0; its square 0.01 averaged over all 3 bars
    assert out["sortino"] == approx(MEAN / math.sqrt(0.01 / 3) * math.sqrt(252))


def test_sortino_denominator_averages_over_every_bar():
    r = [0.1, -0.1, 0.2, -0.05]
    mean = (0.1 - 0.1 + 0.2 - 0.05) / 4  # 0.0375
    every_bar = math.sqrt((0.01 + 0.0025) / 4)
    negatives_only = math.sqrt((0.01 + 0.0025) / 2)
    got = m.sortino(r)
    assert got == approx(mean / every_bar * math.sqrt(252))
    assert got != pytest.approx(mean / negatives_only * math.sqrt(252))
    # the sample std of the negative bars is yet another (wrong) answer
    assert got != pytest.approx(mean / math.sqrt((0.1 - 0.075) ** 2 * 2) * math.sqrt(252))


def test_sortino_nan_without_downside():
    assert is_nan(m.sortino([0.01, 0.02, 0.0]))
    assert is_nan(m.sortino([]))


def test_sharpe_nan_when_flat_or_too_short():
    assert is_nan(m.sharpe([0.01]))
    assert is_nan(m.sharpe([0.01] * 1000))  # constant: std is rounding noise
    assert is_nan(m.sharpe([0.0, 0.0, 0.0]))
    out = m.compute_metrics([100.0, 100.0, 100.0], starting_cash=100.0)
    assert is_nan(out["sharpe"]) and is_nan(out["sortino"])
    assert out["volatility"] == 0.0


def test_preset_365_scales_by_sqrt_ratio():
    a = m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year=252)
    b = m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year="365")
    c = m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year=365)
    assert b == c
    assert b["volatility"] / a["volatility"] == approx(math.sqrt(365 / 252))
    assert b["sharpe"] / a["sharpe"] == approx(math.sqrt(365 / 252))
    assert b["volatility"] == approx(SD * math.sqrt(365))
    assert b["cagr"] == approx(1.21 ** (365 / 3) - 1)
    assert m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year="252") == a
    assert m.PRESETS == {"252": 252, "365": 365}


def test_risk_free_is_annual_and_converted_per_bar():
    rf_bar = 1.05 ** (1 / 252) - 1  # ~0.0001936
    assert m.per_bar_rate(0.05) == approx(rf_bar)
    assert (1 + m.per_bar_rate(0.05)) ** 252 == approx(1.05)
    assert m.per_bar_rate(0.05, "365") == approx(1.05 ** (1 / 365) - 1)
    out = m.compute_metrics(EQUITY, starting_cash=CASH, risk_free=0.05)
    assert out["sharpe"] == approx((MEAN - rf_bar) / SD * math.sqrt(252))
    # excess returns 0.1-rf, -0.1-rf, 2/9-rf: only the second is negative
    down = math.sqrt((-0.1 - rf_bar) ** 2 / 3)
    assert out["sortino"] == approx((MEAN - rf_bar) / down * math.sqrt(252))
    # volatility does not depend on the risk-free rate
    assert out["volatility"] == approx(SD * math.sqrt(252))


# --------------------------------------------------------------------------- drawdowns


def test_known_drawdown_peak_120_trough_90():
    E = [100.0, 120.0, 90.0, 100.0, 130.0]
    assert m.drawdown_series(E).tolist() == approx([0.0, 0.0, 0.25, 1 - 100 / 120, 0.0])
    assert m.max_drawdown(E) == 0.25
    # peak 120 at index 1, regained at index 4 (130): 3 bars
    assert m.max_drawdown_duration(E) == 3
    out = m.compute_metrics(E[1:], starting_cash=E[0])
    assert out["max_drawdown"] == 0.25
    assert out["max_drawdown_duration"] == 3.0


def test_reference_curve_drawdown_and_calmar():
    out = m.compute_metrics(EQUITY, starting_cash=CASH)
    assert out["max_drawdown"] == approx(0.1)  # 1 - 99/110
    assert out["max_drawdown_duration"] == 2.0  # peak 110 (index 1) -> 121 (index 3)
    assert out["calmar"] == approx((1.21**84 - 1) / 0.1)


def test_drawdown_includes_starting_point():
    # first bar already below the starting cash: 1 - 80/100
    E = [100.0, 80.0, 90.0]
    assert m.max_drawdown(E) == approx(0.2)
    assert m.max_drawdown_duration(E) == 2  # peak at index 0, never regained, data end at 2


def test_drawdown_duration_docstring_example_and_edge_cases():
    assert m.max_drawdown_duration([100, 120, 90, 110, 125, 100]) == 3
    # unrecovered at the end counts up to the last bar: peak at 1, end at 3
    assert m.max_drawdown_duration([100, 120, 90, 100]) == 2
    # regaining the peak exactly ends the drawdown
    assert m.max_drawdown_duration([100, 120, 90, 120, 119]) == 2
    # the peak is the last bar at the running maximum: 120 at index 2
    assert m.max_drawdown_duration([100, 120, 120, 90, 130]) == 2
    # the longer of two drawdowns wins even if shallower
    assert m.max_drawdown_duration([100, 99, 99.5, 99, 98, 101, 50, 102]) == 5
    assert m.max_drawdown([100, 99, 99.5, 99, 98, 101, 50, 102]) == approx(1 - 50 / 101)
    # never below a peak
    assert m.max_drawdown_duration([100, 100, 110, 120]) == 0
    assert m.max_drawdown([100, 100, 110, 120]) == 0.0
    assert m.max_drawdown_duration([100]) == 0
    out = m.compute_metrics([100.0, 110.0], starting_cash=100.0)
    assert out["max_drawdown"] == 0.0 and is_nan(out["calmar"])


def _duration_by_loop(E):
    """Straight from the definition: every peak bar p, scanned forward to recovery."""
    best = 0
    for p in range(len(E) - 1):
        if E[p] >= max(E[: p + 1]) and E[p + 1] < E[p]:  # p is a peak followed by a fall
            later = [t for t in range(p + 1, len(E)) if E[t] >= E[p]]
            q = later[0] if later else len(E) - 1
            best = max(best, q - p)
    return best


def test_drawdown_duration_matches_a_loop_on_random_walks():
    rng = np.random.default_rng(7)
    for _ in range(200):
        E = 100 * np.cumprod(1 + rng.normal(0, 0.02, size=rng.integers(1, 60)))
        E = np.round(E, 1)  # create ties with earlier peaks
        assert m.max_drawdown_duration(E) == _duration_by_loop(E.tolist())


# --------------------------------------------------------------------------- trades


def test_trade_metrics_by_hand():
    pnl = [30.0, -10.0, 0.0, 20.0, -20.0]
    ret = [0.03, -0.01, 0.0, 0.02, -0.025]
    t = m.trade_metrics(pnl, ret)
    assert t["trades"] == 5.0
    assert t["hit_rate"] == approx(2 / 5)  # the zero-P&L trade is not a hit
    assert t["profit_factor"] == approx(50 / 30)
    assert t["expectancy"] == approx(20 / 5)
    assert t["avg_win"] == approx(25.0)
    assert t["avg_loss"] == approx(-15.0)
    assert t["best_trade"] == 0.03
    assert t["worst_trade"] == -0.025


def test_zero_pnl_trades_are_not_hits():
    t = m.trade_metrics([0.0, 0.0, 5.0, -1.0])
    assert t["hit_rate"] == 0.25
    assert t["expectancy"] == 1.0


def test_profit_factor_edge_cases():
    assert m.trade_metrics([10.0, 5.0])["profit_factor"] == math.inf
    assert m.trade_metrics([10.0, 0.0])["profit_factor"] == math.inf
    assert m.trade_metrics([-3.0, 0.0])["profit_factor"] == 0.0
    assert is_nan(m.trade_metrics([0.0, 0.0])["profit_factor"])
    none = m.trade_metrics()
    assert none["trades"] == 0.0
    for key in (
        "hit_rate",
        "profit_factor",
        "expectancy",
        "avg_win",
        "avg_loss",
        "best_trade",
        "worst_trade",
    ):
        assert is_nan(none[key]), key


def test_avg_win_loss_nan_when_absent():
    t = m.trade_metrics([1.0, 2.0])
    assert t["avg_win"] == 1.5 and is_nan(t["avg_loss"])
    assert is_nan(t["best_trade"])  # no returns given


# --------------------------------------------------------------------------- exposure


def test_exposure_from_flags_or_fraction():
    out = m.compute_metrics(EQUITY, starting_cash=CASH, in_market=[True, False, True])
    assert out["exposure"] == approx(2 / 3)
    assert m.compute_metrics(EQUITY, starting_cash=CASH, in_market=0.4)["exposure"] == 0.4
    assert m.exposure(np.array([1, 0, 0, 0]), 4) == 0.25
    assert is_nan(m.compute_metrics(EQUITY, starting_cash=CASH)["exposure"])


def test_exposure_errors():
    with pytest.raises(ParameterError, match="one flag per bar"):
        m.compute_metrics(EQUITY, starting_cash=CASH, in_market=[True, False])
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        m.compute_metrics(EQUITY, starting_cash=CASH, in_market=1.5)


# --------------------------------------------------------------------------- benchmark


def test_beta_against_itself_is_one():
    out = m.compute_metrics(
        EQUITY, starting_cash=CASH, benchmark_equity=EQUITY, benchmark_start=CASH
    )
    assert out["beta"] == approx(1.0)
    assert out["benchmark_return"] == approx(0.21)


def test_beta_of_twice_levered_returns_is_two():
    rb = [0.01, -0.02, 0.015, 0.03, -0.01]
    bench, strat = [1000.0], [50.0]
    for x in rb:
        bench.append(bench[-1] * (1 + x))
        strat.append(strat[-1] * (1 + 2 * x))
    out = m.compute_metrics(
        strat[1:], starting_cash=strat[0], benchmark_equity=bench[1:], benchmark_start=bench[0]
    )
    assert out["beta"] == approx(2.0, rel=1e-9)
    assert out["benchmark_return"] == approx(bench[-1] / 1000.0 - 1)


def test_beta_by_hand_and_flat_benchmark():
    # r = [0.1, -0.1, 2/9]; r_b = [0.0, 0.1, 0.0]: mean_b = 1/30
    mb = 0.1 / 3
    cov = ((0.1 - MEAN) * (0 - mb) + (-0.1 - MEAN) * (0.1 - mb) + (2 / 9 - MEAN) * (0 - mb)) / 2
    var = ((0 - mb) ** 2 * 2 + (0.1 - mb) ** 2) / 2
    out = m.compute_metrics(
        EQUITY, starting_cash=CASH, benchmark_equity=[10.0, 11.0, 11.0], benchmark_start=10.0
    )
    assert out["beta"] == approx(cov / var)
    flat = m.compute_metrics(
        EQUITY, starting_cash=CASH, benchmark_equity=[5.0, 5.0, 5.0], benchmark_start=5.0
    )
    assert is_nan(flat["beta"]) and flat["benchmark_return"] == 0.0


def test_benchmark_errors():
    with pytest.raises(ParameterError, match="benchmark_start is required"):
        m.compute_metrics(EQUITY, starting_cash=CASH, benchmark_equity=EQUITY)
    with pytest.raises(ParameterError, match="benchmark_equity has 2 values but equity has 3"):
        m.compute_metrics(
            EQUITY, starting_cash=CASH, benchmark_equity=[1.0, 2.0], benchmark_start=1.0
        )
    with pytest.raises(ParameterError, match="without benchmark_equity"):
        m.compute_metrics(EQUITY, starting_cash=CASH, benchmark_start=1.0)


# --------------------------------------------------------------------------- report shape


def test_keys_order_and_types():
    out = m.compute_metrics(EQUITY, starting_cash=CASH, trade_pnl=[1.0], trade_return=[0.01])
    assert list(out) == [
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
    ]
    assert all(type(v) is float for v in out.values())
    with_b = m.compute_metrics(
        EQUITY, starting_cash=CASH, benchmark_equity=EQUITY, benchmark_start=CASH
    )
    assert list(with_b) == [*m.METRIC_KEYS, "benchmark_return", "beta", "psr_benchmark",
                            "tracking_error", "information_ratio", "alpha"]
    assert all(type(v) is float for v in with_b.values())


def test_no_bars():
    out = m.compute_metrics([], starting_cash=100.0)
    assert out["total_return"] == 0.0 and out["final_equity"] == 100.0
    assert out["max_drawdown"] == 0.0 and out["max_drawdown_duration"] == 0.0
    for key in ("cagr", "volatility", "sharpe", "sortino", "calmar"):
        assert is_nan(out[key]), key


def test_accepts_pandas_and_polars_series():
    ref = m.compute_metrics(EQUITY, starting_cash=CASH)
    assert m.compute_metrics(pd.Series(EQUITY), starting_cash=CASH) == ref
    assert m.compute_metrics(pl.Series(EQUITY), starting_cash=CASH) == ref
    assert m.compute_metrics(np.array(EQUITY), starting_cash=np.float64(CASH)) == ref


def test_ruined_account_returns_are_nan():
    # equity reaches 0 at bar 2: the return of bar 3 is undefined
    out = m.compute_metrics([50.0, 0.0, 10.0], starting_cash=100.0)
    assert m.bar_returns([50.0, 0.0, 10.0], 100.0)[:2].tolist() == [-0.5, -1.0]
    assert is_nan(m.bar_returns([50.0, 0.0, 10.0], 100.0)[2])
    assert is_nan(out["volatility"]) and is_nan(out["sharpe"]) and is_nan(out["sortino"])
    assert out["max_drawdown"] == 1.0
    assert out["total_return"] == approx(-0.9)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ["daily", "0", "-5", 0, -252, float("nan"), None, True])
def test_periods_per_year_error_names_parameter_value_and_choices(bad):
    with pytest.raises(ParameterError) as info:
        m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year=bad)
    msg = str(info.value)
    assert "periods_per_year" in msg
    assert repr(bad) in msg
    assert "'252'" in msg and "'365'" in msg


@pytest.mark.parametrize(("given", "bars"), [("250", 250.0), (" 98280 ", 98280.0),
                                             (52, 52.0), ("365", 365.0)])
def test_periods_per_year_takes_any_positive_number_as_number_or_text(given, bars):
    assert m.resolve_periods_per_year(given) == bars
    r = m.bar_returns(EQUITY, CASH)
    assert m.compute_metrics(EQUITY, starting_cash=CASH, periods_per_year=given)["volatility"] \
        == approx(np.std(r, ddof=1) * math.sqrt(bars))


def test_non_finite_equity_error():
    with pytest.raises(ParameterError, match=r"equity must be finite.*index 1 \(nan\)"):
        m.compute_metrics([100.0, float("nan"), 101.0], starting_cash=CASH)
    with pytest.raises(ParameterError, match=r"index 2 \(inf\)"):
        m.compute_metrics([100.0, 101.0, float("inf")], starting_cash=CASH)
    with pytest.raises(ParameterError, match="1-D"):
        m.compute_metrics([[100.0, 101.0]], starting_cash=CASH)
    with pytest.raises(ParameterError, match="equity must be a 1-D array of numbers"):
        m.compute_metrics(["a", "b"], starting_cash=CASH)


@pytest.mark.parametrize("bad", [0, -100.0, float("nan"), float("inf"), "abc", None])
def test_starting_cash_error(bad):
    with pytest.raises(ParameterError, match=r"starting_cash=.* must be a finite number > 0"):
        m.compute_metrics(EQUITY, starting_cash=bad)


def test_other_parameter_errors():
    with pytest.raises(ParameterError, match="risk_free"):
        m.compute_metrics(EQUITY, starting_cash=CASH, risk_free=-1.0)
    with pytest.raises(ParameterError, match="trade_return has 1 values but trade_pnl has 2"):
        m.trade_metrics([1.0, 2.0], [0.1])
    with pytest.raises(ParameterError, match="trade_pnl must be finite"):
        m.trade_metrics([1.0, float("nan")])


# --------------------------------------------------------------------------- periods from data


def _weekdays(start: str, n: int) -> np.ndarray:
    days = np.arange(np.datetime64(start), np.datetime64(start) + 3 * n)
    return days[(days.astype(np.int64) + 3) % 7 < 5][:n].astype("datetime64[ns]")


def test_periods_per_year_read_off_the_data():
    from engine.analysis.conventions import infer_periods_per_year

    every_day = np.arange(np.datetime64("2021-01-01"), np.datetime64("2022-01-01"))
    minutes = np.concatenate([d + np.timedelta64(870, "m") + np.arange(390).astype(
        "timedelta64[m]") for d in _weekdays("2024-01-01", 10).astype("datetime64[m]")])
    weekly = np.arange(0, 700, 7).astype("timedelta64[D]") + np.datetime64("2020-01-06")
    monthly = np.arange("2000-01", "2010-01", dtype="datetime64[M]").astype("datetime64[D]")
    cases = [(_weekdays("2024-01-01", 300), 252.0, "daily bars, weekdays only"),
             (every_day, 365.0, "daily bars, weekends included"),
             (minutes, 98280.0, "intraday: 390 bars a day × 252 days"),
             (weekly, 52.0, "weekly bars"), (monthly, 12.0, "monthly bars"),
             (every_day[:1], 252.0, "fewer than two bars")]
    for ts, bars, reason in cases:
        got, why = infer_periods_per_year(ts)
        assert got == bars and why.startswith(reason), (reason, got, why)


def test_a_run_annualises_by_its_data_unless_told(tmp_path):
    import engine

    btc = engine.run("strategies/buy_and_hold.py", "datasets/btc_daily.parquet",
                     start="2020-01-01", end="2021-12-31")
    assert btc.settings["periods_per_year"] == 365.0
    assert btc.settings["periods_per_year_from"] == "daily bars, weekends included"
    spx = engine.run("strategies/buy_and_hold.py", start="2020-01-01", end="2021-12-31")
    assert spx.settings["periods_per_year"] == 252.0
    told = engine.run("strategies/buy_and_hold.py", start="2020-01-01", end="2021-12-31",
                      periods_per_year=250)
    assert told.settings["periods_per_year_from"] == "given"
    assert told.metrics["volatility"] == approx(spx.metrics["volatility"] * math.sqrt(250 / 252))
