"""Top-N momentum rotation over the bundled stock universe, monthly, with target weights.

On the first bar of each month (its close: a bar cannot know it is the month's last
without seeing the next one), rank the symbols that traded above ``min_price`` on
both that bar and ``lookback`` bars before by their return over those bars, and
hold the ``top`` best in equal parts of ``invested`` of equity; every other symbol is
sold. The orders fill at the next open (sells first, then buys; whole shares), and a
symbol whose weight changes by less than ``threshold`` is not traded.

The vectorised path with ``Signals(weights=...)``: one Python call for the whole run.
The data's prices are as traded (not adjusted for splits); ``min_price`` keeps out the
penny stocks where that matters most.
"""

import numpy as np

from engine import Signals, Strategy, param


class MomentumRotation(Strategy):
    default_data = "../datasets/short_universe_daily.parquet"

    lookback: int = param(63, min=2, help="momentum window, in bars (63: about 3 months)")
    top: int = param(10, min=1, help="number of symbols held")
    invested: float = param(0.98, min=0.01, max=1.0,
                            help="fraction of equity invested (the rest covers gaps)")
    min_price: float = param(5.0, min=0.0, help="ignore symbols trading below this price")
    threshold: float = param(0.01, min=0.0, help="skip weight changes smaller than this")

    def weights(self, close: np.ndarray, ts: np.ndarray) -> np.ndarray:
        n, k = close.shape
        w = np.full((n, k), np.nan)
        month = np.asarray(ts).astype("datetime64[M]")
        first_bars = np.flatnonzero(np.r_[False, month[1:] != month[:-1]])
        for t in first_bars[first_bars >= self.lookback]:
            now, then = close[t], close[t - self.lookback]
            ok = (now > self.min_price) & (then > self.min_price)
            momentum = np.where(ok, now / np.where(ok, then, 1.0) - 1.0, -np.inf)
            chosen = np.argsort(-momentum, kind="stable")[: self.top]
            chosen = chosen[np.isfinite(momentum[chosen])]
            w[t] = 0.0
            if len(chosen):
                w[t, chosen] = self.invested / len(chosen)
        return w

    def signals(self, data):
        close = np.asarray(data.close, dtype=float)
        if close.ndim == 1:
            close = close[:, None]
        return Signals(weights=self.weights(close, data.ts),
                       rebalance_threshold=self.threshold)
