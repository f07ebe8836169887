"""Lazy re-exports for package ``__init__`` modules.

A package names its public objects without importing the modules that define
them, so ``import engine`` (and ``python -m engine``) stays fast and a package
never pulls in the layers its names live in until they are used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for a package with lazy public names.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (used in the ``AttributeError`` message).
    exports : mapping of str to str
        Public name → ``"module"`` (the name is a module, imported whole) or
        ``"module:attribute"``.
    namespace : dict
        The package's ``globals()``: a resolved name is cached there, so the
        import happens once.
    """

    def __getattr__(name: str) -> object:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = importlib.import_module(module)
        if attribute:
            value = getattr(value, attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
