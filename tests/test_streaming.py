"""engine.stream_run: a Parquet file run in chunks gives exactly the in-memory run.

Same trades, orders and equity (bit for bit), the same metrics to 1e-9, whatever the
chunk size, including chunks of 1,000 bars and chunks that end right at a cross; the
lookback of the SMA cross carries the sign of a crossover across a run of ties; the
online metrics equal engine.analysis.metrics.compute_metrics; bad files and strategies that
cannot stream are refused with messages that say why and what to do.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import engine
from engine.analysis.metrics import compute_metrics
from engine.analysis.streaming_metrics import BenchmarkStream, StreamingMetrics
from engine.data.bars import save_bars
from engine.data.panel import Panel
from engine.data.synthetic import random_walk
from engine.errors import DataError, LookAheadError, ParameterError, StrategyError
from engine.strategy.plugins import load_strategy

ROOT = Path(__file__).resolve().parents[1]
SMA = ROOT / "strategies" / "sma_cross.py"
N_BARS = 300_000


def write(panel: Panel, path: Path, row_group: int = 10_000) -> Path:
    save_bars(panel, path)
    pq.write_table(pq.read_table(path), path, row_group_size=row_group)
    return path


def assert_metrics_close(streamed: dict, expected: dict, rel: float = 1e-9) -> None:
    assert list(streamed) == list(expected)
    for key, want in expected.items():
        got = streamed[key]
        if math.isnan(want) or math.isinf(want):
            assert (math.isnan(got) and math.isnan(want)) or got == want, key
        else:
            assert got == pytest.approx(want, rel=rel, abs=1e-300), key


def assert_same_run(out: Path, result, streamed) -> None:
    assert pl.read_parquet(out / "trades.parquet").equals(result.trades)
    assert pl.read_parquet(out / "orders.parquet").equals(result.orders)
    equity = pl.read_parquet(out / "equity.parquet")
    assert equity.equals(result.equity)
    assert streamed.metrics["final_equity"] == result.metrics["final_equity"]
    assert_metrics_close(streamed.metrics, result.metrics)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["trades"] == result.metrics["trades"]


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    panel = random_walk(N_BARS, seed=11, volatility=0.002, freq="m")
    path = write(panel, tmp_path_factory.mktemp("walk") / "walk.parquet")
    return path, engine.run(SMA, path)


def cross_bar(result, k: int) -> int:
    """Bar index of the k-th entry signal (the bar its order was placed on)."""
    placed = result.orders.filter(pl.col("side") == "buy")["placed_ts"][k]
    return int(np.searchsorted(result.panel.ts, np.datetime64(placed, "ns")))


@pytest.mark.parametrize("chunk", ["1000", "7777", "65536", "whole", "at_cross",
                                   "after_cross"])
def test_stream_matches_in_memory_run(walk, tmp_path, chunk):
    path, result = walk
    assert result.metrics["trades"] > 5000
    sizes = {"1000": 1_000, "7777": 7_777, "65536": 65_536, "whole": N_BARS + 5,
             # a chunk boundary on the bar of an entry signal, then on its fill bar
             "at_cross": cross_bar(result, 40), "after_cross": cross_bar(result, 40) + 1}
    out = tmp_path / "out"
    streamed = engine.stream_run(SMA, path, chunk_bars=sizes[chunk], out=out)
    assert_same_run(out, result, streamed)
    assert streamed.settings["chunks"] == -(-N_BARS // sizes[chunk])
    if sizes[chunk] <= 10_000:
        # drained each chunk: memory does not grow with the number of trades
        # (at most what one chunk makes: about one trade per 35 bars here)
        assert streamed.held["trades"] <= sizes[chunk] // 20 < result.metrics["trades"] / 10


def test_stream_with_costs_and_close_fills(walk, tmp_path):
    path, _ = walk
    options = dict(commission=0.001, commission_minimum=1.0, slippage_bps=2.0, fill="close",
                   fast=5, slow=30, end="2000-04-01")
    result = engine.run(SMA, path, **options)
    out = tmp_path / "out"
    streamed = engine.stream_run(SMA, path, chunk_bars=4_321, out=out, **options)
    assert_same_run(out, result, streamed)


def test_stream_without_out_gives_the_metrics(walk):
    path, result = walk
    streamed = engine.stream_run(SMA, path, chunk_bars=50_000)
    assert streamed.out is None
    assert_metrics_close(streamed.metrics, result.metrics)


# ------------------------------------------------------------------ the crossover's memory


def tie_panel() -> Panel:
    """A fall, a long flat run (fast == slow exactly), then a rise: one cross, after the run.

    The cross compares with the last non-zero sign, 300 bars back, before the ties.
    """
    base = random_walk(6_000, seed=5, volatility=0.002).fields["close"][:, 0]
    level = round(float(base[-1]), 2)
    fall = np.round(level + 0.05 * np.arange(60, 0, -1), 2)
    flat = np.full(300, level)
    rise = np.round(level + 0.05 * np.arange(1, 61), 2)
    after = np.round(rise[-1] + (random_walk(3_000, seed=6, volatility=0.002)
                                 .fields["close"][:, 0] - 100.0), 2)
    close = np.concatenate([base, fall, flat, rise, np.maximum(after, 1.0)])
    fields = {f: close.reshape(-1, 1).copy() for f in ("open", "high", "low", "close")}
    fields["volume"] = np.full((len(close), 1), 1000.0)
    ts = np.datetime64("2001-01-01", "ns") + np.arange(len(close)) * np.timedelta64(1, "h")
    return Panel(ts=ts, symbols=("asset",), fields=fields)


class ShortMemory(load_strategy(SMA)):
    """The SMA cross with the naive lookback: the windows, not the crossover's sign."""

    def lookback(self, data):
        return self.slow + 1


