"""The bar loops and the bounded views through which a strategy reads data.

A strategy never holds a raw array of the panel: it reads :class:`Series` views
whose visible length is the current bar plus one. Asking for a later bar raises
``LookAheadError``; the bound is the shared :class:`Cursor`, advanced only by the
loop, so look-ahead is refused by construction rather than by trust.

Every array a :class:`Series` or a :class:`Bar` hands out is sealed
(:mod:`engine._core.sealed`): read-only for good, and its ``.base`` is an opaque
object, so neither ``.base`` chains nor ``flags.writeable = True`` lead to a later
bar or to a price the broker fills at. The arrays are views, not copies: reading
``np.asarray(series)`` on every bar costs the same at bar 10 as at bar 1,000,000.
"""

cimport numpy as cnp
from libc.math cimport NAN, isnan

import numpy as np

from engine._core.broker cimport (
    ALL_CASH, MARKET, PERCENT_EQUITY, SHARES, TARGET_PERCENT, TARGET_SHARES, CASH,
    Broker,
)
from engine._core.sealed cimport seal, seal_of, window

from engine.errors import LookAheadError

cnp.import_array()

cdef extern from *:
    """
    #ifndef ENGINE_DEBUG_BUILD
    #define ENGINE_DEBUG_BUILD 0
    #endif
    """
    const bint ENGINE_DEBUG_BUILD

# True when built with ENGINE_CYTHON_DEBUG=1: every check on (see setup.py).
DEBUG_BUILD = ENGINE_DEBUG_BUILD

ENTRY_SIZE_MODES = {
    "all_cash": ALL_CASH,
    "shares": SHARES,
    "cash": CASH,
    "percent": PERCENT_EQUITY,
    "target_percent": TARGET_PERCENT,
}


cdef class Cursor:
    """The index of the current bar, shared by every view of one run."""

    def __cinit__(self):
        self.index = -1


