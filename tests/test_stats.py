"""engine.analysis.stats against values computed by hand, by theory, or by an
independent reference, on small seeded fixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from engine.analysis import stats
from engine.errors import ParameterError


def forward_success(returns: np.ndarray, horizon: int) -> np.ndarray:
    """1.0 where the ``horizon``-bar forward sum of ``returns`` is > 0, NaN at the end."""
    level = np.concatenate([[0.0], np.cumsum(returns)])
    out = np.full(returns.size, np.nan)
    ahead = level[horizon + 1:] - level[1:-horizon]
    out[:ahead.size] = (ahead > 0).astype(float)
    return out


# --------------------------------------------------------------------------- counting


def test_episodes_and_non_overlapping_windows_by_hand():
    positions = [3, 4, 5, 9, 30, 31, 52]
    # gaps 1, 1, 4, 21, 1, 21: with h = 20 episodes split at the gaps > 20
    assert stats.episodes(positions, 20) == 3
    assert stats.episodes(positions, 21) == 1
    # kept greedily: 3, then the first >= 23 (30), then >= 50 (52)
    assert stats.non_overlapping(positions, 20) == 3
    assert stats.non_overlapping(positions, 1) == 7
    assert stats.episodes([], 5) == 0 and stats.non_overlapping([], 5) == 0


def test_rate_and_base_rate_are_counted_over_the_signal_window():
    success = np.array([1, 0, 1, 1, 0, 0, 1, np.nan, 1, 0], dtype=float)
    signal = np.array([0, 1, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    found = stats.rate_evidence(success, signal, 2, reps=200)
    # signal bars with an outcome: 1, 2, 4 -> successes 0, 1, 0
    assert (found.signals, found.first, found.last) == (3, 1, 4)
    assert found.rate == pytest.approx(1 / 3)
    # the window is bars 1..4 (first to last signal with an outcome): 0, 1, 1, 0
    assert found.base == pytest.approx(0.5)
    assert found.difference == pytest.approx(1 / 3 - 0.5)
    assert found.episodes == 1 and found.non_overlapping == 2
    assert found.block == 4.0   # 2h covers a window's overlap


def test_no_signal_gives_nan_rates_and_bad_arguments_are_named():
    found = stats.rate_evidence([1.0, 0.0], [False, False], 5, reps=100)
    assert found.signals == 0 and math.isnan(found.rate) and math.isnan(found.p_value)
    with pytest.raises(ParameterError, match="horizon must be a whole number"):
        stats.rate_evidence([1.0], [True], 0)
    with pytest.raises(ParameterError, match="reps must be"):
        stats.rate_evidence([1.0], [True], 1, reps=10)
    with pytest.raises(ParameterError, match="level must be a probability"):
        stats.rate_evidence([1.0], [True], 1, level=95)
    with pytest.raises(ParameterError, match="one shape"):
        stats.rate_evidence([1.0, 0.0], [True], 1)


def test_pooled_symbols_and_counted_events_by_hand():
    success = np.array([[1, 0], [0, 1], [1, 1], [0, np.nan]], dtype=float)
    signal = np.array([[0, 2], [1, 0], [0, 1], [1, 1]])
    found = stats.rate_evidence(success, signal, 1, reps=100)
    # weighted signal outcomes: (0,1) twice -> 0, 0; (1,0) -> 0; (2,1) -> 1; (3,0) -> 0;
    # (3,1) has no outcome and is not counted
    assert found.signals == 5 and found.rate == pytest.approx(1 / 5)
    # base over bars 0..3, both symbols, defined outcomes: 1,0,0,1,1,1,0 -> 4 of 7
    assert found.base == pytest.approx(4 / 7)
    # per symbol: bars 1, 3 (gap 2 > h = 1: two episodes) and bars 0, 2 (two)
    assert (found.first, found.last, found.episodes) == (0, 3, 4)
    one = stats.rate_evidence(success[:, 0], signal[:, 0] > 0, 1, reps=100)
    assert one.rate == pytest.approx(0.0) and one.signals == 2


def test_the_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    success = (rng.random(500) > 0.4).astype(float)
    signal = rng.random(500) > 0.8
    a = stats.rate_evidence(success, signal, 5, seed=7)
    assert a == stats.rate_evidence(success, signal, 5, seed=7)
    assert a != stats.rate_evidence(success, signal, 5, seed=8)


def test_block_sums_cover_n_rows_and_follow_archs_stationary_bootstrap():
    from arch.bootstrap import StationaryBootstrap

    rng = np.random.default_rng(3)
    n, block, reps = 400, 12.0, 4000
    x = np.empty(n)
    x[0] = 0.0
    for t in range(1, n):  # an AR(1), so the block length matters
        x[t] = 0.8 * x[t - 1] + rng.standard_normal()
    columns = np.column_stack([np.ones(n), x])
    sums = stats.stationary_block_sums(columns, block, reps, seed=5)
    assert sums.shape == (reps, 2)
    assert np.all(sums[:, 0] == n)     # every resample draws exactly n rows
    np.testing.assert_array_equal(sums, stats.stationary_block_sums(columns, block, reps,
                                                                      seed=5))
    # The circular scheme is unbiased for the sum: E[sum*] = sum(x).
    assert sums[:, 1].mean() == pytest.approx(x.sum(), abs=4 * sums[:, 1].std() / reps ** 0.5)
    sampler = StationaryBootstrap(block, x, seed=np.random.default_rng(9))
    reference = np.array([data.sum() for (data,), _ in sampler.bootstrap(reps)])
    # Same law as arch's: the spread of the resampled sums agrees within sampling error.
    assert sums[:, 1].std() == pytest.approx(reference.std(), rel=0.08)


def test_a_window_shorter_than_two_blocks_has_no_interval():
    success = np.tile([1.0, 0.0, 1.0], 20)
    signal = np.zeros(60, dtype=bool)
    signal[[5, 40]] = True  # window of 36 bars, block 2 * 21 = 42
    found = stats.rate_evidence(success, signal, 21, reps=200)
    assert found.signals == 2 and not math.isnan(found.rate)
    assert math.isnan(found.rate_low) and math.isnan(found.p_value)


def test_the_interval_of_an_ar1_indicator_has_the_width_theory_gives():
    # x_t = phi x_{t-1} + e_t; the indicator 1{x_t > 0} of a Gaussian AR(1) has
    # corr(I_t, I_{t+k}) = (2/pi) arcsin(phi^k), so the variance of its mean over n bars
    # is about (1 / 4n) (1 + 2 sum_k (2/pi) arcsin(phi^k)).
    phi, n, h = 0.9, 20_000, 40
    rng = np.random.default_rng(11)
    x = np.empty(n)
    x[0] = rng.normal() / math.sqrt(1 - phi ** 2)
    noise = rng.normal(size=n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    success = (x > 0).astype(float)
    found = stats.rate_evidence(success, np.ones(n, dtype=bool), h, reps=400, seed=3)
    k = np.arange(1, 400)
    variance = (1 + 2 * np.sum(2 / np.pi * np.arcsin(phi ** k))) / (4 * n)
    theory = 2 * 1.959964 * math.sqrt(variance)
    width = found.rate_high - found.rate_low
    assert width == pytest.approx(theory, rel=0.3)
    # what counting every bar as an independent trial would claim: far too narrow
    assert width > 2.5 * 2 * 1.959964 * math.sqrt(0.25 / n)


def test_with_no_edge_the_difference_is_rarely_significant_where_a_binomial_test_is_fooled():
    # Random walks with no edge, 21-bar forward windows, 8 episodes of 30 signal days.
    rng = np.random.default_rng(4)
    h, n, trials = 21, 3000, 60
    block_hits = naive_hits = 0
    for i in range(trials):
        success = forward_success(rng.normal(0.0003, 0.01, size=n), h)
        signal = np.zeros(n, dtype=bool)
        for start in rng.choice(n - 200, 8, replace=False):
            signal[start:start + 30] = True
        found = stats.rate_evidence(success, signal, h, reps=200, seed=i)
        block_hits += found.p_value < 0.05
        on = signal & np.isfinite(success)
        naive = sps.binomtest(int(success[on].sum()), int(on.sum()),
                              p=float(np.nanmean(success))).pvalue
        naive_hits += naive < 0.05
    assert block_hits / trials < 0.2
    assert naive_hits / trials > 0.35


def test_a_planted_edge_is_found():
    rng = np.random.default_rng(5)
    success = (rng.random(4000) < 0.5).astype(float)
    signal = np.zeros(4000, dtype=bool)
    signal[::37] = True
    success[signal] = (rng.random(signal.sum()) < 0.85).astype(float)
    found = stats.rate_evidence(success, signal, 1, reps=500)
    assert found.p_value < 0.01 and found.difference_low > 0.2
    assert found.rate_low < found.rate < found.rate_high


def test_benjamini_hochberg_by_hand():
    q = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.2, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.2 -> scaled 0.04, 0.06, 0.0533, 0.2 -> running minimum
    # from the top: 0.04, 0.0533, 0.0533, 0.2
    np.testing.assert_allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert math.isnan(q[4])


# --------------------------------------------------------------------------- runs


def test_hit_rate_interval_is_clopper_pearson():
    low, high = stats.hit_rate_interval(7, 10)
    # the exact interval: Beta(0.025; 7, 4) and Beta(0.975; 8, 3)
    assert low == pytest.approx(sps.beta.ppf(0.025, 7, 4))
    assert high == pytest.approx(sps.beta.ppf(0.975, 8, 3))
    assert all(math.isnan(x) for x in stats.hit_rate_interval(0, 0))


def test_probabilistic_sharpe_by_hand():
    rng = np.random.default_rng(2)
    r = rng.standard_t(5, size=500) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3 = sps.skew(r)
    g4 = sps.kurtosis(r, fisher=False)
    z = (sr - 0.02) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2)
    assert stats.probabilistic_sharpe(r, 0.02) == pytest.approx(sps.norm.cdf(z))
    assert math.isnan(stats.probabilistic_sharpe([0.01, 0.01, 0.01]))


def test_probabilistic_sharpe_is_calibrated_under_the_null():
    # With no edge, PSR(0) is about uniform: above 0.95 in about 5% of samples.
    rng = np.random.default_rng(9)
    psr = [stats.probabilistic_sharpe(rng.normal(0, 0.01, size=250)) for _ in range(600)]
    assert 0.025 < np.mean(np.array(psr) > 0.95) < 0.08


def test_deflated_sharpe_reproduces_the_papers_example():
    # Bailey & Lopez de Prado (2014), section 4: N = 100 trials whose annualised Sharpe
    # ratios vary with V = 1/2, the best at 2.5 annualised over T = 1,250 daily bars,
    # skewness -3, kurtosis 10: SR0 ~ 1.79 annualised and DSR ~ 0.9004.
    daily = math.sqrt(250)
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 * daily == pytest.approx(1.7894, abs=1e-3)
    assert stats.deflated_sharpe(2.5 / daily, 1250, -3.0, 10.0, 100, 0.5 / 250) == \
        pytest.approx(0.9004, abs=5e-4)


def test_run_intervals_cover_the_estimate_and_widen_with_fewer_bars():
    rng = np.random.default_rng(1)
    r = rng.normal(0.0005, 0.01, size=2520)
    wide = stats.run_intervals(r[:500], 252, reps=300)
    narrow = stats.run_intervals(r, 252, reps=300)
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert narrow["sharpe"][0] < sharpe < narrow["sharpe"][1]
    assert (wide["sharpe"][1] - wide["sharpe"][0]) > (narrow["sharpe"][1] - narrow["sharpe"][0])
    assert 0 < narrow["max_drawdown"][0] < narrow["max_drawdown"][1] < 1
    assert narrow["cagr"][0] < narrow["cagr"][1]


# --------------------------------------------------------------------------- sweeps


def test_deflated_sharpes_penalise_the_number_of_trials():
    rng = np.random.default_rng(6)
    few = rng.normal(0, 0.01, size=(1000, 5))
    many = rng.normal(0, 0.01, size=(1000, 500))
    many[:, 0] = few[:, 0]
    assert stats.deflated_sharpes(many)[0] < stats.deflated_sharpes(few)[0]
    failed = few.copy()
    failed[:, 2] = np.nan
    assert math.isnan(stats.deflated_sharpes(failed)[2])


def test_pbo_with_a_planted_winner_and_with_pure_noise():
    rng = np.random.default_rng(8)
    planted = rng.normal(0, 0.01, size=(1600, 40))
    planted[:, 7] += 0.004
    assert stats.probability_of_overfitting(planted)["pbo"] < 0.05
    noise = [stats.probability_of_overfitting(rng.normal(0, 0.01, size=(800, 30)),
                                              n_blocks=8)["pbo"] for _ in range(40)]
    assert 0.35 < np.mean(noise) < 0.65
    found = stats.probability_of_overfitting(planted, n_blocks=16)
    assert found["splits"] == math.comb(16, 8) == len(found["logits"])
    with pytest.raises(ParameterError, match="n_blocks must be an even number"):
        stats.probability_of_overfitting(planted, n_blocks=7)


# --------------------------------------------------------------------------- a run's confidence


def test_a_runs_confidence_table_and_the_cli_option():
    import json
    import subprocess
    import sys
    from pathlib import Path

    import engine

    root = Path(__file__).resolve().parents[1]
    result = engine.run(root / "strategies" / "sma_cross.py", start="2010-01-01",
                        risk_free=0.02)
    table = result.confidence(reps=300)
    rows = {r["metric"]: r for r in table.iter_rows(named=True)}
    assert list(rows) == ["sharpe", "cagr", "max_drawdown", "hit_rate", "psr",
                          "psr_benchmark"]
    for name in ("sharpe", "cagr", "max_drawdown", "hit_rate"):
        assert rows[name]["low"] < rows[name]["value"] < rows[name]["high"], name
    closed = result.trades.filter(result.trades["exit_ts"].is_not_null())
    hits = int((closed["pnl"] > 0).sum())
    assert (rows["hit_rate"]["low"], rows["hit_rate"]["high"]) == pytest.approx(
        stats.hit_rate_interval(hits, closed.height))
    assert rows["psr"]["value"] == result.metrics["psr"]
    assert result.confidence(reps=300).equals(table)          # seeded
    proc = subprocess.run([sys.executable, "-m", "engine", "run", "strategies/sma_cross.py",
                           "--start", "2015-01-01", "--confidence", "--json"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = [row["metric"] for row in json.loads(proc.stdout)["confidence"]]
    assert metrics[:4] == ["sharpe", "cagr", "max_drawdown", "hit_rate"]


def test_set_summary_by_hand_and_sets_on_other_bars_are_refused():
    r = np.array([0.01, -0.02, np.nan, 0.03, 0.0, 0.01])
    found = stats.set_summary(r, n_blocks=2)
    assert found[0] == 5
    # blocks: bars 0..2 and 3..5 (NaN adds nothing): counts, then sums of r, r^2, r^3, r^4
    np.testing.assert_allclose(found[1:], [
        3, 3, -0.01, 0.04, 0.0005, 0.001, 1e-6 - 8e-6, 27e-6 + 1e-6,
        1e-8 + 16e-8, 81e-8 + 1e-8], atol=1e-15)
    sharpe, skew, kurtosis, n = stats.summary_moments(found, n_blocks=2)[0]
    finite = r[np.isfinite(r)]
    z = (finite - finite.mean()) / finite.std()
    assert n == 5 and sharpe == pytest.approx(finite.mean() / finite.std(ddof=1), rel=1e-12)
    assert skew == pytest.approx(np.mean(z ** 3), rel=1e-9)
    assert kurtosis == pytest.approx(np.mean(z ** 4), rel=1e-9)
    other = stats.set_summary(np.zeros(8) + 0.001, n_blocks=2)
    assert np.isnan(stats.summary_moments(other, n_blocks=2)[0, :3]).all()  # no spread
    with pytest.raises(ParameterError, match="same bars"):
        stats.overfitting_from_summaries(np.array([found, found, other]), n_blocks=2)


def test_the_compiled_cscv_matches_a_direct_computation_on_the_bars():
    from itertools import combinations

    rng = np.random.default_rng(21)
    m = rng.normal(0.0002, 0.01, size=(240, 7))
    m[:, 3] = m[:, 2]                     # a tie, counted half
    blocks = np.array_split(np.arange(240), 8)
    logits = []
    for half in combinations(range(8), 4):
        rows_in = np.concatenate([blocks[b] for b in half])
        rows_out = np.setdiff1d(np.arange(240), rows_in)

        def sharpe(rows):
            x = m[rows]
            return x.mean(axis=0) / x.std(axis=0, ddof=1)

        best = int(np.argmax(sharpe(rows_in)))
        oos = sharpe(rows_out)
        rank = (oos < oos[best]).sum() + ((oos == oos[best]).sum() + 1) / 2
        w = rank / 8
        logits.append(math.log(w / (1 - w)))
    found = stats.probability_of_overfitting(m, n_blocks=8)
    np.testing.assert_allclose(found["logits"], logits, rtol=1e-9)
    assert found["pbo"] == np.mean(np.array(logits) <= 0)


def test_psr_for_many_sets_is_the_scalar_psr_bit_for_bit():
    from engine.analysis.stats import psr_from_moments, psr_from_moments_many

    rng = np.random.default_rng(12)
    sharpe = rng.normal(0.0, 0.2, 500)
    skew = rng.normal(0.0, 2.0, 500)
    kurtosis = rng.gamma(3.0, 3.0, 500)
    sharpe[:5] = [np.nan, np.inf, 0.0, -0.0, 5.0]     # undefined, zero, a negative spread
    skew[5] = np.nan
    for n, bench in ((3, 0.0), (2520, 0.013), (100, np.nan)):
        many = psr_from_moments_many(sharpe, n, skew, kurtosis, bench)
        one = np.array([psr_from_moments(a, n, b, c, bench)
                        for a, b, c in zip(sharpe, skew, kurtosis, strict=True)])
        assert np.array_equal(many, one, equal_nan=True)
        assert np.isnan(many[[0, 1, 5]]).all()


def _plain_cscv(n_in, n_all, low, high, low_s1, low_s2, high_s1, high_s2, all_s1, all_s2):
    """cscv_logits as one plain loop per split (the comparisons its docstring states)."""
    out = []
    n_sets = len(all_s1)
    for k in range(len(n_in)):
        a, b, n_here = low[k], high[k], n_in[k]
        n_out = n_all - n_here
        best, top_num, top_den, keys = 0, 0.0, 0.0, []
        for j in range(n_sets):
            s1 = low_s1[a, j] + high_s1[b, j]
            s2 = low_s2[a, j] + high_s2[b, j]
            den = n_here * s2 - s1 * s1
            if den > 0:
                num = s1 * abs(s1)
                if j == 0 or top_den <= 0 or num * top_den > top_num * den:
                    best, top_num, top_den = j, num, den
            s1, s2 = all_s1[j] - s1, all_s2[j] - s2
            keys.append((s1 * abs(s1), n_out * s2 - s1 * s1))
        best_num, best_den = keys[best]
        below = equal = 0.0
        for num, den in keys:
            if best_den <= 0:
                equal += den <= 0
            elif den <= 0:
                below += 1
            elif num * best_den < best_num * den:
                below += 1
            elif num * best_den == best_num * den:
                equal += 1
        relative = (below + (equal + 1.0) / 2.0) / (n_sets + 1.0)
        out.append(math.log(relative / (1.0 - relative)))
    return out


def test_the_compiled_cscv_makes_the_plain_loops_comparisons(monkeypatch):
    # More sets than the kernel checks at once (32), with what makes the order matter:
    # no spread in the first 40 sets (no winner yet across a whole run of sets), a set
    # that often wins copied into later runs (ties in and out of sample), coarse returns.
    import engine._core.kernels as kernels

    rng = np.random.default_rng(4)
    m = np.round(rng.normal(0.0002, 0.01, size=(96, 101)), 3)   # runs of 32, 32, 32, 5
    m[:, :40] = 0.002
    m[:, 80] = m[:, 43]
    m[:, 97] = m[:, 43]
    m[:, 60] = m[:, 61]
    seen = {}
    compiled = kernels.cscv_logits

    def spy(*args):
        seen["args"] = args
        compiled(*args)

    monkeypatch.setattr(kernels, "cscv_logits", spy)
    found = stats.probability_of_overfitting(m, n_blocks=8)["logits"]
    args = seen["args"]
    expected = _plain_cscv(*args[:10])
    assert np.array_equal(np.asarray(expected), found)
    assert len(set(expected)) > 5


def test_overfitting_is_the_same_in_any_number_of_threads():
    rng = np.random.default_rng(8)
    summaries = stats.set_summaries(rng.normal(0.0002, 0.01, size=(300, 640)))
    one = stats.overfitting_from_summaries(summaries, threads=1)
    assert one["splits"] == 12_870
    for threads in (2, 3, None):
        found = stats.overfitting_from_summaries(summaries, threads=threads)
        assert np.array_equal(found["logits"], one["logits"]) and found["pbo"] == one["pbo"]
