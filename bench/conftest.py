"""Benchmark helpers: seeded data made on the fly, and a summary of bars per second
with each figure as a ratio to the plain-Python baseline measured in the same run
(these machines are shared and noisy, so absolute times travel badly)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES: dict[str, tuple[float, int]] = {}  # name → (best seconds, bars)
BASELINE = "python_reference_loop"
# Sweeps: name → (best seconds, backtests, share of every core busy or None)
SWEEPS: dict[str, tuple[float, int, float | None]] = {}
SWEEP_BASELINE = "sequential, one process"
# Whole processes: name → best wall seconds, shown against a bare interpreter's start-up.
PROCESSES: dict[str, float] = {}
PROCESS_BASELINE = "python -c pass (interpreter start-up)"


@pytest.fixture(scope="session")
def walk_1m():
    from engine.data.synthetic import random_walk

    return random_walk(1_000_000, seed=7, volatility=0.002, freq="m")


@pytest.fixture(scope="session")
def sma_cross():
    from engine.strategy.plugins import load_strategy

    return load_strategy(ROOT / "strategies" / "sma_cross.py")


def _best(benchmark) -> float | None:
    """The best time of a benchmark that ran (None with benchmarks disabled)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.min


def record(benchmark, name: str, bars: int) -> None:
    best = _best(benchmark)
    if best is not None:
        FIGURES[name] = (best, bars)


def record_sweep(benchmark, name: str, backtests: int, busy: float | None = None) -> None:
    best = _best(benchmark)
    if best is not None:
        SWEEPS[name] = (best, backtests, busy)


def record_process(benchmark, name: str) -> None:
    best = _best(benchmark)
    if best is not None:
        PROCESSES[name] = best


#: One short run (bench/test_bench_lean_run.py): name -> best seconds.
RUNS: dict[str, float] = {}
#: The run the others are compared with: a run that also builds its frames.
RUN_BASELINE = "run + frames (eager, as before lean runs), audit off"


def record_run(benchmark, name: str) -> None:
    best = _best(benchmark)
    if best is not None:
        RUNS[name] = best


#: The sweep statistics (bench/test_bench_sweep_stats.py): name -> best seconds.
STATS: dict[str, float] = {}
#: The case the others are compared with: the same sweep without the statistics.
STATS_BASELINE = "batched sweep, 1,000 sets, stats off"


def record_stats(benchmark, name: str) -> None:
    best = _best(benchmark)
    if best is not None:
        STATS[name] = best


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    if STATS:
        base = STATS.get(STATS_BASELINE)
        write("")
        write("sweep statistics, best time, and as a share of the batched sweep without "
              "them:")
        for name, seconds in sorted(STATS.items(), key=lambda kv: kv[1]):
            ratio = f"{seconds / base:6.2f}x" if base else "   n/a"
            write(f"  {name:<50} {seconds * 1e3:8.1f} ms {ratio}")
    if RUNS:
        base = RUNS.get(RUN_BASELINE)
        write("")
        write("one 2,520-bar sma_cross engine.run, best time, and speed relative to a run "
              "that builds its trade, order and equity frames:")
        for name, seconds in sorted(RUNS.items(), key=lambda kv: kv[1]):
            ratio = f"{base / seconds:6.2f}x" if base else "   n/a"
            write(f"  {name:<56} {seconds * 1e3:8.3f} ms {ratio}")
    if PROCESSES:
        base = PROCESSES.get(PROCESS_BASELINE)
        write("")
        write("whole processes, best wall time, and as a multiple of a bare interpreter's "
              "start-up:")
        for name, seconds in sorted(PROCESSES.items(), key=lambda kv: kv[1]):
            ratio = f"{seconds / base:6.1f}x" if base else "   n/a"
            write(f"  {name:<52} {seconds:7.3f} s {ratio}")
    if SWEEPS:
        base = SWEEPS.get(SWEEP_BASELINE)
        write("")
        write("backtests per second (best of the rounds), speed relative to the same sets run "
              "one after another, and the share of all cores busy:")
        for name, (seconds, count, busy) in sorted(SWEEPS.items(), key=lambda kv: kv[1][0]):
            ratio = f"{base[0] / base[1] * count / seconds:6.2f}x" if base else "   n/a"
            shown = f"{busy:6.0%} busy" if busy is not None else ""
            write(f"  {name:<36} {count / seconds:10.0f} /s {seconds:7.2f} s {ratio} {shown}")
    if not FIGURES:
        return
    base = FIGURES.get(BASELINE)
    write("")
    write("bars per second (best of the rounds), and speed relative to the plain Python loop:")
    width = max(len(name) for name in FIGURES)
    for name, (seconds, bars) in sorted(FIGURES.items(), key=lambda kv: kv[1][0]):
        rate = bars / seconds
        ratio = f"{base[0] / base[1] * bars / seconds:8.2f}x" if base else "      n/a"
        write(f"  {name:<{width}} {rate / 1e6:10.2f} M bars/s {ratio}")
