"""engine.sweep(..., method="optuna"): a seeded Bayesian search over the param ranges."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.cli import main as cli_main
from engine.data.synthetic import random_walk
from engine.errors import ParameterError
from engine.research.sweep import SweepWarning

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
#: The bar whose close is the top of the tent-shaped prices below.
PEAK = 70

PLANTED = textwrap.dedent("""
    import numpy as np

    from engine import Signals, Strategy, param


    class HoldThenSell(Strategy):
        '''Buy on the first bar, sell after ``hold`` bars, with ``size`` of the equity.'''

        hold: int = param(10, min=1, max=150)
        size: float = param(0.5, min=0.1, max=1.0)
        side: str = param("long", choices=("long", "flat"))

        def signals(self, data):
            n = len(data.close)
            entries = np.zeros(n, dtype=bool)
            exits = np.zeros(n, dtype=bool)
            if self.side == "long":
                entries[0] = True
            if self.hold < n:
                exits[self.hold] = True
            return Signals(entries=entries, exits=exits, size=self.size, size_type="percent")
""")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "hold_then_sell.py"
    path.write_text(PLANTED)
    return str(path)


@pytest.fixture(scope="module")
def tent():
    """Prices rising to bar PEAK, then falling: the exit signal at bar PEAK - 1 fills
    at the open of bar PEAK, the top, so hold = PEAK - 1 is the best."""
    n = 200
    close = np.where(np.arange(n) <= PEAK, 100.0 + np.arange(n),
                     100.0 + 2 * PEAK - np.arange(n)).astype(float)
    ts = np.datetime64("2020-01-01") + np.arange(n).astype("timedelta64[D]")
    return pl.DataFrame({"date": ts, "open": close, "high": close + 0.5, "low": close - 0.5,
                         "close": close, "volume": np.full(n, 1000.0)})


def _search(path, data, **kw):
    options = dict(method="optuna", trials=40, sort_by="total_return", seed=7, data=data,
                   n_jobs=1, progress=False)
    options.update(kw)
    return engine.sweep(path, **options)


def test_finds_the_planted_best_parameter(planted, tent):
    rows = _search(planted, tent, trials=60, size=1.0)  # hold (1..150) and side searched
    best = rows.row(0, named=True)
    assert (best["hold"], best["side"]) == (PEAK - 1, "long")
    optimum = engine.run(planted, tent, hold=PEAK - 1, size=1.0).metrics["total_return"]
    assert best["total_return"] == optimum
    # sorted best first, every metric and the error column, like a grid sweep
    values = rows["total_return"].to_list()
    assert values == sorted(values, reverse=True)
    grid = engine.sweep(planted, {"hold": [5]}, data=tent, n_jobs=1, progress=False,
                        stats=True)
    assert rows.columns == ["hold", "side", *grid.columns[1:]]   # dsr too, from 10 trials
    # with the float size searched too, the best sets put most of the equity in
    both = _search(planted, tent).row(0, named=True)
    assert both["size"] >= 0.85 and abs(both["hold"] - (PEAK - 1)) <= 8
    assert both["total_return"] >= 0.75 * optimum


def test_same_seed_same_rows_any_workers_other_seed_other_rows(planted, tent):
    first = _search(planted, tent, trials=20)
    again = _search(planted, tent, trials=20, n_jobs=2)
    assert first.equals(again, null_equal=True)
    other = _search(planted, tent, trials=20, seed=8)
    assert not first.select("hold", "size").equals(other.select("hold", "size"))


def test_bounds_and_choices_are_respected(planted, tent):
    rows = _search(planted, tent, trials=30, seed=3)
    assert rows["hold"].dtype == pl.Int64 and rows["size"].dtype == pl.Float64
    assert rows["hold"].min() >= 1 and rows["hold"].max() <= 150
    assert rows["size"].min() >= 0.1 and rows["size"].max() <= 1.0
    assert set(rows["side"]) <= {"long", "flat"}
    assert rows.height == len(set(rows.select("hold", "size", "side").iter_rows()))


def test_a_grid_restricts_names_to_its_values_and_fixed_values_stay(planted, tent):
    rows = _search(planted, tent, grid={"hold": [20, PEAK - 1, 100]}, trials=12, size=0.5)
    assert set(rows["hold"]) <= {20, PEAK - 1, 100}
    assert "size" not in rows.columns
    assert rows.row(0, named=True)["hold"] == PEAK - 1 and rows["side"][0] == "long"
    # a finite space: the search stops once every set has run, each once
    assert rows.height == 6


def test_minimises_lower_is_better_metrics(planted, tent):
    rows = _search(planted, tent, grid={"hold": [5, 20, 60]}, trials=10,
                   sort_by="max_drawdown", side="long", size=1.0)
    assert rows["max_drawdown"].to_list() == sorted(rows["max_drawdown"].to_list())


def test_failed_trials_become_error_rows(tmp_path, planted):
    path = tmp_path / "fragile.py"
    path.write_text(PLANTED.replace(
        "        n = len(data.close)",
        "        if self.hold % 2:\n            raise ValueError(f'odd hold {self.hold}')\n"
        "        n = len(data.close)"))
    rows = _search(str(path), random_walk(300, seed=2), trials=16, seed=1)
    failed = rows.filter(pl.col("error").is_not_null())
    assert failed.height and (failed["hold"] % 2 == 1).all()
    assert all("odd hold" in e for e in failed["error"])
    assert failed["sharpe"].is_null().all()
    assert rows.filter(pl.col("error").is_null()).height  # the others ran
    assert rows["error"].is_not_null().to_list()[-failed.height:] == [True] * failed.height


def test_a_set_that_kills_its_worker_is_an_error_row(tmp_path, tent):
    path = tmp_path / "crashing.py"
    path.write_text(PLANTED.replace(
        "        n = len(data.close)",
        "        if self.hold > 100:\n            import os\n            os._exit(3)\n"
        "        n = len(data.close)"))
    with pytest.warns(SweepWarning, match="killed their worker process"):
        rows = _search(str(path), tent, trials=24, seed=2, n_jobs=2)
    crashed = rows.filter(pl.col("hold") > 100)
    assert crashed.height
    assert all("exited with status 3" in e for e in crashed["error"])
    assert rows.filter(pl.col("hold") <= 100)["error"].is_null().all()


def test_a_parameter_without_bounds_is_named_with_the_fix(tent):
    with pytest.raises(ParameterError) as info:
        engine.sweep(SMA, method="optuna", trials=5, data=tent, n_jobs=1, progress=False)
    message = str(info.value)
    assert "'fast', 'slow'" in message and "no min and max" in message
    assert "--grid fast=" in message and "--param fast=VALUE" in message
    with pytest.raises(ParameterError, match="'slow' of SmaCross"):
        engine.sweep(SMA, {"fast": [5, 10]}, method="optuna", trials=5, data=tent, n_jobs=1,
                     progress=False)


@pytest.mark.parametrize(("kw", "match"), [
    (dict(trials=0), "trials must be a positive integer"),
    (dict(trials=None), "needs trials=N"),
    (dict(samples=3), "samples= is for grid sweeps"),
    (dict(method="random"), "method must be 'grid' or 'optuna'"),
    (dict(sort_by="sharp"), "'sharp' is not a metric"),
    (dict(grid={"hold": [5], "nope": [1]}), "'nope' is neither a parameter"),
    (dict(sort_by="dsr"), "cannot be what a search maximises"),
])
def test_bad_arguments(planted, tent, kw, match):
    with pytest.raises(ParameterError, match=match):
        _search(planted, tent, **kw)


def test_trials_is_for_optuna_only(planted, tent):
    with pytest.raises(ParameterError, match="trials= is for method='optuna'"):
        engine.sweep(planted, {"hold": [5]}, trials=5, data=tent, n_jobs=1)


def test_without_optuna_the_error_names_the_extra(planted, tent, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(ParameterError, match=r'pip install -e "\.\[optuna\]"'):
        _search(planted, tent)


def test_cli_optuna(planted, tent, tmp_path, capsys):
    data = tmp_path / "tent.parquet"
    tent.write_parquet(data)
    argv = ["sweep", planted, "--optuna", "12", "--sort-by", "total_return", "--seed", "4",
            "--data", str(data), "--jobs", "1", "--json"]
    assert cli_main(argv) == 0
    import json

    payload = json.loads(capsys.readouterr().out)
    assert payload["metric"] == "total_return" and len(payload["sweep"]) == 12
    expected = _search(planted, str(data), trials=12, seed=4)
    assert [r["hold"] for r in payload["sweep"]] == expected["hold"].to_list()
    assert cli_main(["sweep", planted, "--optuna", "3", "--samples", "2",
                     "--data", str(data)]) == 2
    assert "--samples is for grid sweeps" in capsys.readouterr().err
    assert cli_main(["sweep", SMA, "--optuna", "3", "--data", str(data)]) == 2
    assert "no min and max" in capsys.readouterr().err


def test_same_rows_on_dask(planted, tent):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        remote = _search(planted, tent, trials=16, backend="dask", address=client, n_jobs=-1)
    assert remote.equals(_search(planted, tent, trials=16), null_equal=True)


def test_feeds_set_by_parameters_are_joined_for_each_round():
    fear = str(ROOT / "strategies" / "fear_contrarian.py")
    fixed = dict(vix_threshold=30.0, vix_aggressive=40.0, vix_exit=20.0, max_hold=63,
                 feed_max_age=5, start="2020-01-01")
    grid = {"fg_lag": [0, 5], "fear_threshold": [20.0, 25.0], "exit_threshold": [55.0, 60.0]}
    rows = engine.sweep(fear, grid, method="optuna", trials=6, seed=2,
                        sort_by="sharpe", n_jobs=2, progress=False, **fixed)
    assert rows.height == 6
    ran = rows.filter(pl.col("error").is_null())
    assert ran.height >= 3
    assert set(rows["fg_lag"]) <= {0, 5}
    for row in ran.head(3).iter_rows(named=True):
        params = {k: row[k] for k in ("fg_lag", "signal", "fear_threshold", "exit_threshold",
                                      "size", "vix_size")}
        alone = engine.run(fear, **params, **fixed)
        assert alone.metrics["sharpe"] == row["sharpe"]
        assert alone.metrics["trades"] == row["trades"]


def test_ctrl_c_keeps_the_rows_that_finished(tmp_path, tent):
    path = tmp_path / "stops.py"
    path.write_text(PLANTED.replace(
        "        n = len(data.close)",
        "        if self.hold > 100:\n            raise KeyboardInterrupt\n"
        "        n = len(data.close)"))
    with pytest.warns(SweepWarning, match=r"sweep interrupted: \d+ of 40 parameter sets"):
        rows = _search(str(path), tent, trials=40, seed=2)
    assert 0 < rows.height < 40 and (rows["hold"] <= 100).all()
    assert rows["error"].null_count() == rows.height


def test_dsr_over_the_sets_tried_equals_their_own_runs_and_pbo_says_why_not(planted):
    from engine.analysis.metrics import bar_returns
    from engine.analysis.stats import deflated_sharpes
    from engine.research.search import NO_PBO

    walk = random_walk(400, seed=5)
    rows = _search(planted, walk, trials=24, seed=5, n_jobs=2, side="long")  # on from 10
    assert rows.columns[-2:] == ["dsr", "error"]
    ran = rows.filter(pl.col("error").is_null())
    returns = np.column_stack([
        bar_returns(engine.run(planted, walk, hold=h, size=s, side="long").equity["equity"]
                    .to_numpy(), 100_000.0)
        for h, s in ran.select("hold", "size").rows()])
    expected = deflated_sharpes(returns)        # N: every distinct set tried that ran
    assert np.isfinite(expected).sum() >= 10
    np.testing.assert_allclose(ran["dsr"].to_numpy(), expected, rtol=1e-9)
    assert rows.pbo == {"pbo": None, "reason": NO_PBO, "sets": int(np.isfinite(expected).sum())}
    assert rows.equals(_search(planted, walk, trials=24, seed=5, side="long"), null_equal=True)
    few = _search(planted, walk, trials=6, seed=5)                 # off below 10 trials
    assert "dsr" not in few.columns and few.pbo is None
    assert "dsr" not in _search(planted, walk, trials=24, seed=5, stats=False).columns
    assert _search(planted, walk, trials=6, seed=5, stats=True)["dsr"].is_not_null().any()


def test_cli_optuna_prints_the_overfitting_line(planted, tmp_path, capsys):
    data = tmp_path / "walk.parquet"
    walk = random_walk(400, seed=5)
    pl.DataFrame({"ts": walk.ts, **{k: v[:, 0] for k, v in walk.fields.items()}}) \
        .write_parquet(data)
    assert cli_main(["sweep", planted, "--optuna", "12", "--data", str(data), "--jobs", "1",
                     "--seed", "5", "--param", "side=long"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Probability of backtest overfitting: not computed (an Optuna search chose each " \
           "set after seeing the results of earlier sets on every bar" in out
    assert "Deflated Sharpe ratio of the best by sharpe:" in out
    assert "beats the best of 12 tries with no skill" in out
    assert cli_main(["sweep", planted, "--optuna", "12", "--data", str(data), "--jobs", "1",
                     "--no-stats"]) == 0
    assert "overfitting" not in capsys.readouterr().out
    assert cli_main(["sweep", planted, "--optuna", "3", "--metric", "dsr",
                     "--data", str(data)]) == 2
    assert "cannot be what a search maximises" in capsys.readouterr().err
