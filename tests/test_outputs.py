"""Output folders are written whole or not at all, and never overwritten silently."""

from __future__ import annotations

import pytest
from test_cli import HOLD, assert_user_error, cli

from engine.errors import EngineError
from engine.report.outputs import check_output, staged_output


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
