"""Seeded synthetic bars for tests and benchmarks (never used as market data)."""

from __future__ import annotations

import numpy as np

from engine.data.panel import Panel


def random_walk(n_bars: int, n_symbols: int = 1, *, seed: int = 0, start_price: float = 100.0,
                volatility: float = 0.01, decimals: int = 2,
                start: str = "2000-01-03", freq: str = "D") -> Panel:
    """A geometric random walk as a validated :class:`~engine.data.panel.Panel`.

    Prices are rounded to ``decimals`` (a tick grid, as real quotes are), so moving
    averages can tie exactly. Each bar's open is the previous close moved by a small
    gap; high and low bracket open and close. Timestamps are consecutive days.

    Parameters
    ----------
    n_bars, n_symbols : int
        Panel size.
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed gives the same bars.
    volatility : float
        Standard deviation of the per-bar log return.
    freq : str
        Spacing of the timestamps, a numpy time unit: ``"D"`` (days, the default),
        ``"h"``, ``"m"`` (minutes) or ``"s"``. Daily bars from 2000 reach the end of
        nanosecond time (2262) after about 95,000 bars; longer walks need ``"m"``.
    """
    if n_bars < 1 or n_symbols < 1:
        raise ValueError(f"n_bars and n_symbols must be >= 1; got {n_bars}, {n_symbols}")
    rng = np.random.default_rng(seed)
    shape = (n_bars, n_symbols)
    log_close = np.log(start_price) + np.cumsum(rng.normal(0.0, volatility, shape), axis=0)
    close = np.round(np.exp(log_close), decimals)
    previous = np.vstack([np.full((1, n_symbols), start_price), close[:-1]])
    open_ = np.round(previous * np.exp(rng.normal(0.0, volatility / 4, shape)), decimals)
    spread = np.abs(rng.normal(0.0, volatility / 2, shape))
    high = np.round(np.maximum(open_, close) * (1 + spread), decimals)
    low = np.round(np.minimum(open_, close) * (1 - spread), decimals)
    tick = 10.0 ** -decimals
    low = np.maximum(low, tick)
    close = np.maximum(close, tick)
    open_ = np.maximum(open_, tick)
    volume = np.round(rng.lognormal(13, 0.5, shape))
    if freq not in ("D", "h", "m", "s"):
        raise ValueError(f"freq must be 'D', 'h', 'm' or 's'; got {freq!r}")
    first = np.datetime64(start, "ns")
    step = np.timedelta64(1, freq).astype("timedelta64[ns]")
    room = (np.datetime64("2262-04-11", "ns") - first) // step
    if n_bars > room:
        raise ValueError(
            f"{n_bars} bars of freq={freq!r} from {start} pass 2262-04-11, the end of "
            f"nanosecond timestamps; pass freq='m' (minutes) for a walk this long"
        )
    ts = first + np.arange(n_bars) * step
    symbols = ("asset",) if n_symbols == 1 else tuple(f"S{i:04d}" for i in range(n_symbols))
    fields = {
        name: np.ascontiguousarray(arr, dtype=np.float64)
        for name, arr in (("open", open_), ("high", high), ("low", low), ("close", close),
                          ("volume", volume))
    }
    return Panel(ts=ts, symbols=symbols, fields=fields, source=f"<random walk seed={seed}>")
