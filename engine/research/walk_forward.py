"""``engine.walk_forward``: choose parameters in-sample, judge them out-of-sample.

The bars are cut into consecutive windows. For window ``k`` (starting at bar
``s = k * test``)::

    train: bars [s, s + train)            test: bars [s + train, s + train + test)

Every parameter set of the grid runs on the training bars (one sweep over all
windows, on the local pool or Dask); the set with the best ``metric`` there (ties:
the first in grid order; failed and undefined sets never win) is the window's
choice. That set then runs over the training and test bars together, so its
indicators are warmed up and a position it holds at the end of the training bars
is still held, and only the **test bars** count: their per-bar returns, chained
window after window from the starting cash, form the stitched **out-of-sample
equity** (nothing in it depends on the test bars' own results: the choice used the
training bars only). The last test window may be shorter than ``test``.

With ``anchored=True`` every training window starts at the first bar and grows
(``train: bars [0, s + train)``); the test windows are the same.

The out-of-sample metrics are :func:`engine.analysis.metrics.compute_metrics` of the
stitched curve, with the trades that closed inside test windows (their P&L scaled
to the stitched account) and exposure counted on bars where equity differs from
cash. The in-sample figures are the chosen sets' metrics on their training
windows, averaged over the windows: the usual gap between the two is the
optimism of picking the best of many on the same data.

(The module is ``engine.research.walk_forward`` so that ``engine.walk_forward`` stays the
function.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.errors import ParameterError


@dataclass
class WalkForward:
    """What :func:`walk_forward` returns.

    Attributes
    ----------
    windows : polars.DataFrame
        One row per window: ``window, train_start, train_end, test_start, test_end``
        (dates of the first and last bar), the chosen parameters, ``in_sample`` and
        ``out_of_sample`` (the metric on the training and on the test bars), and
        ``error`` (null, or why no set could be chosen: the window is then flat).
    equity : polars.DataFrame
        ``ts, equity, window``: the stitched out-of-sample equity, one row per test bar.
    metrics : dict of str to float
        Out-of-sample metrics of the stitched curve.
    in_sample : dict of str to float
        The chosen sets' training metrics, averaged over the windows.
    metric : str
        The metric the sets were chosen by.
    """

    windows: pl.DataFrame
    equity: pl.DataFrame
    metrics: dict
    in_sample: dict
    metric: str

    def summary(self) -> pl.DataFrame:
        """``metric, in_sample, out_of_sample``, one row per metric, side by side."""
        names = [m for m in self.metrics if m in self.in_sample]
        return pl.DataFrame({
            "metric": names,
            "in_sample": [self.in_sample[m] for m in names],
            "out_of_sample": [self.metrics[m] for m in names],
        }, schema={"metric": pl.String, "in_sample": pl.Float64, "out_of_sample": pl.Float64})


def _windows(n_bars: int, train: int, test: int,
             anchored: bool = False) -> list[tuple[int, int, int]]:
    """``(train_start, test_start, test_stop)`` of each window, in bars."""
    for name, value in (("train", train), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be a positive number of bars; got {value!r}")
    if train < 2:
        raise ParameterError(f"train must be at least 2 bars; got {train}")
    if train + test > n_bars:
        raise ParameterError(
            f"the data has {n_bars} bars: not enough for a training window of {train} bars "
            f"followed by a test window of {test} bars ({train + test} bars). Fix: shorten "
            f"train/test (--train/--test) or give more data (start/end, --data)")
    out, start = [], 0
    while start + train < n_bars:
        out.append((0 if anchored else start, start + train, min(start + train + test, n_bars)))
        start += test
    return out


def _best(rows: list[tuple[dict, dict | None, str | None]], metric: str):
    """The first row with the best finite ``metric``; None when there is none."""
    from engine.research.sweep import LOWER_IS_BETTER

    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best = None
    for params, metrics, _ in rows:
        value = (metrics or {}).get(metric)
        if value is None or not math.isfinite(value):
            continue
        if best is None or sign * value > sign * best[1][metric]:
            best = (params, metrics)
    return best


def walk_forward(strategy, grid, *, train: int, test: int, metric: str = "sharpe",
                 anchored: bool = False, data=None,
                 samples: int | None = None, seed: int = 0, n_jobs: int = -1,
                 backend: str = "local", address=None, progress: bool = True,
                 pool=None, **run_options) -> WalkForward:
    """Walk-forward optimisation of ``strategy`` over ``grid``.

    Parameters
    ----------
    strategy, grid, samples, seed, data, n_jobs, backend, address, progress, pool
        As for :func:`engine.sweep`. The sets of every training window run as one
        sweep, on one set of workers (``pool``'s when given, kept running after).
    train, test : int
        Lengths of the training and test windows, in bars. Windows advance by
        ``test`` bars, so the test windows tile the bars after the first training
        window.
    anchored : bool
        Start every training window at the first bar (it grows by ``test`` bars each
        window) instead of rolling a window of ``train`` bars.
    metric : str
        The metric that picks each window's set (best first, as ``sort_by``).
    **run_options
        Options of :func:`engine.run`, the same for every run (``start``/``end``
        limit the bars that are cut into windows).

    Returns
    -------
    WalkForward
        Per-window choices, the stitched out-of-sample equity and its metrics, and
        the in-sample metrics beside them (:meth:`WalkForward.summary`).
    """
    from engine.analysis.conventions import choose_periods_per_year
    from engine.analysis.metrics import compute_metrics
    from engine.backtest.result import stamps
    from engine.backtest.run import run
    from engine.research.sweep import (
        check_metric,
        execute,
        pool_of,
        warn_crashed,
        warn_missing,
        warn_notes,
    )
    from engine.research.sweep_plan import Plan, parameter_sets, prepare

    n_jobs = pool_of(pool, n_jobs, backend)
    check_metric(metric, "metric")
    sets = parameter_sets(grid, samples, seed)
    base = prepare(strategy, sets, data, run_options)
    if not isinstance(anchored, bool):
        raise ParameterError(f"anchored must be True or False; got {anchored!r}")
    windows = _windows(base.panels[0].n_bars, train, test, anchored)
    # One factor for every window and the stitched curve, read off the whole data.
    ppy, _ = choose_periods_per_year(run_options.get("periods_per_year"),
                                     base.panels[0].local_ts)
    base.options["periods_per_year"] = ppy
    panels, tasks = [], []
    for w, (start, cut, _) in enumerate(windows):
        offset = len(panels)
        panels += [p.slice(start, cut) for p in base.panels]
        tasks += [(w * len(sets) + i, offset + number, params)
                  for i, number, params in base.tasks]
    plan = Plan(base.ref, base.cls, panels, tasks, base.options, base.names)
    done, reason = execute(plan, n_jobs=n_jobs, backend=backend, address=address,
                           progress=progress, label="walk-forward", pool=pool)
    warn_missing(len(tasks) - len(done), len(tasks), reason)
    warn_crashed(plan)
    warn_notes(plan)

    cash = float(run_options.get("cash", 100_000.0))
    records, curve, times, labels, in_market = [], [], [], [], []
    pnl, returns, chosen_metrics = [], [], []
    level = cash
    for w, (start, cut, stop) in enumerate(windows):
        rows = [(params, *done.get(w * len(sets) + i, (None, "missing")))
                for i, (_, _, params) in enumerate(base.tasks)]
        best = _best(rows, metric)
        full = base.panels[0].slice(start, stop)
        local = full.local_ts
        record = {"window": w, "train_start": _when(local[0]),
                  "train_end": _when(local[cut - start - 1]),
                  "test_start": _when(local[cut - start]), "test_end": _when(local[-1])}
        segment_equity = np.full(stop - cut, level)
        if best is None:
            record.update({name: None for name in base.names}, in_sample=None,
                          out_of_sample=None, error=_why(rows, metric))
            holding = np.zeros(stop - cut, dtype=bool)
        else:
            params, train_metrics = best
            number = next(n for i, n, p in base.tasks if p is params)
            result = run(base.cls, base.panels[number].slice(start, stop), **base.options,
                         **params)
            equity = result.equity["equity"].to_numpy()
            cash_curve = result.equity["cash"].to_numpy()
            anchor = equity[cut - start - 1]
            segment_equity = level * equity[cut - start:] / anchor
            holding = ~np.isclose(equity[cut - start:], cash_curve[cut - start:], rtol=0,
                                  atol=1e-9 * abs(anchor))
            # Compared as instants (epoch ns), whatever zone the trades are shown in.
            test_from = int(full.ts[cut - start].astype("datetime64[ns]").view(np.int64))
            closed = result.trades.filter(pl.col("exit_ts").is_not_null()
                                          & (pl.col("exit_ts").dt.epoch("ns") >= test_from))
            pnl += list(closed["pnl"].to_numpy() * level / anchor)
            returns += list(closed["return_pct"].to_numpy())
            test_metrics = compute_metrics(segment_equity, starting_cash=level,
                                           periods_per_year=ppy,
                                           risk_free=run_options.get("risk_free", 0.0))
            record.update(params, in_sample=train_metrics[metric],
                          out_of_sample=test_metrics.get(metric), error=None)
            chosen_metrics.append(train_metrics)
        records.append(record)
        curve.append(segment_equity)
        in_market.append(holding)
        times.append(full.ts[cut - start:])
        labels.append(np.full(stop - cut, w))
        level = float(segment_equity[-1])

    stitched = np.concatenate(curve)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        metrics = compute_metrics(stitched, starting_cash=cash, trade_pnl=np.array(pnl),
                                  trade_return=np.array(returns),
                                  in_market=np.concatenate(in_market), periods_per_year=ppy,
                                  risk_free=run_options.get("risk_free", 0.0))
        in_sample = {name: float(np.nanmean([m.get(name, np.nan) for m in chosen_metrics]))
                     if chosen_metrics else float("nan") for name in metrics}
    columns = ["window", "train_start", "train_end", "test_start", "test_end", *base.names,
               "in_sample", "out_of_sample", "error"]
    windows_frame = pl.DataFrame([{c: r.get(c) for c in columns} for r in records],
                                 schema_overrides={"in_sample": pl.Float64,
                                                   "out_of_sample": pl.Float64,
                                                   "error": pl.String},
                                 strict=False)
    equity_frame = pl.DataFrame({"ts": stamps(np.concatenate(times),
                                              base.panels[0].meta.get("tz")),
                                 "equity": stitched,
                                 "window": np.concatenate(labels)})
    return WalkForward(windows_frame, equity_frame, metrics, in_sample, metric)


def _when(ts):
    return np.datetime64(ts, "us").item()


def _why(rows, metric: str) -> str:
    errors = [e for _, _, e in rows if e]
    if errors and len(errors) == len(rows):
        return f"every set failed on the training window; the first: {errors[0]}"
    return f"no set has a finite {metric} on the training window: the window stays flat"
