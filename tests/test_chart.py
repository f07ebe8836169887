"""The interactive chart (engine.report.chart): panels, trades, levels, determinism,
and every generated page in headless Chromium (network off)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine
from engine.data.synthetic import random_walk
from engine.indicators import rsi, sma
from engine.report import chart as chart_module
from engine.report.chart import _levels, _Series, build_chart, chart_html

ROOT = Path(__file__).resolve().parents[1]
SMA = ROOT / "strategies" / "sma_cross.py"
FEAR = ROOT / "strategies" / "fear_contrarian.py"
HOLD = ROOT / "strategies" / "buy_and_hold.py"


class Indicators(engine.Strategy):
    """Declares an overlay by its range (SMA), one by its range off (RSI), one forced
    off the price (a second SMA); buys too much once so that an order is rejected."""

    def on_start(self):
        self.ma = self.I(sma, self.data.close, 20)
        self.strength = self.I(rsi, self.data.close, 14)
        self.slow = self.I(sma, self.data.close, 50, name="slow_ma", overlay=False)

    def on_bar(self, bar):
        if len(self.data) == 30:
            self.buy(size=10**9)  # more than the cash: rejected
        elif self.position == 0 and self.strength[-1] < 40:
            self.buy()
        elif self.position > 0 and self.strength[-1] > 60:
            self.close()


def _models(layout, kind):
    return [m for m in layout.references() if type(m).__name__ == kind]


def _figures(layout):
    return [m for m in layout.children if type(m).__name__ == "figure"]


@pytest.fixture(scope="module")
def indicator_run():
    return engine.run(Indicators, random_walk(600, seed=3))


def test_panels_indicators_trades_and_rejections(indicator_run):
    result = indicator_run
    layout = build_chart(result)
    titles = [f.title.text for f in _figures(layout)]
    assert titles[0].startswith("asset: price")
    assert titles[1:] == ["indicator: rsi", "indicator: slow_ma",
                          "equity and buy-and-hold of the same data",
                          "drawdown from the running peak"]
    price = _figures(layout)[0]
    legends = [item.label["value"] for item in price.legend[0].items]
    assert "sma" in legends and "rsi" not in legends and "slow_ma" not in legends
    # Every closed trade is one segment, coloured by the sign of its P&L.
    closed = result.trades.filter(pl.col("exit_ts").is_not_null())
    assert closed.height > 3
    segments = [r for r in price.renderers if type(r.glyph).__name__ == "Segment"
                and r.glyph.x0 == "x0"]
    data = segments[0].data_source.data
    assert len(data["x0"]) == closed.height
    expected = np.where(closed["pnl"].to_numpy() > 0, chart_module.PROFIT_COLOUR,
                        chart_module.LOSS_COLOUR)
    assert list(data["colour"]) == list(expected)
    assert np.allclose(data["y0"], closed["entry_price"].to_numpy())
    assert list(data["reason"]) == closed["exit_reason"].to_list()
    # The rejected order is marked at the close of its bar.
    rejected = result.orders.filter(pl.col("status") == "rejected")
    assert rejected.height == 1
    crosses = [r for r in price.renderers if getattr(r.glyph, "marker", None) == "x"]
    marks = crosses[0].data_source.data
    bar = int(np.searchsorted(result.panel.ts, rejected["done_ts"].to_numpy()[0]))
    assert marks["y"][0] == result.panel.fields["close"][bar, 0]
    assert "cash" in marks["reason"][0]
    # The trade list holds every trade row, sortable.
    table = _models(layout, "DataTable")[0]
    assert table.sortable and len(table.source.data["symbol"]) == result.trades.height


def test_feeds_have_their_own_panel():
    result = engine.run(FEAR, start="2019-01-01", end="2021-12-31")
    titles = [f.title.text for f in _figures(build_chart(result))]
    assert "feeds joined onto the bars: fear_greed" in titles
    result = engine.run(FEAR, start="2019-01-01", end="2021-12-31", signal="vix")
    assert "feeds joined onto the bars: vix" in [f.title.text for f in
                                                 _figures(build_chart(result))]


def test_one_panel_per_symbol_then_a_picker():
    few = engine.run(HOLD, random_walk(300, 3, seed=1))
    layout = build_chart(few)
    assert [f.title.text.split(":")[0] for f in _figures(layout)[:3]] == [
        "asset0", "asset1", "asset2"] or len(_figures(layout)) >= 3
    assert not _models(layout, "Select")
    many = engine.run(HOLD, random_walk(300, 7, seed=1))
    layout = build_chart(many)
    picker = _models(layout, "Select")
    assert len(picker) == 1 and picker[0].options == list(many.panel.symbols)
    assert sum(f.title.text.startswith("selected symbol") for f in _figures(layout)) == 1


def test_levels_aggregate_first_max_min_last_by_hand():
    t = np.arange(10, dtype=np.float64) * 60_000
    series = _Series(t)
    series.add("o", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "first")
    series.add("h", [5, 9, 1, 2, 7, 3, 3, 8, 1, 4], "max")
    series.add("l", [5, 9, 1, 2, 7, 3, 3, 8, 1, 4], "min")
    series.add("c", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "last")
    level = series.level(4)
    assert list(level["t"]) == [0, 240_000, 480_000]
    assert list(level["o"]) == [1, 5, 9]
    assert list(level["h"]) == [9, 8, 4]
    assert list(level["l"]) == [1, 3, 1]
    assert list(level["c"]) == [4, 8, 10]
    assert np.allclose(level["w"], 240_000 * chart_module.WIDTH_FRACTION)


def test_level_factors():
    assert _levels(10_000, 44) == [1]
    factors = _levels(1_000_000, 44)
    assert factors[0] == math.ceil(1_000_000 * 44 / chart_module.LEVEL_BUDGET)
    factor = chart_module.LEVEL_FACTOR
    assert all(b == a * factor for a, b in zip(factors, factors[1:], strict=False))
    assert math.ceil(1_000_000 / factors[-1]) <= chart_module.MAX_VISIBLE
    assert math.ceil(1_000_000 / factors[-2]) > chart_module.MAX_VISIBLE


def test_chart_html_is_the_same_bytes_for_the_same_run():
    from bokeh.plotting import figure

    result = engine.run(SMA, start="2019-01-01", end="2020-12-31", mode="event")
    first = chart_html(result)
    figure()  # other Bokeh objects made in between change nothing
    assert chart_html(result) == first
    tags = Tags()
    tags.feed(first)
    assert tags.found == [("script", {})] * tags.found.count(("script", {}))  # no src, no link


class Tags(HTMLParser):
    """The tags that could load something (script, link, img, iframe) with their
    attributes; the JavaScript's own text is not parsed as tags."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe"):
            self.found.append((tag, {k: v for k, v in attrs if k != "type"}))


