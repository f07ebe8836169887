"""Plots as PNG bytes: a run's equity and drawdown, overlaid equity for comparisons, the
heatmap of a sweep's metric over two parameters, and a walk-forward's out-of-sample
equity.

matplotlib is imported here only, when a plot is drawn (a plain ``run`` does not
pay for it), through its object API with the Agg renderer: no pyplot state, no
display needed. The PNGs carry no software version or date, so the same inputs
give the same bytes on the same matplotlib version.

The equity axis is logarithmic when the curves span more than a factor of 10 (a
century of compounding is unreadable on a linear axis), linear otherwise. The
underwater panel shows the drawdown ``1 - E_t / max_{s<=t} E_s`` as a negative
percentage (see :mod:`engine.analysis.metrics`).
"""

from __future__ import annotations

import io
import textwrap

import numpy as np

from engine.analysis.metrics import drawdown_series
from engine.analysis.tables import local_times

#: PNG metadata: no "Software: matplotlib version x" and no creation time.
PNG_METADATA = {"Software": None}
STRATEGY_COLOUR = "#1f5fa8"
BENCHMARK_COLOUR = "#8a8a8a"
PALETTE = ("#1f5fa8", "#d1641b", "#2a9d4b", "#b8322f", "#7a4fb0", "#8c5a3c", "#d45fa9",
           "#5c7a1f", "#1fa3b8")  # the benchmark (BuyAndHold) is always grey


def _figure(rows: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, height_ratios=[3, 1][:rows])
    return fig, axes


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata=PNG_METADATA)
    return buffer.getvalue()


def _log_scale_fits(curves) -> bool:
    values = np.concatenate([np.asarray(c, dtype=np.float64) for c in curves])
    values = values[np.isfinite(values)]
    return bool(values.size) and values.min() > 0 and values.max() / values.min() > 10


def _style(ax_equity, ax_under, curves):
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    money = FuncFormatter(lambda y, _pos: f"{y:,.0f}")
    if _log_scale_fits(curves):
        ax_equity.set_yscale("log")
        ax_equity.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_equity.yaxis.set_minor_formatter(NullFormatter())
    ax_equity.yaxis.set_major_formatter(money)
    ax_equity.set_ylabel("equity")
    ax_equity.grid(True, which="major", alpha=0.3)
    ax_equity.legend(loc="upper left", frameon=False)
    ax_under.set_ylabel("drawdown")
    ax_under.grid(True, alpha=0.3)
    ax_under.yaxis.set_major_formatter(_percent_formatter())


def _percent_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda y, _pos: f"{y:.0%}")


def _curve(start: float, equity) -> np.ndarray:
    return np.concatenate(([float(start)], np.asarray(equity, dtype=np.float64)))


def _times(ts) -> np.ndarray:
    """The bars' timestamps with one point before the first for the starting cash."""
    ts = np.asarray(ts, dtype="datetime64[ns]")
    if ts.size == 0:
        return ts
    step = ts[1] - ts[0] if ts.size > 1 else np.timedelta64(1, "D")
    return np.concatenate(([ts[0] - step], ts))


def equity_png(result) -> bytes:
    """Equity (with buy-and-hold of the same data) over the underwater drawdown."""
    ts = _times(local_times(result.equity["ts"]))
    start = result.starting_cash
    equity = _curve(start, result.equity["equity"].to_numpy())
    fig, (top, bottom) = _figure(2)
    curves = [equity]
    name = result.strategy
    top.plot(ts, equity, color=STRATEGY_COLOUR, linewidth=1.1, label=name)
    bottom.fill_between(ts, -drawdown_series(equity), 0, color=STRATEGY_COLOUR, alpha=0.35,
                        linewidth=0)
    if result.benchmark is not None:
        bench = _curve(start, result.benchmark)
        curves.append(bench)
        top.plot(ts, bench, color=BENCHMARK_COLOUR, linewidth=0.9,
                 label="buy and hold")
        bottom.plot(ts, -drawdown_series(bench), color=BENCHMARK_COLOUR, linewidth=0.6)
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    title = f"{name}: equity and drawdown" + (f"\n{params}" if params else "")
    top.set_title(textwrap.fill(title, 120, replace_whitespace=False), fontsize=10)
    _style(top, bottom, curves)
    return _png(fig)


