"""The three rule strategies on the bundled data, pinned: a silent change of behaviour shows.

If a change is intended, re-run the case, check the new trades by hand, and update the
pins here together with the reason in the commit message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import engine

pytestmark = pytest.mark.filterwarnings("ignore:.*column 'volume' is missing")
ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "strategies"

# case -> (file, params, trades (closed, open), exit reasons, total return, first trades as
# (symbol, entry day, entry price, exit day, exit reason))
CASES = {
    "fear_contrarian": (
        "fear_contrarian.py", {}, (35, 0), {"greed": 25, "time": 10}, 1.001215,
        [("SPX", "2011-03-15", 1288.46, "2011-06-14", "time"),
         ("SPX", "2011-06-15", 1287.87, "2011-09-14", "time"),
         ("SPX", "2011-09-28", 1175.39, "2011-10-24", "greed")],
    ),
    "fear_contrarian_vix": (
        "fear_contrarian.py", {"signal": "vix"}, (21, 0), {"time": 8, "vix_calm": 13}, 1.090317,
        [("SPX", "2011-08-05", 1200.28, "2011-11-03", "time"),
         ("SPX", "2011-08-09", 1120.23, "2011-11-03", "time"),  # the top-up: a lot of its own
         ("SPX", "2011-11-04", 1260.8199, "2012-01-20", "vix_calm")],
    ),
    # short interest expires 35 days after settlement (max_age="auto"): no entry on the
    # stale figures of July-September 2021, so 94 trades and none open (105 + 10 open
    # when the last figures of 2021-06-30 were carried to the end; si_max_age_days=100000)
    "short_squeeze": (
        "short_squeeze.py", {}, (94, 0),
        {"dtc_fell": 1, "time": 64, "trailing_stop": 29}, 0.060486,
        [("ATLC", "2020-12-22", 27.469999, "2020-12-28", "trailing_stop"),
         ("PRLB", "2020-12-22", 165.0, "2020-12-30", "trailing_stop"),
         ("SSTI", "2020-12-22", 39.130001, "2021-01-22", "time")],
    ),
    "breakout_failure": (
        "breakout_failure.py", {}, (10, 0), {"rejection": 3, "stop": 1, "time": 6}, 0.064027,
        [("SPX", "2024-06-03", 5297.15, "2024-07-02", "time"),
         ("SPX", "2024-07-26", 5433.67, "2024-08-23", "time"),
         ("SPX", "2024-09-04", 5506.68, "2024-10-02", "time")],
    ),
    # long from 2024: the January 2025 approach to the zone (high 6128) is turned back
    "breakout_failure_always": (
        "breakout_failure.py", {"entry": "always", "max_hold": 0}, (1, 0), {"rejection": 1},
        0.130190, [("SPX", "2024-01-03", 4725.07, "2025-01-28", "rejection")],
    ),
    # long from May 2025: the break of 6200 on 2025-06-30 holds and reaches 6450 in August
    "breakout_failure_2025": (
        "breakout_failure.py", {"entry": "always", "max_hold": 0, "start": "2025-05-01"},
        (1, 0), {"target": 1}, 0.064606,
        [("SPX", "2025-05-02", 5645.88, "2025-08-14", "target")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trades_on_the_bundled_data_are_pinned(case):
    file, params, (closed, still_open), reasons, total_return, first = CASES[case]
    result = engine.run(STRATEGIES / file, **params)
    trades = result.trades
    assert (int(result.metrics["trades"]), int(result.metrics["open_trades"])) \
        == (closed, still_open)
    assert dict(trades.group_by("exit_reason").len().iter_rows()) == reasons
    assert result.metrics["total_return"] == pytest.approx(total_return, abs=5e-7)
    got = [(r["symbol"], str(r["entry_ts"])[:10], r["entry_price"], str(r["exit_ts"])[:10],
            r["exit_reason"]) for r in trades.head(len(first)).iter_rows(named=True)]
    assert [g[:2] + g[3:] for g in got] == [f[:2] + f[3:] for f in first]
    assert [g[2] for g in got] == pytest.approx([f[2] for f in first], rel=1e-7)


@pytest.mark.parametrize("name", ["fear_contrarian", "short_squeeze", "breakout_failure"])
def test_each_rule_runs_from_the_command_line_with_no_argument(name):
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", f"strategies/{name}.py", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]
    assert metrics["trades"] > 0
