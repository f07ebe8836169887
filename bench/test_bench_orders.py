"""The order simulator with a deep book: many resting limit and stop orders.

A grid strategy places 1,000 resting GTC orders on the first bar (500 buy limits
below the price, 500 buy stops above it, one share each), and re-places the level
whenever one fills, so every bar of a 200,000-bar walk matches about 1,000 open
orders: 200M order checks per run. The Python ``on_bar`` returns at once after
the first bar, so the figure is the simulator's matching cost.
"""

from __future__ import annotations

import engine
from bench.conftest import record
from engine import Strategy

ROUNDS = 3
LEVELS = 500
STEP = 0.002  # 0.2% between grid levels (geometric): the walk crosses a few a day


class RestingGrid(Strategy):
    """Keep ``LEVELS`` buy limits under the price and ``LEVELS`` buy stops above it."""

    def on_start(self):
        self.fills = 0

    def on_bar(self, bar):
        if bar.index:
            return
        price = bar.close
        for level in range(1, LEVELS + 1):
            self.buy(1, limit=round(price * (1 - STEP) ** level, 2))
            self.buy(1, stop=round(price * (1 + STEP) ** level, 2))

    def on_fill(self, info):
        # Keep the book deep: a filled level is placed again, further away.
        self.fills += 1
        price = info["fill_price"]
        if info["kind"] == "limit":
            self.buy(1, limit=round(price * (1 - STEP) ** LEVELS, 2))
        else:
            self.buy(1, stop=round(price * (1 + STEP) ** LEVELS, 2))


def test_resting_orders(benchmark):
    from engine.data.synthetic import random_walk

    walk = random_walk(200_000, seed=11, volatility=0.002, freq="m")
    result = benchmark.pedantic(engine.run, args=(RestingGrid, walk),
                                kwargs={"cash": 1e12}, rounds=ROUNDS, iterations=1)
    orders = result.orders
    assert orders.height > 2 * LEVELS
    assert (orders["status"] == "filled").sum() > 100
    assert (orders["status"] == "open").sum() == 2 * LEVELS
    record(benchmark, f"resting orders ({2 * LEVELS} open per bar, event path)", walk.n_bars)
