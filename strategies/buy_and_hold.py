"""Buy and hold: the benchmark every other strategy is compared with.

At the first bar, put the cash into every symbol in equal parts (all of it for one
symbol), filled at the next open in whole shares, and hold to the end. The logic is
the engine's built-in benchmark (``engine.benchmark.BuyAndHold``, also used by
``compare``); this file runs it by path on the bundled S&P 500.
"""

from engine import benchmark


class BuyAndHold(benchmark.BuyAndHold):
    default_data = "../datasets/sp500_daily.parquet"
