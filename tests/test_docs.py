"""Every example of the documentation runs: ``docs/**/*.md`` and ``README.md``.

Each fenced ``python``, ``bash``, ``sh``, ``shell`` or ``console`` block is one test,
named by its page and the line of its opening fence (``docs/sweeps.md:42``).

Where the examples run
    Each page gets its own temporary folder, the working directory of its examples,
    holding links to the repository's ``strategies/``, ``datasets/`` and ``tests/``:
    the examples' relative paths work as from the repository root, and the files they
    write (``--out results/``) land in the temporary folder, never in the checkout.

Python blocks
    The Python blocks of one page run in order in one shared namespace, so a later
    block can use the names of an earlier one. A block that raises fails.

Shell blocks (``bash``, ``sh``, ``shell``; in ``console`` only the ``$ `` lines)
    Lines joined at a trailing backslash; blank lines and ``#`` comments are ignored.
    Each command line runs in ``bash`` with ``MPLBACKEND=Agg``, ``python`` (or
    ``python3``) at its start replaced by this interpreter, and must exit with status
    0 (or the block's ``exit=N``). Two kinds of line are not run, by rule:
    ``pip install ...`` (installing is the test environment's job; in
    ``pip install ... && CMD`` the ``CMD`` still runs) and ``dask scheduler``/``dask
    worker`` (they start services that never end), and ``python -m pytest -q``
    (the whole suite, this test included, which CI runs itself). Any other line that does not
    start with ``python`` fails the test: mark the block instead.

Markers: an HTML comment on the line just before the opening fence (invisible on
GitHub and in the built site)
    ``<!-- skip-test: REASON -->``
        The block is not run; the test is reported as skipped with ``REASON``, which
        is required. For examples that cannot run here: a Dask cluster's address,
        a file that does not exist, minutes of benchmarks.
    ``<!-- test: exit=N -->``
        Every command of the shell block must exit with status ``N`` (an example
        that shows an error).
    ``<!-- test: file=PATH -->``
        The Python block is not executed but written to ``PATH`` in the page's
        folder (a strategy file that later shell blocks run).

Before a block runs, the earlier blocks of its page that have not run yet run first
(so ``pytest -k`` can pick one block); their failures are reported by their own tests.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
LINKED = ("strategies", "datasets", "tests")
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
TIMEOUT = 300  # seconds, per shell command
#: Set for the commands the examples run: an example that runs pytest does not rerun these.
NESTED = "ENGINE_DOCS_EXAMPLE"

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip-test|test)\s*:(?P<body>.*?)-->\s*$")
NOT_RUN = (  # shell lines not run, by rule (see the module docstring)
    (re.compile(r"^pip3? install\b"), "installs packages"),
    (re.compile(r"^dask (scheduler|worker)\b"), "starts a Dask service"),
    (re.compile(r"^python3? -m pytest -q$"), "the whole test suite, which CI runs itself"),
)


@dataclass
class Block:
    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    info: str
    code: str
    first_code_line: int
    skip: str | None = None
    exit: int = 0
    file: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_marker(block: Block, kind: str, body: str) -> None:
    body = body.strip()
    if kind == "skip-test":
        if not body:
            block.problems.append("skip-test needs a reason: <!-- skip-test: REASON -->")
        block.skip = body or "no reason given"
        return
    for item in body.split():
        key, sep, value = item.partition("=")
        if key == "exit" and sep and value.isdigit():
            block.exit = int(value)
        elif key == "file" and sep and value:
            block.file = value
        else:
            block.problems.append(f"unknown test marker option {item!r} (exit=N, file=PATH)")


def collect(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"]
        start = i
        i += 1
        body = []
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) \
                    and not close["info"]:
                break
            body.append(lines[i])
            i += 1
        i += 1
        lang = info.split()[0].lower() if info else ""
        if lang not in PYTHON + SHELL:
            continue
        indent = len(match["indent"])
        block = Block(page, start + 1, lang, info,
                      "\n".join(b[indent:] if b[:indent].isspace() else b for b in body) + "\n",
                      start + 2)
        if info != info.split()[0]:
            block.problems.append(
                f"the info string {info!r} has more than a language: pymdownx.superfences "
                f"then does not render the block; put options in a <!-- test: ... --> marker")
        if start > 0:
            marker = MARKER.match(lines[start - 1])
            if marker:
                parse_marker(block, marker["kind"], marker["body"])
        if block.file and block.lang not in PYTHON:
            block.problems.append("file=PATH applies to python blocks")
        if block.exit and block.lang not in SHELL:
            block.problems.append("exit=N applies to shell blocks")
        blocks.append(block)
    return blocks


BLOCKS = [block for page in PAGES for block in collect(page)]


# --------------------------------------------------------------------------- shell lines


def command_lines(block: Block) -> list[str]:
    """The block's command lines, continuations joined, ``$ `` prompts removed."""
    out, pending = [], ""
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        if pending:
            line = line.strip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line and not line.startswith("#"):
            out.append(line)
    if pending.strip():
        out.append(pending.strip())
    return out


