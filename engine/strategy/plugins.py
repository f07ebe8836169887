"""Finding the one ``Strategy`` subclass in a plugin file, a module or a class."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import threading
import types
from pathlib import Path

from engine.errors import StrategyError
from engine.strategy.base import Strategy


def load_strategy(target) -> type[Strategy]:
    """Return the strategy class named by ``target``.

    Parameters
    ----------
    target : str, pathlib.Path, module or type
        A path to a ``.py`` file holding exactly one ``Strategy`` subclass, a
        module holding one, or the class itself.
    """
    if isinstance(target, type):
        if issubclass(target, Strategy) and target is not Strategy:
            return target
        raise StrategyError(f"{target!r} is not a subclass of engine.Strategy")
    if isinstance(target, Strategy):
        raise StrategyError("pass the strategy class (or its file), not an instance: "
                            f"engine.run({type(target).__name__}, ...)")
    if isinstance(target, types.ModuleType):
        return _single_class(target, getattr(target, "__file__", target.__name__))
    if isinstance(target, (str, Path)):
        return _single_class(_import_file(Path(target)), str(target))
    raise StrategyError(
        f"a strategy is a file path, a module or a Strategy subclass; got {type(target).__name__}"
    )


#: One strategy file imported at a time: a module is in sys.modules before its code has
#: run, and another thread (a Dask worker's) must not take it half made.
_IMPORT_LOCK = threading.RLock()


def _import_file(path: Path) -> types.ModuleType:
    with _IMPORT_LOCK:
        return _import_file_locked(path)


def _import_file_locked(path: Path) -> types.ModuleType:
    if not path.exists():
        raise StrategyError(
            f"strategy file not found: {path}. Fix: correct the path (a relative path starts "
            f"from the working directory)."
        )
    if path.suffix != ".py":
        raise StrategyError(f"a strategy file is a Python file ending in .py; got {path}")
    resolved = path.resolve()
    # A stable, unique module name per file keeps tracebacks and pickling sane.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    name = f"engine_strategy_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        # One line: the CLI prints a user error as a single `error:` line.
        code = f" (`{exc.text.strip()}`)" if exc.text and exc.text.strip() else ""
        raise StrategyError(
            f"{path}: syntax error on line {exc.lineno}{code}: {exc.msg}. Fix: correct the "
            f"Python syntax there."
        ) from exc
    except Exception as exc:
        del sys.modules[name]
        line = _line_in(exc, resolved)
        if isinstance(exc, ModuleNotFoundError):
            fix = (f"install the package that provides {exc.name!r} in this Python "
                   f"environment, or remove the import")
        else:
            fix = "correct the code that runs when the file is imported (--debug shows the " \
                  "traceback)"
        raise StrategyError(
            f"{path}{line}: importing the strategy raised {type(exc).__name__}: {exc}. "
            f"Fix: {fix}."
        ) from exc
    return module


def _line_in(exc: BaseException, filename: Path) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == filename]
    return f", line {frames[-1].lineno}" if frames else ""


def _single_class(module: types.ModuleType, where: str) -> type[Strategy]:
    found = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Strategy) and obj is not Strategy
        and obj.__module__ == module.__name__
    ]
    if not found:
        raise StrategyError(
            f"{where} defines no Strategy subclass; write `class MyRule(Strategy):` "
            f"(from engine import Strategy) with on_bar or signals"
        )
    if len(found) > 1:
        names = ", ".join(cls.__name__ for cls in found)
        raise StrategyError(
            f"{where} defines {len(found)} Strategy subclasses ({names}); keep one per file "
            f"(move the others to their own files, or import a shared base from a module)"
        )
    return found[0]
