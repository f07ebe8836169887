"""Parquet to panel: ``engine.load_bars`` against pyarrow's bare ``read_table`` of the
same file, measured in the same run (the difference is validation and the pivot
into contiguous per-field arrays)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from bench.conftest import record
from engine import load_bars
from engine.data.bars import save_bars
from engine.data.synthetic import random_walk

ROUNDS = 5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bars")
    walk = random_walk(1_000_000, seed=3, volatility=0.002, freq="m")
    one = save_bars(walk, folder / "one.parquet")
    wide = save_bars(random_walk(2_520, 500, seed=3), folder / "wide.parquet")
    return {"one": one, "wide": wide}


@pytest.mark.parametrize("name, bars", [("one", 1_000_000), ("wide", 2_520 * 500)])
def test_pyarrow_read_table(benchmark, files, name, bars):
    table = benchmark.pedantic(pq.read_table, args=(files[name],), rounds=ROUNDS, iterations=1)
    assert table.num_rows == bars
    record(benchmark, f"pyarrow read_table, {name} ({bars:,} bars)", bars)


@pytest.mark.parametrize("name, bars", [("one", 1_000_000), ("wide", 2_520 * 500)])
def test_load_bars(benchmark, files, name, bars):
    panel = benchmark.pedantic(load_bars, args=(files[name],), rounds=ROUNDS, iterations=1)
    assert panel.n_bars * panel.n_symbols == bars
    record(benchmark, f"load_bars to panel, {name} ({bars:,} bars)", bars)
