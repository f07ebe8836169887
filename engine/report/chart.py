"""The interactive chart of a run: prices, trades, indicators, feeds, equity, drawdown.

Built with Bokeh (imported here only, when a chart is drawn) and embedded in
``report.html`` with its JavaScript inline, so the page works offline and stays one
file. The panels share one time axis: zooming or panning one moves them all.

Panels, top to bottom
---------------------
price
    One panel per symbol for up to :data:`MAX_SYMBOL_PANELS` symbols, else one panel
    with a symbol picker. Candlesticks while at most :data:`CANDLE_LIMIT` bars are in
    view, the close as a line beyond. Each closed trade is a segment from its entry
    (time, price) to its exit, green for a profit and red for a loss (a zero P&L is a
    loss, as in the hit rate); hovering shows entry and exit dates and prices, size,
    P&L, return and exit reason. Rejected orders are red crosses at the close of the
    bar they were rejected on, with the broker's reason. Indicators declared with
    ``self.I(..., overlay=True)`` (or whose values lie in the price's range) are lines
    over the price.
indicators
    Each other ``self.I`` indicator on a panel of its own.
feeds
    The feature columns joined onto the bars (Fear & Greed, VIX, days-to-cover...),
    so a rule's trigger can be read against its reading.
equity
    The strategy's equity and buy-and-hold of the same data.
drawdown
    ``1 - E_t / max_{s<=t} E_s`` of both, as negative fractions (see
    :func:`engine.analysis.metrics.drawdown_series`).
trade list
    Every trade row of :attr:`engine.backtest.result.Result.trades`, sortable by
    clicking a column's header.

Large data
----------
Above :data:`AGGREGATE_ABOVE` bars the page holds a pyramid of aggregated bars
(each level ``LEVEL_FACTOR`` times coarser than the one below: first open, highest
high, lowest low, last close; lines take their last value, the drawdown its deepest)
and a JavaScript callback on the time axis shows, for the range in view, the
finest level with at most :data:`MAX_VISIBLE` bars in it: zooming in refines the
bars, without a server. The finest level holds every bar when the data fits the
page's budget (:data:`LEVEL_BUDGET` bytes); otherwise its bars already group a few
bars each (the tooltip of a trade and the trade list stay exact), which keeps a
1,000,000-bar run's page under 20 MB.

Determinism
-----------
Bokeh numbers its objects from a process-wide counter and names documents and
elements with random UUIDs; :func:`chart_html` renders under fixed ids (a counter
reset for the rendering, UUIDs replaced by a sequence), so the same run gives the
same bytes whatever was drawn before in the process.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np

from engine.analysis.metrics import drawdown_series
from engine.analysis.tables import local_times
from engine.report.plots import BENCHMARK_COLOUR, PALETTE, STRATEGY_COLOUR

#: Candlesticks while at most this many bars are in view; a line of closes beyond.
CANDLE_LIMIT = 2_000
#: Above this many bars the page holds aggregated levels refined on zoom.
AGGREGATE_ABOVE = 10_000
#: An aggregated level is shown when at most this many of its bars are in view.
MAX_VISIBLE = 1_500
#: Each level groups this many bars of the level below.
LEVEL_FACTOR = 4
#: Bytes of binary data the finest level may take (before base64).
LEVEL_BUDGET = 7_000_000
#: One price panel per symbol up to this many symbols; a symbol picker beyond.
MAX_SYMBOL_PANELS = 4
#: Entry markers (triangles) are drawn for at most this many trades of a symbol.
MAX_ENTRY_MARKERS = 1_000
#: Fields of the bars that are prices, not feeds.
PRICE_FIELDS = ("open", "high", "low", "close", "volume")

PROFIT_COLOUR = "#2a9d4b"
LOSS_COLOUR = "#c0392b"
UP_COLOUR = "#2a9d4b"
DOWN_COLOUR = "#c0392b"
WIDTH_FRACTION = 0.7  # of a bar's time step, the body of a candle


# --------------------------------------------------------------------------- data


def _ms(ts) -> np.ndarray:
    """Naive datetime64 as float milliseconds since 1970 (NaT: NaN), Bokeh's time unit."""
    ts = np.asarray(ts, dtype="datetime64[ns]")
    out = ts.astype(np.int64).astype(np.float64) / 1e6
    out[np.isnat(ts)] = np.nan
    return out


