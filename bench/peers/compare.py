"""The engine against backtesting.py, backtrader and vectorbt on one SMA(10/20) cross.

Run it from its own virtual environment (``bench/peers/run.sh`` makes one); the peers
are never dependencies of the engine::

    bench/peers/run.sh                                  # 10k, 100k and 1M bars
    bench/peers/run.sh --sizes 10000,100000 --rounds 3  # a quicker run

The rule, the same everywhere (``strategies/sma_cross.py``): long with all the cash in
whole shares, ``floor(cash / fill price)``, when SMA10 of the close crosses above SMA20;
flat when it crosses below. A cross is a change of the sign of ``fast - slow`` against
its last non-zero sign (a tie neither crosses nor resets the sign). Market orders placed
at bar t fill at bar t+1's open; no commission, no slippage; 100,000.005 of cash (half a
cent over 100,000, so that sizes never hang on float rounding: see ``CASH``). Data: the
engine's seeded random walk (``engine.data.synthetic.random_walk``, volatility 0.002).

Before any time is printed, each library's trades (entry bar, entry price, exit bar,
exit price, size; the position still open at the end too) are compared with the
engine's. A library that differs has its first differing trade printed and no time, and
the script exits with status 1. Each peer first runs with its own moving average; when
that breaks exact ties of the engine's SMA (a running-sum mean reads 1e-12 where the
averages are equal, and so crosses falsely) it is fed the engine's SMA arrays
(``engine.strategy.indicators.sma``) instead, and the table says so.

The engine runs three ways: ``engine.run`` on the vectorised path, on the event path
(a Python ``on_bar`` per bar), and its compiled loop alone on given signals (the job of
vectorbt's ``from_signals``; built on ``engine._core`` internals, shown for reference).

Timed: the backtest call alone, with the data already in each library's format; best
of ``--rounds`` (fewer when a library's rounds exceed ``--budget`` seconds). A first
call of each library on a small series (vectorbt's Numba JIT compile) is timed apart.
The table is printed and written to ``bench/peers/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STRATEGY_FILE = ROOT / "strategies" / "sma_cross.py"
RESULTS_FILE = HERE / "RESULTS.md"

FAST, SLOW = 10, 20
# Half a cent over 100,000: with cash on the cent grid, cash / price is now and then an
# exact integer (1M bars: 155,590.80 = 1052 x 147.90), and floor() of the float quotient
# then hangs on the last bit of the accumulated cash, which differs between libraries
# (plain float sums against the engine's compensated one). A cash no cent-valued trade
# can reach keeps every quotient at least 0.005 / price away from an integer.
CASH = 100_000.005
SEED = 7
VOLATILITY = 0.002
WARMUP_BARS = 2_000

# backtesting.py draws a tqdm progress bar per run; off, so it costs it nothing
os.environ.setdefault("TQDM_DISABLE", "1")

# A trade: (entry_bar, entry_price, exit_bar or None, exit_price or None, size).
Trade = tuple


# ----------------------------------------------------------------------------------------
# Data, in every library's format (made before any timing)
# ----------------------------------------------------------------------------------------

@dataclass
class Bars:
    n: int
    panel: object            # engine.data.panel.Panel
    open: np.ndarray
    close: np.ndarray
    ts: np.ndarray           # datetime64[ns]
    frame: object            # pandas DataFrame, DatetimeIndex, Open/High/Low/Close/Volume
    engine_fast: np.ndarray  # engine.strategy.indicators.sma(close, FAST)
    engine_slow: np.ndarray
    _cache: dict = field(default_factory=dict)


def make_bars(n: int) -> Bars:
    """The engine's seeded random walk, one bar a minute (daily stamps would pass the
    end of nanosecond time, 2262, after about 95,000 bars)."""
    import pandas as pd

    from engine.data.synthetic import random_walk
    from engine.strategy.indicators import sma

    panel = walk = random_walk(n, seed=SEED, volatility=VOLATILITY, freq="m")
    ts = walk.ts
    f = {k: np.ascontiguousarray(v[:, 0]) for k, v in walk.fields.items()}
    frame = pd.DataFrame(
        {"Open": f["open"], "High": f["high"], "Low": f["low"], "Close": f["close"],
         "Volume": f["volume"]},
        index=pd.DatetimeIndex(ts, name="ts"),
    )
    return Bars(n=n, panel=panel, open=f["open"], close=f["close"], ts=ts, frame=frame,
                engine_fast=sma(f["close"], FAST), engine_slow=sma(f["close"], SLOW))


def sign_rule_signals(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries and exits of the SMA cross rule, written apart from the engine's.

    ``entries[t]``: the sign of ``fast - slow`` at t is +1 and its last non-zero sign
    before t was -1; ``exits[t]`` the reverse. NaN counts as a tie.
    """
    diff = fast - slow
    sign = np.where(diff > 0, 1, np.where(diff < 0, -1, 0)).astype(np.int8)
    idx = np.where(sign != 0, np.arange(sign.size), -1)
    np.maximum.accumulate(idx, out=idx)
    last = np.where(idx >= 0, sign[np.maximum(idx, 0)], 0)
    previous = np.concatenate(([0], last[:-1]))
    return (sign == 1) & (previous == -1), (sign == -1) & (previous == 1)


