"""engine.strategy.indicators against independent computations: pandas where the definitions
match, plain-Python loops and exact rationals where they do not, and values worked
out by hand in the comments."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import polars as pl
import pytest

from engine._core import kernels
from engine.errors import ParameterError
from engine.strategy import indicators as ind

NAN = np.nan


def same(a, b):
    """Bit-for-bit equal, NaN equal to NaN."""
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture(scope="module")
def prices(rng):
    """2-decimal random walk, 3000 bars."""
    return np.round(100.0 + np.cumsum(rng.normal(0.0, 0.5, 3000)), 2)


@pytest.fixture(scope="module")
def floats(rng):
    """Full-precision floats (not decimals), 3000 bars."""
    return 100.0 + np.cumsum(rng.normal(0.0, 0.5, 3000)) + rng.random(3000) * 1e-3


@pytest.fixture(scope="module")
def panel(rng):
    """(n_bars, 4): 2-decimal prices, raw floats, 3-decimal prices, prices with NaN gaps."""
    n = 1500
    cols = [
        np.round(50 + np.cumsum(rng.normal(0, 0.3, n)), 2),
        80 + np.cumsum(rng.normal(0, 0.3, n)),
        np.round(20 + np.cumsum(rng.normal(0, 0.05, n)), 3),
        np.round(30 + np.cumsum(rng.normal(0, 0.3, n)), 2),
    ]
    cols[3][:40] = NAN                      # listed late
    cols[3][[300, 301, 777, 1200]] = NAN    # gaps
    cols[1][900:905] = np.round(cols[1][900:905], 2)   # a decimal stretch in a float column
    return np.column_stack(cols)


# --------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------

def ema_ref(x, span=None, alpha=None):
    """Plain loop: SMA seed over `span` clean values (1 without span), restart after NaN."""
    seed = span or 1
    a = alpha if alpha is not None else 2.0 / (span + 1.0)
    out, prev, run = [], NAN, []
    for v in x:
        if math.isnan(v):
            prev, run = NAN, []
        elif math.isnan(prev):
            run.append(v)
            if len(run) == seed:
                prev = math.fsum(run) / seed
        else:
            prev = a * v + (1.0 - a) * prev
        out.append(prev)
    return np.array(out)


def rsi_ref(x, w):
    """Plain loop: Wilder's RSI, restarting after a NaN price."""
    out, gains, losses, ag, al = [NAN], [], [], NAN, NAN
    for t in range(1, len(x)):
        d = x[t] - x[t - 1]
        if math.isnan(d):
            gains, losses, ag = [], [], NAN
            out.append(NAN)
            continue
        g, lo = max(d, 0.0), max(-d, 0.0)
        if math.isnan(ag):
            gains.append(g)
            losses.append(lo)
            if len(gains) < w:
                out.append(NAN)
                continue
            ag, al = sum(gains) / w, sum(losses) / w
        else:
            ag, al = (ag * (w - 1) + g) / w, (al * (w - 1) + lo) / w
        out.append(50.0 if ag == al == 0 else 100.0 if al == 0 else 100 - 100 / (1 + ag / al))
    return np.array(out)


def exact_decimal_mean(window_values):
    """The mean of the decimal numbers the doubles stand for, correctly rounded."""
    return float(sum(Fraction(repr(float(v))) for v in window_values) / len(window_values))