def test_lookback_carries_the_sign_across_a_run_of_ties(tmp_path):
    panel = tie_panel()
    path = write(panel, tmp_path / "ties.parquet", row_group=1_000)
    result = engine.run(SMA, path)
    flat_start = 6_000 + 60
    # the lookback asks for the ties and the bars behind the last non-zero sign
    from engine.strategy.base import VectorData

    inside = panel.view(0, flat_start + 150)
    assert load_strategy(SMA)().lookback(VectorData(inside)) > 100
    entries = result.orders.filter(pl.col("side") == "buy")["placed_ts"].to_numpy()
    after_flat = panel.ts[flat_start + 300]
    assert any(after_flat <= e < panel.ts[flat_start + 330] for e in entries)
    chunk = flat_start + 150            # the boundary falls in the middle of the ties
    out = tmp_path / "out"
    streamed = engine.stream_run(SMA, path, chunk_bars=chunk, out=out)
    assert_same_run(out, result, streamed)
    # the naive lookback loses the sign and misses the entry after the ties
    naive = engine.stream_run(ShortMemory, path, chunk_bars=chunk)
    assert naive.metrics["trades"] != result.metrics["trades"] or \
        naive.metrics["final_equity"] != result.metrics["final_equity"]


def test_several_symbols_with_gaps(tmp_path):
    panel = random_walk(20_000, 3, seed=9, volatility=0.003, freq="m")
    rng = np.random.default_rng(1)
    holes = rng.random((panel.n_bars, 3)) < 0.02
    holes[:, 0] = False                  # one symbol trades on every bar
    fields = {k: np.where(holes, np.nan, v) for k, v in panel.fields.items()}
    panel = Panel(ts=panel.ts, symbols=panel.symbols, fields=fields)
    path = write(panel, tmp_path / "multi.parquet", row_group=7_000)
    result = engine.run(SMA, path, fast=5, slow=12)
    assert result.metrics["trades"] > 300
    for chunk in (500, 3_333):
        out = tmp_path / f"out{chunk}"
        streamed = engine.stream_run(SMA, path, chunk_bars=chunk, out=out, fast=5, slow=12)
        assert_same_run(out, result, streamed)