def _is_overlay(values: np.ndarray, close: np.ndarray) -> bool:
    """An indicator lies in the price's range (a moving average, a band) when most of
    its values are within 40% of the close: the test backtesting.py uses."""
    with np.errstate(invalid="ignore"):
        near = (values > 0.6 * close) & (values < 1.4 * close)
        known = np.isfinite(values) & np.isfinite(close)
    return bool(known.any()) and near[known].mean() > 0.6


def _levels(n: int, bytes_per_bar: int) -> list[int]:
    """Bars per group of each level, finest first."""
    if n <= AGGREGATE_ABOVE:
        return [1]
    finest = max(1, math.ceil(n * bytes_per_bar / LEVEL_BUDGET))
    levels = [finest]
    while math.ceil(n / levels[-1]) > MAX_VISIBLE:
        levels.append(levels[-1] * LEVEL_FACTOR)
    return levels


class _Series:
    """The columns of the chart before aggregation: name -> (array, how to aggregate)."""

    def __init__(self, t: np.ndarray):
        self.t = t
        self.columns: dict[str, tuple[np.ndarray, str]] = {}

    def add(self, name: str, values, how: str = "last") -> None:
        self.columns[name] = (np.asarray(values, dtype=np.float64), how)

    def level(self, factor: int) -> dict[str, np.ndarray]:
        n = self.t.size
        starts = np.arange(0, n, factor)
        ends = np.minimum(starts + factor, n) - 1
        t = self.t[starts]
        step = np.diff(self.t)
        typical = float(np.median(step)) if step.size else 86_400_000.0
        nxt = np.append(t[1:], t[-1] + typical * factor) if t.size else t
        out = {"t": t, "w": ((nxt - t) * WIDTH_FRACTION).astype(np.float32)}
        for name, (values, how) in self.columns.items():
            if factor == 1:
                column = values
            elif how == "first":
                column = values[starts]
            elif how == "max":
                column = np.fmax.reduceat(values, starts)
            elif how == "min":
                column = np.fmin.reduceat(values, starts)
            else:
                column = values[ends]
            out[name] = column.astype(np.float32)
        return out


def _window(t: np.ndarray, levels: list[int]) -> int:
    """The level shown before any zoom: the finest whose bars all fit the view."""
    for index, _factor in enumerate(levels):
        if len(levels) == 1 or math.ceil(t.size / levels[index]) <= MAX_VISIBLE:
            return index
    return len(levels) - 1


# --------------------------------------------------------------------------- figure

_JS = """
const lo = (a, x) => { let i = 0, j = a.length;
  while (i < j) { const m = (i + j) >> 1; if (a[m] < x) i = m + 1; else j = m; } return i; };
const get = (src, k) => (src.data instanceof Map ? src.data.get(k) : src.data[k]);
const x0 = xr.start, x1 = xr.end;
let L = levels.length - 1;
for (let i = 0; i < levels.length; i++) {
  const t = get(levels[i], "t");
  if (lo(t, x1) - lo(t, x0) <= (levels.length > 1 ? max_visible : 1e300)) { L = i; break; }
}
const lv = levels[L], t = get(lv, "t");
const ia = lo(t, x0), ib = lo(t, x1), span = ib - ia;
const a = Math.max(0, ia - span - 2), b = Math.min(t.length, ib + span + 2);
const candles = span <= candle_limit;
for (const r of candle_renderers) r.visible = candles;
for (const r of line_renderers) r.visible = !candles;
const picked = picker ? picker.options.indexOf(picker.value) : 0;
for (const d of displays) {
  const s = d.symbol >= 0 ? d.symbol : picked;
  const out = {};
  for (const [name, col] of Object.entries(d.cols)) {
    out[name] = get(lv, col.replace("{s}", String(s))).slice(a, b);
  }
  if (out.o !== undefined) {
    out.k = Array.from(out.o, (o, i) => (out.c[i] >= o ? up : down));
  }
  d.source.data = out;
}
"""

