"""Result folders written whole or not at all, and never over a folder nobody checked.

An output folder (``--out DIR`` of every command, ``engine.stream_run(out=...)``)
goes through three steps:

1. :func:`check_output`, before any work is done: ``DIR`` must not be the working
   directory or one of its parents, nor a file, nor an existing folder unless
   ``force`` is given; and the folder it goes in (or the nearest one that exists)
   must take a new folder, which is tried by making and removing one. The returned
   :class:`OutputTarget` remembers which folder ``force`` is to replace, if any.
2. :func:`staged_output`: the files are written into a hidden staging folder beside
   ``DIR``, ``.DIR.PID.XXXXXXXX.partial``. The run holds a lock (``flock``) on it
   while it lives, so that a staging folder nobody holds is known to be left by a run
   that was killed (``kill -9`` runs no clean-up): the next run on the same target
   removes such folders, and never one whose run is still going.
3. At the end the staging folder becomes ``DIR`` by a rename, which never replaces a
   folder the check did not see: when ``DIR`` was absent at the check, the rename
   fails if anything has appeared there since (another run on the same ``--out``, or
   a folder made by hand); with ``force``, only the very folder that was checked
   (same device, inode and change time: not a new folder, not one changed since)
   is replaced. Otherwise the folder found there is left as
   it is, the staging folder is renamed to a visible ``DIR.results-PID`` and
   :class:`~engine.errors.OutputError` names it: of two runs racing for one
   ``--out``, one wins and the other says where its results are.

Creating a staging folder, removing the leftovers and the final rename happen under
an exclusive ``flock`` on the parent folder, which every engine process takes for
them, so two runs never interleave these steps. On Linux the final rename is
``renameat2(RENAME_NOREPLACE)``, which refuses an existing target even against
processes that take no lock; elsewhere the check and the rename are two steps
under the lock. Without ``fcntl`` (Windows) there are no locks, and leftovers are
never removed, since a live run's folder could not be told from a dead one's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import OutputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Environment variable of a test hook: when set to a path ``GATE``, a run about to
#: move its staging folder into place creates ``GATE.PID.ready`` and waits (at most a
#: minute) until ``GATE`` exists. tests/test_outputs.py races two real runs with it.
TEST_PAUSE = "ENGINE_TEST_PAUSE_BEFORE_MOVE"


@dataclass(frozen=True)
class OutputTarget:
    """An output folder that passed :func:`check_output`.

    Attributes
    ----------
    path : pathlib.Path
        The folder, as given.
    force : bool
        Whether an existing folder may be replaced.
    replaces : tuple of int or None
        ``(st_dev, st_ino, st_ctime_ns)`` of the folder found at ``path`` at the
        check, the one ``force`` replaces; None when there was none. The change time
        tells a folder made again under a reused inode number from the one checked.
    """

    path: Path
    force: bool = False
    replaces: tuple[int, int, int] | None = None


def check_output(target: str | os.PathLike | OutputTarget, force: bool = False) -> OutputTarget:
    """Check an output folder before the work that fills it; see the module's docstring.

    Parameters
    ----------
    target : str, os.PathLike or OutputTarget
        The folder (an ``OutputTarget`` is returned as it is).
    force : bool
        Allow replacing an existing folder.

    Raises
    ------
    OutputError
        The folder is the working directory or one of its parents, a file, an
        existing folder (without ``force``), or in a place where no folder can be made.
    """
    if isinstance(target, OutputTarget):
        return target
    path = Path(target)
    shown = os.fspath(target)
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        what = "is the working directory" if resolved == cwd else "holds the working directory"
        raise OutputError(
            f"--out {shown} {what}; the results need a folder of their own (with --force it "
            f"would be replaced whole). Fix: name a new folder, e.g. --out results"
        )
    replaces = None
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"--out {shown} is a file, not a folder; choose a folder path")
        if not force:
            raise OutputError(
                f"output folder {shown} already exists; pass --force to replace it, "
                f"or choose another --out"
            )
        replaces = _identity(os.lstat(path))  # a link is replaced, never what it points to
    _check_parent(path, shown)
    return OutputTarget(path, bool(force), replaces)


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_dev, info.st_ino, info.st_ctime_ns)


def _check_parent(path: Path, shown: str) -> None:
    """The nearest existing folder above ``path`` must take a new folder: try it."""
    above = next((p for p in path.parents if p.exists()), None)
    if above is None:  # a relative path's parents end with "."; cannot happen
        return
    if not above.is_dir():
        raise OutputError(
            f"--out {shown}: {above} is a file, so no folder can be made in it. Fix: choose "
            f"an --out path outside it"
        )
    try:
        probe = above / f".{path.name}.probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(
            f"--out {shown}: cannot make a folder in {above} ({exc.strerror or exc}). Fix: "
            f"choose an --out in a folder you can write to"
        ) from None


@contextmanager
def staged_output(target: str | os.PathLike | OutputTarget,
                  force: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes the target folder.

    Parameters
    ----------
    target : str, os.PathLike or OutputTarget
        The folder; best the :class:`OutputTarget` that :func:`check_output` returned
        before the work began, so that a folder appearing at the target meanwhile is
        noticed. A path is checked now.
    force : bool
        With a path: allow replacing the folder found there now.

    On any exception (including Ctrl-C) in the ``with`` block the staging folder is
    removed and the target is left untouched. When the target cannot be put in
    place (see the module's docstring), :class:`~engine.errors.OutputError` says
    where the files were left.
    """
    checked = check_output(target, force)
    path = checked.path
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with _locked(parent):
            _remove_leftovers(parent, path.name)
            stage, hold = _new_stage(parent, path.name)
    except OSError as exc:
        raise OutputError(f"--out {path}: cannot make a folder in {parent} "
                          f"({exc.strerror or exc}). Fix: choose an --out in a folder you can "
                          f"write to") from None
    try:
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        _test_pause()
        with _locked(parent):
            try:
                old = _put_in_place(stage, checked)
            except OSError as exc:  # e.g. the folder made read-only during the run
                with contextlib.suppress(OSError):
                    stage = _visible(stage, f"{path.name}.results-{os.getpid()}")
                raise OutputError(
                    f"--out {path}: the files could not be moved into place "
                    f"({exc.strerror or exc}); they are in {stage}", kept=stage) from None
    finally:
        if hold is not None:
            os.close(hold)
    if old is not None:
        _remove(old)


