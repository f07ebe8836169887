"""The same inputs give the same bytes: run to run, and across sweep backends.

* ``python -m engine run ... --out`` twice, in two processes with different hash
  seeds (so that nothing may depend on the order of a set or on an object's id),
  into folders of different names: every file, Parquet, CSV, JSON, PNG and HTML,
  is byte-identical.
* ``python -m engine sweep ... --out`` with the local backend on 1 and on 2 worker
  processes and with the Dask backend (a LocalCluster on loopback): the same
  ``sweep.parquet``, ``sweep.csv`` and ``heatmap.png``, failed sets included.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.bars import save_bars
from engine.data.synthetic import random_walk

ROOT = Path(__file__).resolve().parents[1]
# Feeds, entry labels, claims and an event study: the richest report of the bundled rules.
FEAR = "strategies/fear_contrarian.py"
SMA = str(ROOT / "strategies" / "sma_cross.py")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_files(a: Path, b: Path) -> None:
    first, second = files_of(a), files_of(b)
    assert first.keys() == second.keys()
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"files that differ between {a.name} and {b.name}: {differ}"


def run_out(out: Path, hash_seed: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    return subprocess.run(
        [sys.executable, "-m", "engine", "run", FEAR, "--start", "2018-01-01",
         "--commission", "0.001", "--out", str(out), "--json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_run_writes_the_same_bytes_twice(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second run"
    with ThreadPoolExecutor(2) as pool:  # two processes at once: nothing shared but files
        procs = list(pool.map(run_out, [first, second], ["1", "2"]))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    written = files_of(first)
    assert {"metrics.json", "trades.parquet", "equity.parquet", "orders.parquet",
            "drawdowns.csv", "yearly.csv", "hit_rates.csv", "event_study.csv", "equity.png",
            "report.html"} <= written.keys()
    assert b"fear" in written["hit_rates.csv"]  # the rule traded: a report worth comparing
    assert_same_files(first, second)
    assert procs[0].stdout == procs[1].stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second run"]  # no staging


# --------------------------------------------------------------------------- sweeps


@pytest.fixture(scope="module")
def bars_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "walk.parquet"
    save_bars(random_walk(1500, n_symbols=2, seed=11), path)
    return path


def sweep_out(out: Path, bars: Path, *backend: str) -> str:
    """``python -m engine sweep`` in this process (its workers are processes anyway);
    returns what it printed. ``--debug`` keeps the CLI off the warnings machinery."""
    grid = ["--grid", "fast=3,5,25", "--grid", "slow=10,20"]  # 25 >= 20: a failed set
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["--debug", "sweep", SMA, *grid, "--data", str(bars),
                       "--commission", "0.0005", "--json", "--out", str(out), *backend])
    assert status == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def local_sweeps(tmp_path_factory, bars_file):
    folder = tmp_path_factory.mktemp("sweeps")
    outs = {jobs: folder / f"jobs{jobs}" for jobs in (1, 2)}
    printed = {jobs: sweep_out(out, bars_file, "--jobs", str(jobs)) for jobs, out in outs.items()}
    return outs, printed


def test_a_sweep_writes_the_same_bytes_on_one_and_two_workers(local_sweeps):
    outs, printed = local_sweeps
    written = files_of(outs[1])
    assert written.keys() == {"sweep.parquet", "sweep.csv", "heatmap.png"}
    assert b"must be shorter than slow" in written["sweep.csv"]  # the failed set's row
    assert_same_files(outs[1], outs[2])
    assert printed[1] == printed[2]


def test_a_sweep_writes_the_same_bytes_on_dask(local_sweeps, bars_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    outs, printed = local_sweeps
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=50) as cluster:
        on_dask = sweep_out(tmp_path / "dask", bars_file, "--dask", cluster.scheduler_address)
    assert_same_files(outs[1], tmp_path / "dask")
    assert on_dask == printed[1]
