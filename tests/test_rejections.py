"""Rejected orders are shown, counted and, with strict=True, refused.

Each kind of rejection the broker makes is produced by a scripted strategy on
hand-built bars, so the count and the first case of each kind are known by hand.
The command line prints one warning per kind after the metrics and carries them in
``--json``; ``compare``, ``sweep`` and streamed runs count them too; a commission
of 1 or more as a fraction is refused before anything runs.
"""

from __future__ import annotations

import datetime
import json
import math

import polars as pl
import pytest
from conftest import make_bars
from test_cli import HOLD, SMA, assert_user_error, cli

import engine
from engine.backtest.rejections import REASON_KINDS, reason_kind
from engine.data.bars import save_bars
from engine.data.synthetic import random_walk
from engine.errors import ParameterError, RejectedOrdersError

FLAT = (10.0, 10.0, 10.0, 10.0)
GOOD_BARS = "tests/bad_inputs/good_bars.csv"


def scripted(actions):
    """A strategy that calls ``actions[bar.index](self)`` after each bar closes."""

    class Script(engine.Strategy):
        def on_bar(self, bar):
            act = actions.get(bar.index)
            if act is not None:
                act(self)

    return Script


def every_kind():
    """Bars 0-9 flat at 10, slippage 20: orders the broker rejects for each of its reasons.

    Market buys fill at 30 and market sells at -10; a sell limit at 5 fills at 5.
    """
    actions = {
        0: lambda s: s.buy(size=5),                    # order 0: fills on bar 1 (cost 5 * 30)
        1: lambda s: s.sell(size=20, limit=5),         # 1: would open a short
        2: lambda s: (s.buy(size=1000), s.buy(size=1000)),  # 2, 3: 1000 * 30 > cash
        3: lambda s: s.buy(cash=1.0),                  # 4: rounds to zero shares
        4: lambda s: s.sell(size=5),                   # 5: 10 - 20 slippage = -10
        5: lambda s: s.sell(size=50, limit=5),         # 6: a short again
        6: lambda s: s.buy(size=2000),                 # 7: insufficient cash again
    }
    return engine.run(scripted(actions), make_bars([FLAT] * 10), cash=1_000.0,
                      slippage_fixed=20.0)


def test_every_rejection_of_the_broker_has_a_kind_with_its_count_and_first_case():
    result = every_kind()
    rejected = result.orders.filter(pl.col("status") == "rejected")
    assert rejected["order_id"].to_list() == [1, 2, 3, 4, 5, 6, 7]
    by_kind = {r.reason: r for r in result.rejections()}
    assert {kind for _, kind in REASON_KINDS} == set(by_kind)  # every kind the table knows
    assert {k: r.count for k, r in by_kind.items()} == {
        "insufficient cash": 3, "short selling is off": 2, "size rounds to zero": 1,
        "fill price not positive": 1}
    assert [r.reason for r in result.rejections()][:2] == ["insufficient cash",
                                                           "short selling is off"]
    cash = by_kind["insufficient cash"]
    # order 2 and 3 both fail on bar 3; the first is the lower id
    assert cash.first["order_id"] == 2 and cash.first["bar"] == 3
    assert cash.first["ts"] == datetime.datetime(2024, 1, 4)
    assert cash.first["placed_ts"] == datetime.datetime(2024, 1, 3)
    assert (cash.first["symbol"], cash.first["side"], cash.first["kind"],
            cash.first["size_mode"], cash.first["size"]) == ("asset", "buy", "market",
                                                             "shares", 1000.0)
    assert cash.first["reason"] == rejected.filter(pl.col("order_id") == 2)["reason"][0]
    assert cash.first["reason"].startswith("insufficient cash: 1000 at 30")
    short = by_kind["short selling is off"]
    assert (short.first["order_id"], short.first["bar"]) == (1, 2)
    assert by_kind["fill price not positive"].first["order_id"] == 5
    assert result.metrics["rejected"] == 7.0


def test_the_description_names_count_bar_date_order_and_reason():
    cash = next(r for r in every_kind().rejections() if r.reason == "insufficient cash")
    assert cash.describe() == (
        "3 orders rejected (insufficient cash); the first on bar 3 (2024-01-04): order 2 "
        "(buy asset market, shares 1000): " + cash.first["reason"])
    assert json.loads(json.dumps(cash.as_dict()))["first"]["ts"] == "2024-01-04T00:00:00"


def test_a_run_without_rejections_has_none():
    result = engine.run(scripted({0: lambda s: s.buy(size=1)}), make_bars([FLAT] * 3))
    assert result.rejections() == [] and result.metrics["rejected"] == 0.0
    result = engine.run(scripted({0: lambda s: s.buy(size=1)}), make_bars([FLAT] * 3),
                        strict=True)
    assert result.metrics["trades"] == 0 and result.metrics["open_trades"] == 1


def test_an_unknown_reason_is_grouped_by_its_text_up_to_the_colon():
    assert reason_kind("margin call: equity below 0") == "margin call"
    assert reason_kind(None) == "no reason given"


def test_strict_turns_any_rejection_into_an_error_with_the_first_and_the_count():
    with pytest.raises(RejectedOrdersError) as caught:
        engine.run(scripted({0: lambda s: s.sell(size=3), 1: lambda s: s.buy(size=10**6)}),
                   make_bars([FLAT] * 4), strict=True)
    error = caught.value
    assert error.count == 2 and {r.reason for r in error.rejections} == {
        "short selling is off", "insufficient cash"}
    assert str(error).startswith(
        "2 orders were rejected (1 short selling is off, 1 insufficient cash) and strict=True "
        "(CLI --strict) makes that an error; the first on bar 1 (2024-01-02): order 0 (sell "
        "asset market, shares 3): short selling is off")
    assert isinstance(error, engine.EngineError)


