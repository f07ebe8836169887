"""The bad-input corpus, run through the command line as a user runs it.

Every case of ``tests/bad_inputs/cases.toml`` is one ``python -m engine ...`` command
on a file of ``tests/bad_inputs/``; it must exit with status 2 and print exactly one
line, ``error: <the message of the index>``, on stderr, with no traceback (inputs the
engine repairs exit 0 with one ``warning:`` line instead). With ``--debug`` the same
mistakes show their traceback.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "bad_inputs"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text())["case"]
BY_NAME = {case["name"]: case for case in CASES}
#: Files of the corpus folder that are not inputs.
NOT_INPUTS = {"README.md", "cases.toml", "make_corpus.py"}
#: One case per way a user error reaches the CLI (loader, feed join, strategy import and
#: class lookup, a strategy hook, parameters, argument parsing, account settings). Each
#: extra process costs half a second, so --debug is not repeated for every data file.
DEBUG_CASES = ("nan_close", "feed_no_overlap", "syntax_error", "raises_in_on_bar",
               "unknown_param", "param_without_value", "negative_cash")
#: The runs are processes that mostly import modules: one per core.
WORKERS = max(2, os.cpu_count() or 2)


def engine_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def expected(text: str) -> str:
    return text.replace("{corpus}", str(CORPUS))


@pytest.fixture(scope="module")
def runs():
    """Every case, and the --debug cases, run once, in parallel."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        plain = {c["name"]: pool.submit(engine_cli, c["args"]) for c in CASES}
        debug = {name: pool.submit(engine_cli, ["--debug", *BY_NAME[name]["args"]])
                 for name in DEBUG_CASES}
        return ({name: f.result() for name, f in plain.items()},
                {name: f.result() for name, f in debug.items()})


@pytest.mark.parametrize("case", [c for c in CASES if c.get("status", 2) == 2],
                         ids=lambda c: c["name"])
def test_a_mistake_prints_one_error_line_and_exits_2(case, runs):
    proc = runs[0][case["name"]]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["error: " + expected(case["error"])]
    assert proc.stdout == ""  # nothing half-printed before the error


@pytest.mark.parametrize("case", [c for c in CASES if c.get("status", 2) == 0],
                         ids=lambda c: c["name"])
def test_a_repaired_input_warns_once_and_runs(case, runs):
    proc = runs[0][case["name"]]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["warning: " + expected(case["warning"])]
    assert "Metrics" in proc.stdout


@pytest.mark.parametrize("name", DEBUG_CASES)
def test_debug_shows_the_traceback_of_the_same_error(name, runs):
    proc = runs[1][name]
    assert proc.returncode == 1  # the exception escapes: Python's own exit status
    assert proc.stderr.startswith("Traceback (most recent call last):")
    last = proc.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("engine.errors.")
    assert last.endswith(": " + expected(BY_NAME[name]["error"]))


def test_every_file_of_the_corpus_is_an_input_of_some_case():
    named = " ".join(arg for case in CASES for arg in case["args"])
    # feed files are named by the corpus's strategy files, not on the command line
    named += " ".join(p.read_text() for p in CORPUS.glob("*.py"))
    files = {p.name for p in CORPUS.iterdir() if p.is_file()} - NOT_INPUTS
    assert files and all(name in named for name in files), files
    assert {"no_such_file.parquet", "no_such_strategy.py"}.isdisjoint(files)


def test_every_case_is_described_and_expects_one_outcome():
    assert len(BY_NAME) == len(CASES)
    for case in CASES:
        assert case["what"] and case["args"][0] == "run"
        assert ("error" in case) != ("warning" in case), case["name"]
        assert case.get("status", 2) == (2 if "error" in case else 0), case["name"]


def test_make_corpus_writes_the_committed_binary_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.write_corpus(tmp_path)
    assert written
    for path in written:
        committed = CORPUS / path.name
        if path.name == "truncated.parquet":
            # Parquet bytes carry the writer's version: compare what can be compared.
            assert committed.read_bytes()[:4] == path.read_bytes()[:4] == b"PAR1"
            assert abs(committed.stat().st_size - path.stat().st_size) < 200
        elif path.suffix == ".parquet":
            # pandas' equals counts NaN as equal to NaN (nan_close.parquet holds one)
            assert pq.read_table(committed).to_pandas().equals(
                pq.read_table(path).to_pandas()), path.name
            assert pq.read_schema(committed).equals(pq.read_schema(path)), path.name
        else:
            assert committed.read_bytes() == path.read_bytes(), path.name
