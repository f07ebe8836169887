"""The vectorised path on a 500-symbol x 2,520-day panel (ten years of daily bars
for an index's worth of stocks): the whole ``engine.run`` call, and the compiled
loop alone with the signals given. DESIGN.md's target is < 0.05 s for the run."""

from __future__ import annotations

import numpy as np
import pytest
from engine._core.broker import Broker
from engine._core.loop import run_vector

import engine
from bench.conftest import record
from engine import Signals
from engine.strategy.indicators import crossover, crossunder, sma

ROUNDS = 7
SYMBOLS, DAYS = 500, 2_520


@pytest.fixture(scope="module")
def panel():
    from engine.data.synthetic import random_walk

    return random_walk(DAYS, SYMBOLS, seed=5)


def test_panel_vector_run(benchmark, panel, sma_cross):
    class EqualCashSmaCross(sma_cross):
        """The SMA cross of every symbol, each with an equal part of the cash (with
        all the cash per entry, the first symbol to cross would take it all)."""

        def signals(self, data):
            signals = super().signals(data)
            return Signals(entries=signals.entries, exits=signals.exits,
                           size=self.cash / len(data.symbols), size_type="cash")

    result = benchmark.pedantic(engine.run, args=(EqualCashSmaCross, panel),
                                kwargs={"mode": "vector"}, rounds=ROUNDS, iterations=1)
    assert result.metrics["trades"] > 1000
    record(benchmark, f"panel {SYMBOLS}x{DAYS} vector engine.run", SYMBOLS * DAYS)


def test_panel_vector_loop_only(benchmark, panel):
    close = panel.fields["close"]
    fast, slow = sma(close, 10), sma(close, 20)
    entries = np.ascontiguousarray(crossover(fast, slow), dtype=np.uint8)
    exits = np.ascontiguousarray(crossunder(fast, slow), dtype=np.uint8)
    size = np.full((1, SYMBOLS), 100_000.0 / SYMBOLS)
    f = panel.fields

    def loop():
        broker = Broker(f["open"], f["high"], f["low"], f["close"], 100_000.0)
        run_vector(broker, entries, exits, size, "cash", 1)
        return broker

    broker = benchmark.pedantic(loop, rounds=ROUNDS, iterations=1)
    assert broker.trades_table()["size"].size > 1000
    record(benchmark, f"panel {SYMBOLS}x{DAYS} compiled loop only", SYMBOLS * DAYS)
