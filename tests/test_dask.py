"""The Dask backend against a LocalCluster on loopback: the same rows as the local
backend, the data scattered once, a strategy file the workers load by path, and a
set that kills its worker named in an error row, the other sets completing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import engine  # noqa: E402
from engine.data.synthetic import random_walk  # noqa: E402
from engine.errors import ParameterError  # noqa: E402
from engine.research.sweep import SweepWarning  # noqa: E402

SMA = str(Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py")


@pytest.fixture(scope="module")
def cluster():
    import dask

    # no retries: a task that kills its worker fails at once (see the lost-worker test)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=50) as cluster:
            yield cluster


@pytest.fixture(scope="module")
def bars():
    return random_walk(800, seed=5)


def test_same_rows_as_the_local_backend(cluster, bars):
    grid = {"fast": [3, 5, 8, 30], "slow": [10, 21, 34]}
    local = engine.sweep(SMA, grid, data=bars, n_jobs=2, progress=False)
    remote = engine.sweep(SMA, grid, data=bars, backend="dask",
                          address=cluster.scheduler_address, progress=False)
    assert remote.equals(local, null_equal=True)
    assert remote["error"].null_count() == 10
    with distributed.Client(cluster) as client:
        sampled = engine.sweep(SMA, grid, data=bars, backend="dask", address=client,
                               samples=5, seed=9, sort_by="sharpe", progress=False)
        assert not client.status == "closed"
    assert sampled.equals(engine.sweep(SMA, grid, data=bars, n_jobs=1, samples=5, seed=9,
                                       sort_by="sharpe", progress=False), null_equal=True)


CRASH = textwrap.dedent("""
    import os

    from engine import Signals, Strategy, param
    from engine.strategy.indicators import crossover, crossunder, sma

    class Crash(Strategy):
        window: int = param(10, min=1)

        def signals(self, data):
            if self.window == 4:
                os._exit(1)  # the worker process dies
            fast = sma(data.close, self.window)
            slow = sma(data.close, 30)
            return Signals(entries=crossover(fast, slow), exits=crossunder(fast, slow))
""")


@pytest.mark.parametrize("sets", [8, 40])   # one set per task; three per task, split on a crash
def test_a_set_that_kills_its_worker_is_an_error_row_the_others_complete(cluster, bars,
                                                                          tmp_path, sets):
    path = tmp_path / "crash.py"
    path.write_text(CRASH)
    with pytest.warns(SweepWarning, match=rf"sweep crashed: 1 of {sets} parameter sets killed "
                                          r"their worker process \(the first: window=4\)"):
        frame = engine.sweep(str(path), {"window": list(range(1, sets + 1))}, data=bars,
                             backend="dask", address=cluster.scheduler_address,
                             progress=False)
    assert frame["window"].to_list() == list(range(1, sets + 1))   # every set has its row
    error = frame.filter(frame["window"] == 4)["error"][0]
    assert error.startswith("the worker process running this set died (on Dask: its worker "
                            "died, the last at tcp://127.0.0.1:")
    assert error.endswith(", whose log says how); set: window=4")
    assert frame["error"].null_count() == sets - 1
    others = [w for w in range(1, sets + 1) if w != 4]
    alone = engine.sweep(str(path), {"window": others}, data=bars, n_jobs=1, progress=False)
    assert frame.filter(frame["window"] != 4).equals(alone, null_equal=True)


def test_cli_exits_3_when_a_set_killed_its_dask_worker(cluster, bars, tmp_path, capsys):
    from engine.cli import main

    path = tmp_path / "crash.py"
    path.write_text(CRASH)
    data = tmp_path / "bars.parquet"
    import polars as pl

    pl.DataFrame({"ts": bars.ts, **{k: v[:, 0] for k, v in bars.fields.items()}}) \
        .write_parquet(data)
    code = main(["sweep", str(path), "--grid", "window=3:6", "--data", str(data),
                 "--dask", cluster.scheduler_address])
    assert code == 3
    err = capsys.readouterr().err
    assert "sweep crashed: 1 of 4 parameter sets killed their worker process (the first: " \
           "window=4)" in err
    assert "error: the sweep is incomplete" in err


def test_dask_needs_an_address(bars):
    with pytest.raises(ParameterError, match="address"):
        engine.sweep(SMA, {"fast": [5]}, data=bars, backend="dask", progress=False)
    with pytest.raises(ParameterError, match="backend"):
        engine.sweep(SMA, {"fast": [5]}, data=bars, backend="ray", progress=False)


def test_sweeps_in_a_row_on_one_client_all_finish(cluster, bars):
    # the same data scattered again while the first sweep's copy is being released
    grid = {"fast": [3, 5], "slow": [10, 21]}
    local = engine.sweep(SMA, grid, data=bars, n_jobs=1, progress=False)
    with distributed.Client(cluster) as client:
        for _ in range(4):
            remote = engine.sweep(SMA, grid, data=bars, backend="dask", address=client,
                                  progress=False)
            assert remote.equals(local, null_equal=True)
