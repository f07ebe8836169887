"""The command line, run as a user runs it: a subprocess, its exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
HOLD = str(ROOT / "strategies" / "buy_and_hold.py")


def cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd,
        timeout=120,
    )


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def test_run_prints_metrics_and_trades_tables():
    proc = cli("run", SMA, "--start", "2015-01-01", "--end", "2019-12-31")
    assert proc.returncode == 0, proc.stderr
    assert "Metrics" in proc.stdout
    assert "sharpe" in proc.stdout and "max_drawdown" in proc.stdout
    assert "Hit rates: overall, by exit reason" in proc.stdout


def test_json_holds_metrics_and_params():
    proc = cli("run", SMA, "--param", "fast=5", "--param", "slow=30", "--json",
               "--start", "2010-01-01")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["params"] == {"fast": 5, "slow": 30}
    metrics = payload["metrics"]
    for key in ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar",
                "max_drawdown", "max_drawdown_duration", "hit_rate", "trades",
                "profit_factor", "expectancy", "exposure", "final_equity"):
        assert key in metrics
    assert metrics["trades"] > 0
    assert payload["settings"]["start"] >= "2010-01-01"


def test_out_writes_the_documented_files(tmp_path):
    out = tmp_path / "result"
    proc = cli("run", SMA, "--start", "2000-01-01", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(isinstance(v, (int, float)) or v is None for v in metrics.values())
    trades = pl.read_parquet(out / "trades.parquet")
    assert trades.columns[:10] == ["symbol", "entry_ts", "entry_price", "exit_ts", "exit_price",
                                   "size", "pnl", "return_pct", "bars_held", "exit_reason"]
    assert trades.height == metrics["trades"] + metrics["open_trades"]
    equity = pl.read_parquet(out / "equity.parquet")
    assert equity.columns == ["ts", "equity", "cash"]
    assert equity.height == metrics["bars"]
    assert equity["equity"][-1] == pytest.approx(metrics["final_equity"])
    orders = pl.read_parquet(out / "orders.parquet")
    assert {"status", "reason", "fill_price"} <= set(orders.columns)
    assert set(orders["status"].unique()) <= {"filled", "open", "cancelled", "rejected",
                                              "expired"}


def test_open_position_at_the_end_is_marked_not_closed(tmp_path):
    out = tmp_path / "hold"
    proc = cli("run", HOLD, "--start", "2020-01-01", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    trades = pl.read_parquet(out / "trades.parquet")
    assert trades.height == 1 and trades["exit_ts"][0] is None and trades["pnl"][0] is None
    equity = pl.read_parquet(out / "equity.parquet")
    size = trades["size"][0]
    last_close = 7674.37  # S&P 500 close on 2026-08-21, the last bundled bar
    assert equity["equity"][-1] == pytest.approx(equity["cash"][-1] + size * last_close)


def test_fill_close_changes_fill_prices(tmp_path):
    a = json.loads(cli("run", SMA, "--start", "2015-01-01", "--json").stdout)
    b = json.loads(cli("run", SMA, "--start", "2015-01-01", "--json", "--fill", "close").stdout)
    assert a["metrics"]["trades"] == b["metrics"]["trades"]
    assert a["metrics"]["final_equity"] != b["metrics"]["final_equity"]


def test_unknown_parameter_lists_valid_names():
    proc = cli("run", SMA, "--param", "fsat=5")
    assert_user_error(proc, "fsat", "fast, slow", "Did you mean 'fast'")


def test_mistyped_parameter_names_type():
    assert_user_error(cli("run", SMA, "--param", "fast=abc"), "fast", "integer", "'abc'")


def test_out_of_range_parameter():
    assert_user_error(cli("run", SMA, "--param", "fast=0"), "fast", ">= 1")


def test_missing_data_path(tmp_path):
    assert_user_error(cli("run", SMA, "--data", str(tmp_path / "nope.parquet")), "nope.parquet")


def test_strategy_with_syntax_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from engine import Strategy\nclass X(Strategy):\n    def on_bar(self, bar)\n")
    assert_user_error(cli("run", str(bad)), "bad.py", "line 3")


def test_strategy_file_without_strategy(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert_user_error(cli("run", str(empty)), "defines no Strategy subclass")


def test_strategy_file_with_two_strategies(tmp_path):
    two = tmp_path / "two.py"
    two.write_text("from engine import Strategy\nclass A(Strategy): pass\n"
                   "class B(Strategy): pass\n")
    assert_user_error(cli("run", str(two)), "2 Strategy subclasses", "A, B")


def test_exception_in_on_bar_names_strategy_bar_and_line(tmp_path):
    boom = tmp_path / "boom.py"
    data = str(ROOT / "datasets" / "sp500_daily.parquet")
    boom.write_text(
        "from engine import Strategy\n"
        "class Boom(Strategy):\n"
        f"    default_data = {data!r}\n"
        "    def on_bar(self, bar):\n"
        "        if bar.index == 3:\n"
        "            1 / 0\n"
    )
    proc = cli("run", str(boom), "--start", "2020-01-01")
    assert_user_error(proc, "Boom.on_bar", "bar 3", "2020-01-07", "line 6", "ZeroDivisionError")
    debug = cli("--debug", "run", str(boom), "--start", "2020-01-01")
    assert "Traceback" in debug.stderr


def test_bad_data_file_is_a_user_error(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text("this is not parquet")
    assert_user_error(cli("run", SMA, "--data", str(fake)), "fake.parquet")


def test_csv_data_with_several_symbols_runs_buy_and_hold(tmp_path):
    n = 60
    rng = np.random.default_rng(3)
    rows = []
    for symbol in ("AAA", "BBB"):
        close = np.round(50 + np.cumsum(rng.normal(0, 1, n)), 2)
        for i in range(n):
            day = str(np.datetime64("2021-01-01") + np.timedelta64(i, "D"))
            rows.append((day, symbol, close[i], close[i] + 1, close[i] - 1, close[i], 1000.0))
    frame = pl.DataFrame(rows, schema=["date", "symbol", "open", "high", "low", "close",
                                       "volume"], orient="row")
    path = tmp_path / "two.csv"
    frame.write_csv(path)
    proc = cli("run", HOLD, "--data", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["trades"] == 2
    assert payload["metrics"]["exposure"] > 0.9


def test_params_lists_names_types_defaults_and_bounds():
    proc = cli("params", SMA, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)["params"]}
    assert rows["fast"] == {"name": "fast", "type": "int", "default": 10, "bounds": ">= 1",
                            "help": "fast moving-average window, in bars"}
    assert rows["slow"]["default"] == 20 and rows["slow"]["bounds"] == ">= 2"
    assert "fast" in cli("params", SMA).stdout


# --------------------------------------------------------------------------- a newcomer's stumbles


def test_debug_is_accepted_after_the_command_too(tmp_path):
    missing = str(tmp_path / "nope.py")
    for args in (("--debug", "run", missing), ("run", missing, "--debug")):
        proc = cli(*args)
        assert proc.returncode != 0 and "Traceback" in proc.stderr, args
        assert "StrategyError: strategy file not found" in proc.stderr
    assert_user_error(cli("run", missing), "strategy file not found")


@pytest.mark.parametrize(("args", "hint"), [
    (("run", SMA, "--comission", "0.1"), "Did you mean '--commission'?"),
    (("run", SMA, "--perods-per-year", "250"), "Did you mean '--periods-per-year'?"),
    (("run", SMA, "--fast", "20"), "write --param fast=20"),
    (("sweep", SMA, "--grid", "fast=5", "--slow=30"), "write --param slow=30"),
    (("claims", "--horizn", "21"), "Did you mean '--horizon'?"),
])
def test_a_misspelled_option_suggests_the_right_one(args, hint):
    proc = cli(*args)
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
    assert hint in proc.stderr, proc.stderr


def test_periods_per_year_takes_any_positive_number_and_is_printed():
    proc = cli("run", SMA, "--start", "2019-01-01", "--periods-per-year", "250", "--json")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout)["settings"]
    assert settings["periods_per_year"] == 250 and settings["periods_per_year_from"] == "given"
    shown = cli("run", str(ROOT / "strategies" / "level_reclaim.py"), "--start", "2020-01-01")
    assert "annualised at 365 bars a year (daily bars, weekends included)" in \
        " ".join(shown.stdout.split())
    assert_user_error(cli("run", SMA, "--periods-per-year", "0"),
                      "periods_per_year='0' is not a positive number of bars per year")


def test_the_default_run_prints_no_data_warning():
    proc = cli("run", SMA)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr


def test_counts_print_as_integers():
    from engine.report.format import fmt

    assert fmt("cases", 617) == "617" and fmt("cases", 617.0) == "617"
    assert fmt("anything", np.int64(1234)) == "1,234" and fmt("year", 2024) == "2024"
    assert fmt("total_return", 1) == "100.00%" and fmt("sharpe", 0.5) == "0.500"