# --------------------------------------------------------------------------- staging

#: ``.NAME.PID.TOKEN.partial``: a staging folder (``TOKEN``: 8 hex digits).
STAGE = "{name}.{pid}.{token}.partial"


def _stage_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f".{name}.") + r"(\d+)\.[0-9a-f]{8}\.partial")


def _new_stage(parent: Path, name: str) -> tuple[Path, int | None]:
    """A new staging folder and the descriptor that holds its lock (caller holds the
    parent's lock, so no clean-up sees the folder before it is locked)."""
    while True:
        stage = parent / ("." + STAGE.format(name=name, pid=os.getpid(),
                                             token=secrets.token_hex(4)))
        try:
            stage.mkdir()  # mode 0o777 less the umask: the files' usual permissions
        except FileExistsError:
            continue
        if fcntl is None:
            return stage, None
        hold = os.open(stage, os.O_RDONLY)
        try:
            fcntl.flock(hold, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # a file system without locks: the folder merely looks dead
        return stage, hold


def _remove_leftovers(parent: Path, name: str) -> list[Path]:
    """Remove the staging folders of ``name`` whose run is gone; return them.

    A run holds the lock of its staging folder until it ends, however it ends, so a
    folder whose lock can be taken is a dead run's. Without ``fcntl`` nothing is
    removed: a live run's folder could not be told apart.
    """
    if fcntl is None:
        return []
    pattern = _stage_pattern(name)
    removed = []
    try:
        entries = [e for e in os.scandir(parent) if pattern.fullmatch(e.name)]
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink():  # a folder replaced with --force was a link: moved aside
            removed.append(_remove(Path(entry.path)))
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its run is alive (or locks do not work here)
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def _remove(path: Path) -> Path:
    """Remove a folder, or the link that stood for one."""
    if path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
    return path


@contextmanager
def _locked(folder: Path):
    """An exclusive ``flock`` on ``folder`` for the steps no two runs may interleave."""
    try:
        fd = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    except OSError:
        fd = None  # an unreadable folder: go on unlocked, the renames still refuse
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no locks on this file system: the renames still refuse to replace
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _test_pause() -> None:
    gate = os.environ.get(TEST_PAUSE)
    if not gate:
        return
    Path(f"{gate}.{os.getpid()}.ready").touch()
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)


# --------------------------------------------------------------------------- the move


def _put_in_place(stage: Path, checked: OutputTarget) -> Path | None:
    """Rename ``stage`` to the target; return the replaced folder, moved aside, if any.

    Raises OutputError, with ``stage`` renamed to a visible name, when the target
    holds a folder other than the one checked.
    """
    path = checked.path
    old = None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if checked.replaces != _identity(info):
            _conflict(stage, checked)
        # Aside under a staging folder's name: if this run dies before removing it,
        # the next run does (nobody holds its lock).
        old = path.parent / ("." + STAGE.format(name=path.name, pid=os.getpid(),
                                                token=secrets.token_hex(4)))
        os.rename(path, old)
    try:
        _rename_noreplace(stage, path)
    except FileExistsError:
        if old is not None:
            kept_old = _visible(old, f"{path.name}.replaced-{os.getpid()}")
            _conflict(stage, checked, f"; the folder --force was to replace is in {kept_old}")
        _conflict(stage, checked)
    return old


def _conflict(stage: Path, checked: OutputTarget, more: str = "") -> None:
    path = checked.path
    kept = _visible(stage, f"{path.name}.results-{os.getpid()}")
    seen = ("a folder appeared there while this run was going" if checked.replaces is None
            else "the folder there is no longer the one --force was given to replace")
    raise OutputError(
        f"--out {path}: {seen} (another run with the same --out, or made by hand), and it "
        f"was left as it is{more}. This run's files are in {kept}. Fix: keep the one you "
        f"want, or run again with another --out",
        kept=kept)


def _visible(folder: Path, name: str) -> Path:
    """Rename ``folder`` beside itself to ``name`` (``name-2``, ... when taken)."""
    for n in range(1, 1000):
        kept = folder.parent / (name if n == 1 else f"{name}-{n}")
        try:
            _rename_noreplace(folder, kept)
            return kept
        except FileExistsError:
            continue
    return folder


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_renameat2 = None


def _rename_noreplace(src: Path, dst: Path) -> None:
    """``os.rename(src, dst)`` that raises FileExistsError when ``dst`` exists, even as
    an empty folder (which a plain rename would silently replace)."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if hasattr(os, "sched_getaffinity"):  # Linux: glibc >= 2.28 has renameat2
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = getattr(libc, "renameat2", False)
    if _renameat2:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                      _RENAME_NOREPLACE) == 0:
            return
        import ctypes

        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
    # No renameat2, or a file system without RENAME_NOREPLACE: every engine run holds
    # the parent's lock here, so none can slip in between the test and the rename.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
    os.rename(src, dst)
