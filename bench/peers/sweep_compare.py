"""A 1,000-set SMA(fast, slow) sweep: the engine against vectorbt's broadcast pass.

The whole pipeline on the last 2,520 daily bars of ``datasets/sp500_daily.parquet``:
moving averages, signals, the simulation of every set, and its Sharpe ratio.

* engine, batched: ``engine.sweep(strategies/sma_cross.py, grid, n_jobs=...,
  stats=False)`` (no deflated Sharpe ratios or PBO, which vectorbt does not compute), the
  default (vectorised strategies run as columns of one compiled pass, and
  ``sma_cross`` gives the signals of a batch in one ``signals_batch`` call); with
  ``n_jobs=2`` the time includes starting the worker processes. In one process, a
  repeat sweep of the same data reuses the look-ahead audit of each parameter value
  and the averages the first one made; "first sweep" rows clear both before each
  round, as a fresh process would have them.
* engine, per set: the same sweep with ``ENGINE_SWEEP_BATCHED=0`` (one ``engine.run``
  per set).
* vectorbt: ``vbt.MA.run`` over the distinct windows (one broadcast call each for the
  fast and the slow windows), the signals of the 1,000 columns in numpy (the rule's
  ties kept, as ``compare.py``'s ``sign_rule_signals``), one
  ``Portfolio.from_signals`` over the 1,000 columns, and ``sharpe_ratio()``; with its
  Numba engine (timed warm, after a first call that compiles) and its Rust engine.

Comparable settings: market orders fill at the next bar's open (vectorbt: signals
shifted one bar, ``price=open``), all the cash in whole shares (``size=inf``,
``size_granularity=1``), long only, no accumulation, no fees or slippage, cash
100,000.005 (see README: off the cent grid, so that ``cash / price`` is never an exact
integer whose floor would hang on the last bit). Before any time is shown the trades of
a sample of sets are compared: vectorbt's orders against ``engine.run``'s trades.

Run it in bench/peers/.venv (see README.md): ``bench/peers/.venv/bin/python
bench/peers/sweep_compare.py [--rounds 3] [--jobs 2] [--no-write]``. Prints a table
and writes ``bench/peers/SWEEP_RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets" / "sp500_daily.parquet"
STRATEGY = ROOT / "strategies" / "sma_cross.py"
BARS = 2520
CASH = 100_000.005
FAST = list(range(2, 42))             # 40 windows
SLOW = list(range(50, 300, 10))       # 25 windows: 1,000 sets, every one valid
SAMPLE = 25                           # sets whose trades are compared


def load():
    from engine.data.bars import load_bars

    panel = load_bars(DATA)
    return panel.view(panel.n_bars - BARS, panel.n_bars)


def sign_rule_2d(fast: np.ndarray, slow: np.ndarray):
    """compare.py's ``sign_rule_signals`` over columns: a cross is a change of the sign
    of ``fast - slow`` against its last non-zero sign (NaN counts as a tie)."""
    diff = fast - slow
    sign = np.where(diff > 0, 1, np.where(diff < 0, -1, 0)).astype(np.int8)
    rows = np.arange(sign.shape[0])[:, None]
    idx = np.where(sign != 0, rows, -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    last = np.where(idx >= 0, np.take_along_axis(sign, np.maximum(idx, 0), axis=0), 0)
    previous = np.vstack([np.zeros((1, sign.shape[1]), np.int8), last[:-1]])
    return (sign == 1) & (previous == -1), (sign == -1) & (previous == 1)


def vectorbt_pipeline(panel, engine_name: str):
    """Indicators, signals, one broadcast simulation and the Sharpe ratios."""
    import pandas as pd
    import vectorbt as vbt

    index = pd.DatetimeIndex(panel.ts)
    close = pd.Series(panel.fields["close"][:, 0], index=index)
    open_ = pd.Series(panel.fields["open"][:, 0], index=index)
    fast_ma = vbt.MA.run(close, FAST).ma.to_numpy()
    slow_ma = vbt.MA.run(close, SLOW).ma.to_numpy()
    fi = np.repeat(np.arange(len(FAST)), len(SLOW))
    si = np.tile(np.arange(len(SLOW)), len(FAST))
    entries, exits = sign_rule_2d(fast_ma[:, fi], slow_ma[:, si])
    # the signal of bar t acts at bar t+1, at its open
    entries = np.vstack([np.zeros((1, entries.shape[1]), bool), entries[:-1]])
    exits = np.vstack([np.zeros((1, exits.shape[1]), bool), exits[:-1]])
    columns = pd.MultiIndex.from_arrays([np.array(FAST)[fi], np.array(SLOW)[si]],
                                        names=["fast", "slow"])
    pf = vbt.Portfolio.from_signals(
        close, pd.DataFrame(entries, index=index, columns=columns),
        pd.DataFrame(exits, index=index, columns=columns), price=open_, size=np.inf,
        size_granularity=1, fees=0.0, slippage=0.0, init_cash=CASH, direction="longonly",
        accumulate=False, freq="1D", engine=engine_name,
    )
    sharpe = pf.sharpe_ratio()
    return pf, sharpe


def vectorbt_trades(pf, column: int, ts) -> list[tuple]:
    """(entry bar, entry price, exit bar or None, exit price or None, size) per round trip."""
    records = pf.orders.values
    mine = records[records["col"] == column]
    trades, entry = [], None
    for idx, size, price, side in zip(mine["idx"], mine["size"], mine["price"], mine["side"],
                                      strict=True):
        if side == 0:
            entry = (int(idx), float(price), int(round(size)))
        else:
            trades.append((entry[0], entry[1], int(idx), float(price), entry[2]))
            entry = None
    if entry is not None:
        trades.append((entry[0], entry[1], None, None, entry[2]))
    return trades


def engine_trades(panel, fast: int, slow: int) -> list[tuple]:
    import engine

    result = engine.run(STRATEGY, panel, fast=fast, slow=slow, cash=CASH)
    ts = list(np.asarray(panel.ts, dtype="datetime64[ns]"))
    position = {t: i for i, t in enumerate(ts)}
    out = []
    for row in result.trades.iter_rows(named=True):
        entry = position[np.datetime64(row["entry_ts"], "ns")]
        if row["exit_ts"] is None:
            out.append((entry, row["entry_price"], None, None, int(row["size"])))
        else:
            out.append((entry, row["entry_price"], position[np.datetime64(row["exit_ts"], "ns")],
                        row["exit_price"], int(row["size"])))
    return out


def engine_sweep(panel, jobs: int, batched: bool, first: bool = False, **options):
    """``first``: as a process's first sweep of this strategy and data (every parameter
    value audited, no indicator kept from an earlier sweep); otherwise a repeat."""
    import engine
    from engine.research import batched as batched_path

    if first:
        batched_path._AUDITED.clear()
        batched_path._MEMO.for_panel(None)
    os.environ["ENGINE_SWEEP_BATCHED"] = "1" if batched else "0"
    try:
        # stats=False: the deflated Sharpe ratios and the PBO are not part of the
        # pipeline vectorbt runs (indicators, signals, simulation, Sharpe)
        return engine.sweep(STRATEGY, {"fast": FAST, "slow": SLOW}, data=panel, n_jobs=jobs,
                            progress=False, cash=CASH, stats=False, **options)
    finally:
        os.environ.pop("ENGINE_SWEEP_BATCHED", None)


def best_of(func, rounds: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - t0)
    return best, out


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("numpy", "pandas", "polars", "vectorbt", "vectorbt-rust", "numba"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--per-set-rounds", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    n_sets = len(FAST) * len(SLOW)
    panel = load()
    load_before = os.getloadavg()

    # ---- trades first: vectorbt's against engine.run's, on a sample of sets
    import vectorbt  # noqa: F401  (imports outside the timings)

    t0 = time.perf_counter()
    pf, _ = vectorbt_pipeline(panel, "numba")   # the first call compiles (Numba)
    compile_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    sample = sorted(rng.choice(n_sets, size=SAMPLE, replace=False).tolist())
    mismatched = []
    trades_seen = 0
    for column in sample:
        fast, slow = FAST[column // len(SLOW)], SLOW[column % len(SLOW)]
        ours, theirs = engine_trades(panel, fast, slow), vectorbt_trades(pf, column, panel.ts)
        trades_seen += len(ours)
        if ours != theirs:
            mismatched.append((fast, slow, len(ours), len(theirs)))

    # ---- times, in one run
    rows = []
    seconds, pf_numba = best_of(lambda: vectorbt_pipeline(panel, "numba"), args.rounds)
    rows.append(("vectorbt, Numba (warm)", seconds))
    try:
        seconds, _ = best_of(lambda: vectorbt_pipeline(panel, "rust"), args.rounds)
        rows.append(("vectorbt, Rust", seconds))
    except Exception as exc:  # the Rust engine is an optional wheel
        rows.append((f"vectorbt, Rust: unavailable ({type(exc).__name__}: {exc})", float("nan")))
    seconds, frame = best_of(lambda: engine_sweep(panel, args.jobs, True), args.rounds)
    rows.append((f"engine, batched, n_jobs={args.jobs}", seconds))
    assert frame["error"].null_count() == n_sets
    seconds, _ = best_of(lambda: engine_sweep(panel, 1, True), args.rounds)
    rows.append(("engine, batched, n_jobs=1 (a repeat sweep)", seconds))
    seconds, _ = best_of(lambda: engine_sweep(panel, 1, True, first=True), args.rounds)
    rows.append(("engine, batched, n_jobs=1, first sweep (audits every value)", seconds))
    seconds, _ = best_of(lambda: engine_sweep(panel, -1, True, first=True), args.rounds)
    rows.append(("engine.sweep default (n_jobs=-1), first sweep", seconds))
    seconds, _ = best_of(lambda: engine_sweep(panel, 1, True, first=True, audit="off"),
                         args.rounds)
    rows.append(("engine, batched, n_jobs=1, first sweep, audit='off'", seconds))
    seconds, per_set = best_of(lambda: engine_sweep(panel, args.jobs, False), args.per_set_rounds)
    rows.append((f"engine, per set, n_jobs={args.jobs}", seconds))
    same_rows = per_set.equals(frame, null_equal=True)
    load_after = os.getloadavg()

    rust = next((s for name, s in rows if name == "vectorbt, Rust"), float("nan"))
    numba = rows[0][1]
    lines = [
        f"# Sweep: {n_sets:,} SMA(fast, slow) sets on {BARS:,} daily bars",
        "",
        f"{datetime.date.today()}, {platform.python_version()}, nproc "
        f"{os.cpu_count()}, load average {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after; {versions()}.",
        "",
        f"Trades compared on {SAMPLE} sets ({trades_seen} engine trades): "
        + ("identical." if not mismatched else f"{len(mismatched)} sets differ: {mismatched}"),
        f"Batched and per-set sweep frames identical: {same_rows}. "
        f"vectorbt's first call (Numba compile): {compile_seconds:.2f} s.",
        "",
        "| pipeline | seconds (best of rounds) | sets/s | vs vectorbt Rust | vs Numba |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.3f} | {n_sets / seconds:,.0f} | "
                     f"{rust / seconds:.2f}x | {numba / seconds:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        (Path(__file__).parent / "SWEEP_RESULTS.md").write_text(text)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
