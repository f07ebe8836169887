"""Scaling of time and peak memory with bars and symbols (see ``bench/scaling.py``).

Each point runs in a fresh process (its own peak RSS); this suite runs the quick
subset (up to 3M bars and 1,000 symbols) and prints the Markdown table of
``bench/SCALING.md``; ``python -m bench.scaling --all`` runs every point up to 100M
bars streamed from Parquet. Memory is checked here, not in ``tests/``: a run in
memory against the design's 3x the panel, and a streamed run for not growing with
the length of the file.
"""

from __future__ import annotations

import pytest

from bench.conftest import FIGURES
from bench.scaling import QUICK, Point, measure, table

RESULTS: dict[Point, dict] = {}


@pytest.mark.parametrize("point", QUICK, ids=[p.label.replace(" ", "_") for p in QUICK])
def test_scaling_point(benchmark, point):
    res = benchmark.pedantic(measure, args=(point,), rounds=1, iterations=1)
    RESULTS[point] = res
    FIGURES[f"scaling {point.label}"] = (res["seconds"], point.bars * point.symbols)
    assert res["trades"] > 0


def test_streaming_memory_is_bounded():
    small, large = (RESULTS.get(Point("stream", n)) for n in (1_000_000, 3_000_000))
    if small is None or large is None:
        pytest.skip("run with the scaling points")
    # three times the bars, not three times the memory (allowing for allocator noise)
    assert large["peak_increase"] < 1.5 * small["peak_increase"] + 64 * 2**20


def test_print_table(capsys):
    if not RESULTS:
        pytest.skip("run with the scaling points")
    with capsys.disabled():
        print("\n" + table([(p, RESULTS[p]) for p in QUICK if p in RESULTS]))
