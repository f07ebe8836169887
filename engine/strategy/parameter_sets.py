"""The parameter sets of a sweep's batch, for ``Strategy.signals_batch``.

A batched sweep (:mod:`engine.research.batched`) simulates many parameter sets of
a vectorised strategy in one compiled pass. By default it still calls
``signals`` once per set, and that Python call (100-150 µs for a moving-average
cross) is most of what a set costs. A strategy can instead give the signals of a
whole batch in one call::

    @classmethod
    def signals_batch(cls, data, sets):
        fast = sets.map(sma, data.close, sets.fast)    # (n_bars, n_sets)
        slow = sets.map(sma, data.close, sets.slow)
        entries, exits = crossings(fast, slow)
        return Signals(entries=entries, exits=exits)

``sets.fast`` is a :class:`ParamArray`, the value of ``fast`` in each set, and
:meth:`ParameterSets.map` calls a function once per distinct value of its
:class:`ParamArray` arguments (once per worker process for a sweep: the results
are kept for the next batches) and lays the results side by side, one column per
set. Set ``j`` of the batch is column ``j`` (``[:, j]``, or ``[:, j, :]`` over
several symbols).

The sweep checks the hook against ``signals``: in each worker, a set is recomputed
with ``signals`` (and its look-ahead audit) whenever one of its parameter values
has not been checked yet, and a set whose columns differ from its own signals
makes the batch's rows errors that say where. See ``docs/sweeps.md``.
"""

from __future__ import annotations

import types

import numpy as np

from engine._core.batch import sealed_key
from engine.errors import ParameterError, StrategyError, did_you_mean


class ParamArray(np.ndarray):
    """One value per parameter set of a batch (1-D, ``len(sets)`` values).

    A plain numpy array in every respect; :meth:`ParameterSets.map` reads an
    argument of this type as "differs per set". Arithmetic keeps the type
    (``sets.slow * 2`` is still one value per set).
    """

    def __new__(cls, values):
        return np.asarray(values).view(cls)


def _varying(value, n_sets: int) -> bool:
    return isinstance(value, ParamArray) and value.ndim == 1 and value.shape[0] == n_sets


def _typed(values: np.ndarray) -> list:
    """``(type, value)`` per value, as Python objects."""
    return [(type(v), v) for v in values.tolist()]


def _function_key(func):
    """What identifies ``func``'s results: the function itself, or for a function made
    anew at each call (a lambda or closure inside ``signals_batch``) its code with the
    values it captured, so that the next batch's copy finds the same results. None when
    a captured value cannot be keyed (then the function object itself is the key)."""
    if not isinstance(func, types.FunctionType) or (func.__closure__ is None
                                                    and func.__name__ != "<lambda>"):
        return func
    captured = tuple(_static_key(cell.cell_contents) for cell in func.__closure__ or ())
    defaults = tuple(_static_key(v) for v in func.__defaults__ or ())
    if any(key is None for key in (*captured, *defaults)):
        return None
    return (func.__code__, captured, defaults, id(func.__globals__))


def _static_key(value):
    """A hashable key for an argument that is the same for every set, or None."""
    if isinstance(value, np.ndarray):
        return sealed_key(value)        # the panel's sealed data only
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    return None


class _Columns:
    """The results of one function and fixed arguments, one column per distinct value
    of the varying ones, in growing matrices (one per part of a tuple result)."""

    def __init__(self, keep=()):
        self.keep = keep          # the fixed arguments, kept alive with their keys
        self.index: dict = {}
        self.parts: list[np.ndarray] | None = None
        self.named = None         # the result's tuple type, for tuple results
        self.count = 0

    def add(self, key, result, func) -> None:
        # Stored value by value ((values, n_bars, ...)): a column is copied in and taken
        # out whole, and the columns handed out are views in Fortran order of that layout.
        parts = self._parts_of(result, func)
        if self.parts is None:
            self.parts = [np.empty((8, *p.shape), dtype=p.dtype) for p in parts]
        if len(parts) != len(self.parts) or any(
                p.shape != m.shape[1:] or p.dtype != m.dtype
                for p, m in zip(parts, self.parts, strict=True)):
            raise StrategyError(
                f"ParameterSets.map: {_name(func)} returned arrays of different shapes or "
                f"types for different parameter values; map lays them side by side and needs "
                f"the same shape each time")
        if self.count == self.parts[0].shape[0]:
            self.parts = [np.concatenate([m, np.empty_like(m)], axis=0) for m in self.parts]
        for p, m in zip(parts, self.parts, strict=True):
            m[self.count] = p
        self.index[key] = self.count
        self.count += 1

    def _parts_of(self, result, func) -> list[np.ndarray]:
        if isinstance(result, tuple):
            self.named = type(result)
            parts = list(result)
        else:
            parts = [result]
        out = []
        for part in parts:
            if not isinstance(part, np.ndarray) or part.ndim < 1:
                raise StrategyError(
                    f"ParameterSets.map: {_name(func)} returned {type(part).__name__}; map "
                    f"needs a function returning an array of bars (or a tuple of them)")
            out.append(part)
        return out

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.parts) if self.parts is not None else 0

    def take(self, columns: np.ndarray):
        taken = [np.moveaxis(m[columns], 0, 1) for m in self.parts]
        if self.named is None:
            return taken[0]
        if hasattr(self.named, "_fields"):
            return self.named(*taken)
        return self.named(taken)


