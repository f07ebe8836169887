"""The example notebook under docs/ runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebooks" / "example.ipynb"


class Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.src = 0, []

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.src += [v for k, v in attrs if k in ("src", "href")]


def test_example_notebook_executes_and_displays_the_charts():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [[o for o in cell.outputs if o.output_type == "execute_result"] for cell in code]
    assert all(len(o) == 1 for o in outputs), [cell.outputs for cell in code]
    html = [o[0].data.get("text/html", "") for o in outputs]
    summary, chart, heatmap, compare = html
    assert 'class="engine-result"' in summary and "<svg" in summary and "sharpe" in summary
    for shown in (chart, heatmap, compare):  # Bokeh's JavaScript inline, and a document
        sources = Sources()
        sources.feed(shown)
        assert "Bokeh.embed" in shown and sources.scripts >= 2 and sources.src == []
    assert "sharpe by fast and slow" in heatmap
