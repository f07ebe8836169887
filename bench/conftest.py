"""Benchmark helpers: seeded data made on the fly, and a summary of bars per second
with each figure as a ratio to the plain-Python baseline measured in the same run
(these machines are shared and noisy, so absolute times travel badly)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES: dict[str, tuple[float, int]] = {}  # name → (best seconds, bars)
BASELINE = "python_reference_loop"


@pytest.fixture(scope="session")
def walk_1m():
    from engine.synthetic import random_walk

    return random_walk(1_000_000, seed=7, volatility=0.002)


@pytest.fixture(scope="session")
def sma_cross():
    from engine.plugins import load_strategy

    return load_strategy(ROOT / "strategies" / "sma_cross.py")


def record(benchmark, name: str, bars: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        FIGURES[name] = (stats.stats.min, bars)


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    write = terminalreporter.write_line
    base = FIGURES.get(BASELINE)
    write("")
    write("bars per second (best of the rounds), and speed relative to the plain Python loop:")
    for name, (seconds, bars) in sorted(FIGURES.items(), key=lambda kv: kv[1][0]):
        rate = bars / seconds
        ratio = f"{base[0] / base[1] * bars / seconds:8.1f}x" if base else "      n/a"
        write(f"  {name:<36} {rate / 1e6:10.2f} M bars/s {ratio}")