_PICK_JS = """
const i = picker.options.indexOf(picker.value);
const get = (src, k) => (src.data instanceof Map ? src.data.get(k) : src.data[k]);
for (const [shown, all] of pairs) {
  const out = {};
  for (const k of Object.keys(Object.fromEntries(
      all[i].data instanceof Map ? all[i].data : Object.entries(all[i].data)))) {
    out[k] = get(all[i], k);
  }
  shown.data = out;
}
xr.change.emit();
"""


def build_chart(result, height: int = 1_400):
    """The chart of ``result`` as a Bokeh layout (see the module's docstring).

    Parameters
    ----------
    result : engine.backtest.result.Result
        A run with its bars (``result.panel``); a run without them (e.g. unpickled
        from a sweep worker) draws equity and drawdown only.
    height : int
        Not used for layout beyond a hint: each panel has a fixed height.
    """
    from bokeh.layouts import column
    from bokeh.models import (
        ColumnDataSource,
        CustomJS,
        DataTable,
        DateFormatter,
        Div,
        HoverTool,
        NumberFormatter,
        Range1d,
        Select,
        TableColumn,
    )
    from bokeh.plotting import figure

    panel = result.panel
    t = _ms(local_times(result.equity["ts"]))
    n = t.size
    daily = n == 0 or bool(np.all(np.mod(t[np.isfinite(t)], 86_400_000.0) == 0))
    when = "%F" if daily else "%F %H:%M"
    symbols = tuple(panel.symbols) if panel is not None else ()
    picker_mode = len(symbols) > MAX_SYMBOL_PANELS
    shown_symbols = list(range(len(symbols))) if not picker_mode else [-1]

    series = _Series(t)
    # Prices, per symbol.
    for i, _ in enumerate(symbols):
        close = panel.fields["close"][:, i]
        for key, how in (("open", "first"), ("high", "max"), ("low", "min"), ("close", "last")):
            values = panel.fields[key][:, i] if key in panel.fields else close
            series.add(f"{key[0]}{i}", values, how)
    # Indicators declared with self.I.
    indicators = []  # (column template, name, overlay)
    instance = result.instance
    for j, (label, arrays, overlay) in enumerate(getattr(instance, "declared_indicators", [])):
        for m, arr in enumerate(arrays):
            name = label if len(arrays) == 1 else f"{label}[{m}]"
            arr = np.asarray(arr, dtype=np.float64)
            per_symbol = arr.ndim == 2 and arr.shape[1] > 1
            for i in range(len(symbols)) if per_symbol else [None]:
                values = arr[:, i] if per_symbol else arr.reshape(n, -1)[:, 0]
                series.add(f"i{j}_{m}_{i}" if per_symbol else f"i{j}_{m}", values)
            template = f"i{j}_{m}_{{s}}" if per_symbol else f"i{j}_{m}"
            first = arr[:, 0] if arr.ndim == 2 else arr
            on_price = overlay if overlay is not None else (
                bool(symbols) and _is_overlay(first, panel.fields["close"][:, 0]))
            indicators.append((template, name, on_price))
    # Feeds: the feature columns joined onto the bars.
    feeds = []
    if panel is not None:
        for key, values in panel.fields.items():
            if key in PRICE_FIELDS:
                continue
            have = np.isfinite(values).sum(axis=0)
            series.add(f"f_{key}", values[:, int(np.argmax(have))])
            feeds.append(key)
    # Equity, benchmark, drawdowns (the curves' first point, the starting cash, is
    # only the drawdown's reference).
    start = result.starting_cash
    equity = result.equity["equity"].to_numpy().astype(np.float64)
    series.add("eq", equity)
    series.add("dd", -drawdown_series(np.concatenate(([start], equity)))[1:], "min")
    bench = result.benchmark is not None and len(result.benchmark) == n
    if bench:
        b = np.asarray(result.benchmark, dtype=np.float64)
        series.add("bm", b)
        series.add("bdd", -drawdown_series(np.concatenate(([start], b)))[1:], "min")

    bytes_per_bar = 12 + 4 * len(series.columns)
    levels = _levels(n, bytes_per_bar)
    holders = [ColumnDataSource(series.level(f)) for f in levels] if n else []
    initial = _window(t, levels) if n else 0

    x_range = Range1d(start=float(t[0]) if n else 0.0, end=float(t[-1]) if n else 1.0)
    if n > 1:
        x_range.bounds = (float(t[0]) - (t[-1] - t[0]) * 0.02, float(t[-1]) + (t[-1] - t[0])
                          * 0.02)
    tools = "xpan,xwheel_zoom,box_zoom,reset,save"

    def new_figure(title, h, y_format=None):
        fig = figure(x_axis_type="datetime", x_range=x_range, height=h, tools=tools,
                     active_scroll="xwheel_zoom", sizing_mode="stretch_width", title=title,
                     output_backend="canvas")
        fig.toolbar.logo = None
        fig.min_border_left = 70
        if y_format:
            from bokeh.models import NumeralTickFormatter

            fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
        return fig

    def initial_data(cols: dict[str, str], symbol: int) -> dict:
        data = holders[initial].data if holders else {}
        out = {name: data[col.replace("{s}", str(max(symbol, 0)))] for name, col in cols.items()
               if col.replace("{s}", str(max(symbol, 0))) in data}
        if "o" in out:
            out["k"] = np.where(out["c"] >= out["o"], UP_COLOUR, DOWN_COLOUR).tolist()
        return out

    figures, displays, candle_renderers, line_renderers, picker = [], [], [], [], None
    trade_sources, all_trades = _trade_sources(result, symbols, panel)
    rejected_sources = _rejected_sources(result, symbols, panel)
    pick_pairs = []
    trade_hover = [
        ("entry", f"@entry{{{when}}} at @entry_price{{0,0.00[00]}}"),
        ("exit", f"@exit{{{when}}} at @exit_price{{0,0.00[00]}}"),
        ("size", "@size{0,0.[0000]}"), ("P&L", "@pnl{0,0.00}"), ("return", "@ret{0.00%}"),
        ("exit reason", "@reason"),
    ]
    time_formatters = {"@entry": "datetime", "@exit": "datetime", "@t": "datetime",
                       "@x": "datetime"}
    symbol_sources = {}
    if picker_mode:
        picker = Select(title="Symbol", value=symbols[0], options=list(symbols), width=220)
    for symbol in shown_symbols:
        cols = {"t": "t", "w": "w", "o": "o{s}", "h": "h{s}", "l": "l{s}", "c": "c{s}"}
        cols.update({f"v{k}": template for k, (template, _, _) in enumerate(indicators)})
        source = ColumnDataSource(initial_data(cols, symbol))
        symbol_sources[symbol] = source
        displays.append({"source": source, "symbol": symbol, "cols": cols})
        name = symbols[symbol] if symbol >= 0 else "selected symbol"
        fig = new_figure(f"{name}: price, trades (green profit, red loss), rejected orders (×)",
                         380 if len(shown_symbols) == 1 else 300, "0,0.[00]")
        wicks = fig.segment("t", "h", "t", "l", source=source, color="#555555")
        bodies = fig.vbar("t", "w", "o", "c", source=source, fill_color="k", line_color="k")
        line = fig.line("t", "c", source=source, color="#333333", legend_label="close")
        candles = len(levels) > 1 or n <= CANDLE_LIMIT
        wicks.visible = bodies.visible = candles
        line.visible = not candles
        candle_renderers += [wicks, bodies]
        line_renderers.append(line)
        for k, (_, label, on_price) in enumerate(indicators):
            if on_price:
                fig.line("t", f"v{k}", source=source, color=PALETTE[(k + 1) % len(PALETTE)],
                         legend_label=label, line_width=1.2)
        shown_trades = trade_sources[max(symbol, 0)] if symbols else ColumnDataSource(
            _empty_trades())
        shown_rejected = rejected_sources[max(symbol, 0)] if symbols else None
        if picker_mode:
            shown_trades = ColumnDataSource(dict(trade_sources[0].data))
            pick_pairs.append((shown_trades, trade_sources))
            if shown_rejected is not None:
                shown_rejected = ColumnDataSource(dict(rejected_sources[0].data))
                pick_pairs.append((shown_rejected, rejected_sources))
        segments = fig.segment("x0", "y0", "x1", "y1", source=shown_trades, color="colour",
                               line_width=2.5, alpha=0.85)
        entries = fig.scatter("x0", "y0", source=shown_trades, marker="triangle", size=7,
                              color="colour")
        # Thousands of entry markers hide the price: then the segments alone mark trades.
        entries.visible = len(shown_trades.data["x0"]) <= MAX_ENTRY_MARKERS
        fig.add_tools(HoverTool(renderers=[segments, entries], tooltips=trade_hover,
                                formatters=time_formatters))
        if shown_rejected is not None:
            crosses = fig.scatter("x", "y", source=shown_rejected, marker="x", size=10,
                                  color=LOSS_COLOUR, line_width=2)
            fig.add_tools(HoverTool(renderers=[crosses], tooltips=[
                ("rejected", f"@x{{{when}}}"), ("order", "@order @side @size{0,0.[0000]}"),
                ("reason", "@reason")], formatters=time_formatters))
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        figures.append(fig)

    for k, (_, label, on_price) in enumerate(indicators):
        if on_price:
            continue
        fig = new_figure(f"indicator: {label}", 160)
        for c, symbol in enumerate(shown_symbols):
            name = symbols[symbol] if symbol >= 0 else label
            fig.line("t", f"v{k}", source=symbol_sources[symbol], color=PALETTE[c % len(PALETTE)],
                     legend_label=name if len(shown_symbols) > 1 else label)
        fig.legend.location = "top_left"
        figures.append(fig)

    line_cols = {"t": "t", "eq": "eq", "dd": "dd"}
    if bench:
        line_cols.update(bm="bm", bdd="bdd")
    line_cols.update({f"f_{key}": f"f_{key}" for key in feeds})
    lines = ColumnDataSource(initial_data(line_cols, 0))
    displays.append({"source": lines, "symbol": 0, "cols": line_cols})
    if feeds:
        fig = new_figure("feeds joined onto the bars: " + ", ".join(feeds), 180)
        for c, key in enumerate(feeds):
            r = fig.line("t", f"f_{key}", source=lines, color=PALETTE[(c + 3) % len(PALETTE)],
                         legend_label=key, line_width=1.2)
            fig.add_tools(HoverTool(renderers=[r], tooltips=[("date", f"@t{{{when}}}"),
                                                             (key, f"@f_{key}{{0,0.[00]}}")],
                                    formatters=time_formatters, mode="vline"))
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        figures.append(fig)
    fig = new_figure("equity" + (" and buy-and-hold of the same data" if bench else ""), 240,
                     "0,0")
    fig.line("t", "eq", source=lines, color=STRATEGY_COLOUR, legend_label=result.strategy,
             line_width=1.4)
    if bench:
        fig.line("t", "bm", source=lines, color=BENCHMARK_COLOUR, legend_label="buy and hold")
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    figures.append(fig)
    fig = new_figure("drawdown from the running peak", 160, "0%")
    fig.varea("t", "dd", 0, source=lines, color=STRATEGY_COLOUR, alpha=0.35,
              legend_label=result.strategy)
    if bench:
        fig.line("t", "bdd", source=lines, color=BENCHMARK_COLOUR, legend_label="buy and hold")
    fig.legend.location = "bottom_left"
    figures.append(fig)
    for fig in figures[:-1]:
        fig.xaxis.major_label_text_font_size = "0pt"

    if holders:
        callback = CustomJS(args=dict(xr=x_range, levels=holders, displays=displays,
                                      candle_renderers=candle_renderers,
                                      line_renderers=line_renderers, picker=picker,
                                      max_visible=MAX_VISIBLE, candle_limit=CANDLE_LIMIT,
                                      up=UP_COLOUR, down=DOWN_COLOUR), code=_JS)
        x_range.js_on_change("start", callback)
        x_range.js_on_change("end", callback)
    children = []
    if picker is not None:
        picker.js_on_change("value", CustomJS(args=dict(picker=picker, pairs=pick_pairs,
                                                        xr=x_range), code=_PICK_JS))
        if holders:
            picker.js_on_change("value", callback)
        children.append(picker)
    children += figures
    table = DataTable(
        source=all_trades, sortable=True, index_position=None, height=280,
        sizing_mode="stretch_width", columns=[
            TableColumn(field="symbol", title="symbol"),
            TableColumn(field="entry", title="entry", formatter=DateFormatter(format=when)),
            TableColumn(field="entry_price", title="entry price",
                        formatter=NumberFormatter(format="0,0.00[00]")),
            TableColumn(field="exit", title="exit", formatter=DateFormatter(format=when)),
            TableColumn(field="exit_price", title="exit price",
                        formatter=NumberFormatter(format="0,0.00[00]")),
            TableColumn(field="size", title="size", formatter=NumberFormatter(format="0,0.[0000]")),
            TableColumn(field="pnl", title="P&L", formatter=NumberFormatter(format="0,0.00")),
            TableColumn(field="ret", title="return", formatter=NumberFormatter(format="0.00%")),
            TableColumn(field="bars", title="bars held", formatter=NumberFormatter(format="0")),
            TableColumn(field="reason", title="exit reason"),
        ])
    count = all_trades.data["symbol"]
    children += [Div(text=f"<b>Trades</b> ({len(count):,} rows; click a header to sort; "
                          f"an open lot has no exit)", sizing_mode="stretch_width"), table]
    return column(children, sizing_mode="stretch_width")


