"""The bad-input corpus, run through the command line as a user runs it.

Every case of ``tests/bad_inputs/cases.toml`` is one ``python -m engine ...`` command
on a file of ``tests/bad_inputs/``. It must exit with status 2 and print exactly one
line, ``error: <the message of the index>``, on stderr, with no traceback and nothing
on stdout (inputs the engine repairs exit 0 with one ``warning:`` line instead); with
``--debug`` the same mistake shows its traceback.

Each case runs twice over: through :func:`engine.cli.main`, the function behind
``python -m engine``, in this process (every case: the messages), and as a real
``python -m engine`` process for one case of each way an error reaches the command
line (the process: its exit status, its stderr, ``--debug``). A process costs half a
second of imports, so running all of them that way would cost half a minute.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tomllib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "bad_inputs"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text())["case"]
BY_NAME = {case["name"]: case for case in CASES}
MISTAKES = [case for case in CASES if "error" in case]
REPAIRS = [case for case in CASES if "warning" in case]
#: Files of the corpus folder that are not inputs.
NOT_INPUTS = {"README.md", "cases.toml", "make_corpus.py"}
#: One case per way a user error reaches the command line: the loader, a feed join, a
#: strategy's import, a strategy's hook, parameters, argument parsing, account settings,
#: the output folder's check, orders rejected under --strict.
PROCESS_CASES = ("nan_close", "feed_no_overlap", "syntax_error", "raises_in_on_bar",
                 "unknown_param", "param_without_value", "negative_cash",
                 "out_working_directory", "strict_rejection")


def expected(text: str) -> str:
    return text.replace("{corpus}", str(CORPUS))


@contextlib.contextmanager
def unreadable_data(case):
    """For a case marked ``unreadable``: its --data file, a copy of good_bars.csv this
    user may not read, for the duration of the run. Root reads any file whatever its
    mode, so for root ``open`` refuses it as the system refuses other users."""
    if not case.get("unreadable"):
        yield
        return
    path = ROOT / case["args"][case["args"].index("--data") + 1]
    shutil.copyfile(CORPUS / "good_bars.csv", path)
    path.chmod(0)
    real_open = builtins.open

    def refusing(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(ROOT, file).resolve() == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, *args, **kwargs)

    try:
        with mock.patch("builtins.open", refusing) if os.access(path, os.R_OK) \
                else contextlib.nullcontext():
            yield
    finally:
        path.chmod(0o644)
        path.unlink()


def in_process(args: list[str]) -> tuple[int, str, str]:
    """``python -m engine ARGS`` without the interpreter start: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    # main() installs its own warning printer; a fresh interpreter's filters apply
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        warnings.simplefilter("default")
        os.chdir(ROOT)  # the cases' paths are relative to the repository
        try:
            status = main(args)
        finally:
            os.chdir(cwd)
    return status, out.getvalue(), err.getvalue()


def as_process(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("case", MISTAKES, ids=lambda c: c["name"])
def test_a_mistake_prints_one_error_line(case):
    with unreadable_data(case):
        status, stdout, stderr = in_process(case["args"])
    assert status == 2, stderr
    assert stderr.splitlines() == ["error: " + expected(case["error"])]
    assert stdout == ""  # nothing half-printed before the error


@pytest.mark.parametrize("case", REPAIRS, ids=lambda c: c["name"])
def test_a_repaired_input_warns_once_and_runs(case):
    status, stdout, stderr = in_process(case["args"])
    assert status == 0, stderr
    assert stderr.splitlines() == ["warning: " + expected(case["warning"])]
    assert "Metrics" in stdout


@pytest.fixture(scope="module")
def processes():
    """The process cases run as ``python -m engine``, plainly and with ``--debug``, and
    the repaired input plainly; in parallel, one process per core."""
    runs = {(name, False): BY_NAME[name]["args"] for name in PROCESS_CASES}
    runs.update({(name, True): ["--debug", *BY_NAME[name]["args"]] for name in PROCESS_CASES})
    runs.update({(case["name"], False): case["args"] for case in REPAIRS})
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(as_process, args) for key, args in runs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_the_process_exits_2_with_the_message_and_no_traceback(name, processes):
    proc = processes[name, False]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["error: " + expected(BY_NAME[name]["error"])]
    assert proc.stdout == ""


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_debug_shows_the_traceback_of_the_same_error(name, processes):
    proc = processes[name, True]
    assert proc.returncode == 1  # the exception escapes: Python's own exit status
    assert proc.stderr.startswith("Traceback (most recent call last):")
    last = proc.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("engine.errors.")
    assert last.endswith(": " + expected(BY_NAME[name]["error"]))


@pytest.mark.parametrize("case", REPAIRS, ids=lambda c: c["name"])
def test_the_process_of_a_repaired_input_exits_0_with_the_warning(case, processes):
    proc = processes[case["name"], False]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["warning: " + expected(case["warning"])]


def test_every_file_of_the_corpus_is_an_input_of_some_case():
    named = " ".join(arg for case in CASES for arg in case["args"])
    # feed files are named by the corpus's strategy files, not on the command line
    named += " ".join(p.read_text() for p in CORPUS.glob("*.py"))
    files = {p.name for p in CORPUS.iterdir() if p.is_file()} - NOT_INPUTS
    assert files and all(name in named for name in files), files
    assert {"no_such_file.parquet", "no_such_strategy.py"}.isdisjoint(files)


def test_every_case_is_described_and_expects_one_outcome():
    assert len(BY_NAME) == len(CASES)
    assert set(PROCESS_CASES) <= {case["name"] for case in MISTAKES}
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
