"""Result folders written whole or not at all.

Files are written into a hidden staging folder beside the target and renamed into
place at the end, so an interrupted or failed run never leaves a half-written
report. An existing target is replaced only with ``force``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import EngineError


def check_output(target: str | os.PathLike, force: bool = False) -> Path:
    """Refuse an output path that exists (unless ``force``) or is a file."""
    path = Path(target)
    if path.exists() and not path.is_dir():
        raise EngineError(f"--out {path} is a file, not a folder; choose a folder path")
    if path.exists() and not force:
        raise EngineError(
            f"output folder {path} already exists; pass --force to replace it, "
            f"or choose another --out"
        )
    return path


@contextmanager
def staged_output(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target``.

    On any exception (including Ctrl-C) the staging folder is removed and an
    existing ``target`` is left untouched.
    """
    path = check_output(target, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    previous = None
    if path.exists():
        previous = path.with_name(f".{path.name}.replaced-{os.getpid()}")
        os.replace(path, previous)
    os.replace(stage, path)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