# --------------------------------------------------------------------------- browser

chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                              reason="chromium is not installed (.ci/run installs it)")


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    _cli("run", str(FEAR), "--out", str(out / "run"))
    _cli("compare", str(SMA), str(FEAR), "--out", str(out / "compare"))
    _cli("claims", "--out", str(out / "claims"))
    big = engine.run(SMA, random_walk(60_000, freq="m", volatility=0.001, seed=2))
    big.to_dir(out / "big")
    return {"run": out / "run" / "report.html", "compare": out / "compare" / "report.html",
            "claims": out / "claims" / "claims.html", "big": out / "big" / "report.html"}


@chromium
@pytest.mark.parametrize("name", ["run", "compare", "claims", "big"])
def test_page_renders_offline_without_errors_or_sideways_scroll(pages, name):
    from matplotlib.image import imread

    from tests.chromium import load_page

    charted = name in ("run", "big")
    report = load_page(pages[name], chart=charted)
    assert report.errors == []
    assert report.requests == []  # nothing asked of the network
    assert report.scroll_width <= report.inner_width == 1280
    shot = pages[name].parent / f"{name}-shot.png"
    shot.write_bytes(report.screenshot)
    pixels = imread(shot)
    assert pixels.shape[:2] == (800, 1280) and pixels[:, :, :3].std() > 0.05
    if charted:  # price, feeds (run) and equity and drawdown panels have drawn
        assert report.drawn_canvases >= (4 if name == "run" else 3), report.canvases