def broken_ties(fast: np.ndarray, slow: np.ndarray, bars: Bars) -> str:
    """How a peer's own averages differ from the engine's: ties they break, max error."""
    ours = bars.engine_fast - bars.engine_slow
    theirs = np.asarray(fast, dtype=float) - np.asarray(slow, dtype=float)
    ties = (ours == 0) & (theirs != 0) & ~np.isnan(theirs)
    err = max(np.nanmax(np.abs(np.asarray(fast) - bars.engine_fast)),
              np.nanmax(np.abs(np.asarray(slow) - bars.engine_slow)))
    return (f"its SMA breaks {int(ties.sum())} of the {int((ours == 0).sum())} exact ties "
            f"of SMA{FAST} and SMA{SLOW} (max |error| {err:.1e})")


# ----------------------------------------------------------------------------------------
# Runners: each returns (seconds of the backtest call, trades, note)
# ----------------------------------------------------------------------------------------

_STRATEGY_CLASS = None


def engine_runner(mode: str):
    def run(bars: Bars, sma_source: str):
        import engine

        global _STRATEGY_CLASS
        if _STRATEGY_CLASS is None:
            from engine.strategy.plugins import load_strategy

            _STRATEGY_CLASS = load_strategy(STRATEGY_FILE)
        t0 = time.perf_counter()
        result = engine.run(_STRATEGY_CLASS, data=bars.panel, cash=CASH, mode=mode)
        seconds = time.perf_counter() - t0
        tr = result.trades
        entry = np.searchsorted(bars.ts, tr["entry_ts"].to_numpy().astype("datetime64[ns]"))
        trades = []
        for k, (ep, xt, xp, size) in enumerate(zip(tr["entry_price"].to_list(),
                                                   tr["exit_ts"].to_list(),
                                                   tr["exit_price"].to_list(),
                                                   tr["size"].to_list(), strict=True)):
            exit_bar = None
            if xt is not None:
                exit_bar = int(np.searchsorted(bars.ts, np.datetime64(xt, "ns")))
            trades.append((int(entry[k]), ep, exit_bar, xp, int(size)))
        return seconds, trades, ""
    return run


def engine_loop_runner(bars: Bars, sma_source: str):
    """The engine's compiled vectorised loop alone, given the signals (as vectorbt is):
    informational, and built on internals (``engine._core``) that may change."""
    from engine._core.broker import Broker
    from engine._core.loop import run_vector

    key = ("engine loop",)
    if key not in bars._cache:
        entries, exits = sign_rule_signals(bars.engine_fast, bars.engine_slow)
        bars._cache[key] = (entries.astype(np.uint8).reshape(-1, 1),
                            exits.astype(np.uint8).reshape(-1, 1))
    entries, exits = bars._cache[key]
    f = bars.panel.fields
    t0 = time.perf_counter()
    broker = Broker(f["open"], f["high"], f["low"], f["close"], CASH)
    run_vector(broker, entries, exits, np.zeros((1, 1)), "all_cash", 1)
    seconds = time.perf_counter() - t0
    t = broker.trades_table()
    trades = [(int(eb), float(ep), None if xb < 0 else int(xb), None if xb < 0 else float(xp),
               int(size)) for eb, ep, xb, xp, size in zip(
        t["entry_bar"], t["entry_price"], t["exit_bar"], t["exit_price"], t["size"],
        strict=True)]
    return seconds, trades, ""