cdef class Series:
    """A read-only view of one field (or indicator) up to the current bar.

    ``s[-1]`` is the current bar, ``s[-2]`` the previous one, ``s[0]`` the first;
    ``len(s)`` is the number of visible bars. For a one-symbol view the items are
    floats; for a panel-wide view (``column == -1``) each item is the row of all
    symbols at that bar, as a read-only array. Arrays (``visible()``,
    ``np.asarray(s)``, slices, rows) are sealed views of the visible bars only.
    """

    def __cinit__(self, array, Cursor cursor, Py_ssize_t column=0, str name=""):
        arr = np.asarray(array, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
            column = 0
        if arr.ndim != 2 or column < -1 or column >= arr.shape[1]:
            raise ValueError(f"Series takes a 1-D or 2-D array and a column in "
                             f"-1..{arr.shape[1] - 1 if arr.ndim == 2 else 0}; got "
                             f"{arr.ndim} dimensions and column {column}")
        # Zero-copy when already contiguous; sealed at the root, so that nothing
        # handed out can be made writeable.
        arr = seal(np.ascontiguousarray(arr))
        self.array = arr
        self.values = arr
        self.shown = arr if column < 0 else arr[:, column]
        # Every array handed out has this as its base: its owner stays out of reach,
        # so no `.base` leads from the visible bars to the later ones.
        self.seal = seal_of(arr)
        self.cursor = cursor
        self.column = column
        self.name = name

    cdef Py_ssize_t position(self, Py_ssize_t key) except -1:
        cdef Py_ssize_t now = self.cursor.index
        cdef Py_ssize_t pos = now + 1 + key if key < 0 else key
        if pos > now:
            raise LookAheadError(
                f"{self.name or 'series'}[{key}] reads bar {pos}, but the current bar is "
                f"{now}: a strategy may read only bars up to the current one "
                f"(use [-1] for the current bar, [-2] for the previous)"
            )
        if pos < 0:
            raise IndexError(
                f"{self.name or 'series'}[{key}] is before the first bar: "
                f"only {now + 1} bars are visible"
            )
        return pos

    def __getitem__(self, key):
        cdef Py_ssize_t pos
        if isinstance(key, slice):
            return self.visible()[key]
        pos = self.position(key)
        if self.column >= 0:
            return self.values[pos, self.column]
        return window(self.array, pos, pos + 1, True, self.seal)

    def __len__(self):
        return self.cursor.index + 1

    def visible(self):
        """The bars visible now, as a read-only numpy array (no copy).

        The array is sealed: it cannot be made writeable, and its ``.base`` leads
        to no later bar. ``numpy.array(s)`` gives a writeable copy.
        """
        return window(self.shown, 0, self.cursor.index + 1, False, self.seal)

    def _full(self):
        # For the engine only (indicator computation, audited for look-ahead).
        if self.column >= 0:
            return self.array[:, self.column]
        return self.array

    @property
    def last(self):
        """The value at the current bar (same as ``s[-1]``)."""
        return self.__getitem__(-1)

    def __array__(self, dtype=None, copy=None):
        out = self.visible()
        if copy or (dtype is not None and np.dtype(dtype) != out.dtype):
            return np.array(out, dtype=dtype, copy=True)
        return out

    def __float__(self):
        return float(self.__getitem__(-1))

    def __repr__(self):
        return f"Series({self.name!r}, visible={self.cursor.index + 1})"


cdef class Bar:
    """The bar that just closed, as handed to ``on_bar``.

    Attributes read the panel at the cursor: ``bar.close`` is a float for one
    symbol, or a sealed read-only array over symbols for a panel (a view of this
    bar's row alone); ``bar.index`` is the bar number and ``bar.ts`` its timestamp.
    """

    def __cinit__(self, ts, dict fields, Cursor cursor):
        self.ts_array = ts
        self.fields = fields
        self.cursor = cursor
        self.n_symbols = next(iter(fields.values())).shape[1] if fields else 0

    @property
    def index(self):
        return self.cursor.index

    @property
    def ts(self):
        return self.ts_array[self.cursor.index]

    def __getitem__(self, str name):
        arr = self.fields[name]
        if self.n_symbols == 1:
            return arr[self.cursor.index, 0]
        # A row of the sealed panel would lead to the whole panel through `.base`.
        return window(arr, self.cursor.index, self.cursor.index + 1, True, seal_of(arr))

    def __getattr__(self, str name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"the bar has no field {name!r}; fields: {', '.join(self.fields)}"
            ) from None


def run_event(Broker broker, Cursor cursor, object on_bar, object bar, object on_fill=None):
    """Drive ``on_bar(bar)`` once per bar, matching orders around each call.

    Per bar ``i``: orders due are matched against bar ``i`` (open, then range);
    ``on_fill`` is told of each fill; the cursor moves to ``i`` and ``on_bar``
    runs; market-on-close orders fill; equity is marked at the close.
    """
    cdef Py_ssize_t i, n = broker.n_bars
    if broker.base != 0:
        # Strategies read `self.data` by global bar through the cursor; chunks are not
        # supported on this path (engine.stream_run runs the vectorised path only).
        raise ValueError(f"run_event needs the whole panel bound (base 0); got base "
                         f"{broker.base}")
    for i in range(n):
        broker.process_bar(i)
        if on_fill is not None and broker.n_new_fills:
            for oid in broker.new_fill_ids:
                on_fill(oid)
        cursor.index = i
        on_bar(bar)
        if broker.fill_on_close or broker.close_orders:  # account/time-in-force
            broker.n_new_fills = 0
            broker.process_close(i)
            if on_fill is not None and broker.n_new_fills:
                for oid in broker.new_fill_ids:
                    on_fill(oid)
        broker.mark(i)


cdef int entry_mode(str size_type, const unsigned char[:, ::1] entries,
                    const unsigned char[:, ::1] exits, Py_ssize_t n, Py_ssize_t k) except -1:
    """The broker's size mode of ``size_type``, once the signals' shapes are checked."""
    if size_type not in ENTRY_SIZE_MODES:
        raise ValueError(f"size_type must be one of {sorted(ENTRY_SIZE_MODES)}; got {size_type!r}")
    if entries.shape[0] != n or entries.shape[1] != k or exits.shape[0] != n or exits.shape[1] != k:
        raise ValueError(f"entries and exits must have shape ({n}, {k})")
    return ENTRY_SIZE_MODES[size_type]


def run_vector(Broker broker, const unsigned char[:, ::1] entries,
               const unsigned char[:, ::1] exits, const double[:, ::1] size,
               str size_type="all_cash", int direction=1):
    """Consume precomputed signals with no Python call per bar.

    At bar ``i``, for each symbol: an exit signal while a position is held in
    ``direction`` closes it; an entry signal while flat (or closing) opens one
    sized by ``size_type`` and ``size[i, s]`` (``size`` may have one row, used
    for every bar). Orders follow the broker's rules: next open, or this close.

    The signals cover the bars bound to the broker: row ``r`` is global bar
    ``broker.base + r``, so a run streamed in chunks (``Broker.bind_chunk``) calls
    this once per chunk with that chunk's rows of the signals.
    """
    cdef Py_ssize_t i, r, s, n = broker.n_bars, k = broker.n_symbols
    cdef Py_ssize_t base = broker.base
    cdef Py_ssize_t size_rows = size.shape[0]
    cdef int mode
    cdef double pos, amount
    cdef bint closing
    mode = entry_mode(size_type, entries, exits, n, k)
    if size.shape[1] != k or (size_rows != 1 and size_rows != n):
        raise ValueError(f"size must have shape (1, {k}) or ({n}, {k})")
    for r in range(n):
        i = base + r
        broker.process_bar(i)
        for s in range(k):
            if entries[r, s] == 0 and exits[r, s] == 0:
                continue
            pos = broker.position[s]
            closing = False
            if exits[r, s] and pos * direction > 0:
                broker.submit(s, -direction, MARKET, TARGET_SHARES, 0.0)
                closing = True
            if entries[r, s] and (pos == 0 or closing):
                amount = size[r if size_rows != 1 else 0, s]
                if isnan(amount):
                    continue
                if mode == TARGET_PERCENT:
                    amount = direction * amount
                broker.submit(s, direction, MARKET, mode, amount)
        if broker.fill_on_close:
            broker.process_close(i)
        broker.mark(i)


def run_vector_exits(Broker broker, const unsigned char[:, ::1] entries,
                     const unsigned char[:, ::1] exits, const double[:, ::1] size,
                     str size_type, int direction, const double[:, ::1] stop_loss,
                     const double[:, ::1] take_profit, const double[:, ::1] trail_percent,
                     const double[:, ::1] trail_amount):
    """:func:`run_vector` with a bracket on every entry: stop-loss, take-profit, trail.

    As :func:`run_vector`, and each entry order carries a bracket read from the
    entry signal's bar: ``stop_loss`` and ``take_profit`` are fractions of the fill
    price (0.05: 5% below / above for a long), ``trail_percent`` (a fraction) or
    ``trail_amount`` (a price distance) make the stop leg a trailing stop. Each
    array has one row (every bar) or one per bar, one column per symbol; NaN means
    no such exit. This is exactly what ``buy(sl_pct=, tp_pct=, sl_trail_pct=)`` does
    on the event path, so both paths give the same trades.
    """
    cdef Py_ssize_t i, r, s, oid, n = broker.n_bars, k = broker.n_symbols
    cdef Py_ssize_t base = broker.base
    cdef Py_ssize_t size_rows = size.shape[0]
    cdef int mode
    cdef double pos, amount, sl, tp, tpct, tamt
    cdef bint closing
    mode = entry_mode(size_type, entries, exits, n, k)
    for name, arr in (("size", size), ("stop_loss", stop_loss), ("take_profit", take_profit),
                      ("trail_percent", trail_percent), ("trail_amount", trail_amount)):
        if arr.shape[1] != k or (arr.shape[0] != 1 and arr.shape[0] != n):
            raise ValueError(f"{name} must have shape (1, {k}) or ({n}, {k})")
    for r in range(n):
        i = base + r
        broker.process_bar(i)
        for s in range(k):
            if entries[r, s] == 0 and exits[r, s] == 0:
                continue
            pos = broker.position[s]
            closing = False
            if exits[r, s] and pos * direction > 0:
                broker.submit(s, -direction, MARKET, TARGET_SHARES, 0.0)
                closing = True
            if entries[r, s] and (pos == 0 or closing):
                amount = size[r if size_rows != 1 else 0, s]
                if isnan(amount):
                    continue
                if mode == TARGET_PERCENT:
                    amount = direction * amount
                sl = stop_loss[r if stop_loss.shape[0] != 1 else 0, s]
                tp = take_profit[r if take_profit.shape[0] != 1 else 0, s]
                tpct = trail_percent[r if trail_percent.shape[0] != 1 else 0, s]
                tamt = trail_amount[r if trail_amount.shape[0] != 1 else 0, s]
                oid = broker.submit(s, direction, MARKET, mode, amount, NAN, NAN, 0, sl, tp,
                                    True)
                if not isnan(tpct) or not isnan(tamt):
                    broker.set_bracket_trail(oid, tpct, NAN if not isnan(tpct) else tamt)
        if broker.fill_on_close:
            broker.process_close(i)
        broker.mark(i)


def run_weights(Broker broker, const double[:, ::1] weights, double threshold=0.0):
    """Rebalance to target weights with no Python call per bar.

    ``weights[r, s]`` is symbol ``s``'s target as a signed fraction of equity at
    bar ``broker.base + r``; NaN leaves it alone. At each bar with a weight,
    :meth:`Broker.rebalance` places the orders (sells first, then buys), matched as
    any market order: at the next bar's open, or at this close with ``fill="close"``.
    """
    cdef Py_ssize_t i, r, s, n = broker.n_bars, k = broker.n_symbols
    cdef Py_ssize_t base = broker.base
    cdef bint any_weight
    if weights.shape[0] != n or weights.shape[1] != k:
        raise ValueError(f"weights must have shape ({n}, {k})")
    for r in range(n):
        i = base + r
        broker.process_bar(i)
        any_weight = False
        for s in range(k):
            if not isnan(weights[r, s]):
                any_weight = True
                break
        if any_weight:
            broker.rebalance(weights[r], threshold)
        if broker.fill_on_close:
            broker.process_close(i)
        broker.mark(i)