@chromium
def test_large_run_refines_on_zoom(pages):
    from tests.chromium import zoom

    steps = zoom(pages["big"], [(0.0, 1.0), (0.45, 0.55), (0.45, 0.55)])
    (seen0, step0), (seen1, step1), (seen2, step2) = steps
    # Whole range: an aggregated level; each zoom shows a finer one (smaller time step)
    # with no more than MAX_VISIBLE bars in view.
    assert step0 > step1 > step2 >= 60_000
    assert all(0 < seen <= chart_module.MAX_VISIBLE for seen in (seen0, seen1, seen2))


def test_sweep_and_compare_results_are_frames_with_plots():
    sweep = engine.sweep(SMA, {"fast": [5, 10], "slow": [30, 40, 50]}, n_jobs=1,
                         progress=False, start="2018-01-01", end="2020-12-31")
    assert type(sweep).__name__ == "SweepResult" and isinstance(sweep, pl.DataFrame)
    assert sweep.parameters == ["fast", "slow"]
    assert sweep.filter(pl.col("fast") == 5).height == 3  # frame operations work
    assert sweep.sort("sharpe")["sharpe"].is_sorted(nulls_last=True)
    heatmap = sweep.plot("sharpe")
    rect = [r for r in heatmap.renderers if type(r.glyph).__name__ == "Rect"][0]
    assert sorted(zip(rect.data_source.data["x"], rect.data_source.data["y"],
                      strict=True)) == sorted((str(a), str(b)) for a, b in
                                              zip(sweep["fast"], sweep["slow"], strict=True))
    assert "sharpe by fast and slow" in heatmap.title.text
    with pytest.raises(engine.errors.ParameterError, match="'nope' is not a column"):
        sweep.plot("nope")
    table = engine.compare([SMA], start="2018-01-01", end="2020-12-31")
    assert type(table).__name__ == "CompareResult" and table["strategy"].to_list() == [
        "SmaCross", "BuyAndHold"]
    lines = [r for f in table.plot().children for r in f.renderers]
    assert len(lines) == 4  # equity and drawdown of each row


def test_result_summary_for_notebooks():
    result = engine.run(SMA, start="2018-01-01", end="2020-12-31")
    shown = result._repr_html_()
    assert "SmaCross" in shown and "2018-01-02" in shown and "<svg" in shown
    assert f"{result.metrics['sharpe']:.3f}" in shown
    assert len(shown) < 6_000


def test_vectorised_strategies_chart_the_indicators_their_signals_name(tmp_path):
    import engine
    from engine.errors import StrategyError

    root = Path(__file__).resolve().parents[1]
    result = engine.run(root / "strategies" / "sma_cross.py", start="2020-01-01")
    assert [label for label, _, _ in result.instance.declared_indicators] == [
        "SMA 10", "SMA 20"]
    text = (result.to_dir(tmp_path / "out") / "report.html").read_text(encoding="utf-8")
    assert "SMA 10" in text and "SMA 20" in text

    class Bad(engine.Strategy):
        def signals(self, data):
            return engine.Signals(entries=data.close > 0, exits=data.close < 0,
                                  indicators={"short": data.close[:5]})

    with pytest.raises(StrategyError, match="indicator 'short' has shape"):
        engine.run(Bad, engine.load_bars(root / "datasets" / "sp500_daily.parquet",
                                         start="2024-01-01"))
