"""Report files of a run (and of a comparison): CSV tables, the PNG plot, an HTML page.

``report.html`` is one self-contained file: its CSS is inline, its interactive chart
(:mod:`engine.report.chart`) carries Bokeh's JavaScript inline, other plots are
embedded as base64 PNG ``data:`` URLs, and it has no external link, so it opens
offline in any browser. Nothing in it depends on the time it was written: the same
run gives the same bytes.

Pages fit a 1,280-pixel window: a table wider than the page scrolls sideways inside
its own box (``div.table-wrap``), its first column staying in view, and never makes
the page itself scroll sideways.

Files written by :func:`write_report` (next to the ones of
:meth:`engine.backtest.result.Result.to_dir`):

``drawdowns.csv``, ``yearly.csv``, ``hit_rates.csv``, ``event_study.csv``
    The tables of :mod:`engine.analysis.tables` and :mod:`engine.analysis.event_study`, full
    precision, missing values empty, dates as ``YYYY-MM-DD``.
``equity.png``
    Equity and underwater drawdown, with buy-and-hold of the same data.
``report.html``
    The metrics, the interactive chart (prices and trades, indicators, feeds,
    equity, drawdown, the sortable trade list), every table above and the settings.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import polars as pl

from engine.report.format import event_study_display, fmt, hit_rate_display, margin_call_note

TABLE_FILES = ("drawdowns", "yearly", "hit_rates", "event_study")

CAPTIONS = {
    "metrics": "Definitions: engine/metrics.py. Hit rate = closed trades with pnl > 0 over "
               "closed trades (a zero-P&L trade is not a hit). Benchmark = buy-and-hold of the "
               "same data.",
    "drawdowns": "The deepest drawdowns of the equity curve. Length: bars from the peak to the "
                 "recovery (or to the last bar if not recovered); depth: fall from the peak.",
    "yearly": "Calendar years. Return, volatility and Sharpe of the year's equity curve "
              "(annualised as the metrics); trades and hit rate of the trades closed in the "
              "year.",
    "hit_rates": "Closed trades. A hit is a trade with pnl > 0 after costs. Entry label and "
                 "entry condition are read on the bar the entry order was placed (the signal "
                 "bar). In brackets the exact 95% interval of the hit rate; vs all: points "
                 "above the hit rate of all trades; p: Fisher's exact test of the group "
                 "against the other trades.",
    "event_study": "Forward return of the traded instrument from the signal bar's close over "
                   "the horizon (bars). Success = forward return > 0, so share_positive is the "
                   "measured success rate, beside the rate the source notes claim. Signals too "
                   "close to the end have no forward return and are not counted. all_bars is "
                   "the base rate of all the data. In brackets the 95% interval from a "
                   "stationary block bootstrap (blocks of at least twice the horizon); vs "
                   "base: points above the share > 0 of every bar from the first to the last "
                   "signal, with its interval and p-value; episodes: runs of signals split at "
                   "gaps longer than the horizon (the independent trials are nearer this "
                   "than the count).",
}

#: Tables shown with their intervals joined to the rates (the CSV files keep every column).
DISPLAYS = {"hit_rates": hit_rate_display, "event_study": event_study_display}

CAPTIONS["chart"] = (
    '<p class="meta">Drag to pan, scroll to zoom (all panels move together); hover a trade '
    "for its entry, exit, size, P&amp;L, return and exit reason. Above 10,000 bars the "
    "price shows aggregated bars that refine as you zoom in. What each panel shows: "
    "engine/report/chart.py.</p>")

TITLES = {
    "metrics": "Metrics", "drawdowns": "Worst drawdowns", "yearly": "Per year",
    "hit_rates": "Hit rates", "event_study": "Event study", "settings": "Settings",
    "compare": "Comparison", "equity": "Equity and drawdown", "notes": "Notes",
    "chart": "Chart",
}

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; margin: 2em auto; max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
section { max-width: 100%; }
div.table-wrap { max-width: 100%; overflow-x: auto; margin: 0.5em 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
th { text-align: left; background: #f4f5f7; font-weight: 600; }
td { max-width: 28em; overflow-wrap: break-word; }
td:first-child { white-space: nowrap; }
div.table-wrap tr > :first-child { position: sticky; left: 0; background: #fff; }
div.table-wrap tr > th:first-child { background: #f4f5f7; }
div.chart { width: 100%; min-height: 400px; }
td.num, th.num { text-align: right; }
caption { caption-side: bottom; text-align: left; color: #666; font-size: 0.9em;
          padding-top: 4px; max-width: 900px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.metrics { columns: 2; column-gap: 2em; }
.metrics table { width: 100%; }
"""


