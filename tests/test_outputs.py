"""Output folders are written whole or not at all, and nothing is ever lost.

``--out`` is checked before the run (the working directory, a file in the way, a
folder that cannot be written in, an existing folder without ``--force``); the final
rename never replaces a folder the check did not see, so a folder that appears at
the target during a run is kept and the run says where its own files went; of two
real runs racing for one ``--out``, one wins and the other says so; staging folders
of killed runs are removed by the next run, and a live run's never.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import HOLD, ROOT, SMA, assert_user_error, cli

import engine
from engine.cli import main
from engine.errors import EngineError, OutputError
from engine.report.outputs import TEST_PAUSE, check_output, staged_output

GOOD_BARS = str(ROOT / "tests" / "bad_inputs" / "good_bars.csv")


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_existing_folder_is_refused_before_the_run(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(cli("run", HOLD, "--out", str(out)), "already exists", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_force_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    proc = cli("run", HOLD, "--start", "2024-01-01", "--out", str(out), "--force", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert "stale.txt" not in names and {"metrics.json", "report.html"} <= names
    assert [p.name for p in tmp_path.iterdir()] == ["res"]  # no staging folder left


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "res"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        (stage / "half.csv").write_text("a,b\n")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_the_previous_folder(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "good.csv").write_text("1\n")
    with pytest.raises(KeyboardInterrupt), staged_output(out, force=True) as stage:
        (stage / "half.csv").write_text("a\n")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    assert [p.name for p in out.iterdir()] == ["good.csv"]


def test_a_file_is_not_a_folder(tmp_path):
    target = tmp_path / "res"
    target.write_text("x")
    with pytest.raises(EngineError, match="is a file"):
        check_output(target, force=True)


# --------------------------------------------------------------------------- the check


def test_the_working_directory_and_its_parents_are_refused(tmp_path):
    inside = tmp_path / "work"
    inside.mkdir()
    (inside / "mine.txt").write_text("keep")
    proc = cli("run", HOLD, "--data", GOOD_BARS, "--out", ".", "--force", cwd=inside)
    assert_user_error(proc, "error: --out . is the working directory; the results need a "
                            "folder of their own", "--out results")
    proc = cli("run", HOLD, "--data", GOOD_BARS, "--out", "..", "--force", cwd=inside)
    assert_user_error(proc, "error: --out .. holds the working directory")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.txt", "work"]


def test_a_file_in_the_way_is_named_before_the_run(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    proc = cli("run", SMA, "--out", str(blocker / "res"))
    assert_user_error(proc, f"--out {blocker / 'res'}: {blocker} is a file, so no folder can "
                            f"be made in it")
    assert proc.stdout == ""
    proc = cli("run", SMA, "--out", str(blocker / "deeper" / "res"))
    assert_user_error(proc, f"{blocker} is a file")


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only, for root too (an immutable folder), or skip."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        made, undo = True, None
    try:
        if not made:
            pytest.skip("no way to make a read-only folder here")
        yield
    finally:
        if undo:
            subprocess.run(undo, capture_output=True)
        else:
            folder.chmod(0o755)


def test_a_read_only_folder_is_refused_before_the_run(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        started = time.monotonic()
        proc = cli("run", SMA, "--out", str(locked / "sub" / "res"))
        assert_user_error(proc, f"--out {locked / 'sub' / 'res'}: cannot make a folder in "
                                f"{locked} (", "choose an --out in a folder you can write to")
        assert proc.stdout == ""
        assert time.monotonic() - started < 60
        assert list(locked.iterdir()) == []


def test_every_command_checks_out_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in (["compare", SMA, HOLD], ["sweep", SMA, "--grid", "fast=5,10"], ["claims"]):
        assert main([*args, "--out", "."]) == 2
        assert capsys.readouterr().err.startswith("error: --out . is the working directory")
    with pytest.raises(OutputError, match="is the working directory"):
        engine.stream_run(SMA, "never_read.parquet", out=".")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the move


def test_a_folder_made_during_the_run_is_kept(tmp_path):
    out = tmp_path / "res"
    checked = check_output(out)
    with pytest.raises(OutputError) as caught, staged_output(checked) as stage:
        (stage / "metrics.json").write_text("{}")
        out.mkdir()  # made by hand, or by another run, while this one writes
        (out / "mine.txt").write_text("keep")
    kept = caught.value.kept
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert kept == tmp_path / f"res.results-{os.getpid()}"
    assert [p.name for p in kept.iterdir()] == ["metrics.json"]
    assert str(caught.value) == (
        f"--out {out}: a folder appeared there while this run was going (another run with "
        f"the same --out, or made by hand), and it was left as it is. This run's files are "
        f"in {kept}. Fix: keep the one you want, or run again with another --out")
    assert hidden(tmp_path) == []


def test_even_an_empty_folder_made_during_the_run_is_kept(tmp_path):
    # a plain rename would replace an empty folder without a word
    out = tmp_path / "res"
    with pytest.raises(OutputError), staged_output(check_output(out)) as stage:
        (stage / "metrics.json").write_text("{}")
        out.mkdir()
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", f"res.results-{os.getpid()}"]


def test_force_replaces_only_the_folder_it_checked(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "old.txt").write_text("old")
    checked = check_output(out, force=True)
    with pytest.raises(OutputError, match="no longer the one --force was given to replace"), \
            staged_output(checked) as stage:
        (stage / "new.txt").write_text("new")
        theirs = tmp_path / "theirs"  # another run --force puts its own folder there
        theirs.mkdir()
        (theirs / "theirs.txt").write_text("theirs")
        out.rename(tmp_path / "gone")
        theirs.rename(out)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert (tmp_path / f"res.results-{os.getpid()}" / "new.txt").exists()
    # the checked folder gone meanwhile: nothing to replace, the files go in
    out2 = tmp_path / "res2"
    out2.mkdir()
    checked = check_output(out2, force=True)
    with staged_output(checked) as stage:
        (stage / "new.txt").write_text("new")
        out2.rmdir()
    assert [p.name for p in out2.iterdir()] == ["new.txt"]
    # nor one that changed since the check (a file added to it: a folder in use)
    out3 = tmp_path / "res3"
    out3.mkdir()
    checked = check_output(out3, force=True)
    with pytest.raises(OutputError), staged_output(checked) as stage:
        (stage / "new.txt").write_text("new")
        time.sleep(0.05)  # file times tick by the kernel's clock tick (1-10 ms)
        (out3 / "added.txt").write_text("added during the run")
    assert [p.name for p in out3.iterdir()] == ["added.txt"]
    assert hidden(tmp_path) == []


def start_paused(out: Path, gate: Path, *extra: str) -> subprocess.Popen:
    """``python -m engine run`` that stops before its final move until ``gate`` exists."""
    env = dict(os.environ, **{TEST_PAUSE: str(gate)})
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "run", HOLD, "--data", GOOD_BARS, "--out", str(out),
         "--json", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def wait_ready(gate: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(gate.parent.glob(f"{gate.name}.*.ready"))) < n:
        assert time.monotonic() < deadline, "the runs never reached their final move"
        time.sleep(0.05)


@pytest.mark.parametrize("force", [False, True])
def test_two_runs_on_one_out_one_wins_and_the_other_says_where_its_files_are(tmp_path, force):
    work = tmp_path / "work"
    work.mkdir()
    out, gate = work / "res", tmp_path / "gate"
    if force:
        out.mkdir()
        (out / "old.txt").write_text("old")
    runs = [start_paused(out, gate, *(["--force"] if force else [])) for _ in range(2)]
    wait_ready(gate, 2)  # both checked --out and ran; both are about to move into place
    gate.touch()
    done = [(run.pid, *run.communicate(timeout=120)) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], done
    winner = next(d for d, run in zip(done, runs, strict=True) if run.returncode == 0)
    pid, stdout, stderr = next(d for d, run in zip(done, runs, strict=True)
                               if run.returncode == 2)
    kept = work / f"res.results-{pid}"
    seen = ("the folder there is no longer the one --force was given to replace" if force
            else "a folder appeared there while this run was going")
    assert stderr.splitlines() == [
        f"error: --out {out}: {seen} (another run with the same --out, or made by hand), and "
        f"it was left as it is. This run's files are in {kept}. Fix: keep the one you want, "
        f"or run again with another --out"]
    assert stdout == ""
    # both results whole: the winner's in place, the other's where the message says
    assert json.loads((out / "metrics.json").read_text()) == json.loads(winner[1])["metrics"]
    assert {p.name for p in out.iterdir()} == {p.name for p in kept.iterdir()}
    assert (kept / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()
    assert sorted(p.name for p in work.iterdir()) == ["res", kept.name]


def test_a_killed_run_leaves_a_staging_folder_the_next_run_removes(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out, gate = work / "res", tmp_path / "gate"
    victim = start_paused(out, gate)
    wait_ready(gate, 1)
    os.kill(victim.pid, signal.SIGKILL)  # no clean-up runs
    victim.communicate(timeout=60)
    left = hidden(work)
    assert len(left) == 1 and left[0].startswith(f".res.{victim.pid}.")
    assert (work / left[0] / "metrics.json").exists()  # its files were written
    proc = cli("run", HOLD, "--data", GOOD_BARS, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["res"]


def test_a_leftover_with_a_dead_pid_is_removed_and_a_live_runs_folder_kept(tmp_path):
    dead = tmp_path / ".res.99999999.0123abcd.partial"
    dead.mkdir()
    (dead / "half.csv").write_text("a\n")
    live = tmp_path / f".res.{os.getpid()}.89abcdef.partial"
    live.mkdir()
    other = [tmp_path / ".res.keep", tmp_path / ".other.1.0123abcd.partial",
             tmp_path / ".res.1.0123abcd.partial.bak"]
    for folder in other:
        folder.mkdir()
    hold = os.open(live, os.O_RDONLY)
    fcntl.flock(hold, fcntl.LOCK_EX)  # as a run that is still writing holds it
    try:
        with staged_output(tmp_path / "res") as stage:
            (stage / "a.txt").write_text("a")
        assert not dead.exists()
        assert live.exists() and all(folder.exists() for folder in other)
    finally:
        os.close(hold)
    with staged_output(tmp_path / "res", force=True) as stage:
        (stage / "b.txt").write_text("b")
    assert not live.exists()  # its run is gone now
    assert hidden(tmp_path) == sorted(p.name for p in other)
    assert [p.name for p in (tmp_path / "res").iterdir()] == ["b.txt"]
