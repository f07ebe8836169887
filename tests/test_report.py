"""Report files: `run --out` as a user runs it, the HTML parsed and rendered, progress."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.analysis.event_study import EVENT_COLUMNS, EVIDENCE_COLUMNS
from engine.analysis.tables import DRAWDOWN_COLUMNS, HIT_RATE_COLUMNS, YEARLY_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SMA = str(ROOT / "strategies" / "sma_cross.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TABLE_FILES = {"drawdowns": DRAWDOWN_COLUMNS, "yearly": YEARLY_COLUMNS,
               "hit_rates": HIT_RATE_COLUMNS,
               "event_study": (*EVENT_COLUMNS, *EVIDENCE_COLUMNS)}


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)


class Page(HTMLParser):
    """Collects tables (id -> rows of cell text), images, scripts and external links."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.external, self.scripts = {}, [], [], 0
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(attrs[key])
        if tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.external.append(attrs.get("href"))
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"t{len(self.tables)}"), [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._table is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    proc = cli("run", SMA, "--start", "2010-01-01", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_out_writes_tables_plot_and_report(out_dir):
    out, proc = out_dir
    for name in ("metrics.json", "trades.parquet", "equity.parquet", "orders.parquet",
                 "equity.png", "report.html", *(f"{t}.csv" for t in TABLE_FILES)):
        assert (out / name).is_file(), name
    for name, columns in TABLE_FILES.items():
        assert pl.read_csv(out / f"{name}.csv").columns == list(columns), name
    assert (out / "equity.png").read_bytes().startswith(PNG_SIGNATURE)
    drawdowns = pl.read_csv(out / "drawdowns.csv", try_parse_dates=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert drawdowns["depth"][0] == pytest.approx(metrics["max_drawdown"])
    assert drawdowns.schema["peak_ts"] == pl.Date
    events = pl.read_csv(out / "event_study.csv")
    assert set(events["signal"]) == {"all_bars", "entries"}
    assert sorted(set(events["horizon"])) == [5, 21, 63]
    assert "report.html" in proc.stdout


def test_report_html_is_self_contained_and_holds_every_table(out_dir):
    out, _ = out_dir
    text = (out / "report.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    # Bokeh's JavaScript is inline: scripts, but none loaded from anywhere, and no link.
    assert page.scripts >= 2 and page.external == []
    assert 'class="chart"' in text and "Bokeh.embed" in text
    assert {"drawdowns", "yearly", "hit_rates", "event_study"} <= set(page.tables)
    years = pl.read_csv(out / "yearly.csv")
    assert len(page.tables["yearly"]) == years.height + 1  # header + every year
    # The page joins each rate to its interval; the CSV keeps every column.
    assert page.tables["event_study"][0] == [
        "signal", "horizon", "count", "episodes", "share > 0 [95%]", "vs base (pts) [95%]",
        "p_value", "mean_return", "median_return", "claimed_rate"]
    assert page.tables["hit_rates"][0][3:5] == ["hit rate [95%]", "vs all (pts)"]
    assert page.images == []  # the chart draws equity and drawdown; equity.png is a file


def test_outputs_are_byte_identical_across_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        engine.run(SMA, start="2018-01-01", end="2020-12-31").to_dir(out)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_json_holds_the_tables_as_records():
    proc = cli("run", SMA, "--start", "2015-01-01", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert "metrics" in payload
    for name, columns in TABLE_FILES.items():
        assert payload[name] and list(payload[name][0]) == list(columns), name
    assert payload["drawdowns"][0]["depth"] == pytest.approx(payload["metrics"]["max_drawdown"])
    assert [row["year"] for row in payload["yearly"]][0] == 2015


def test_terminal_shows_the_tables_and_no_progress_when_piped():
    proc = cli("run", SMA, "--start", "2000-01-01")
    assert proc.returncode == 0, proc.stderr
    for title in ("Metrics", "Worst drawdowns", "Per year", "Hit rates", "Event study"):
        assert title in proc.stdout, title
    assert "the last 10 of 27 years" in proc.stdout.replace("\n", " ")
    assert "━" not in proc.stderr and "\r" not in proc.stderr


def _run_in_terminal(*args):
    """Run the CLI with stderr on a pseudo-terminal; return (returncode, stderr bytes)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = dict(os.environ, ENGINE_PROGRESS_DELAY="0", COLUMNS="100")
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_bar_on_a_terminal_but_not_with_json():
    code, err = _run_in_terminal("run", SMA, "--start", "2015-01-01")
    assert code == 0
    assert b"backtest sma_cross.py" in err and "━".encode() in err
    code, err = _run_in_terminal("run", SMA, "--start", "2015-01-01", "--json")
    assert code == 0
    assert "━".encode() not in err and b"backtest" not in err