def _rolling_mean_pandas(values, window):
    import pandas as pd

    return pd.Series(values).rolling(window).mean().to_numpy()


def backtesting_runner(bars: Bars, sma_source: str):
    """backtesting.py: ``Backtest(...).run()``; orders sized from the fill bar's open."""
    from backtesting import Backtest, Strategy

    opens, n = bars.open, bars.n

    class SmaCross(Strategy):
        def init(self):
            if sma_source == "own":  # the SMA helper of backtesting.py's docs
                self.fast = self.I(_rolling_mean_pandas, self.data.Close, FAST)
                self.slow = self.I(_rolling_mean_pandas, self.data.Close, SLOW)
            else:
                self.fast = self.I(lambda: bars.engine_fast, name=f"SMA{FAST}")
                self.slow = self.I(lambda: bars.engine_slow, name=f"SMA{SLOW}")
            self.last_sign = None

        def next(self):
            if self.last_sign is None:
                # next() starts one bar after the warm-up: take the last sign before it
                d = np.asarray(self.fast[:-1]) - np.asarray(self.slow[:-1])
                d = d[(d != 0) & ~np.isnan(d)]
                self.last_sign = 0 if d.size == 0 else (1 if d[-1] > 0 else -1)
            diff = self.fast[-1] - self.slow[-1]
            sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
            if sign == 0:
                return
            previous, self.last_sign = self.last_sign, sign
            if previous == -1 and sign == 1 and not self.position:
                i = len(self.data)  # the bar the order fills on
                if i < n:
                    # flat: equity is the cash; whole shares at the fill bar's open
                    self.buy(size=math.floor(self.equity / opens[i]))
            elif previous == 1 and sign == -1 and self.position:
                self.position.close()

    bt = Backtest(bars.frame, SmaCross, cash=CASH, commission=0.0, margin=1.0,
                  trade_on_close=False, hedging=False, exclusive_orders=False,
                  finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.run()
        seconds = time.perf_counter() - t0
    closed = stats["_trades"]
    trades = [(int(e), float(ep), int(x), float(xp), int(s)) for e, ep, x, xp, s in zip(
        closed["EntryBar"], closed["EntryPrice"], closed["ExitBar"], closed["ExitPrice"],
        closed["Size"], strict=True)]
    strategy = stats["_strategy"]
    for t in strategy.trades:  # still open at the end
        trades.append((int(t.entry_bar), float(t.entry_price), None, None, int(t.size)))
    trades.sort(key=lambda t: t[0])
    note = ""
    if sma_source == "own":
        note = broken_ties(_rolling_mean_pandas(bars.close, FAST),
                           _rolling_mean_pandas(bars.close, SLOW), bars)
    return seconds, trades, note


def backtrader_runner(bars: Bars, sma_source: str):
    """backtrader: ``Cerebro.run()``; market orders fill at the next open (no cheat-on-open,
    no cheat-on-close), sized from that open; submission not checked against the close."""
    import backtrader as bt

    opens, n = bars.open, bars.n

    class Feed(bt.feeds.PandasData):
        lines = ("fast", "slow")
        params = (("fast", -1), ("slow", -1), ("openinterest", None))

    class SmaCross(bt.Strategy):
        def __init__(self):
            if sma_source == "own":
                self.fast = bt.indicators.SMA(self.data.close, period=FAST)
                self.slow = bt.indicators.SMA(self.data.close, period=SLOW)
            else:
                self.fast, self.slow = self.data.fast, self.data.slow
            self.last_sign = 0
            self.fills = []  # (bar, price, signed size)

        def notify_order(self, order):
            if order.status == order.Completed:
                # notified in the cycle of the bar it filled on, before that bar's next()
                # the fill's own price (executed.price is a size-weighted average, which
                # can read 63.85000000000001 for a 63.85 fill)
                bit = order.executed.exbits[-1]
                self.fills.append((len(self) - 1, bit.price, bit.size))

        def next(self):
            diff = self.fast[0] - self.slow[0]
            sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
            if sign == 0:
                return
            previous, self.last_sign = self.last_sign, sign
            if previous == -1 and sign == 1 and not self.position:
                i = len(self)  # the bar the order fills on
                if i < n:
                    self.buy(size=math.floor(self.broker.getcash() / opens[i]))
            elif previous == 1 and sign == -1 and self.position:
                self.close()

    frame = bars.frame
    if sma_source == "engine":
        frame = frame.assign(fast=bars.engine_fast, slow=bars.engine_slow)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(Feed(dataname=frame))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.broker.set_coc(False)
    cerebro.broker.set_coo(False)
    cerebro.broker.set_checksubmit(False)
    t0 = time.perf_counter()
    (strategy,) = cerebro.run()
    seconds = time.perf_counter() - t0
    trades, entry = [], None
    for bar, price, size in strategy.fills:
        if size > 0:
            entry = (bar, price, int(size))
        else:
            trades.append((entry[0], entry[1], bar, price, entry[2]))
            entry = None
    if entry is not None:
        trades.append((entry[0], entry[1], None, None, entry[2]))
    note = ""
    if sma_source == "own":
        note = broken_ties(np.asarray(strategy.fast.array), np.asarray(strategy.slow.array),
                           bars)
    return seconds, trades, note


def _vectorbt_inputs(bars: Bars, sma_source: str):
    key = ("vectorbt", sma_source)
    if key not in bars._cache:
        import pandas as pd
        import vectorbt as vbt

        if sma_source == "own":
            close = pd.Series(bars.close, index=bars.frame.index)
            fast = vbt.MA.run(close, FAST).ma.to_numpy()
            slow = vbt.MA.run(close, SLOW).ma.to_numpy()
        else:
            fast, slow = bars.engine_fast, bars.engine_slow
        entries, exits = sign_rule_signals(fast, slow)
        # the signal of bar t acts at bar t+1, at its open
        entries = np.concatenate(([False], entries[:-1]))
        exits = np.concatenate(([False], exits[:-1]))
        note = broken_ties(fast, slow, bars) if sma_source == "own" else ""
        bars._cache[key] = (entries, exits, note)
    return bars._cache[key]


def vectorbt_runner(engine_name: str):
    def run(bars: Bars, sma_source: str):
        """vectorbt: ``Portfolio.from_signals`` on signals shifted one bar, at the open."""
        import vectorbt as vbt

        entries, exits, note = _vectorbt_inputs(bars, sma_source)
        t0 = time.perf_counter()
        pf = vbt.Portfolio.from_signals(
            bars.close, entries, exits, price=bars.open, size=np.inf, size_granularity=1,
            fees=0.0, slippage=0.0, init_cash=CASH, direction="longonly", accumulate=False,
            engine=engine_name,
        )
        seconds = time.perf_counter() - t0
        orders = pf.orders.values
        trades, entry = [], None
        for idx, size, price, side in zip(orders["idx"], orders["size"], orders["price"],
                                          orders["side"], strict=True):
            if side == 0:
                entry = (int(idx), float(price), int(round(size)))
            else:
                trades.append((entry[0], entry[1], int(idx), float(price), entry[2]))
                entry = None
        if entry is not None:
            trades.append((entry[0], entry[1], None, None, entry[2]))
        return seconds, trades, note
    return run


@dataclass
class Library:
    name: str
    runner: object
    peer: bool = True
    dist: tuple = ()  # distributions whose versions are reported


LIBRARIES = [
    Library("engine, vector path", engine_runner("vector"), peer=False),
    Library("engine, event path", engine_runner("event"), peer=False),
    Library("engine, compiled loop", engine_loop_runner, peer=False),
    Library("backtesting.py", backtesting_runner, dist=("backtesting", "bokeh")),
    Library("backtrader", backtrader_runner, dist=("backtrader",)),
    Library("vectorbt (Numba)", vectorbt_runner("numba"), dist=("vectorbt", "numba", "llvmlite")),
    Library("vectorbt (Rust)", vectorbt_runner("rust"), dist=("vectorbt-rust",)),
]


# ----------------------------------------------------------------------------------------
# Checking and timing
# ----------------------------------------------------------------------------------------

def first_difference(ours: list, theirs: list):
    for k in range(max(len(ours), len(theirs))):
        a = ours[k] if k < len(ours) else None
        b = theirs[k] if k < len(theirs) else None
        if a != b:
            return k, a, b
    return None


def size_note(reference: list, k: int, a, b) -> str:
    """When only the size differs: the exact cash before that entry, in decimal."""
    if a is None or b is None or a[:2] != b[:2] or a[4] == b[4]:
        return ""
    from decimal import Decimal

    cash = Decimal(repr(CASH))
    for _eb, ep, _xb, xp, size in reference[:k]:  # the trades before k are the same
        cash += size * (Decimal(repr(xp)) - Decimal(repr(ep)))
    quotient = cash / Decimal(repr(a[1]))
    return (f"sizes differ: the exact cash before this entry is {cash} (the earlier trades "
            f"in decimal), and cash / price = {quotient}")


def describe(trade, bars: Bars) -> str:
    if trade is None:
        return "no trade"
    eb, ep, xb, xp, size = trade
    def stamp(i):
        return "-" if i is None else f"bar {i} ({str(bars.ts[i])[:16]})"
    return (f"entry {stamp(eb)} at {ep}, exit {stamp(xb)} at {xp}, size {size}")


@dataclass
class Row:
    library: str
    bars: int
    sma: str = ""
    times: list = field(default_factory=list)
    trades: int = 0
    status: str = "ok"  # ok | differs | skipped | error

    @property
    def best(self) -> float:
        return min(self.times) if self.times else math.nan


def measure(lib: Library, bars: Bars, reference, sma_source: str, rounds: int, budget: float,
            log) -> tuple[Row, list | None]:
    """Run ``lib`` until its first run checks, then time the remaining rounds."""
    row = Row(lib.name, bars.n, sma_source if lib.peer else "own")
    gc.collect()
    seconds, trades, note = lib.runner(bars, sma_source)
    row.trades = len(trades)
    if reference is not None:
        diff = first_difference(reference, trades)
        if diff is not None:
            k, a, b = diff
            row.status = "differs"
            log(f"  {lib.name} ({sma_source} SMA), {bars.n:,} bars: trade #{k} differs "
                f"({len(trades)} trades against the engine's {len(reference)})")
            log(f"    engine: {describe(a, bars)}")
            log(f"    {lib.name}: {describe(b, bars)}")
            for extra in (note, size_note(reference, k, a, b)):
                if extra:
                    log(f"    {extra}")
            return row, trades
    row.times.append(seconds)
    spent = seconds
    while len(row.times) < rounds and spent < budget:
        gc.collect()
        seconds, again, _ = lib.runner(bars, sma_source)
        if again != trades:
            row.status = "differs"
            log(f"  {lib.name}: a repeated run made other trades")
            return row, trades
        row.times.append(seconds)
        spent += seconds
    return row, trades


def versions() -> dict:
    names = ["numpy", "pandas", "polars", "backtesting", "bokeh", "backtrader", "vectorbt",
             "vectorbt-rust", "numba", "llvmlite"]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def engine_version() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "engine", "setup.py", "pyproject.toml"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" + uncommitted changes to engine/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt_rate(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.1f} M"
    if x >= 1e3:
        return f"{x / 1e3:.0f} k"
    return f"{x:.0f}"


def fmt_ratio(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def table(rows: list[Row]) -> list[str]:
    """Markdown table; ratio columns: the engine row's speed over this row's."""
    engines = [lib.name for lib in LIBRARIES if not lib.peer]
    heads = {engines[0]: "engine vector ×", engines[1]: "engine event ×",
             engines[2]: "engine loop ×"}
    shown = [e for e in engines if any(r.library == e and r.status == "ok" for r in rows)]
    lines = ["| library | bars | SMA | trades | best s | rounds | bars/s | "
             + " | ".join(heads[e] for e in shown) + " |",
             "|---|---:|---|---:|---:|---:|---:|" + "---:|" * len(shown)]
    by_size: dict[int, dict[str, Row]] = {}
    for r in rows:
        by_size.setdefault(r.bars, {})[r.library] = r
    for n in sorted(by_size):
        group = by_size[n]
        for r in group.values():
            if r.status != "ok":
                lines.append(f"| {r.library} | {n:,} | {r.sma} | {r.trades} | {r.status} "
                             "| - | - |" + " - |" * len(shown))
                continue
            ratios = []
            for e in shown:
                ref = group.get(e)
                ok = ref is not None and ref.status == "ok"
                ratios.append(fmt_ratio(r.best / ref.best if ok else math.nan))
            sma_label = {"own": "own", "engine": "engine's arrays"}.get(r.sma, r.sma)
            lines.append(f"| {r.library} | {n:,} | {sma_label} | {r.trades} | {r.best:.4f} "
                         f"| {len(r.times)} | {fmt_rate(n / r.best)} | "
                         + " | ".join(ratios) + " |")
    return lines


def own_sma_check(lib: Library, bars: Bars, reference: list, log) -> str:
    """One untimed run of a peer with its own moving average: same trades or not."""
    gc.collect()
    _, trades, note = lib.runner(bars, "own")
    diff = first_difference(reference, trades)
    if diff is None:
        text = f"same {len(trades)} trades"
        log(f"  {lib.name:<22} own SMA: {text}")
        return text + (f"; {note}" if note else "")
    k, a, b = diff
    note = "; ".join(x for x in (note, size_note(reference, k, a, b)) if x)
    text = (f"trade #{k} differs ({len(trades)} trades against {len(reference)}): engine "
            f"{describe(a, bars)}; {lib.name} {describe(b, bars)}; {note}")
    log(f"  {lib.name:<22} own SMA: trade #{k} differs ({len(trades)} trades against "
        f"{len(reference)})")
    log(f"    engine: {describe(a, bars)}")
    log(f"    {lib.name}: {describe(b, bars)}")
    log(f"    {note}")
    return text


def main(argv=None) -> int:
    global CASH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="comma-separated bar counts (default: 10000,100000,1000000)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per library (best of)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="stop adding rounds once a library has spent this many seconds "
                         "at one size (at least one round always runs; default 60)")
    ap.add_argument("--sma", choices=("engine", "own"), default="engine",
                    help="moving averages of the peers' timed runs: the engine's arrays "
                         "(default) or their own")
    ap.add_argument("--no-own-check", action="store_true",
                    help="skip the untimed runs of each peer with its own moving average")
    ap.add_argument("--only", default="",
                    help="comma-separated substrings of peer names to run (the engine "
                         "always runs)")
    ap.add_argument("--skip-peer-above", default="",
                    help="NAME=BARS,...: do not run a peer above that many bars, "
                         "e.g. backtrader=100000 (reported as skipped)")
    ap.add_argument("--cash", type=float, default=CASH,
                    help=f"starting cash (default {CASH}; see CASH in this file)")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)
    CASH = args.cash
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    only = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    limits = {}
    for item in filter(None, args.skip_peer_above.split(",")):
        name, _, n = item.partition("=")
        limits[name.strip().lower()] = int(n)
    libs = [lib for lib in LIBRARIES
            if not lib.peer or not only or any(o in lib.name.lower() for o in only)]

    def log(msg=""):
        print(msg, flush=True)

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    vers = versions()
    log(f"python {platform.python_version()}, nproc {os.cpu_count()}, "
        + ", ".join(f"{k} {v}" for k, v in vers.items()))

    # First calls: imports are done, then one run on a short series (vectorbt's JIT).
    log(f"\nfirst call of each library on {WARMUP_BARS:,} bars (not in the table):")
    warm = make_bars(WARMUP_BARS)
    first_calls = {}
    for lib in libs:
        t0 = time.perf_counter()
        try:
            lib.runner(warm, "engine")
        except Exception as exc:  # a peer that cannot run is reported, not fatal
            log(f"  {lib.name}: cannot run: {type(exc).__name__}: {exc}")
            first_calls[lib.name] = math.nan
            continue
        first_calls[lib.name] = time.perf_counter() - t0
        log(f"  {lib.name:<22} {first_calls[lib.name]:8.3f} s")
    runnable = [lib for lib in libs if math.isfinite(first_calls.get(lib.name, math.nan))]

    rows: list[Row] = []
    own_checks: list[tuple[str, int, str]] = []
    failed = False
    for n in sizes:
        log(f"\n{n:,} bars: making the data ...")
        bars = make_bars(n)
        reference = None
        for lib in runnable:
            limit = next((v for k, v in limits.items() if k in lib.name.lower()), None)
            if lib.peer and limit is not None and n > limit:
                rows.append(Row(lib.name, n, "-", status="skipped"))
                log(f"  {lib.name}: skipped above {limit:,} bars (--skip-peer-above)")
                continue
            row, trades = measure(lib, bars, reference, args.sma if lib.peer else "engine",
                                  args.rounds, args.budget, log)
            if not lib.peer:
                row.sma = "own" if lib is not LIBRARIES[2] else "own, signals given"
            if lib is LIBRARIES[0]:
                reference = trades
            rows.append(row)
            if row.status != "ok":
                failed = True
                continue
            times = ", ".join(f"{t:.4f}" for t in row.times)
            log(f"  {lib.name:<22} {row.trades:6d} trades, "
                f"{'the reference' if lib is LIBRARIES[0] else 'same as the engine'}; "
                f"seconds: {times}")
        if not args.no_own_check and args.sma == "engine" and reference is not None:
            log(f"  untimed check of the peers' own moving averages, {n:,} bars:")
            for lib in runnable:
                limit = next((v for k, v in limits.items() if k in lib.name.lower()), None)
                if lib.peer and not (limit is not None and n > limit):
                    own_checks.append((lib.name, n, own_sma_check(lib, bars, reference, log)))
        del bars
        gc.collect()

    lines = table(rows)
    log("\nbest time of the backtest call; 'engine … ×' = the engine's speed as a multiple "
        "of the library's (its time / the engine's):\n")
    for line in lines:
        log(line)
    spread = [f"{r.library} @ {r.bars:,} bars: {min(r.times):.4f}–{max(r.times):.4f} s "
              f"over {len(r.times)} rounds"
              for r in rows if r.status == "ok" and len(r.times) > 1]
    if not args.no_write:
        write_results(lines, rows, first_calls, vers, args, spread, own_checks)
        log(f"\nwritten to {RESULTS_FILE.relative_to(ROOT)}")
    if failed:
        log("\nsome library made other trades than the engine (see above): exit status 1")
        return 1
    return 0