# ------------------------------------------------------------------ online metrics


def curve_in_chunks(equity, sizes):
    edges = np.cumsum([0, *sizes])
    return [equity[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


@pytest.mark.parametrize("case", ["walk", "unrecovered", "flat", "ruin", "one_bar"])
def test_streaming_metrics_equal_compute_metrics(case):
    rng = np.random.default_rng(3)
    n = 5_000
    equity = 1e5 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
    bench = 1e5 * np.exp(np.cumsum(rng.normal(0.0001, 0.008, n)))
    if case == "unrecovered":
        equity[2_000:] = equity[2_000:] * np.linspace(1.0, 0.5, n - 2_000)
    elif case == "flat":
        equity = np.full(n, 1e5)
    elif case == "ruin":
        equity[3_000:3_010] = -5.0
    elif case == "one_bar":
        equity, bench = equity[:1], bench[:1]
    in_market = rng.random(equity.size) < 0.6
    pnl = rng.normal(10, 100, 300)
    pnl[:5] = 0.0
    ret = pnl / 1e4
    expected = compute_metrics(equity, starting_cash=1e5, trade_pnl=pnl, trade_return=ret,
                               in_market=in_market, benchmark_equity=bench,
                               benchmark_start=1e5, risk_free=0.03)
    for sizes in ([equity.size], [1] * 7 + [equity.size], [997, 1, 1500, 2_502]):
        acc = StreamingMetrics(1e5, risk_free=0.03, benchmark_start=1e5)
        for part, flags, b in zip(curve_in_chunks(equity, sizes),
                                  curve_in_chunks(in_market, sizes),
                                  curve_in_chunks(bench, sizes), strict=True):
            acc.add_bars(part, flags, b)
        for chunk in np.array_split(np.arange(pnl.size), 4):
            acc.add_trades(pnl[chunk], ret[chunk])
        assert_metrics_close(acc.result(), expected)


def by_formulas(equity, *, starting_cash, trade_pnl, trade_return, in_market,
                benchmark_equity, benchmark_start, periods_per_year, risk_free):
    """Every metric from the per-metric functions of engine.analysis.metrics (whole arrays)."""
    from engine.analysis import metrics as m

    E = m.equity_curve(equity, starting_cash)
    r = m.bar_returns(equity, starting_cash)
    growth, mdd = m.cagr(E, periods_per_year), m.max_drawdown(E)
    out = {
        "total_return": m.total_return(E), "cagr": growth,
        "volatility": m.volatility(r, periods_per_year),
        "sharpe": m.sharpe(r, periods_per_year, risk_free),
        "psr": m.psr(r, periods_per_year, risk_free),
        "sortino": m.sortino(r, periods_per_year, risk_free),
        "calmar": m.calmar(growth, mdd), "max_drawdown": mdd,
        "max_drawdown_duration": float(m.max_drawdown_duration(E)),
        **m.trade_metrics(trade_pnl, trade_return),
        "exposure": m.exposure(in_market, E.size - 1), "final_equity": float(E[-1]),
    }
    B = m.equity_curve(benchmark_equity, benchmark_start)
    out["benchmark_return"] = m.total_return(B)
    r_b = m.bar_returns(benchmark_equity, benchmark_start)
    out["beta"] = m.beta(r, r_b)
    out["psr_benchmark"] = m.psr(r, periods_per_year, risk_free, r_b)
    out["tracking_error"] = m.tracking_error(r, r_b, periods_per_year)
    out["information_ratio"] = m.information_ratio(r, r_b, periods_per_year)
    out["alpha"] = m.alpha(r, r_b, periods_per_year, risk_free)
    return out


def test_compute_metrics_in_slices_equals_the_formulas(monkeypatch):
    # compute_metrics feeds the accumulator in slices; the per-metric functions
    # compute each documented formula on the whole arrays: two implementations.
    from engine.analysis import metrics as m

    monkeypatch.setattr(m, "METRIC_SLICE", 777)
    rng = np.random.default_rng(8)
    equity = 1e5 * np.exp(np.cumsum(rng.normal(0.0001, 0.01, 10_000)))
    bench = 1e5 * np.exp(np.cumsum(rng.normal(0.0001, 0.01, 10_000)))
    pnl = rng.normal(5, 50, 200)
    for in_market in (rng.random(10_000) < 0.5, 0.25):
        kwargs = dict(starting_cash=1e5, trade_pnl=pnl, trade_return=pnl / 1e4,
                      in_market=in_market, benchmark_equity=bench, benchmark_start=1e5,
                      periods_per_year=365, risk_free=0.02)
        assert_metrics_close(compute_metrics(equity, **kwargs), by_formulas(equity, **kwargs))


def test_benchmark_stream_equals_buy_and_hold():
    from engine.backtest.benchmark import benchmark_equity

    panel = random_walk(3_000, 4, seed=2)
    close = np.array(panel.fields["close"])
    close[:700, 1] = np.nan             # a symbol that starts late
    close[1_000:1_200, 2] = np.nan      # a gap
    close[:, 3] = np.nan                # one that never trades
    fields = dict(panel.fields, close=close)
    whole = benchmark_equity(Panel(panel.ts, panel.symbols, fields), 1e5)
    stream = BenchmarkStream(1e5, 4)
    parts = [stream.add(close[a:b]) for a, b in ((0, 500), (500, 1_100), (1_100, 3_000))]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-15)


# ------------------------------------------------------------------ refusals


def test_a_strategy_without_lookback_is_refused(walk):
    path, _ = walk
    from engine.backtest.benchmark import BuyAndHold

    with pytest.raises(ParameterError, match=r"BuyAndHold does not define lookback\(\)"):
        engine.stream_run(BuyAndHold, path)


def test_event_path_and_feeds_are_refused(walk):
    path, _ = walk
    with pytest.raises(ParameterError, match="only the vectorised path"):
        engine.stream_run(SMA, path, mode="event")

    class WithFeeds(load_strategy(SMA)):
        def feed_specs(self):
            return {"vix": object()}

    with pytest.raises(ParameterError, match="feeds"):
        engine.stream_run(WithFeeds, path)


def test_a_bad_lookback_is_refused(walk):
    path, _ = walk

    class Negative(load_strategy(SMA)):
        def lookback(self, data):
            return -1

    with pytest.raises(StrategyError, match="Negative.lookback must return"):
        engine.stream_run(Negative, path, chunk_bars=50_000)


def test_signals_reading_the_future_are_refused_in_streaming(walk):
    path, _ = walk

    class Peeks(load_strategy(SMA)):
        def signals(self, data):
            signals = super().signals(data)
            signals.entries = data.close < data.close[-1]     # the last bar of the data
            return signals

    with pytest.raises(LookAheadError, match="reads the future"):
        engine.stream_run(Peeks, path, chunk_bars=50_000)


def test_unsorted_and_duplicate_rows_are_refused(tmp_path):
    panel = random_walk(1_000, seed=1, freq="m")
    frame = pl.read_parquet(save_bars(panel, tmp_path / "a.parquet"))
    swapped = pl.concat([frame[:600], frame[601:602], frame[600:601], frame[602:]])
    swapped.write_parquet(tmp_path / "unsorted.parquet", row_group_size=100)
    with pytest.raises(DataError, match=r"not in time order: row 602 .* cannot sort"):
        engine.stream_run(SMA, tmp_path / "unsorted.parquet", chunk_bars=100)
    doubled = pl.concat([frame[:701], frame[700:]])
    doubled.write_parquet(tmp_path / "dup.parquet", row_group_size=100)
    with pytest.raises(DataError, match="duplicate bar .* rows 701 and 702"):
        engine.stream_run(SMA, tmp_path / "dup.parquet", chunk_bars=100)


def test_bad_values_name_the_row_of_the_file(tmp_path):
    panel = random_walk(1_000, seed=1, freq="m")
    frame = pl.read_parquet(save_bars(panel, tmp_path / "a.parquet"))
    close = frame["close"].to_numpy().copy()
    close[876] = -1.0
    frame.with_columns(pl.Series("close", close)).write_parquet(
        tmp_path / "bad.parquet", row_group_size=100)
    with pytest.raises(DataError, match="row 877"):
        engine.stream_run(SMA, tmp_path / "bad.parquet", chunk_bars=300)


# ------------------------------------------------------------------ the command line


def test_cli_stream(walk, tmp_path):
    path, result = walk
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(SMA), "--data", str(path), "--stream",
         "--chunk-bars", "40000", "--out", str(out), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["settings"]["stream"] is True and payload["settings"]["chunks"] == 8
    assert payload["metrics"]["trades"] == result.metrics["trades"]
    assert pl.read_parquet(out / "trades.parquet").equals(result.trades)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(SMA), "--chunk-bars", "10"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "add --stream" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ the broker's draining


def test_broker_drains_a_finished_prefix_and_keeps_global_ids():
    from engine._core.broker import Broker
    from engine._core.loop import run_vector

    f = random_walk(200, seed=4).fields
    rows = slice(0, 100)
    broker = Broker(*(np.ascontiguousarray(f[k][rows]) for k in ("open", "high", "low",
                                                                  "close")), 1e5)
    resting = broker.submit(0, 1, 1, 0, 1.0, limit=0.01)    # a buy limit far below
    entries, exits = np.zeros((100, 1), np.uint8), np.zeros((100, 1), np.uint8)
    entries[[10, 30]], exits[[20, 40]] = 1, 1
    run_vector(broker, entries, exits, np.zeros((1, 1)), "all_cash", 1)
    assert broker.drain_orders()["order_id"].size == 0      # held back by the resting one
    assert broker.held_orders == 5
    closed = broker.drain_trades()
    assert closed["exit_bar"].tolist() == [21, 41] and broker.held_trades == 0
    assert broker.cancel(resting)
    drained = broker.drain_orders()
    assert drained["order_id"].tolist() == [0, 1, 2, 3, 4] and broker.held_orders == 0
    with pytest.raises(IndexError, match="drained"):
        broker.order_info(2)
    assert not broker.cancel(2)
    # the next chunk: global bar numbers and ids go on
    broker.bind_chunk(*(np.ascontiguousarray(f[k][100:]) for k in ("open", "high", "low",
                                                                   "close")))
    assert broker.base == 100 and broker.n_bars == 100
    entries[:], exits[:] = 0, 0
    entries[5] = 1
    run_vector(broker, entries, exits, np.zeros((1, 1)), "all_cash", 1)
    orders, trades = broker.orders_table(), broker.trades_table()
    assert orders["order_id"].tolist() == [5] and orders["placed_bar"].tolist() == [105]
    assert trades["entry_bar"].tolist() == [106] and trades["exit_bar"].tolist() == [-1]
    assert broker.equity_curve.size == 100
    everything = broker.drain_trades(everything=True)
    assert everything["entry_bar"].tolist() == [106] and broker.held_trades == 0
    with pytest.raises(ValueError, match="bind_chunk: close has shape"):
        broker.bind_chunk(*(np.ones((5, 1)) for _ in range(3)), np.ones((5, 2)))


def test_stream_refuses_exit_options_and_weights_with_a_clear_error(tmp_path):
    path = write(random_walk(300, seed=2), tmp_path / "small.parquet")

    class Trail(engine.Strategy):
        def signals(self, data):
            above = np.asarray(data.close) > 0
            return engine.Signals(above, ~above, trail_percent=0.05)

        def lookback(self, data):
            return 1

    with pytest.raises(StrategyError, match=r"sets trail_percent, which streaming .* "
                                            r"does not support.*engine.run"):
        engine.stream_run(Trail, path, chunk_bars=100)