def compare_png(results, names) -> bytes:
    """Overlaid equity curves and drawdowns of several runs (on the same data, or
    each on its own: the title says which).

    ``names`` label the curves (the comparison table's names: parameters appear
    only where one strategy is compared with several parameter sets).
    """
    fig, (top, bottom) = _figure(2)
    curves = []
    for i, (result, name) in enumerate(zip(results, names, strict=True)):
        benchmark = result.strategy == "BuyAndHold"
        colour = BENCHMARK_COLOUR if benchmark else PALETTE[i % len(PALETTE)]
        ts = _times(local_times(result.equity["ts"]))
        curve = _curve(result.starting_cash, result.equity["equity"].to_numpy())
        curves.append(curve)
        top.plot(ts, curve, color=colour, linewidth=1.0, label=name, zorder=1 if benchmark
                 else 2)
        bottom.plot(ts, -drawdown_series(curve), color=colour, linewidth=0.7,
                    zorder=1 if benchmark else 2)
    same = len({(r.settings["data"], r.settings["start"], r.settings["end"])
                for r in results}) == 1
    top.set_title("Equity on the same data" if same else
                  "Equity, each strategy on its own data and period")
    _style(top, bottom, curves)
    return _png(fig)


def _heatmap_axis(values: list) -> list:
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    return sorted(distinct) if numeric else distinct


def heatmap_png(frame, grid: dict[str, list], metric: str) -> bytes:
    """The metric over a two-parameter grid: the first name across, the second up.

    A blank cell is a set that failed, was not sampled, or has no value (NaN).
    """
    from matplotlib.figure import Figure

    x, y = list(grid)[:2]
    xcol = x if x in frame.columns and x != metric else f"param_{x}"
    ycol = y if y in frame.columns and y != metric else f"param_{y}"
    xs, ys = _heatmap_axis(frame[xcol].to_list()), _heatmap_axis(frame[ycol].to_list())
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    z = np.full((len(ys), len(xs)), np.nan)
    for a, b, value in zip(frame[xcol].to_list(), frame[ycol].to_list(),
                           frame[metric].to_list(), strict=True):
        if value is not None:
            z[yi[b], xi[a]] = value
    width = min(14, max(6.5, 4 + 0.3 * len(xs)))
    fig = Figure(figsize=(width, min(10, 3.5 + 0.25 * len(ys))), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(z), origin="lower", aspect="auto",
                      interpolation="nearest", cmap="viridis")
    fig.colorbar(image, ax=ax, label=metric)
    for values, setter, labeler in ((xs, ax.set_xticks, ax.set_xticklabels),
                                    (ys, ax.set_yticks, ax.set_yticklabels)):
        every = max(1, int(np.ceil(len(values) / 20)))
        ticks = list(range(0, len(values), every))
        setter(ticks)
        labeler([f"{values[i]:g}" if isinstance(values[i], float) else str(values[i])
                 for i in ticks])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    # Wrapped to the figure's width (about 13 characters per inch at 10 pt), so that a
    # narrow grid's title is not clipped.
    ax.set_title(textwrap.fill(f"{metric} by {x} and {y} (blank: failed, not sampled or "
                               f"undefined)", int(width * 11)), fontsize=10)
    return _png(fig)


def walk_forward_png(wf, cash: float, title: str) -> bytes:
    """The stitched out-of-sample equity of a walk-forward (from the starting ``cash``)
    over its drawdown, every other test window shaded."""
    ts = _times(local_times(wf.equity["ts"]))
    curve = _curve(cash, wf.equity["equity"].to_numpy())
    fig, (top, bottom) = _figure(2)
    top.plot(ts, curve, color=STRATEGY_COLOUR, linewidth=1.1, label="out-of-sample equity")
    bottom.fill_between(ts, -drawdown_series(curve), 0, color=STRATEGY_COLOUR, alpha=0.35,
                        linewidth=0)
    labels = wf.equity["window"].to_numpy()
    for number in np.unique(labels):
        inside = np.flatnonzero(labels == number)
        if number % 2:
            top.axvspan(ts[inside[0] + 1], ts[inside[-1] + 1], color="#000000", alpha=0.05,
                        linewidth=0)
    top.set_title(textwrap.fill(title, 120, replace_whitespace=False), fontsize=10)
    _style(top, bottom, [curve])
    return _png(fig)