def naive_sma(x, w):
    """The textbook rolling mean from a difference of cumulative sums (drifts)."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    return np.concatenate([np.full(w - 1, NAN), (c[w:] - c[:-w]) / w])


def windows(x, w):
    return np.lib.stride_tricks.sliding_window_view(x, w)


# --------------------------------------------------------------------------------------
# sma
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [1, 2, 10, 50])
def test_sma_matches_pandas(prices, floats, w):
    for x in (prices, floats):
        np.testing.assert_allclose(
            ind.sma(x, w), pd.Series(x).rolling(w).mean().to_numpy(), rtol=1e-13
        )


def test_sma_two_decimal_prices_are_the_correctly_rounded_decimal_mean(prices):
    out = ind.sma(prices[:400], 7)
    expected = [exact_decimal_mean(win) for win in windows(prices[:400], 7)]
    same(out[6:], np.array(expected))


def test_sma_mixed_decimals_and_large_integers_are_exact(rng):
    # values with 0..4 decimals mixed in every window, and integer volumes ~1e9
    ticks = rng.integers(-10**7, 10**7, 600)
    places = rng.integers(0, 5, 600)
    mixed = np.array([int(k) / 10**int(d) for k, d in zip(ticks, places, strict=True)])
    volume = rng.integers(10**8, 3 * 10**9, 600).astype(float)
    for x in (mixed, volume):
        for w in (3, 16):
            expected = [exact_decimal_mean(win) for win in windows(x, w)]
            same(ind.sma(x, w)[w - 1:], np.array(expected))


def test_sma_ties_stay_ties_after_a_million_bars():
    # A million bars of 2-decimal random walk, then ten prices and ten others with the
    # same sum: at the last of them the 10- and 20-bar means are exactly equal. The
    # same again after more bars, and a flat stretch of 20 equal prices.
    rng = np.random.default_rng(0)
    walk = np.round(100.0 + np.cumsum(rng.normal(0.0, 0.05, 1_000_000)), 2)
    first = np.array([100.1, 100.2, 100.3, 99.9, 100.7, 100.05, 99.95, 100.4, 100.33, 100.01])
    moves = [0.01, -0.01, 0.02, -0.02, 0.03, -0.03, 0.05, -0.05, 0.07, -0.07]
    second = np.round(first + moves, 2)
    assert sum(Fraction(repr(float(v))) for v in first) == sum(
        Fraction(repr(float(v))) for v in second)
    x = np.concatenate([walk, first, second, walk[:1000], second, first, np.full(20, 123.45)])
    crafted = [1_000_019, len(x) - 21]
    flat = len(x) - 1

    diff = ind.sma(x, 10) - ind.sma(x, 20)
    for t in [*crafted, flat]:
        assert diff[t] == 0.0
    assert (diff[crafted[0] - 5:crafted[0]] != 0).all()     # not a constant difference

    # The test is meaningful: the textbook difference of running sums misses the
    # crafted ties by ~1e-9 here (1e-12 and more at any length), a false cross.
    naive_diff = naive_sma(x, 10) - naive_sma(x, 20)
    misses = np.abs(naive_diff[crafted])
    assert (misses > 1e-13).all(), misses


def test_sma_float_data_is_compensated_without_drift(rng):
    # Non-decimal floats with a few huge values: once a spike leaves the window the
    # mean must be as accurate as if it had never been there.
    x = 1.0 + rng.random(20_000)
    x[[1000, 5000, 12_000]] = [3e15, -7e14, 1e13]
    w = 25
    out = ind.sma(x, w)
    t = np.arange(w - 1, len(x))
    expected = np.array([math.fsum(x[i - w + 1:i + 1]) / w for i in t])
    np.testing.assert_allclose(out[t], expected, rtol=2e-16, atol=0)
    # while drift-prone float64 cumulative sums are visibly off
    naive = naive_sma(x, w)[t]
    assert np.max(np.abs(naive - expected) / expected) > 1e-6


def test_sma_switches_between_exact_and_compensated_windows(prices, floats):
    x = prices.copy()
    x[500:520] = floats[500:520]            # a non-decimal stretch
    x[1500] = floats[1500]                  # a single one
    w = 12
    out = ind.sma(x, w)
    expected = np.array([math.fsum(win) / w for win in windows(x, w)])
    np.testing.assert_allclose(out[w - 1:], expected, rtol=1e-15)
    clean = np.arange(w - 1, len(x))
    clean = clean[(clean < 500) | ((clean >= 520 + w - 1) & (clean < 1500))]
    exact = np.array([exact_decimal_mean(x[i - w + 1:i + 1]) for i in clean])
    same(out[clean], exact)


def test_sma_decimals_too_large_to_sum_exactly_fall_back_to_compensated(rng):
    # Integers near 1e14 and 8-decimal values are each exact in ticks, but their sum
    # in 1e-8 ticks passes 2**53: those windows must take the compensated sum.
    x = np.where(rng.random(400) < 0.5, 1e14 + rng.integers(0, 1000, 400),
                 np.round(rng.random(400), 8))
    w = 4
    expected = np.array([math.fsum(win) / w for win in windows(x, w)])
    np.testing.assert_allclose(ind.sma(x, w)[w - 1:], expected, rtol=1e-15)


def test_sma_depends_only_on_its_window(prices):
    # Each exact value is a function of its own window: the same result whatever
    # came before (no history, no look at the whole series).
    w, k = 20, 777
    same(ind.sma(prices[k:], w)[w - 1:], ind.sma(prices, w)[k + w - 1:])


def test_sma_nan_and_inf_policy():
    x = np.array([1.0, 2.0, NAN, 4.0, 5.0, 6.0, np.inf, 7.0, 8.0, -np.inf, 9.0, 10.0, 11.0])
    out = ind.sma(x, 2)
    # window:  -  [1,2] [2,n] [n,4] [4,5] [5,6] [6,i] [i,7] [7,8] [8,-i] [-i,9] [9,10] [10,11]
    same(out, [NAN, 1.5, NAN, NAN, 4.5, 5.5, np.inf, np.inf, 7.5, -np.inf, -np.inf, 9.5, 10.5])
    same(ind.sma([np.inf, -np.inf, 1.0, 2.0], 2), [NAN, NAN, -np.inf, 1.5])
    same(ind.sma([NAN, NAN, 3.0, 4.0], 2), [NAN, NAN, NAN, 3.5])


# --------------------------------------------------------------------------------------
# ema and macd
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("span", [1, 3, 12, 26])
def test_ema_matches_a_plain_loop_with_an_sma_seed(prices, floats, span):
    for x in (prices, floats):
        out = ind.ema(x, span)
        np.testing.assert_allclose(out, ema_ref(x, span), rtol=1e-12)
        assert np.isnan(out[: span - 1]).all() and not np.isnan(out[span - 1:]).any()
        same(out[span - 1], ind.sma(x, span)[span - 1])    # the seed, bit for bit


def test_ema_by_hand():
    # span 3: alpha = 0.5, seed = mean(2, 4, 6) = 4 at index 2;
    # then 4 + 0.5 * (10 - 4) = 7, then 7 + 0.5 * (1 - 7) = 4
    same(ind.ema([2.0, 4.0, 6.0, 10.0, 1.0], 3), [NAN, NAN, 4.0, 7.0, 4.0])
    # constant input stays exactly constant
    same(ind.ema(np.full(50, 0.1), 7)[6:], np.full(44, 0.1))


def test_ema_alpha_alone_starts_at_the_first_value_like_pandas(floats):
    out = ind.ema(floats, alpha=0.2)
    ref = pd.Series(floats).ewm(alpha=0.2, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # span and alpha together: span is the seed window only (Wilder's smoothing)
    np.testing.assert_allclose(ind.ema(floats, 14, alpha=1 / 14), ema_ref(floats, 14, 1 / 14),
                               rtol=1e-12)


def test_ema_restarts_after_nan():
    x = np.array([NAN, 1.0, 2.0, 3.0, 4.0, NAN, 5.0, 6.0, 7.0, 8.0])
    # span 2 (alpha 2/3): seed mean(1,2) = 1.5 at index 2; 1.5 + 2/3 * 1.5 = 2.5;
    # 2.5 + 2/3 * 1.5 = 3.5; NaN; seed again mean(5, 6) = 5.5 at index 7; ...
    out = ind.ema(x, 2)
    np.testing.assert_allclose(out, [NAN, NAN, 1.5, 2.5, 3.5, NAN, NAN, 5.5, 6.5, 7.5])
    np.testing.assert_allclose(out, ema_ref(x, 2))


def test_macd(floats):
    m = ind.macd(floats)
    assert isinstance(m, ind.MACD) and isinstance(m, tuple)
    line = ema_ref(floats, 12) - ema_ref(floats, 26)
    signal = np.full_like(line, NAN)
    signal[25:] = ema_ref(line[25:], 9)
    np.testing.assert_allclose(m.macd, line, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.signal, signal, rtol=1e-9, atol=1e-12)
    same(m.histogram, m.macd - m.signal)
    assert np.isnan(m.macd[:25]).all() and not np.isnan(m.macd[25:]).any()
    assert np.isnan(m.signal[:33]).all() and not np.isnan(m.signal[33:]).any()  # 26 + 9 - 2
    fast, slow, sig = ind.macd(floats, 3, 5, 2)
    assert np.isnan(sig[:5]).all() and not np.isnan(sig[5:]).any()


# --------------------------------------------------------------------------------------
# rsi
# --------------------------------------------------------------------------------------

def test_rsi_textbook_by_hand():
    x = [10, 11, 10.5, 11.5, 12, 11, 11.5, 12.5, 13, 12, 12.5, 13.5, 13, 14, 15, 14]
    # changes 1..14: +1 -.5 +1 +.5 -1 +.5 +1 +.5 -1 +.5 +1 -.5 +1 +1
    # gains sum 8.0, losses sum 3.0 -> avg gain 8/14, avg loss 3/14, RS 8/3
    # RSI[14] = 100 - 100 / (1 + 8/3) = 800/11 = 72.7272...
    # change 15: -1 -> avg gain (8/14 * 13 + 0) / 14 = 104/196,
    #                  avg loss (3/14 * 13 + 1) / 14 = 53/196, RS 104/53
    # RSI[15] = 100 - 100 / (1 + 104/53) = 10400/157 = 66.2420...
    out = ind.rsi(x, 14)
    assert np.isnan(out[:14]).all()
    assert out[14] == pytest.approx(800 / 11, rel=1e-14)
    assert out[15] == pytest.approx(10400 / 157, rel=1e-14)


@pytest.mark.parametrize("w", [1, 2, 14, 30])
def test_rsi_matches_a_plain_loop(prices, floats, w):
    for x in (prices, floats):
        np.testing.assert_allclose(ind.rsi(x, w), rsi_ref(x, w), rtol=1e-11)


def test_rsi_edge_values_and_nan_restart():
    same(ind.rsi(np.full(10, 5.0), 3)[3:], np.full(7, 50.0))            # no movement
    same(ind.rsi(np.arange(10.0), 3)[3:], np.full(7, 100.0))             # only gains
    same(ind.rsi(np.arange(10.0)[::-1], 3)[3:], np.full(7, 0.0))         # only losses
    x = np.array([1.0, 2.0, 1.0, 2.0, NAN, 3.0, 4.0, 3.0, 4.0, 5.0])
    out = ind.rsi(x, 2)
    # changes [-, +1, -1, +1, n, n, +1, -1, +1, +1]; seed needs 2 clean changes
    assert np.isnan(out[[0, 1, 4, 5, 6]]).all()
    np.testing.assert_allclose(out, rsi_ref(x, 2))
    assert out[7] == pytest.approx(50.0)        # gains (1+0)/2, losses (0+1)/2


# --------------------------------------------------------------------------------------
# rolling_std, volatility, rolling_corr
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("w", "ddof"), [(2, 1), (10, 1), (10, 0), (60, 1), (1, 0)])
def test_rolling_std_matches_two_pass_reference(floats, prices, w, ddof):
    for x in (floats, prices, 1e9 + floats * 1e-3):    # large mean, tiny variance
        win = windows(x, w)
        # two passes on values shifted by the window's first one (exact subtraction):
        # a plain two-pass std loses digits to the rounding of a mean near 1e9
        expected = np.std(win - win[:, :1], axis=1, ddof=ddof)
        out = ind.rolling_std(x, w, ddof)
        assert np.isnan(out[: w - 1]).all()
        np.testing.assert_allclose(out[w - 1:], expected, rtol=1e-8, atol=1e-12)
    # pandas' online update loses ~1e-9 on windows of nearly equal values (checked
    # against exact rationals: the values here are the exact ones), hence the looser rtol
    np.testing.assert_allclose(ind.rolling_std(floats, w, ddof),
                               pd.Series(floats).rolling(w).std(ddof=ddof), rtol=1e-7)


def test_rolling_std_flat_window_is_exactly_zero_and_nan_policy():
    x = np.concatenate([[1.3, 7.1, 0.2], np.full(6, 0.1), [NAN, 2.0, 3.0, np.inf, 4.0, 5.0, 6.0]])
    out = ind.rolling_std(x, 3)
    same(out[5:9], np.zeros(4))
    assert np.isnan(out[[9, 10, 11, 12, 13, 14]]).all()
    assert out[15] == pytest.approx(1.0)            # std(4, 5, 6)


def test_volatility_matches_pandas(floats):
    out = ind.volatility(floats, 20)
    ref = pd.Series(floats).pct_change().rolling(20).std().to_numpy() * math.sqrt(252)
    np.testing.assert_allclose(out, ref, rtol=1e-9)
    assert np.isnan(out[:20]).all() and not np.isnan(out[20:]).any()
    np.testing.assert_allclose(ind.volatility(floats, 20, periods_per_year=365),
                               out * math.sqrt(365 / 252), rtol=1e-12)


def test_rolling_corr_matches_pandas(rng, floats):
    y = 0.3 * floats + rng.normal(0, 1.0, len(floats))
    for w in (2, 5, 40):
        np.testing.assert_allclose(
            ind.rolling_corr(floats, y, w),
            pd.Series(floats).rolling(w).corr(pd.Series(y)).to_numpy(), rtol=1e-8, atol=1e-10,
        )


def test_rolling_corr_panel_against_one_series_and_policy(rng):
    market = np.cumsum(rng.normal(size=300))
    stocks = np.column_stack([market * 2 + 1, -market, rng.normal(size=300)])
    out = ind.rolling_corr(stocks, market, 30)
    assert out.shape == (300, 3)
    same(out, ind.rolling_corr(market, stocks, 30))
    np.testing.assert_allclose(out[29:, 0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(out[29:, 1], -1.0, rtol=1e-12)
    assert np.abs(out[29:]).max() <= 1.0
    for j in range(3):
        same(out[:, j], ind.rolling_corr(stocks[:, j], market, 30))
    # constant side, NaN, inf
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, NAN, 7.0, 8.0, 9.0, 10.0])
    y = np.array([5.0, 5.0, 5.0, 1.0, 2.0, 3.0, np.inf, 1.0, 3.0, 2.0])
    out = ind.rolling_corr(x, y, 3)
    assert np.isnan(out[[0, 1, 2, 5, 6, 7, 8]]).all()
    assert out[4] == pytest.approx(np.corrcoef(x[2:5], y[2:5])[0, 1])
    assert out[9] == pytest.approx(np.corrcoef(x[7:10], y[7:10])[0, 1])


# --------------------------------------------------------------------------------------
# rolling_max / rolling_min
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [1, 2, 3, 7, 64, 3000, 3001])
def test_rolling_max_min_match_pandas_and_numpy(floats, w):
    x = floats.copy()
    x[[5, 6, 100, 1999]] = NAN
    s = pd.Series(x)
    same(ind.rolling_max(x, w), s.rolling(w).max().to_numpy())
    same(ind.rolling_min(x, w), s.rolling(w).min().to_numpy())
    # pandas turns windows holding ±inf into NaN; here they are ordinary values
    x[[50, 51, 2500]] = [np.inf, -np.inf, np.inf]
    expected = np.full((2, len(x)), NAN)
    if w <= len(x):
        expected[0, w - 1:] = windows(x, w).max(axis=1)     # NaN propagates
        expected[1, w - 1:] = windows(x, w).min(axis=1)
    same(ind.rolling_max(x, w), expected[0])
    same(ind.rolling_min(x, w), expected[1])
    assert ind.rolling_high is ind.rolling_max and ind.rolling_low is ind.rolling_min


def test_rolling_max_by_hand():
    x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, NAN, 5.0, 3.0, 5.0]
    same(ind.rolling_max(x, 3), [NAN, NAN, 4, 4, 5, 9, 9, 9, NAN, NAN, NAN, 5])
    same(ind.rolling_min(x, 3), [NAN, NAN, 1, 1, 1, 1, 2, 2, NAN, NAN, NAN, 3])


# --------------------------------------------------------------------------------------
# returns, crossings, days to cover
# --------------------------------------------------------------------------------------

def test_returns(floats):
    same(ind.returns([100.0, 110.0, 99.0, 99.0]), [NAN, 0.1, -0.1, 0.0])
    np.testing.assert_allclose(ind.returns(floats)[1:], floats[1:] / floats[:-1] - 1,
                               rtol=1e-12, atol=1e-15)
    same(ind.returns([1.0, NAN, 2.0, 0.0, 1.0, 0.0, 0.0]), [NAN, NAN, NAN, -1.0, np.inf, -1.0, NAN])
    same(ind.returns(np.array([])), np.array([]))


def test_crossover_by_hand():
    a = np.array([NAN, NAN, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 2.0, 2.0, 2.0, 5.0, NAN, 1.0, 3.0])
    b = np.full(15, 2.0)
    # sign:      n   n   -    0    0    +    +    -    0    0    0    +    n    -    +
    # last ≠0:   .   .   .    -    -    -    +    +    -    -    -    -    +    +    -
    up = [False, False, False, False, False, True, False, False, False, False, False, True,
          False, False, True]
    down = [False] * 7 + [True] + [False] * 5 + [True, False]
    same(ind.crossover(a, b), np.array(up))
    same(ind.crossunder(a, b), np.array(down))
    # a tie touched from above and left upwards is not a cross; the first sign is not one
    same(ind.crossover([3.0, 2.0, 3.0, 2.0, 1.0], 2.0), np.array([False] * 5))
    same(ind.crossunder([3.0, 2.0, 3.0, 2.0, 1.0], 2.0), np.array([False] * 4 + [True]))
    same(ind.crossover([1.0, 3.0], [2.0, 2.0]), np.array([False, True]))
    # scalar on either side, 2-D against 1-D
    same(ind.crossover(2.0, [3.0, 1.0, 3.0]), np.array([False, True, False]))
    panel = np.column_stack([a, -a])
    out = ind.crossover(panel, b)
    assert out.dtype == bool and out.shape == (15, 2)
    same(out[:, 0], np.array(up))
    same(out[:, 1], ind.crossover(-a, b))


def test_crossover_on_sma_ties(rng):
    walk = np.round(100 + np.cumsum(rng.normal(0, 0.2, 5000)), 2)
    x = np.concatenate([walk, np.full(40, walk[-1])])  # fast and slow meet and stay tied
    fast, slow = ind.sma(x, 10), ind.sma(x, 20)
    assert (fast[-20:] - slow[-20:] == 0.0).all()
    assert not ind.crossover(fast, slow)[-20:].any()
    assert not ind.crossunder(fast, slow)[-20:].any()


def test_days_to_cover():
    short = np.array([100.0, 100.0, 300.0, 0.0, 50.0, NAN])
    volume = np.array([50.0, 150.0, 50.0, 0.0, 0.0, 10.0])
    # average volume over 2 bars: n, 100, 100, 25, 0, 5
    same(ind.days_to_cover(short, volume, 2), [NAN, 1.0, 3.0, 0.0, np.inf, NAN])
    same(ind.days_to_cover([0.0, 0.0], [0.0, 0.0], 1), [NAN, NAN])
    out = ind.days_to_cover(np.column_stack([short, 2 * short]), volume, 2)
    same(out[:, 1], 2 * out[:, 0])
    np.testing.assert_allclose(ind.days_to_cover(short, volume),
                               np.full(6, NAN))                        # 30-bar default


# --------------------------------------------------------------------------------------
# Shared behaviour: input types, 2-D, causality, parameters
# --------------------------------------------------------------------------------------

ONE_INPUT = {
    "sma": lambda x: ind.sma(x, 10),
    "sma_1": lambda x: ind.sma(x, 1),
    "ema": lambda x: ind.ema(x, 10),
    "ema_alpha": lambda x: ind.ema(x, alpha=0.3),
    "rsi": lambda x: ind.rsi(x, 14),
    "macd": lambda x: np.stack(ind.macd(x, 5, 13, 4)),
    "rolling_std": lambda x: ind.rolling_std(x, 10),
    "volatility": lambda x: ind.volatility(x, 10),
    "rolling_max": lambda x: ind.rolling_max(x, 10),
    "rolling_min": lambda x: ind.rolling_min(x, 7),
    "returns": ind.returns,
    "rolling_corr": lambda x: ind.rolling_corr(x, np.sin(np.arange(len(x))), 10),
    "crossover": lambda x: ind.crossover(ind.sma(x, 5), ind.sma(x, 10)),
    "crossunder": lambda x: ind.crossunder(x, ind.ema(x, 8)),
    "days_to_cover": lambda x: ind.days_to_cover(x, np.abs(x), 10),
}


@pytest.mark.parametrize("name", ONE_INPUT)
def test_causal_prefix_gives_prefix_of_output(panel, name):
    func = ONE_INPUT[name]
    whole = func(panel)
    for j in range(panel.shape[1]):
        col = func(panel[:, j])
        for m in (1, 9, 10, 11, 45, 301, 302, 520, 903, 1201, 1499):
            same(func(panel[:m, j]), col[..., :m])
        same(func(panel[:1000]), whole[..., :1000, :])


@pytest.mark.parametrize("name", ONE_INPUT)
def test_2d_columns_equal_1d_results(panel, name):
    func = ONE_INPUT[name]
    whole = func(panel)
    assert whole.shape[-2:] == panel.shape
    for j in range(panel.shape[1]):
        same(whole[..., j], func(panel[:, j]))


@pytest.mark.parametrize("name", ONE_INPUT)
def test_input_types(prices, name):
    func = ONE_INPUT[name]
    x = prices[:200]
    expected = func(x)
    for variant in (x.tolist(), pd.Series(x), pl.Series(x), np.asfortranarray(x),
                    np.ascontiguousarray(x[::-1])[::-1], pd.Series(x, dtype="Float64")):
        out = func(variant)
        assert isinstance(out, np.ndarray)
        same(out, expected)
    df = pd.DataFrame({"a": x, "b": x})
    same(func(df)[..., 0], expected)
    same(func(pl.DataFrame({"a": x, "b": x}))[..., 1], expected)


def test_nulls_count_as_nan():
    expected = ind.sma([1.0, NAN, 3.0, 4.0, 5.0], 2)
    same(ind.sma(pd.Series([1, None, 3, 4, 5], dtype="Int64"), 2), expected)
    same(ind.sma(pl.Series([1, None, 3, 4, 5]), 2), expected)
    same(ind.sma(pd.Series([1.0, None, 3.0, 4.0, 5.0], dtype="Float64"), 2), expected)
    same(ind.sma([1.0, None, 3.0, 4.0, 5.0], 2), expected)
    same(ind.sma(np.array([1, 2, 3, 4], dtype=np.int64), 2), [NAN, 1.5, 2.5, 3.5])


def test_output_dtype_and_read_only_input(prices):
    x = prices.copy()
    x.flags.writeable = False
    for func in (ind.sma, ind.rolling_max, ind.ema, ind.rsi, ind.rolling_std):
        out = func(x, 5)
        assert out.dtype == np.float64 and out.shape == x.shape and out.flags.writeable
    assert not np.shares_memory(ind.sma(x, 1), x)


@pytest.mark.parametrize("name", ["sma", "ema", "rsi", "macd", "rolling_std", "volatility",
                                  "rolling_max", "rolling_min", "rolling_corr"])
def test_window_longer_than_data_is_all_nan(name):
    x = np.arange(1.0, 6.0)
    call = {
        "rolling_corr": lambda: ind.rolling_corr(x, x, 6),
        "macd": lambda: np.stack(ind.macd(x, 3, 6)),
        "volatility": lambda: ind.volatility(x, 5),
    }.get(name, lambda: getattr(ind, name)(x, 6))
    out = call()
    assert out.shape[-1] == 5 and np.isnan(out).all()


@pytest.mark.parametrize("name", ONE_INPUT)
def test_empty_input(name):
    out = ONE_INPUT[name](np.array([]))
    assert out.size == 0 and out.shape[-1] == 0
    out = ONE_INPUT[name](np.empty((0, 3)))
    assert out.shape[-2:] == (0, 3)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: ind.sma([1.0, 2.0], 0), ["sma", "window", "0", "Fix"]),
        (lambda: ind.sma([1.0, 2.0], -3), ["sma", "window", "-3", ">= 1"]),
        (lambda: ind.sma([1.0, 2.0], 2.5), ["sma", "window", "2.5", "int", "Fix"]),
        (lambda: ind.sma([1.0, 2.0], 10.0), ["sma", "window", "10.0", "Fix"]),
        (lambda: ind.sma([1.0, 2.0], "10"), ["sma", "window", "'10'", "str"]),
        (lambda: ind.sma([1.0, 2.0], True), ["sma", "window", "True", "bool"]),
        (lambda: ind.sma([1.0, 2.0], None), ["sma", "window", "None"]),
        (lambda: ind.rolling_max([1.0], 0), ["rolling_max", "window", "0"]),
        (lambda: ind.rolling_min([1.0], 1.5), ["rolling_min", "window", "1.5"]),
        (lambda: ind.ema([1.0]), ["ema", "span or alpha", "Fix"]),
        (lambda: ind.ema([1.0], 0), ["ema", "span", "0"]),
        (lambda: ind.ema([1.0], alpha=0.0), ["ema", "alpha", "0.0", "> 0"]),
        (lambda: ind.ema([1.0], alpha=1.5), ["ema", "alpha", "1.5", "<= 1"]),
        (lambda: ind.rsi([1.0], 0), ["rsi", "window", "0"]),
        (lambda: ind.macd([1.0], 26, 12), ["macd", "fast", "26", "slow", "12"]),
        (lambda: ind.macd([1.0], signal=0), ["macd", "signal", "0"]),
        (lambda: ind.rolling_std([1.0], 1), ["rolling_std", "window", "ddof", "1"]),
        (lambda: ind.rolling_std([1.0], 5, ddof=-1), ["rolling_std", "ddof", "-1"]),
        (lambda: ind.volatility([1.0], 1), ["volatility", "window", "1", ">= 2"]),
        (lambda: ind.volatility([1.0], 5, 0), ["volatility", "periods_per_year", "0"]),
        (lambda: ind.volatility([1.0], 5, "252"), ["volatility", "periods_per_year", "'252'"]),
        (lambda: ind.rolling_corr([1.0], [1.0], 1), ["rolling_corr", "window", "1", ">= 2"]),
        (lambda: ind.rolling_corr([1.0, 2.0], [1.0], 2), ["rolling_corr", "x", "(2,)", "(1,)"]),
        (lambda: ind.rolling_corr(np.ones((4, 2)), np.ones((4, 3)), 2), ["(4, 2)", "(4, 3)"]),
        (lambda: ind.crossover([1.0, 2.0], [1.0, 2.0, 3.0]), ["crossover", "a", "b"]),
        (lambda: ind.crossover(1.0, 2.0), ["crossover", "scalars"]),
        (lambda: ind.days_to_cover([1.0], [1.0], 0), ["days_to_cover", "window", "0"]),
        (lambda: ind.sma(["a", "b"], 2), ["sma", "x", "numbers", "Fix"]),
        (lambda: ind.sma([1.0, {}], 2), ["sma", "x", "numbers"]),
        (lambda: ind.sma(np.ones((2, 2, 2)), 2), ["sma", "x", "(2, 2, 2)", "2-D"]),
        (lambda: ind.sma(3.0, 2), ["sma", "x", "shape ()"]),
    ],
)
def test_parameter_errors_name_the_parameter_value_and_fix(call, words):
    with pytest.raises(ParameterError) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def test_numpy_integers_are_valid_windows(prices):
    same(ind.sma(prices, np.int64(5)), ind.sma(prices, 5))


def test_kernels_check_shapes():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="shape"):
        kernels.rolling_mean(x, 2, np.zeros((5, 1)))
    with pytest.raises(ValueError, match="window"):
        kernels.rolling_max(x, 0, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="ddof"):
        kernels.rolling_var(x, 2, 2, np.zeros((5, 2)))


def test_crossings_are_crossover_and_crossunder_in_one_pass():
    from engine.strategy.indicators import crossings, crossover, crossunder

    rng = np.random.default_rng(3)
    a = np.round(rng.normal(0, 1, (500, 4)), 1)   # one decimal: many exact ties
    b = np.round(rng.normal(0, 1, (500, 4)), 1)
    a[::37] = np.nan
    up, down = crossings(a, b)
    np.testing.assert_array_equal(up, crossover(a, b))
    np.testing.assert_array_equal(down, crossunder(a, b))
    assert up.any() and down.any() and not (up & down).any()


def test_sma_of_cents_equals_the_general_kernel_bit_for_bit():
    # Columns of 2-place prices take a fast path; one value with 3 places sends a
    # column to the general kernel. Windows before that value must agree exactly.
    rng = np.random.default_rng(12)
    cents = np.round(100 + np.cumsum(rng.normal(0, 0.5, (3_000, 3)), axis=0), 2)
    cents[::97] = np.round(cents[::97])            # whole numbers: fewer places, same class
    general = cents.copy()
    general[-1] += 0.001
    for window in (1, 2, 20, 250):
        fast, slow = ind.sma(cents, window), ind.sma(general, window)
        np.testing.assert_array_equal(fast[:-window], slow[:-window])
        assert np.isnan(fast[: window - 1]).all()
    # ties stay ties on the fast path: equal windows give equal means
    x = np.array([1.10, 2.20, 3.30, 1.10, 2.20, 3.30, 1.10])
    m = ind.sma(x, 3)
    assert m[2] == m[3] == m[4] == m[5] == m[6]