def runnable(line: str) -> tuple[list[str], list[str]]:
    """Split a command line into the commands to run and the reasons parts were not run.

    ``pip install X && python ...`` runs the ``python ...`` part. A part that is neither
    run by rule nor a ``python`` command raises ``ValueError``.
    """
    run, not_run = [], []
    for part in (p.strip() for p in line.split(" && ")):
        reason = next((why for pattern, why in NOT_RUN if pattern.match(part)), None)
        if reason:
            not_run.append(f"{part!r}: {reason}")
            continue
        head, _, rest = part.partition(" ")
        if head not in ("python", "python3"):
            raise ValueError(
                f"{part!r} is not a python command, and not one of the lines skipped by rule "
                f"(pip install, dask scheduler/worker): mark the block "
                f"<!-- skip-test: REASON --> if it cannot run here")
        run.append(f"{shlex.quote(sys.executable)} {rest}".rstrip())
    return run, not_run


def run_shell(block: Block, cwd: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", **{NESTED: block.id})
    for line in command_lines(block):
        commands, _ = runnable(line)
        for command in commands:
            status, stdout, stderr = run_command(command, cwd, env)
            if status != block.exit:
                raise AssertionError(
                    f"{block.id}: `{line}` exited with status {status}, expected "
                    f"{block.exit}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}")


def run_command(command: str, cwd: Path, env: dict) -> tuple[int, str, str]:
    """Run ``command`` in bash in its own process group, killed whole on a timeout."""
    process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"`{command}` ran for more than {TIMEOUT} s: stopped\n"
                             f"--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
                             ) from None
    return process.returncode, stdout, stderr


# --------------------------------------------------------------------------- pages


@dataclass
class Page:
    folder: Path
    namespace: dict
    ran: set = field(default_factory=set)


def make_folder(folder: Path) -> Path:
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    return folder


def run_block(block: Block, page: Page) -> None:
    page.ran.add(block.id)
    if block.problems:
        raise AssertionError(f"{block.id}: " + "; ".join(block.problems))
    if block.lang in PYTHON and block.file:
        target = (page.folder / block.file).resolve()
        inside = target.is_relative_to(page.folder.resolve()) and not any(
            target.is_relative_to((page.folder / name).resolve()) for name in LINKED)
        if not inside:
            raise AssertionError(f"{block.id}: file={block.file} must stay inside the page's "
                                 f"folder and out of the linked {', '.join(LINKED)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
        compile(block.code, str(target), "exec")
        return
    if block.lang in PYTHON:
        # padded so that a traceback's line numbers are the Markdown file's
        source = "\n" * (block.first_code_line - 1) + block.code
        exec(compile(source, str(ROOT / block.page), "exec"), page.namespace)
        return
    run_shell(block, page.folder)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    made: dict[str, Page] = {}

    def get(name: str) -> Page:
        if name not in made:
            slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
            made[name] = Page(make_folder(tmp_path_factory.mktemp(slug)),
                              {"__name__": "__docs__"})
        return made[name]

    return get


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(block: Block, pages, monkeypatch):
    if os.environ.get(NESTED):
        pytest.skip(f"run by the example {os.environ[NESTED]}, not again inside it")
    if block.skip is not None and not block.problems:
        pytest.skip(f"{block.id}: {block.skip}")
    page = pages(block.page)
    monkeypatch.chdir(page.folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for earlier in BLOCKS:
        if earlier is block:
            break
        if earlier.page == block.page and earlier.id not in page.ran \
                and earlier.skip is None:
            try:
                run_block(earlier, page)
            except Exception:  # reported by the earlier block's own test
                pass
    run_block(block, page)


# --------------------------------------------------------------------------- the runner


def test_every_page_is_read():
    assert (ROOT / "docs" / "index.md") in PAGES and (ROOT / "README.md") in PAGES
    assert len({b.id for b in BLOCKS}) == len(BLOCKS)


def test_skips_state_a_reason():
    for block in BLOCKS:
        assert block.skip is None or block.skip.strip(), block.id


def test_the_runner_fails_a_broken_example(tmp_path):
    page = Page(make_folder(tmp_path), {"__name__": "__docs__"})
    broken = Block("docs/x.md", 1, "python", "python", "import engine\nengine.rnu\n", 2)
    with pytest.raises(AttributeError):
        run_block(broken, page)
    wrong = Block("docs/x.md", 5, "bash", "bash",
                  "python -m engine run strategies/no_such_file.py\n", 6)
    with pytest.raises(AssertionError, match="exited with status 2, expected 0"):
        run_block(wrong, page)
    wrong.exit = 2
    run_block(wrong, page)


def test_the_line_rules():
    assert runnable("pip install -e . && python -m engine run x.py") == (
        [f"{shlex.quote(sys.executable)} -m engine run x.py"],
        ["'pip install -e .': installs packages"])
    assert runnable('pip install -e ".[dev]" && python -m pytest -q') == (
        [], ["'pip install -e \".[dev]\"': installs packages",
             "'python -m pytest -q': the whole test suite, which CI runs itself"])
    assert runnable("dask worker tcp://HOST:8786 --nworkers 4")[0] == []
    with pytest.raises(ValueError, match="not a python command"):
        runnable("bench/peers/run.sh")
    block = Block("docs/x.md", 1, "console", "console",
                  "$ python -m engine run a.py \\\n    --start 2015-01-01\noutput\n", 2)
    assert command_lines(block) == ["python -m engine run a.py --start 2015-01-01"]
