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


class RejectedOrdersError(EngineError):
    """Orders were rejected in a run that asked for none (``strict=True``, ``--strict``).

    Attributes
    ----------
    count : int
        How many orders were rejected.
    rejections : list of engine.backtest.rejections.Rejection
        Per kind of reason: the count and the first case.
    """

    def __init__(self, message: str, *, count: int = 0, rejections=()):
        super().__init__(message)
        self.count = count
        self.rejections = list(rejections)


class OutputError(EngineError):
    """An ``--out`` folder that cannot be written, or that could not be put in place.

    Attributes
    ----------
    kept : pathlib.Path or None
        Where the run's files were left when the folder could not be put in place
        (another folder appeared at the target while the run was going), else None.
    """

    def __init__(self, message: str, *, kept=None):
        super().__init__(message)
        self.kept = kept


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
