"""The in-memory market data panel: timestamps x symbols, one float64 matrix per field.

The panel's arrays are sealed (:func:`engine._core.sealed.seal`): read-only, and no
view of them can be made writeable, because their root is an opaque object rather
than an array that owns its memory. The broker fills at these prices; a strategy
that receives a view of them can read but never rewrite them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine._core.sealed import seal

PRICE_FIELDS = ("open", "high", "low", "close")
BAR_FIELDS = (*PRICE_FIELDS, "volume")


@dataclass(frozen=True)
class Panel:
    """Validated bars for one or more symbols on a common timeline.

    Parameters
    ----------
    ts : numpy.ndarray
        ``datetime64[ns]`` timestamps, strictly increasing, shape ``(n_bars,)``.
    symbols : tuple of str
        Symbol names, shape ``(n_symbols,)``. A single-instrument file without a
        ``symbol`` column is named by the loader's ``symbol=`` argument, else
        ``Panel.DEFAULT_SYMBOL``.
    fields : dict of str to numpy.ndarray
        ``open, high, low, close, volume`` and every extra numeric feature column,
        each a C-contiguous ``float64`` array of shape ``(n_bars, n_symbols)``.
        NaN marks a symbol with no bar (or no value) at that timestamp. The panel
        keeps sealed views of them (read-only for good, no copy): keep no
        writeable reference to arrays you hand it if they must not change.
    source : str
        Where the data came from (a path, or ``"<DataFrame>"``), for messages.
    meta : dict
        What the loader found (see :func:`engine.load_bars`). ``meta["tz"]`` is the
        time zone results are shown in: with it, ``ts`` holds UTC instants and
        :attr:`local_ts` the local times; without it (None), ``ts`` is as written.
    """

    ts: np.ndarray
    symbols: tuple[str, ...]
    fields: dict[str, np.ndarray]
    source: str = "<memory>"
    meta: dict = field(default_factory=dict)

    DEFAULT_SYMBOL = "asset"

    def __post_init__(self):
        n, k = len(self.ts), len(self.symbols)
        for name, arr in self.fields.items():
            if arr.shape != (n, k) or arr.dtype != np.float64 or not arr.flags.c_contiguous:
                raise ValueError(
                    f"Panel field {name!r} must be a C-contiguous float64 array of shape "
                    f"({n}, {k}); got {arr.dtype} {arr.shape}"
                )
        # Sealed, not merely flagged read-only: numpy lets an array that owns its
        # memory be made writeable again, and every view leads to it through `.base`.
        # A new dict, so that the caller's own (writeable) arrays stay theirs.
        object.__setattr__(self, "ts", seal(np.asarray(self.ts)))
        object.__setattr__(self, "fields", {name: seal(arr) for name, arr in self.fields.items()})

    @property
    def n_bars(self) -> int:
        return len(self.ts)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def local_ts(self) -> np.ndarray:
        """The timestamps as local times of ``meta["tz"]`` (``ts`` when there is no zone).

        What calendars read: days, weekdays, months and years are those where the
        data trades, not UTC's (a Tokyo session opens on the previous UTC day).
        """
        tz = self.meta.get("tz")
        if not tz:
            return self.ts
        cached = self.__dict__.get("_local_ts")
        if cached is None or cached[0] != tz:
            from engine.data.timestamps import wall_clock

            # Computed once: a strategy reads it on every bar.
            cached = (tz, seal(wall_clock(self.ts, tz)))
            object.__setattr__(self, "_local_ts", cached)
        return cached[1]

    @property
    def features(self) -> tuple[str, ...]:
        """Names of the extra (non-OHLCV) numeric columns."""
        return tuple(f for f in self.fields if f not in BAR_FIELDS)

    def __getattr__(self, name):
        # open/high/low/close/volume and features as attributes, e.g. panel.close
        fields = self.__dict__.get("fields")
        if fields is not None and name in fields:
            return fields[name]
        raise AttributeError(name)

    def slice(self, start: int, stop: int) -> Panel:
        """Bars ``[start, stop)`` as a new panel sharing no writeable memory."""
        return Panel(
            ts=self.ts[start:stop].copy(),
            symbols=self.symbols,
            fields={k: np.ascontiguousarray(v[start:stop]) for k, v in self.fields.items()},
            source=self.source,
            meta=dict(self.meta),
        )

    def view(self, start: int, stop: int) -> Panel:
        """Bars ``[start, stop)`` as a zero-copy panel over the same read-only arrays.

        A row range of a C-contiguous matrix is itself C-contiguous, so nothing is
        copied; use :meth:`slice` for a panel that owns its memory. The panel keeps
        the last views it gave (they are sealed, so sharing them is safe): the
        look-ahead audit asks for the same cuts for every set of a sweep.
        """
        views = self.__dict__.setdefault("_views", {})
        found = views.get((start, stop))
        if found is None:
            if len(views) >= 64:
                views.clear()
            found = views[(start, stop)] = Panel(
                ts=self.ts[start:stop],
                symbols=self.symbols,
                fields={k: v[start:stop] for k, v in self.fields.items()},
                source=self.source,
                meta=dict(self.meta),
            )
        return found

    def between(self, start=None, end=None) -> Panel:
        """Bars with ``start <= ts <= end`` (either bound may be None)."""
        lo, hi = 0, self.n_bars
        if start is not None:
            lo = int(np.searchsorted(self.ts, np.datetime64(start, "ns"), "left"))
        if end is not None:
            hi = int(np.searchsorted(self.ts, np.datetime64(end, "ns"), "right"))
        return self.slice(lo, hi)

    def with_fields(self, extra: dict[str, np.ndarray]) -> Panel:
        """A panel with more feature fields (e.g. joined feeds)."""
        merged = dict(self.fields)
        merged.update(extra)
        return Panel(self.ts, self.symbols, merged, self.source, dict(self.meta))
