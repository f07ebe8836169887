"""``python -m engine walkforward``: rolling and anchored windows from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.data.synthetic import random_walk

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
GRID = {"fast": [3, 5], "slow": [20, 40]}


def cli(*argv, cwd=None):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "engine", "walkforward", *argv],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def bars():
    return random_walk(700, seed=5)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, bars):
    frame = pl.DataFrame({"date": bars.ts, **{k: v[:, 0] for k, v in bars.fields.items()}})
    path = tmp_path_factory.mktemp("wf") / "bars.parquet"
    frame.write_parquet(path)
    return path


def _args(data_file, *more):
    return [SMA, "--grid", "fast=3,5", "--grid", "slow=20,40", "--train", "300", "--test",
            "150", "--data", str(data_file), "--jobs", "1", *more]


def test_anchored_training_windows_start_at_the_first_bar(bars):
    wf = engine.walk_forward(SMA, GRID, train=300, test=150, anchored=True, data=bars,
                             n_jobs=1, progress=False)
    ts = bars.ts.astype("datetime64[us]")
    assert wf.windows["train_start"].to_list() == [ts[0].item()] * 3
    assert wf.windows["train_end"].to_list() == [ts[i].item() for i in (299, 449, 599)]
    assert wf.windows["test_start"].to_list() == [ts[i].item() for i in (300, 450, 600)]
    # each window's choice is the best set on bars [0, test_start)
    for row in wf.windows.iter_rows(named=True):
        cut = int(np.flatnonzero(ts == np.datetime64(row["test_start"]))[0])
        ranked = engine.sweep(SMA, GRID, data=bars.slice(0, cut), n_jobs=1, progress=False,
                              sort_by="sharpe")
        assert (row["fast"], row["slow"]) == (ranked["fast"][0], ranked["slow"][0])
    rolling = engine.walk_forward(SMA, GRID, train=300, test=150, data=bars, n_jobs=1,
                                  progress=False)
    assert rolling.windows["train_start"].to_list() == [ts[i].item() for i in (0, 150, 300)]
    assert rolling.windows["test_start"].to_list() == wf.windows["test_start"].to_list()


def test_cli_json_matches_the_api(data_file):
    done = cli(*_args(data_file, "--anchored", "--sort-by", "total_return", "--json"))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    wf = engine.walk_forward(SMA, GRID, train=300, test=150, anchored=True,
                             metric="total_return", data=str(data_file), n_jobs=1,
                             progress=False)
    assert payload["metric"] == "total_return" and payload["anchored"] is True
    assert [(w["fast"], w["slow"]) for w in payload["windows"]] == list(
        wf.windows.select("fast", "slow").iter_rows())
    assert payload["out_of_sample"]["total_return"] == pytest.approx(wf.metrics["total_return"])


def test_cli_prints_windows_and_writes_equity_and_plot(data_file, tmp_path):
    out = tmp_path / "wf"
    done = cli(*_args(data_file, "--out", str(out)))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "walk-forward, 3 rolling windows" in text
    assert "Windows: chosen parameters and sharpe" in text
    assert "in-sample" in text and "out-of-sample" in text
    assert "Stitched out-of-sample metrics" in text
    assert f"to {out}" in text
    wf = engine.walk_forward(SMA, GRID, train=300, test=150, data=str(data_file), n_jobs=1,
                             progress=False)
    equity = pl.read_parquet(out / "equity.parquet")
    assert equity.equals(wf.equity)
    assert pl.read_csv(out / "equity.csv").height == 400
    assert pl.read_csv(out / "windows.csv").height == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["out_of_sample"]["sharpe"] == pytest.approx(wf.metrics["sharpe"])
    assert (out / "walkforward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = cli(*_args(data_file, "--out", str(out)))
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr


@pytest.mark.parametrize(("more", "message"), [
    (["--train", "600", "--test", "200"], "the data has 700 bars: not enough for a training "
                                          "window of 600 bars followed by a test window of "
                                          "200 bars"),
    (["--test", "0"], "--test must be a positive number of bars; got 0"),
    (["--grid", "fast=3,5", "--grid", "fast=7"], "--grid fast is given twice"),
    (["--grid", "fats=3,5"], "'fats' is neither a parameter of SmaCross"),
    (["--grid", "fast"], "--grid takes NAME=V1,V2,..."),
    (["--sort-by", "sharp"], "--sort-by 'sharp' is not a metric"),
])
def test_bad_input_is_a_clear_error(data_file, more, message):
    argv = _args(data_file)
    for flag, value in zip(more[::2], more[1::2], strict=True):
        if flag in argv and flag != "--grid":
            argv[argv.index(flag) + 1] = value
        elif flag != "--grid":
            argv += [flag, value]
    if "--grid" in more:
        argv = [a for i, a in enumerate(argv) if not (a == "--grid" or (
            i and argv[i - 1] == "--grid"))]
        argv += more
    done = cli(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_no_grid_is_refused(data_file):
    done = cli(SMA, "--train", "300", "--test", "100", "--data", str(data_file))
    assert done.returncode == 2 and "walkforward needs at least one --grid" in done.stderr
