"""The package layout is the architecture: imports point one way, and never in a circle.

Every module of ``engine`` belongs to a layer, the subpackage it lives in. A
module may import its own layer and the layers below it, never one above, and
no chain of imports may come back to where it started. Both rules count every
``import`` statement, at module level or inside a function: an import deferred
for speed is still a dependency. The few upward imports the design allows are
listed in :data:`ALLOWED_UPWARD` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "engine"

#: Layers from the bottom up. ``engine.errors`` and ``engine._lazy`` are the
#: foundation every layer may use.
LAYERS = ("foundation", "_core", "data", "strategy", "analysis", "backtest", "research",
          "report", "cli", "facade")

#: (importer, imported) pairs allowed to point up, each with its reason.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("engine.backtest.result", "engine.report.html"):
        "Result.to_dir(report=True) writes the report, imported at the call",
    ("engine.backtest.streaming", "engine.report.outputs"):
        "stream_run(out=...) writes its files through the atomic folders, imported at the call",
    ("engine.research.sweep", "engine.report.progress"):
        "engine.sweep(progress=True) asks the report whether a bar can be drawn, at the call",
    ("engine.backtest.result", "engine.report.chart"):
        "Result.plot() returns the report's interactive chart, imported at the call",
    ("engine.research.frames", "engine.report.chart"):
        "SweepResult.plot() and CompareResult.plot() draw with the report's charts, at the call",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in ("engine.errors", "engine._lazy"):
        return "foundation"
    if len(parts) == 1 or parts[1] in ("__main__", "indicators"):
        return "facade"  # the package's public face and the names kept for strategy files
    return parts[1]


MODULES = {module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks, which
    name types for the reader and the type checker and never run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in (
                    "TYPE_CHECKING", "typing.TYPE_CHECKING"):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imports_of(module: str) -> set[str]:
    """The engine modules ``module`` imports (``from engine.x import y`` counts
    ``engine.x.y`` when that is a module, else ``engine.x``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES and name.startswith("engine"):
                name = name.rpartition(".")[0]
            if name.startswith("engine") and name != "engine" and name != module:
                found.add(name)
            elif name == "engine" and module != "engine":
                found.add(name)
    # engine._core's compiled modules have no .py: they are the _core layer.
    return found


def graph() -> dict[str, set[str]]:
    return {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        assert layer_of(module) in LAYERS, f"{module} is in no layer of {LAYERS}"


def test_imports_point_down():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)) \
                    and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{module} ({layer_of(module)}) imports {target} "
                              f"({layer_of(target)})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(sorted(upward))


def test_allowed_upward_imports_are_still_needed():
    edges = graph()
    stale = [pair for pair in ALLOWED_UPWARD if pair[1] not in edges.get(pair[0], set())]
    assert not stale, f"no longer imported, remove from ALLOWED_UPWARD: {stale}"


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target not in MODULES:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_core_knows_nothing_of_files_polars_or_the_cli():
    banned = ("polars", "pandas", "pyarrow", "pathlib", "engine.")
    allowed = ("engine._core", "engine.errors")
    for pyx in sorted((ENGINE / "_core").glob("*.p[yx]*")):
        text = pyx.read_text(encoding="utf-8")
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ", "cimport ")):
                assert not any(f" {b}" in stripped for b in banned) \
                    or any(a in stripped for a in allowed), f"{pyx.name}: {stripped}"


@pytest.mark.parametrize("package", sorted(
    m for m, p in MODULES.items() if p.name == "__init__.py" and m != "engine"))
def test_each_package_says_what_it_owns(package):
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 15, f"{package}/__init__.py needs a docstring"


def test_the_checker_sees_an_upward_and_a_circular_import(tmp_path, monkeypatch):
    # The rules above must be able to fail: feed them a made-up pair of modules.
    fake = {"engine.data.fake": "from engine.backtest.fake import x\n",
            "engine.backtest.fake": "def f():\n    from engine.data.fake import y\n"}
    for name, source in fake.items():
        path = tmp_path / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        monkeypatch.setitem(MODULES, name, path)
    assert "engine.backtest.fake" in imports_of("engine.data.fake")
    with pytest.raises(AssertionError, match="engine.data.fake .data. imports"):
        test_imports_point_down()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
