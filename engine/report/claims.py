"""The claims audit's outputs: the terminal table, Markdown, CSV and the HTML page."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.research.claims.model import (
    FAILS,
    HOLDS,
    UNTESTABLE,
    Settings,
    settings_text,
    summary,
)


def _md(text) -> str:
    return "—" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pl.DataFrame, settings: Settings) -> str:
    """The claims table as Markdown: the table, then each claim's definition and reasoning."""
    from engine.research.claims.registry import CLAIMS

    quotes = {c.id: c.quote for c in CLAIMS}
    lines = ["# Claims of the source notes, measured on the bundled data", "",
             f"{summary(table)}. Settings: {settings_text(settings)}. Definitions and "
             f"verdict rules: `engine/research/claims/`.", "",
             "| id | claim | source | cases | claimed | measured | verdict |",
             "|---|---|---|---:|---|---|---|"]
    for r in table.iter_rows(named=True):
        lines.append("| " + " | ".join(_md(r[k]) for k in ("id", "claim", "source", "cases",
                                                             "claimed", "measured", "verdict"))
                     + " |")
    lines += ["", "## Definitions", ""]
    for r in table.iter_rows(named=True):
        lines.append(f"**{r['id']}** — {_md(r['claim'])} ({r['source']}). "
                     f"RULES.md: “{_md(quotes.get(r['id'], ''))}”  ")
        if r["verdict"] == UNTESTABLE:
            lines.append(f"Cannot be tested: {_md(r['why'])}.")
        else:
            lines.append(f"Measured: {_md(r['definition'])}; {_md(r['strategy'])}; sample "
                         f"{_md(r['sample'])}. Verdict: {r['verdict']} ({_md(r['why'])}).")
        lines.append("")
    return "\n".join(lines)


def write_claims(table: pl.DataFrame, out, settings: Settings) -> Path:
    """Write ``claims.csv``, ``claims.md`` and ``claims.html`` into the folder ``out``."""
    from engine.report.html import render_claims_html, write_csv

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    write_csv(table, path / "claims.csv")
    (path / "claims.md").write_text(to_markdown(table, settings), encoding="utf-8")
    (path / "claims.html").write_text(
        render_claims_html(table, f"{summary(table)}. {settings_text(settings)}."),
        encoding="utf-8")
    return path


_VERDICT_STYLE = {HOLDS: "green", FAILS: "red", UNTESTABLE: "yellow"}


def print_table(table: pl.DataFrame, settings: Settings, console=None) -> None:
    """The claims table on a terminal (rich): one row per claim, text cells wrapped.

    Columns: the claim (id, sentence, source), what was measured (definition, the
    strategy, the sample and the number of cases), the claimed and the measured
    figure, and the verdict with its rule or, for an untestable claim, the data it
    would need.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    grid = Table(title="Claims of the source notes, measured on the bundled data",
                 caption=f"{summary(table)}. {settings_text(settings)}. Definitions: "
                         f"engine/research/claims/; --out writes claims.csv, claims.md, "
                         f"claims.html.",
                 caption_justify="left", header_style="bold", show_lines=True, expand=True)
    grid.add_column("claim", ratio=3, overflow="fold")
    grid.add_column("measured as", ratio=4)
    grid.add_column("claimed", ratio=2)
    grid.add_column("measured", ratio=4)
    grid.add_column("verdict", ratio=3)
    for r in table.iter_rows(named=True):
        claim_cell = Text(f"{r['id']}\n", style="bold")
        claim_cell.append(f"{r['claim']}\n")
        claim_cell.append(r["source"], style="dim")
        if r["verdict"] == UNTESTABLE:
            measured_as = Text("—", style="dim")
        else:
            cases = f"{r['cases']:,} cases" if r["cases"] is not None else ""
            measured_as = Text(f"{r['definition']}\n")
            measured_as.append(f"{r['sample']}; {cases}", style="dim")
        verdict = Text(r["verdict"], style=f"bold {_VERDICT_STYLE[r['verdict']]}")
        if r["why"]:
            verdict.append(f"\n{r['why']}", style="dim")
        grid.add_row(claim_cell, measured_as, r["claimed"] or "—", r["measured"] or "—",
                     verdict)
    console.print(grid)


