"""engine.compare and `python -m engine compare`, and the buy-and-hold benchmark."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import make_bars

import engine
from engine.backtest.benchmark import BuyAndHold, benchmark_equity
from engine.errors import ParameterError
from engine.research.compare import HEADLINE, run_all

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
HOLD = str(ROOT / "strategies" / "buy_and_hold.py")
WINDOW = {"start": "2015-01-01", "end": "2019-12-31"}


class Flat(engine.Strategy):
    """Never trades."""

    def on_bar(self, bar):
        pass


def cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_compare_two_strategies_and_buy_and_hold_on_the_same_data():
    data = ROOT / "datasets" / "sp500_daily.parquet"
    table = engine.compare([SMA, Flat], data=data, params={"sma_cross": {"fast": 5}},
                           commission=0.001, **WINDOW)
    assert table.columns == ["strategy", "data", "period", "params", *HEADLINE]
    assert set(table["data"]) == {"sp500_daily.parquet"}
    assert table["strategy"].to_list() == ["SmaCross", "Flat", "BuyAndHold"]
    assert table["params"].to_list() == ["fast=5, slow=20", "", ""]
    # Each row is the metrics of the same run made alone.
    alone = engine.run(SMA, data, fast=5, commission=0.001, **WINDOW)
    row = table.row(0, named=True)
    for key in HEADLINE:
        assert row[key] == pytest.approx(alone.metrics[key], nan_ok=True), key
    flat = table.row(1, named=True)
    assert flat["total_return"] == 0 and flat["trades"] == 0 and flat["hit_rate"] is None
    # The built-in buy-and-hold row is every run's benchmark: the strategies/buy_and_hold.py
    # rule with fractional shares at the first close and no costs.
    hold = engine.run(HOLD, data, commission=0.0, fractional=True, fill="close", **WINDOW)
    assert table.row(2, named=True)["final_equity"] == pytest.approx(
        hold.metrics["final_equity"], rel=1e-12)
    assert table.row(2, named=True)["total_return"] == pytest.approx(
        alone.metrics["benchmark_return"], rel=1e-9)


def test_default_data_is_the_first_strategys_and_params_by_position():
    table = engine.compare([SMA, SMA], params=[{"fast": 5}, {"fast": 8}], **WINDOW)
    assert table["strategy"].to_list() == ["SmaCross(fast=5, slow=20)",
                                           "SmaCross(fast=8, slow=20)", "BuyAndHold"]
    assert table["total_return"][0] != table["total_return"][1]


def test_strategies_with_different_default_data_each_run_on_their_own():
    btc = str(ROOT / "strategies" / "level_reclaim.py")
    table, results, _ = run_all([SMA, btc, HOLD], start="2020-01-01")
    assert table["strategy"].to_list() == [
        "SmaCross", "BuyAndHold (sp500_daily from 2020-01-02)", "LevelReclaim",
        "BuyAndHold (btc_daily from 2020-01-01)"]
    assert table["data"].to_list() == ["sp500_daily.parquet"] * 2 + ["btc_daily.parquet"] * 2
    assert table["period"][2].startswith("2020-01-01 → ")
    # Never a silent run of a strategy on another's data: each row is the run alone.
    for row, result, alone in zip(table.iter_rows(named=True), results,
                                  (engine.run(SMA, start="2020-01-01"),
                                   engine.run(HOLD, start="2020-01-01"),
                                   engine.run(btc, start="2020-01-01")), strict=False):
        assert result.settings["data"] == alone.settings["data"]
        assert row["final_equity"] == pytest.approx(alone.metrics["final_equity"], rel=1e-12)


def test_cli_compare_of_strategies_on_different_data_says_so():
    proc = cli("compare", SMA, str(ROOT / "strategies" / "level_reclaim.py"), "--start",
               "2020-01-01", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["compare"]
    assert [r["data"] for r in rows] == ["sp500_daily.parquet"] * 2 + ["btc_daily.parquet"] * 2
    text = cli("compare", SMA, str(ROOT / "strategies" / "level_reclaim.py"), "--start",
               "2020-01-01").stdout
    assert "each strategy on its own default data and period" in text


def test_buy_and_hold_is_not_added_twice():
    table = engine.compare([HOLD], **WINDOW)
    assert table["strategy"].to_list() == ["BuyAndHold"]


def test_unknown_params_key_and_no_default_data_are_errors():
    with pytest.raises(ParameterError, match="nope"):
        engine.compare([SMA], params={"nope": {"fast": 3}}, **WINDOW)
    with pytest.raises(ParameterError, match="Flat declares no default_data"):
        engine.compare([Flat])


def test_cli_compare_prints_writes_and_answers_json(tmp_path):
    out = tmp_path / "cmp"
    proc = cli("compare", SMA, HOLD, "--param", "sma_cross:fast=5", "--start", "2015-01-01",
               "--end", "2019-12-31", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Comparison on the same data" in proc.stdout
    assert "SmaCross" in proc.stdout and "BuyAndHold" in proc.stdout
    table = pl.read_csv(out / "compare.csv")
    assert table["strategy"].to_list() == ["SmaCross", "BuyAndHold"]
    assert table["params"][0] == "fast=5, slow=20"
    assert (out / "equity.png").read_bytes().startswith(b"\x89PNG")
    html = (out / "report.html").read_text()
    assert 'id="compare"' in html and "data:image/png;base64," in html

    proc = cli("compare", SMA, "--json", "--start", "2015-01-01", "--end", "2019-12-31")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["compare"]
    assert [r["strategy"] for r in rows] == ["SmaCross", "BuyAndHold"]
    # the added row is the runs' benchmark (fractional, first close, no costs); the
    # strategies/buy_and_hold.py listed above is a strategy run with the run's settings
    bench = engine.run(SMA, start="2015-01-01", end="2019-12-31").metrics["benchmark_return"]
    assert rows[1]["total_return"] == pytest.approx(bench, rel=1e-9)


def test_cli_compare_bad_param_is_a_user_error():
    proc = cli("compare", SMA, "--param", "sma_crossx:fast=5")
    assert proc.returncode == 2
    assert "not one of the strategies compared" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("compare", SMA, "--param", "fast=5")
    assert proc.returncode == 2 and "FILE:NAME=VALUE" in proc.stderr


# --------------------------------------------------------------------------- benchmark


def test_benchmark_is_equal_weight_buy_and_hold_of_every_symbol():
    a = make_bars([(10, 10, 10, 10), (11, 11, 11, 11), (12, 12, 12, 12), (9, 9, 9, 9)],
                  symbol="A")
    b = make_bars([(20, 20, 20, 20)] * 4, symbol="B")
    b.loc[0, ["open", "high", "low", "close"]] = np.nan  # B starts trading on bar 1
    b = b.dropna()
    data = pd.concat([a, b], ignore_index=True)
    panel = engine.load_bars(data)
    curve = benchmark_equity(panel, 1000.0)
    # A: 500 at 10 -> 500 * close / 10; B: 500 cash until bar 1, then flat at 20.
    np.testing.assert_allclose(curve, [1000.0, 1050.0, 1100.0, 950.0])
    result = engine.run(Flat, data=data, cash=1000.0)
    assert result.metrics["benchmark_return"] == pytest.approx(-0.05)
    assert result.metrics["beta"] == pytest.approx(0.0)


def test_benchmark_carries_a_missing_close_forward():
    a = make_bars([(10, 10, 10, 10), (11, 11, 11, 11), (12, 12, 12, 12), (9, 9, 9, 9)],
                  symbol="A")
    b = make_bars([(20, 20, 20, 20), (30, 30, 30, 30), (99, 99, 99, 99), (40, 40, 40, 40)],
                  symbol="B")
    b = b.drop(index=2)  # B has no bar 2: its part is marked at bar 1's close (30)
    panel = engine.load_bars(pd.concat([a, b], ignore_index=True))
    curve = benchmark_equity(panel, 1000.0)
    # A: 500 * close / 10; B: 500 * close / 20 with 30 carried over bar 2.
    np.testing.assert_allclose(curve, [1000.0, 550.0 + 750.0, 600.0 + 750.0, 450.0 + 1000.0])


def test_builtin_buy_and_hold_runs_on_both_paths():
    rows = [(10, 10, 10, 10), (10, 10, 10, 10), (12, 12, 12, 12)]
    event = engine.run(BuyAndHold, data=make_bars(rows), mode="event", cash=100.0)
    vector = engine.run(BuyAndHold, data=make_bars(rows), mode="vector", cash=100.0)
    assert event.metrics["final_equity"] == vector.metrics["final_equity"] == 120.0
