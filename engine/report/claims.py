"""The claims audit's outputs: the terminal table, Markdown, CSV and the HTML page.

The files carry every column: the claim, its definition, the sample (first →
last signal), signal days and episodes, the measured rate with its interval, the
base rate with its interval, the difference with its interval, p and q, the
verdict with its rule, and the fragility (the verdict at other horizons and on
sub-periods). The terminal shows a compact set: the claim, the evidence, the
verdict with q and fragility.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from engine.report.format import points_with_interval, rate_with_interval
from engine.research.claims.model import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    UNTESTABLE,
    Settings,
    multiple_testing,
    settings_text,
    summary,
)

#: The wide table of the Markdown and HTML files, in order.
DISPLAY_COLUMNS = ("id", "claim", "source", "definition", "sample", "signal days", "episodes",
                   "claimed", "rate [95%]", "base [95%]", "difference [95%]", "p", "q",
                   "verdict", "fragility", "measured", "why")


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _pt(x, sign: bool = False) -> str:
    """A fraction as percent with one decimal (``+2.0%``)."""
    if _missing(x):
        return "—"
    return f"{x:+.1%}" if sign else f"{x:.1%}"


def _prob(x) -> str:
    if _missing(x):
        return "—"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def display_frame(table: pl.DataFrame) -> pl.DataFrame:
    """The claims table as text cells (:data:`DISPLAY_COLUMNS`): rates with their
    intervals in one cell each, p and q with three decimals."""
    rows = []
    for r in table.iter_rows(named=True):
        rows.append({
            "id": r["id"], "claim": r["claim"], "source": r["source"],
            "definition": r["definition"], "sample": r["sample"],
            "signal days": "—" if r["cases"] is None else f"{r['cases']:,}",
            "episodes": "—" if r["episodes"] is None else f"{r['episodes']:,}",
            "claimed": r["claimed"],
            "rate [95%]": rate_with_interval(r["rate"], r["rate_low"], r["rate_high"]),
            "base [95%]": rate_with_interval(r["base"], r["base_low"], r["base_high"]),
            "difference [95%]": points_with_interval(r["difference"], r["difference_low"],
                                                     r["difference_high"]),
            "p": _prob(r["p_value"]), "q": _prob(r["q_value"]),
            "verdict": r["verdict"], "fragility": r["fragility"] or "—",
            "measured": r["measured"], "why": r["why"] or "—",
        })
    return pl.DataFrame(rows, schema={c: pl.String for c in DISPLAY_COLUMNS}, orient="row")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _md(text) -> str:
    return "—" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pl.DataFrame, settings: Settings) -> str:
    """The claims table as Markdown: the evidence table, then each claim's definition,
    measurement and reasoning."""
    from engine.research.claims.registry import CLAIMS

    quotes = {c.id: c.quote for c in CLAIMS}
    shown = display_frame(table)
    wide = ("id", "claim", "sample", "signal days", "episodes", "claimed", "rate [95%]",
            "base [95%]", "difference [95%]", "p", "q", "verdict", "fragility")
    right = {"signal days", "episodes", "p", "q"}
    lines = ["# Claims of the source notes, measured on the bundled data", "",
             f"{summary(table)}. Settings: {settings_text(settings)}. Definitions and "
             f"verdict rules: `engine/research/claims/`.", "",
             f"{_sentence(multiple_testing(table))}.", "",
             "| " + " | ".join(wide) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in wide) + "|"]
    for r in shown.iter_rows(named=True):
        lines.append("| " + " | ".join(_md(r[k]) for k in wide) + " |")
    lines += ["", "## Definitions", ""]
    for r in shown.iter_rows(named=True):
        lines.append(f"**{r['id']}** — {_md(r['claim'])} ({r['source']}). "
                     f"RULES.md: “{_md(quotes.get(r['id'], ''))}”  ")
        if r["verdict"] == UNTESTABLE:
            lines.append(f"Cannot be tested: {_md(r['why'])}.")
        else:
            lines.append(f"Measured: {_md(r['definition'])}; sample {_md(r['sample'])}. "
                         f"Result: {_md(r['measured'])}. Verdict: {r['verdict']} "
                         f"({_md(r['why'])}).")
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
        render_claims_html(display_frame(table),
                           f"{summary(table)}. {_sentence(multiple_testing(table))}. "
                           f"{settings_text(settings)}."),
        encoding="utf-8")
    return path


_VERDICT_STYLE = {HOLDS: "green", FAILS: "red", INCONCLUSIVE: "yellow", UNTESTABLE: "dim"}


def print_table(table: pl.DataFrame, settings: Settings, console=None) -> None:
    """The claims table on a terminal (rich): a compact set of columns, cells wrapped.

    Columns: the claim (id, sentence, source); the evidence (signal days, episodes,
    first → last signal); the claimed figure; the measured rate with its interval,
    the base rate and the difference with its interval (or, for a claim that is not
    a rate, the measured figure); the verdict with its q-value and fragility, and
    for a claim that is not a rate its rule (for an untestable one the data it
    would need). Definitions and the full rules are in the files ``--out`` writes.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    grid = Table(title="Claims of the source notes, measured on the bundled data",
                 caption=f"{summary(table)}. {_sentence(multiple_testing(table))}. "
                         f"{settings_text(settings)}. Rates: 95% interval in brackets; "
                         f"Δ (points) = rate − base rate, over the days from the first to the last "
                         f"signal. Definitions and rules: engine/research/claims/; --out "
                         f"writes claims.csv, claims.md, claims.html with every column.",
                 caption_justify="left", header_style="bold", show_lines=True, expand=True)
    grid.add_column("claim", ratio=4, overflow="fold")
    grid.add_column("evidence", ratio=3)
    grid.add_column("claimed", ratio=2)
    grid.add_column("measured", ratio=4)
    grid.add_column("verdict", ratio=4)
    for r in table.iter_rows(named=True):
        claim_cell = Text(f"{r['id']}\n", style="bold")
        claim_cell.append(f"{r['claim']}\n")
        claim_cell.append(r["source"], style="dim")
        rate_claim = r["rate"] is not None
        if r["verdict"] == UNTESTABLE:
            evidence = Text("—", style="dim")
        else:
            counts = "" if r["cases"] is None else f"{r['cases']:,} " + (
                "signal days" if rate_claim else "cases")
            if r["episodes"] is not None:
                counts += f"\n{r['episodes']:,} episodes"
            evidence = Text(f"{counts}\n" if counts else "")
            evidence.append(r["sample"], style="dim")
        if rate_claim:
            measured = Text(rate_with_interval(r["rate"], r["rate_low"], r["rate_high"]))
            measured.append(f"\nbase {_pt(r['base'])}", style="dim")
            difference = points_with_interval(r["difference"], r["difference_low"],
                                              r["difference_high"])
            measured.append(f"\nΔ {difference} pt")
        else:
            measured = Text(r["measured"] or "—")
        verdict = Text(r["verdict"], style=f"bold {_VERDICT_STYLE[r['verdict']]}")
        if r["q_value"] is not None:
            verdict.append(f"  q {_prob(r['q_value'])}")
        if r["fragility"]:
            verdict.append("\n" + r["fragility"].replace(" · ", "\n"), style="dim")
        if r["why"] and not rate_claim:
            verdict.append(f"\n{r['why']}", style="dim")
        grid.add_row(claim_cell, evidence, r["claimed"] or "—", measured, verdict)
    console.print(grid)