def _empty_trades() -> dict:
    return {k: [] for k in ("x0", "y0", "x1", "y1", "colour", "entry", "exit", "entry_price",
                            "exit_price", "size", "pnl", "ret", "reason", "symbol", "bars")}


def _trade_sources(result, symbols, panel):
    """Per symbol the closed trades as segments; and every trade row for the table."""
    from bokeh.models import ColumnDataSource

    trades = result.trades
    entry = _ms(local_times(trades["entry_ts"])) if trades.height else np.zeros(0)
    exit_ = _ms(local_times(trades["exit_ts"])) if trades.height else np.zeros(0)

    def num(name):
        return trades[name].cast(float).fill_null(np.nan).to_numpy().astype(np.float64)

    pnl = num("pnl") if trades.height else np.zeros(0)
    data = {
        "x0": entry, "y0": num("entry_price") if trades.height else entry,
        "x1": exit_, "y1": num("exit_price") if trades.height else entry,
        "colour": np.where(pnl > 0, PROFIT_COLOUR, LOSS_COLOUR).tolist(),
        "entry": entry, "exit": exit_,
        "entry_price": num("entry_price") if trades.height else entry,
        "exit_price": num("exit_price") if trades.height else entry,
        "size": num("size") if trades.height else entry, "pnl": pnl,
        "ret": num("return_pct") if trades.height else entry,
        "reason": trades["exit_reason"].fill_null("").to_list() if trades.height else [],
        "symbol": trades["symbol"].to_list() if trades.height else [],
        "bars": num("bars_held") if trades.height else entry,
    }
    table = ColumnDataSource(data)
    names = np.asarray(data["symbol"], dtype=object)
    closed = np.isfinite(exit_)
    per_symbol = []
    for name in symbols:
        keep = np.flatnonzero(closed & (names == name))
        per_symbol.append(ColumnDataSource({
            k: (np.asarray(v)[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep])
            for k, v in data.items()}))
    return per_symbol, table