def _name(func) -> str:
    return getattr(func, "__name__", type(func).__name__)


class ParameterSets:
    """The parameter sets of one batch: ``len(sets)`` sets of the same names.

    Parameters
    ----------
    params : list of dict
        Each set's parameters (every parameter the strategy declares, converted).
    cache : dict, optional
        Where :meth:`map` keeps its results between batches (a sweep's worker gives
        one per panel); without it, results are kept for this object only.

    Attributes
    ----------
    names : tuple of str
        The parameter names.
    """

    def __init__(self, params: list[dict], cache: dict | None = None):
        self._params = list(params)
        self.names = tuple(self._params[0]) if self._params else ()
        self._cache = {} if cache is None else cache
        self._columns: dict[str, ParamArray] = {}

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"ParameterSets({len(self)} sets of {', '.join(self.names) or 'no parameters'})"

    def __getattr__(self, name: str) -> ParamArray:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except ParameterError as exc:    # hasattr() and the copy protocols expect this
            raise AttributeError(str(exc)) from None

    def __getitem__(self, name: str) -> ParamArray:
        column = self._columns.get(name)
        if column is None:
            if name not in self.names:
                raise ParameterError(
                    f"the parameter sets have no parameter {name!r}; parameters: "
                    f"{', '.join(self.names) or '(none)'}." + did_you_mean(name, self.names))
            values = [p[name] for p in self._params]
            kinds = {type(v) for v in values}
            array = np.array(values, dtype=object if kinds - {int, float, bool} else None)
            column = self._columns[name] = ParamArray(array)
        return column

    def params(self, j: int) -> dict:
        """Set ``j``'s parameters, as ``signals`` would see them on ``self``."""
        return dict(self._params[j])

    def map(self, func, *args, **kwargs):
        """``func(*args, **kwargs)`` per set, laid side by side: one column per set.

        Arguments that are :class:`ParamArray` (``sets.fast``, ``sets.slow * 2``) take
        set ``j``'s value in column ``j``; the others are the same for every set.
        ``func`` runs once per distinct combination of the varying values; in a
        sweep, once per worker process for the panel's data (the results are kept).

        Parameters
        ----------
        func : callable
            Returns an array whose first axis is the bars (``(n_bars,)`` or
            ``(n_bars, n_symbols)``), or a tuple of them (e.g. :func:`~engine.
            indicators.macd`), of the same shape for every value.

        Returns
        -------
        numpy.ndarray or tuple
            ``(n_bars, n_sets)`` for a 1-D result, ``(n_bars, n_sets, n_symbols)``
            for a 2-D one; a tuple of those for a tuple result.
        """
        n = len(self)
        positions = [i for i, a in enumerate(args) if _varying(a, n)]
        names = sorted(k for k, v in kwargs.items() if _varying(v, n))
        varying = [args[i] for i in positions] + [kwargs[k] for k in names]
        for i, a in enumerate(args):
            if isinstance(a, ParamArray) and i not in positions:
                raise ParameterError(
                    f"ParameterSets.map: argument {i + 1} of {_name(func)} is a ParamArray "
                    f"of shape {a.shape}, not one value per set ({n}); use sets.<name> (or "
                    f"arithmetic on it) for a per-set argument")
        static_pos = [i for i in range(len(args)) if i not in positions]
        static_kw = sorted(k for k in kwargs if k not in names)
        keys = [_static_key(args[i]) for i in static_pos] + \
            [_static_key(kwargs[k]) for k in static_kw]
        if any(key is None for key in keys):
            store = _Columns()                         # not keyable: this call only
        else:
            # a function made anew in each batch (a lambda) is known by its code and the
            # values it captured, so that the next batch's copy finds the same results;
            # one capturing something else (a list) by the object itself
            identity = _function_key(func)
            cache_key = (func if identity is None else identity, tuple(positions),
                         tuple(names), tuple(static_kw), tuple(keys))
            store = self._cache.get(cache_key)
            if store is None:
                store = self._cache[cache_key] = _Columns(keep=(args, kwargs, func))
        # keyed with their types too: True, 1 and 1.0 are equal but need not give the
        # same result
        per_set = list(zip(*(_typed(v) for v in varying), strict=True)) if varying \
            else [()] * n
        for key in dict.fromkeys(per_set):
            if key in store.index:
                continue
            call_args = list(args)
            call_kwargs = dict(kwargs)
            for i, (_, value) in zip(positions, key, strict=False):
                call_args[i] = value
            for k, (_, value) in zip(names, key[len(positions):], strict=True):
                call_kwargs[k] = value
            store.add(key, func(*call_args, **call_kwargs), func)
        index = store.index
        columns = np.fromiter((index[key] for key in per_set), dtype=np.intp, count=n)
        return store.take(columns)
