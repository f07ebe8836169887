"""Scaling: time and peak memory of the SMA cross against bars (10k → 100M) and symbols.

Every point runs in a fresh Python process, so that its peak resident memory
(``VmHWM`` of ``/proc/self/status``) is its own. The child imports the engine, warms
up on a tiny file, records its resident memory, resets the peak (``/proc/self/
clear_refs``), runs the point and reports the seconds and the peak's increase over
that baseline. The increase is divided by the panel's raw size, ``bars × symbols × 5
fields × 8 bytes``: the design target is at most 3× for a run in memory, and a
streamed run must stay bounded whatever the length of the file.

Modes:

* ``run`` — ``engine.run(sma_cross, "file.parquet")``: load, validate, pivot, signals,
  look-ahead audit, the compiled loop, result frames, benchmark and metrics;
* ``panel`` — the same run given the panel already in memory (``load_bars`` done
  before the baseline): what the backtest itself adds on top of the panel;
* ``stream`` — ``engine.stream_run(sma_cross, "file.parquet")`` in chunks of
  100,000 bars (the default).

The data are seeded random walks written once to Parquet in a cache folder
(``$ENGINE_BENCH_CACHE``, default ``$TMPDIR/engine-bench-scaling``), one-minute bars
for one symbol (so that 100M bars fit in ``datetime64[ns]``; written chunk by chunk,
never held whole), 2,520 daily bars for the panels of several symbols.

Run everything and print the Markdown table (about 10 minutes, 5 GB of disk for the
100M-bar file)::

    python -m bench.scaling --all

or a quick subset (``python -m bench.scaling``); ``--markdown FILE`` writes the table.
``bench/test_bench_scaling.py`` runs the quick subset under pytest.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SMA = ROOT / "strategies" / "sma_cross.py"
FIELDS = 5
ROW_GROUP = 1_000_000


@dataclass(frozen=True)
class Point:
    mode: str          # "run", "panel" or "stream"
    bars: int
    symbols: int = 1

    @property
    def raw_bytes(self) -> int:
        return self.bars * self.symbols * FIELDS * 8

    @property
    def label(self) -> str:
        return f"{self.mode} {self.bars:,} bars x {self.symbols:,} symbols"


QUICK = [Point("run", n) for n in (10_000, 100_000, 1_000_000)] + [
    Point("panel", n) for n in (10_000, 100_000, 1_000_000)] + [
    Point("run", 2_520, k) for k in (1, 10, 100, 1_000)] + [
    Point("stream", n) for n in (1_000_000, 3_000_000)]
ALL = [Point("run", n) for n in (10_000, 100_000, 1_000_000, 10_000_000)] + [
    Point("panel", n) for n in (10_000, 100_000, 1_000_000, 10_000_000)] + [
    Point("run", 2_520, k) for k in (1, 10, 100, 1_000, 5_000)] + [
    Point("panel", 2_520, k) for k in (1_000, 5_000)] + [
    Point("stream", n) for n in (1_000_000, 10_000_000, 100_000_000)]


# --------------------------------------------------------------------------- data


def cache_dir() -> Path:
    path = Path(os.environ.get("ENGINE_BENCH_CACHE")
                or Path(tempfile.gettempdir()) / "engine-bench-scaling")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_file(bars: int, symbols: int) -> Path:
    """The Parquet file of a point, made on first use (atomically: a partial file is
    never left under the final name)."""
    path = cache_dir() / f"walk_{bars}x{symbols}.parquet"
    if not path.exists():
        tmp = path.with_suffix(".partial")
        if symbols == 1:
            write_minute_walk(bars, tmp)
        else:
            from engine.data.bars import save_bars
            from engine.data.synthetic import random_walk

            save_bars(random_walk(bars, symbols, seed=17), tmp)
        os.replace(tmp, path)
    return path


def write_minute_walk(bars: int, path: Path, seed: int = 17, volatility: float = 0.0002,
                      chunk: int = ROW_GROUP) -> None:
    """A one-symbol geometric random walk of one-minute bars, ``chunk`` rows at a time.

    Like :func:`engine.data.synthetic.random_walk` (prices on a 0.01 tick, an open gapped
    from the previous close, a high and low around both), continued from chunk to
    chunk, so that no more than one chunk is ever in memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start = np.datetime64("1900-01-01", "ns")
    log_close, prev_close = np.log(100.0), 100.0
    writer = None
    try:
        for first in range(0, bars, chunk):
            n = min(chunk, bars - first)
            logs = log_close + np.cumsum(rng.normal(0.0, volatility, n))
            log_close = float(logs[-1])
            close = np.maximum(np.round(np.exp(logs), 2), 0.01)
            previous = np.concatenate(([prev_close], close[:-1]))
            prev_close = float(close[-1])
            open_ = np.maximum(np.round(previous * np.exp(rng.normal(0.0, volatility / 4, n)),
                                        2), 0.01)
            spread = np.abs(rng.normal(0.0, volatility / 2, n))
            high = np.round(np.maximum(open_, close) * (1 + spread), 2)
            low = np.maximum(np.round(np.minimum(open_, close) * (1 - spread), 2), 0.01)
            ts = start + (first + np.arange(n)) * np.timedelta64(60, "s")
            table = pa.table({
                "ts": pa.array(ts, pa.timestamp("ns")), "open": open_, "high": high,
                "low": low, "close": close, "volume": np.round(rng.lognormal(13, 0.5, n)),
            })
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=chunk)
    finally:
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- the child


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(point: Point, chunk_bars: int) -> dict:
    """Run one point in this (fresh) process; return seconds and memory."""
    import engine
    from engine.data.bars import load_bars

    tiny = data_file(2_000, 1)
    engine.run(SMA, tiny)
    engine.stream_run(SMA, tiny, chunk_bars=500)
    path = data_file(point.bars, point.symbols)
    panel = load_bars(path) if point.mode == "panel" else None
    gc.collect()
    base = _status("VmRSS")
    if not _reset_peak():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
    t0 = time.perf_counter()
    if point.mode == "stream":
        result = engine.stream_run(SMA, path, chunk_bars=chunk_bars)
    else:
        result = engine.run(SMA, panel if panel is not None else path)
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM")
    return {"seconds": seconds, "peak_increase": peak - base, "baseline": base,
            "trades": result.metrics["trades"]}