def _rejected_sources(result, symbols, panel):
    """Per symbol the rejected orders at the close of the bar they were rejected on."""
    import polars as pl
    from bokeh.models import ColumnDataSource

    orders = result.orders
    if panel is None or not orders.height:
        return [None] * len(symbols)
    rejected = orders.filter(pl.col("status") == "rejected")
    t = _ms(local_times(result.equity["ts"]))
    out = []
    for i, name in enumerate(symbols):
        rows = rejected.filter(pl.col("symbol") == name)
        when = rows["done_ts"].fill_null(rows["placed_ts"]) if rows.height else rows["done_ts"]
        x = _ms(local_times(when)) if rows.height else np.zeros(0)
        bar = np.clip(np.searchsorted(t, x), 0, max(t.size - 1, 0))
        y = panel.fields["close"][bar, i] if rows.height else np.zeros(0)
        out.append(ColumnDataSource({
            "x": x, "y": np.asarray(y, dtype=np.float64),
            "order": rows["order_id"].to_list(), "side": rows["side"].to_list(),
            "size": rows["size"].cast(float).to_numpy(),
            "reason": rows["reason"].fill_null("").to_list(),
        }))
    return out


# --------------------------------------------------------------------------- HTML


_fixing = False


@contextlib.contextmanager
def fixed_ids():
    """Bokeh ids numbered from 1000 and UUIDs from a sequence, for deterministic output.

    The process-wide counter is moved back to where it was, or past the ids made here
    if those went further, so that later objects never reuse an id.
    """
    import bokeh.embed.elements as elements
    import bokeh.embed.util as embed_util
    import bokeh.util.serialization as serialization
    from bokeh.settings import settings

    global _fixing
    if _fixing:  # nested: the ids are already fixed
        yield
        return
    sequence = itertools.count(1)

    def next_uuid():
        return f"00000000-0000-4000-8000-{next(sequence):012d}"

    patched = [(module, name, getattr(module, name))
               for module in (serialization, elements, embed_util)
               for name in ("make_globally_unique_id", "make_globally_unique_css_safe_id")
               if hasattr(module, name)]
    with serialization._simple_id_lock:
        saved = serialization._simple_id
        serialization._simple_id = 1000
    simple = settings.simple_ids
    try:
        _fixing = True
        settings.simple_ids.set_value(True)
        for module, name, _ in patched:
            setattr(module, name, next_uuid)
        yield
    finally:
        _fixing = False
        for module, name, original in patched:
            setattr(module, name, original)
        settings.simple_ids.unset_value()
        del simple
        with serialization._simple_id_lock:
            serialization._simple_id = max(saved, serialization._simple_id) + 1_000_000


