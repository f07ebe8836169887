"""Errors raised for user mistakes.

Every error a user can cause (bad data, bad parameters, a broken strategy file)
derives from :class:`EngineError`. The CLI prints its message on stderr and exits
with status 2, without a traceback (``--debug`` shows it). Anything else that
escapes is a bug in the engine and keeps its traceback.
"""


class EngineError(Exception):
    """Base class of every error caused by user input."""


class DataError(EngineError):
    """Bar or feed data that cannot be used: names the file, column, row and fix."""


class ParameterError(EngineError):
    """An unknown, mistyped or out-of-range strategy or engine parameter."""


class StrategyError(EngineError):
    """A strategy file or class that cannot be loaded, or that raised while running."""


class LookAheadError(StrategyError):
    """A strategy tried to read a bar or a value before it was available."""


class OrderError(EngineError):
    """An order whose arguments are invalid (rejections for lack of cash are not errors)."""


def did_you_mean(name: str, choices) -> str:
    """Return a ' Did you mean ...?' hint for ``name`` among ``choices``, or ''."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def known_names(what: str, names, shown: int = 10) -> str:
    """`` The data holds 3 symbols: A, B, C.`` with at most ``shown`` of them listed."""
    names = [str(n) for n in names]
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    plural = what if len(names) == 1 else f"{what}s"
    return f" The data holds {len(names)} {plural}: {listed}."