def measure(point: Point, chunk_bars: int | None = None, repeat: int = 1) -> dict:
    """Run ``point`` in fresh processes (best time of ``repeat``; memory of the first)."""
    from engine.backtest.streaming import DEFAULT_CHUNK_BARS

    chunk_bars = chunk_bars or DEFAULT_CHUNK_BARS
    data_file(point.bars, point.symbols)
    data_file(2_000, 1)
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.scaling", "--child", point.mode, str(point.bars),
             str(point.symbols), str(chunk_bars)],
            capture_output=True, text=True, cwd=ROOT, timeout=3600,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            raise RuntimeError(f"{point.label} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = dict(runs[0])
    out["seconds"] = min(r["seconds"] for r in runs)
    out["cells"] = point.bars * point.symbols
    out["ratio"] = out["peak_increase"] / point.raw_bytes
    return out


# --------------------------------------------------------------------------- the table


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} kB"


def table(rows: list[tuple[Point, dict]]) -> str:
    lines = [
        "| mode | bars | symbols | seconds | bars·symbols/s | ns per bar·symbol "
        "| peak RSS increase | RSS ÷ panel |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point, res in rows:
        rate = res["cells"] / res["seconds"]
        lines.append(
            f"| {point.mode} | {point.bars:,} | {point.symbols:,} | {res['seconds']:.3f} "
            f"| {rate / 1e6:,.1f} M | {1e9 / rate:,.1f} | {_mb(res['peak_increase'])} "
            f"| {res['ratio']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="every point, up to 100M bars")
    parser.add_argument("--repeat", type=int, default=1, help="best time of N processes")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "BARS", "SYMBOLS", "CHUNK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, bars, symbols, chunk = args.child
        print(json.dumps(child(Point(mode, int(bars), int(symbols)), int(chunk))))
        return 0
    rows = []
    for point in (ALL if args.all else QUICK):
        res = measure(point, repeat=args.repeat)
        rows.append((point, res))
        print(f"{point.label}: {res['seconds']:.3f} s, peak +{_mb(res['peak_increase'])}, "
              f"{res['ratio']:.2f}x the panel", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