def bokeh_js() -> str:
    """Bokeh's JavaScript inline: the parts the charts use (no WebGL, no MathJax)."""
    from bokeh.resources import Resources

    return Resources(mode="inline", components=list(BOKEH_COMPONENTS)).render_js()


#: The BokehJS bundles a chart needs: plots, widgets (the symbol picker), tables.
BOKEH_COMPONENTS = ("bokeh", "bokeh-widgets", "bokeh-tables")


def embed(model) -> str:
    """A Bokeh model as an HTML fragment, deterministic, with Bokeh's JavaScript inline."""
    from bokeh.embed import components

    with fixed_ids():
        script, div = components(model)
    return f'{bokeh_js()}\n<div class="chart">{div}</div>\n{script}'


def chart_html(result) -> str:
    """The chart of a run as an HTML fragment (see :func:`embed`)."""
    with fixed_ids():
        layout = build_chart(result)
        return embed(layout)


# --------------------------------------------------------------------------- notebooks


def show_in_notebooks() -> None:
    """In IPython/Jupyter, display Bokeh layouts inline (HTML with the JavaScript inline).

    Ids are Bokeh's own here, not fixed: several charts share one notebook page.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from bokeh.models import LayoutDOM

    def as_html(model) -> str:
        from bokeh.embed import components

        script, div = components(model)
        return f"{bokeh_js()}\n{div}\n{script}"

    shell.display_formatter.formatters["text/html"].for_type(LayoutDOM, as_html)


def compare_chart(results, names):
    """Overlaid equity curves of several runs over their drawdowns, linked in time."""
    from bokeh.layouts import column
    from bokeh.models import HoverTool, NumeralTickFormatter
    from bokeh.plotting import figure

    top = figure(x_axis_type="datetime", height=340, sizing_mode="stretch_width",
                 title="Equity", tools="xpan,xwheel_zoom,box_zoom,reset,save",
                 active_scroll="xwheel_zoom")
    bottom = figure(x_axis_type="datetime", height=180, sizing_mode="stretch_width",
                    x_range=top.x_range, title="Drawdown from the running peak",
                    tools="xpan,xwheel_zoom,box_zoom,reset,save", active_scroll="xwheel_zoom")
    for fig in (top, bottom):
        fig.toolbar.logo = None
    top.yaxis.formatter = NumeralTickFormatter(format="0,0")
    bottom.yaxis.formatter = NumeralTickFormatter(format="0%")
    for i, (result, name) in enumerate(zip(results, names, strict=True)):
        colour = BENCHMARK_COLOUR if result.strategy == "BuyAndHold" else PALETTE[i % len(PALETTE)]
        t = _ms(local_times(result.equity["ts"]))
        equity = result.equity["equity"].to_numpy().astype(np.float64)
        dd = -drawdown_series(np.concatenate(([result.starting_cash], equity)))[1:]
        step = max(1, t.size // 20_000)  # a notebook plot: at most ~20,000 points a curve
        line = top.line(t[::step], equity[::step], color=colour, legend_label=name,
                        line_width=1.3)
        bottom.line(t[::step], dd[::step], color=colour, legend_label=name)
        top.add_tools(HoverTool(renderers=[line], tooltips=[("", name), ("date", "$x{%F}"),
                                                            ("equity", "$y{0,0}")],
                                formatters={"$x": "datetime"}))
    top.legend.location = "top_left"
    top.legend.click_policy = "hide"
    bottom.legend.visible = False
    return column([top, bottom], sizing_mode="stretch_width")


def heatmap_chart(frame, metric: str, x: str, y: str):
    """``metric`` over the grid of parameters ``x`` (across) and ``y`` (up), hoverable.

    A missing cell is a set that failed, was not sampled or has no value.
    """
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    from engine.report.plots import _heatmap_axis

    xs = [str(v) for v in _heatmap_axis(frame[x].to_list())]
    ys = [str(v) for v in _heatmap_axis(frame[y].to_list())]
    values = frame[metric].cast(float).fill_nan(None).to_list()
    keep = [i for i, v in enumerate(values) if v is not None]
    source = ColumnDataSource({
        "x": [str(frame[x][i]) for i in keep], "y": [str(frame[y][i]) for i in keep],
        "v": [values[i] for i in keep]})
    finite = [values[i] for i in keep]
    mapper = LinearColorMapper(palette=Viridis256, low=min(finite, default=0.0),
                               high=max(finite, default=1.0), nan_color="#ffffff")
    fig = figure(x_range=xs, y_range=ys, height=max(300, 28 * len(ys) + 120),
                 sizing_mode="stretch_width", tools="hover,save",
                 title=f"{metric} by {x} and {y} (blank: failed, not sampled or undefined)")
    fig.toolbar.logo = None
    fig.rect("x", "y", 1, 1, source=source, fill_color={"field": "v", "transform": mapper},
             line_color=None)
    fig.select_one(HoverTool).tooltips = [(x, "@x"), (y, "@y"), (metric, "@v{0.000}")]
    fig.xaxis.axis_label, fig.yaxis.axis_label = x, y
    fig.add_layout(ColorBar(color_mapper=mapper, title=metric), "right")
    return fig
