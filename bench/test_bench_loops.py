"""Event path, vectorised path and the compiled loop alone, on a seeded 1,000,000-bar
random walk, against a plain Python loop doing the same SMA-cross job.

Run: ``python -m pytest bench -q`` (pytest-benchmark prints its table; the summary at
the end gives bars per second and ratios to the baseline measured in the same run).
"""

from __future__ import annotations

import numpy as np
from engine._core.broker import Broker
from engine._core.loop import run_vector

import engine
from bench.conftest import record
from engine.backtest.reference import sma_cross_reference
from engine.strategy.indicators import crossover, crossunder, sma

ROUNDS = 3


def test_python_reference_loop(benchmark, walk_1m):
    close = walk_1m.fields["close"][:, 0]
    fast, slow = sma(close, 10), sma(close, 20)
    args = (walk_1m.fields["open"][:, 0].tolist(), close.tolist(), fast.tolist(), slow.tolist())
    trades, _ = benchmark.pedantic(sma_cross_reference, args=args, rounds=ROUNDS, iterations=1)
    assert len(trades) > 1000
    record(benchmark, "python_reference_loop", walk_1m.n_bars)


def test_event_path_run(benchmark, walk_1m, sma_cross):
    result = benchmark.pedantic(engine.run, args=(sma_cross, walk_1m),
                                kwargs={"mode": "event"}, rounds=ROUNDS, iterations=1)
    assert result.metrics["trades"] > 1000
    record(benchmark, "event_path_run (whole engine.run)", walk_1m.n_bars)


def test_vector_path_run(benchmark, walk_1m, sma_cross):
    result = benchmark.pedantic(engine.run, args=(sma_cross, walk_1m),
                                kwargs={"mode": "vector"}, rounds=ROUNDS, iterations=1)
    assert result.metrics["trades"] > 1000
    record(benchmark, "vector_path_run (whole engine.run)", walk_1m.n_bars)


def test_vector_loop_only(benchmark, walk_1m):
    close = walk_1m.fields["close"]
    fast, slow = sma(close, 10), sma(close, 20)
    entries = np.ascontiguousarray(crossover(fast, slow), dtype=np.uint8)
    exits = np.ascontiguousarray(crossunder(fast, slow), dtype=np.uint8)
    size = np.zeros((1, 1))
    f = walk_1m.fields

    def loop():
        broker = Broker(f["open"], f["high"], f["low"], f["close"], 100_000.0)
        run_vector(broker, entries, exits, size, "all_cash", 1)
        return broker

    broker = benchmark.pedantic(loop, rounds=ROUNDS, iterations=1)
    assert broker.trades_table()["size"].size > 1000
    record(benchmark, "vector_loop_only (compiled loop)", walk_1m.n_bars)