def html_table(frame: pl.DataFrame, caption: str | None = None, id_: str | None = None,
               right: tuple[str, ...] = ()) -> str:
    """A polars frame as an HTML table, values formatted by :func:`engine.report.format.fmt`.

    Numeric columns, and those named in ``right``, are right-aligned.
    """
    numeric = [dtype.is_numeric() or name in right
               for name, dtype in zip(frame.columns, frame.dtypes, strict=True)]
    head = "".join(
        f'<th{" class=num" if num else ""}>{html.escape(name)}</th>'
        for name, num in zip(frame.columns, numeric, strict=True)
    )
    body = []
    for row in frame.iter_rows():
        cells = "".join(
            f'<td{" class=num" if num else ""}>{html.escape(fmt(name, value))}</td>'
            for name, value, num in zip(frame.columns, row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{max(len(frame.columns), 1)}">none</td></tr>')
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    ident = f' id="{html.escape(id_)}"' if id_ else ""
    return (f'<div class="table-wrap"><table{ident}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def png_img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, meta: str, sections: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{html.escape(meta)}</p>\n"
        + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _section(key: str, content: str) -> str:
    return f'<section id="{key}">\n<h2>{html.escape(TITLES.get(key, key))}</h2>\n{content}\n' \
           f"</section>"


def _pairs(mapping: dict, key_name: str, value_name: str, show=fmt) -> pl.DataFrame:
    return pl.DataFrame({
        key_name: [str(k) for k in mapping],
        value_name: [show(k, v) for k, v in mapping.items()],
    }, schema={key_name: pl.String, value_name: pl.String})


def _plain(_name, value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "—" if value is None else str(value)


def run_title(result) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    return f"{result.strategy} ({params})" if params else result.strategy


def run_meta(result) -> str:
    s = result.settings
    if not s:
        return ""
    return (f"{s.get('data')} · {s.get('start')} → {s.get('end')} · {s.get('mode')} path · "
            f"market orders fill at {s.get('fill')}")


def render_html(result, tables: dict[str, pl.DataFrame], png: bytes | None,
                chart: str | None = None) -> str:
    """The report page of one run; ``chart`` the interactive chart's HTML
    (:func:`engine.report.chart.chart_html`), drawn instead of the PNG when given."""
    sections = [_section("metrics", '<div class="metrics">' + html_table(
        _pairs(result.metrics, "metric", "value"), CAPTIONS["metrics"], right=("value",))
        + "</div>")]
    if chart is not None:
        sections.append(_section("chart", CAPTIONS["chart"] + "\n" + chart))
    elif png is not None:
        sections.append(_section("equity", png_img(png, "equity and drawdown")))
    for key in TABLE_FILES:
        if key in tables:
            shown = DISPLAYS[key](tables[key]) if key in DISPLAYS else tables[key]
            sections.append(_section(key, html_table(shown, CAPTIONS[key], key)))
    if result.metrics.get("same_bar_exits"):
        sections.append(_section("notes", "<p>" + html.escape(
            f"{result.metrics['same_bar_exits']:.0f} bars touched both a stop-loss and a "
            f"take-profit; the stop was assumed to fill first (the conservative reading).")
            + "</p>"))
    if result.metrics.get("margin_calls"):
        sections.append(_section("margin calls", "<p>" + html.escape(
            "warning: " + margin_call_note(result.metrics)) + "</p>"))
    settings = {**result.settings, **{f"param {k}": v for k, v in result.params.items()}}
    sections.append(_section("settings", html_table(_pairs(settings, "setting", "value",
                                                           _plain))))
    return _page(run_title(result), run_meta(result), sections)


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """A table as CSV: full precision, empty for missing, ISO dates."""
    frame.fill_nan(None).write_csv(path, null_value="", date_format="%Y-%m-%d")


def write_report(result, out, tables: dict[str, pl.DataFrame] | None = None) -> Path:
    """Write the tables (CSV), ``equity.png`` and ``report.html`` of a run into ``out``."""
    from engine.report.plots import equity_png

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    tables = tables if tables is not None else result.tables()
    for key in TABLE_FILES:
        write_csv(tables[key], path / f"{key}.csv")
    from engine.report.chart import chart_html

    png = equity_png(result)
    (path / "equity.png").write_bytes(png)
    chart = chart_html(result) if result.equity.height else None
    (path / "report.html").write_text(render_html(result, tables, png, chart),
                                      encoding="utf-8")
    return path


def render_compare_html(table: pl.DataFrame, png: bytes | None, meta: str) -> str:
    """The report page of a comparison."""
    sections = [_section("compare", html_table(
        table, "Every strategy on the same data and settings; BuyAndHold is the benchmark. "
               "Definitions: engine/metrics.py.", "compare"))]
    if png is not None:
        sections.append(_section("equity", png_img(png, "overlaid equity and drawdown")))
    return _page("Strategy comparison", meta, sections)


def write_compare(table: pl.DataFrame, results, names, out, meta: str = "") -> Path:
    """Write ``compare.csv``, ``equity.png`` (overlaid) and ``report.html`` into ``out``."""
    from engine.report.plots import compare_png

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    write_csv(table, path / "compare.csv")
    png = compare_png(results, names)
    (path / "equity.png").write_bytes(png)
    (path / "report.html").write_text(render_compare_html(table, png, meta), encoding="utf-8")
    return path


#: The claims table's columns shown in the HTML page, in order (the CSV has them all).
#: Key columns first (the verdict, what was claimed and measured), so that they stay on
#: screen when the table scrolls sideways in its box.
CLAIM_HTML_COLUMNS = ("id", "verdict", "claimed", "rate [95%]", "base [95%]",
                      "difference [95%]", "p", "q", "fragility", "measured", "claim",
                      "signal days", "episodes", "source", "definition", "sample", "why")


def render_claims_html(table: pl.DataFrame, meta: str) -> str:
    """The page of ``python -m engine claims``: every claim of the rule book, measured.

    ``table`` is :func:`engine.report.claims.display_frame` of
    :func:`engine.research.claims.registry.measure_all`'s frame; ``meta`` a line under
    the title (the summary, multiple testing and the settings). Self-contained like
    ``report.html``.
    """
    shown = [c for c in CLAIM_HTML_COLUMNS if c in table.columns]
    caption = ("Each claim measured by running the strategy named. Rates over signal days: "
               "95% intervals from a seeded stationary block bootstrap; the base rate is "
               "over every bar from the first to the last signal; q = Benjamini–Hochberg. "
               "Verdict rules and definitions: engine/research/claims/.")
    sections = [f'<section id="claims">\n<h2>Claims</h2>\n'
                f'{html_table(table.select(shown), caption, "claims")}\n</section>']
    return _page("Claims of the source notes, measured on the bundled data", meta, sections)


#: The metrics of the notebook summary, in order.
SUMMARY_METRICS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "hit_rate",
                   "benchmark_return")


def sparkline_svg(values, width: int = 240, height: int = 48,
                  colour: str = "#1f5fa8") -> str:
    """A line of ``values`` as a small inline SVG (at most ``width`` points, min to max)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return ""
    step = max(1, values.size // width)
    points = values[::step]
    if (values.size - 1) % step:
        points = np.append(points, values[-1])
    lo, hi = float(points.min()), float(points.max())
    span = hi - lo or 1.0
    xs = np.linspace(0, width, points.size)
    ys = height - 2 - (points - lo) / span * (height - 4)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><polyline fill="none" stroke="{colour}" '
            f'stroke-width="1.3" points="{path}"/></svg>')


def summary_html(result) -> str:
    """The notebook view of a run: title, data and period, headline metrics, sparkline."""
    metrics = "".join(
        f"<tr><td>{html.escape(k)}</td><td style=\"text-align:right\">"
        f"{html.escape(fmt(k, result.metrics.get(k)))}</td></tr>"
        for k in SUMMARY_METRICS if k in result.metrics)
    spark = sparkline_svg(result.equity["equity"].to_numpy()) if result.equity.height else ""
    return (f'<div class="engine-result"><b>{html.escape(run_title(result))}</b>'
            f'<div style="color:#555">{html.escape(run_meta(result))}</div>'
            f'<div style="display:flex;gap:1.5em;align-items:center">'
            f'<table>{metrics}</table><div>{spark}<div style="color:#555;font-size:0.85em">'
            f"equity; result.plot() for the interactive chart</div></div></div></div>")