def write_results(lines, rows, first_calls, vers, args, spread, own_checks) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = f"--sizes {args.sizes} --rounds {args.rounds} --budget {args.budget:g}"
    if args.sma != "engine":
        command += f" --sma {args.sma}"
    command += f" --cash {args.cash}"
    out = [
        "# Peer comparison: results",
        "",
        f"Measured {now} by `bench/peers/run.sh {command}` (README.md here says what is "
        "identical and what is timed).",
        "",
        f"Machine: `nproc` = {os.cpu_count()}, {platform.machine()}, "
        f"Python {platform.python_version()}, shared with other work.",
        f"Engine: commit {engine_version()}.",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        "",
        "Every library's trades (entry bar and price, exit bar and price, size, and the "
        "position still open at the end) were checked equal to the engine's before its "
        "time was kept. Best time of the backtest call; the `engine … ×` columns give the "
        "speed of that engine row as a multiple of the row's (row time / engine time; "
        "below 1 the row is faster). `engine, compiled loop` is the compiled "
        "vectorised loop alone on given signals (`engine._core`), the job vectorbt's "
        "`from_signals` does.",
        "",
        *lines,
        "",
    ]
    if args.sma == "engine":
        out += ["SMA \"engine's arrays\": the peers' timed runs read the engine's "
                "`engine.strategy.indicators.sma` arrays, so the comparison is of the backtest "
                "machinery (their own moving averages break exact ties: below).", ""]
    out += [f"First call on {WARMUP_BARS:,} bars (imports done; vectorbt's Numba compile, "
            "unless cached on disk by an earlier process):", ""]
    out += [f"- {name}: {sec:.2f} s" if math.isfinite(sec) else f"- {name}: could not run"
            for name, sec in first_calls.items()]
    if spread:
        out += ["", "Spread of the timed rounds (min–max):", ""]
        out += [f"- {s}" for s in spread]
    if own_checks:
        out += ["", "Each peer with its own moving average (one untimed run):", ""]
        out += [f"- {name} @ {n:,} bars: {text}" for name, n, text in own_checks]
    RESULTS_FILE.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