@pytest.mark.parametrize("commission", [1, 10, 2.5])
def test_a_commission_of_one_or_more_is_refused_with_the_fixed_fee_named(commission):
    with pytest.raises(ParameterError, match="commission is a fraction") as caught:
        engine.run(HOLD, GOOD_BARS, commission=commission)
    assert f"commission_fixed={commission:g}" in str(caught.value)
    assert f"{commission * 100:,.6g}%" in str(caught.value)
    with pytest.raises(ParameterError, match="commission_fixed"):
        engine.sweep(HOLD, {"cash": [1e5, 2e5]}, data=GOOD_BARS, commission=commission,
                     n_jobs=1, progress=False)


def test_a_high_commission_below_one_still_runs():
    result = engine.run(HOLD, GOOD_BARS, commission=0.5)
    assert result.metrics["commissions"] > 0


# --------------------------------------------------------------------------- the CLI


def test_the_cli_warns_per_reason_after_the_metrics():
    # 50,000 per order: after one round trip every buy rounds to zero shares
    proc = cli("run", SMA, "--start", "2015-01-01", "--end", "2019-12-31",
               "--commission-fixed", "50000")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: ")
    assert " orders rejected (size rounds to zero); the first on bar " in warnings[0]
    assert "(buy SPX market, all cash): size rounds to zero at price" in warnings[0]
    assert "--strict makes them an error" in warnings[0]
    count = int(warnings[0].split()[1].replace(",", ""))
    assert count > 10
    assert f"│ rejected              │ {count:>10,} │" in proc.stdout


def test_json_carries_the_rejections_and_strict_fails():
    proc = cli("run", HOLD, "--data", GOOD_BARS, "--cash", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["metrics"]["rejected"] == 1
    assert payload["rejections"] == [{
        "reason": "size rounds to zero", "count": 1,
        "first": {"bar": 1, "ts": "2024-01-03T00:00:00", "order_id": 0,
                  "placed_ts": "2024-01-02T00:00:00", "symbol": "AAPL", "side": "buy",
                  "kind": "market", "size_mode": "all_cash", "size": 0.0, "limit": None,
                  "stop": None, "reason": "size rounds to zero at price 184.22 (all_cash 0, "
                                          "cash 100.00); use a larger size or fractional=True"}}]
    assert proc.stderr.startswith("warning: 1 order rejected (size rounds to zero)")
    strict = cli("run", HOLD, "--data", GOOD_BARS, "--cash", "100", "--strict")
    assert_user_error(strict, "1 order was rejected and strict=True (CLI --strict)",
                      "bar 1 (2024-01-03)")
    assert strict.stdout == ""


def test_commission_ten_is_refused_before_the_run():
    proc = cli("run", HOLD, "--data", GOOD_BARS, "--commission", "10")
    assert_user_error(proc, "got 10, which charges 1,000% of every trade",
                      "--commission-fixed 10")


def test_compare_and_sweep_carry_a_rejected_column(tmp_path):
    table = engine.compare([SMA, HOLD], data=GOOD_BARS, cash=100.0)
    assert table["rejected"].to_list() == [0.0, 1.0]  # 8 bars: the SMA cross never trades
    with pytest.raises(RejectedOrdersError, match="^BuyAndHold: 1 order was rejected"):
        engine.compare([SMA, HOLD], data=GOOD_BARS, cash=100.0, strict=True)
    frame = engine.sweep(HOLD, {"cash": [100.0, 1e5]}, data=GOOD_BARS, n_jobs=1,
                         progress=False)
    assert frame["rejected"].to_list() == [1.0, 0.0]
    strict = engine.sweep(HOLD, {"cash": [100.0, 1e5]}, data=GOOD_BARS, n_jobs=1,
                          progress=False, strict=True)
    assert strict["error"][0].startswith("1 order was rejected and strict=True")
    assert strict["error"][1] is None and strict["rejected"][1] == 0.0
    proc = cli("sweep", SMA, "--grid", "fast=5,10", "--start", "2015-01-01", "--jobs", "1",
               "--commission-fixed", "50000")
    assert proc.returncode == 0, proc.stderr
    assert "warning: 2 of 2 parameter sets had rejected orders" in proc.stderr
    proc = cli("compare", SMA, HOLD, "--data", GOOD_BARS, "--cash", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [row["rejected"] for row in json.loads(proc.stdout)["compare"]] == [0, 1]
    assert proc.stderr.count("warning: ") == 1
    assert "warning: BuyAndHold: 1 order rejected (size rounds to zero)" in proc.stderr


def test_a_streamed_run_reports_the_same_rejections(tmp_path):
    panel = random_walk(3_000, seed=4)
    path = tmp_path / "walk.parquet"
    save_bars(panel, path)
    options = dict(commission_fixed=40_000.0, mode="vector")
    result = engine.run(SMA, panel, **options)
    streamed = engine.stream_run(SMA, path, chunk_bars=250, **options)
    assert result.metrics["rejected"] > 10
    assert streamed.metrics["rejected"] == result.metrics["rejected"]
    assert [r.as_dict() for r in streamed.rejections] == [r.as_dict()
                                                          for r in result.rejections()]
    with pytest.raises(RejectedOrdersError) as caught:
        engine.stream_run(SMA, path, chunk_bars=250, strict=True, out=tmp_path / "res",
                          **options)
    assert caught.value.count == result.metrics["rejected"]
    assert list(tmp_path.iterdir()) == [path]  # nothing written, no staging folder left
    proc = cli("run", SMA, "--data", str(path), "--stream", "--commission-fixed", "40000",
               "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rejections"] == [r.as_dict() for r in streamed.rejections]
    assert proc.stderr.startswith(f"warning: {math.floor(result.metrics['rejected'])} orders")
