"""Many parameter sets of the vectorised path in one compiled pass.

:func:`simulate` advances the accounts of a batch of parameter sets through the
bars in one loop (bars outside, sets inside), each set with its own signals
(stacked as ``(n_bars, n_sets, n_symbols)``: for one symbol an ``(n_bars, n_sets)``
array), and then computes, per set, the statistics the sweep's metric row is built
from (:mod:`engine.research.batched` finishes them with the very code of
:class:`engine.analysis.streaming_metrics.StreamingMetrics`).

The arithmetic is the broker's (:mod:`engine._core.broker`) and
:func:`engine._core.loop.run_vector`'s, operation for operation, so that every
number equals what :func:`engine.run` gives for the set alone, bit for bit:

* an exit signal while a position is held in ``direction`` places a market order to
  close it (target 0 shares); an entry signal while flat, or while that exit is
  placed, a market order sized by the set's ``size_type`` and ``size``; a NaN size
  places nothing;
* market orders fill at the next bar's open (at its close when the open is
  missing), or at the bar's own close with ``fill_on_close``; slippage, every
  commission term, whole or fractional quantities, the cash check, short sales and
  borrow on shorts are the broker's; cash is summed with the broker's Neumaier
  compensation;
* equity is marked at each close; the trade ledger keeps the broker's FIFO rows.

What it does not model, it does not guess: it requires a close at every bar (the
caller checks; a missing close leaves an order waiting, which this loop does not
hold), and a set whose account leaves the model (an exit order rejected, so that a
later entry would add to a position; non-finite equity) is marked ``outside``: the
sweep runs that set alone through :func:`engine.run` instead.

Sums are numpy's pairwise summation (:func:`pairwise_sum`), in numpy's order, so
that means and moments equal ``numpy.sum`` on the same values.
"""

cimport cython
cimport numpy as cnp
from libc.math cimport NAN, fabs, floor, isfinite, isnan, pow
from libc.stdlib cimport free, malloc, realloc

import numpy as np

from engine._core.broker cimport (
    ALL_CASH, CASH, PERCENT_EQUITY, SHARES, TARGET_PERCENT,
)
from engine._core.sealed cimport is_sealed

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

#: size_type names -> the broker's size modes (as loop.ENTRY_SIZE_MODES).
SIZE_MODES = {
    "all_cash": ALL_CASH,
    "shares": SHARES,
    "cash": CASH,
    "percent": PERCENT_EQUITY,
    "target_percent": TARGET_PERCENT,
}

cdef double QTY_EPS = 1e-9
cdef enum:
    TILE = 32               # sets advanced together through the bars
    PW_BLOCKSIZE = 128      # numpy's block of pairwise summation
    PENDING_CLOSE = 1
    PENDING_ENTRY = 2

# The statistics of each set, in the order of the rows of `simulate`'s "stats" array.
STAT_NAMES = (
    "last", "max_abs_r", "returns_nan", "downside", "mean_x", "m2_x", "m3_x", "m4_x",
    "c_xy", "peak", "max_dd", "under_since", "max_duration", "in_market", "trades",
    "wins", "losses", "gross_win", "gross_loss", "pnl_sum", "best", "worst",
    "open_trades", "commissions", "borrow", "rejected", "outside",
)
cdef enum:
    ST_LAST, ST_MAX_ABS_R, ST_RETURNS_NAN, ST_DOWNSIDE, ST_MEAN_X, ST_M2_X, ST_M3_X
    ST_M4_X, ST_C_XY, ST_PEAK, ST_MAX_DD, ST_UNDER_SINCE, ST_MAX_DURATION, ST_IN_MARKET
    ST_TRADES, ST_WINS, ST_LOSSES, ST_GROSS_WIN, ST_GROSS_LOSS, ST_PNL_SUM, ST_BEST
    ST_WORST, ST_OPEN_TRADES, ST_COMMISSIONS, ST_BORROW, ST_REJECTED, ST_OUTSIDE
    N_STATS


cdef double pairwise_sum(const double* a, Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    """numpy's ``DOUBLE_pairwise_sum`` (numpy/_core/src/umath/loops_utils.h.src)."""
    cdef Py_ssize_t i, n2
    cdef double res
    cdef double r0, r1, r2, r3, r4, r5, r6, r7
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i * stride]
        return res
    if n <= PW_BLOCKSIZE:
        r0 = a[0]
        r1 = a[stride]
        r2 = a[2 * stride]
        r3 = a[3 * stride]
        r4 = a[4 * stride]
        r5 = a[5 * stride]
        r6 = a[6 * stride]
        r7 = a[7 * stride]
        i = 8
        while i < n - (n % 8):
            r0 += a[i * stride]
            r1 += a[(i + 1) * stride]
            r2 += a[(i + 2) * stride]
            r3 += a[(i + 3) * stride]
            r4 += a[(i + 4) * stride]
            r5 += a[(i + 5) * stride]
            r6 += a[(i + 6) * stride]
            r7 += a[(i + 7) * stride]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[i * stride]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise_sum(a, n2, stride) + pairwise_sum(a + n2 * stride, n - n2, stride)


def numpy_sum(const double[::1] values):
    """:func:`pairwise_sum` of ``values`` (for the test against ``numpy.sum``)."""
    return pairwise_sum(&values[0] if values.shape[0] else NULL, values.shape[0], 1)


cpdef object sealed_key(object value):
    """``(address, shape, strides, dtype number)`` of a sealed array, else None.

    The memo of engine.research.batched looks indicator inputs up by it: a sealed
    array's contents never change, so its memory identifies them while it is alive.
    """
    cdef cnp.ndarray arr
    cdef int d
    if not isinstance(value, np.ndarray) or not is_sealed(value):
        return None
    arr = <cnp.ndarray> value
    return (<Py_ssize_t> cnp.PyArray_DATA(arr),
            tuple([cnp.PyArray_DIMS(arr)[d] for d in range(cnp.PyArray_NDIM(arr))]),
            tuple([cnp.PyArray_STRIDES(arr)[d] for d in range(cnp.PyArray_NDIM(arr))]),
            cnp.PyArray_TYPE(arr))


cdef inline double fmax(double a, double b) noexcept nogil:
    return a if a >= b else b


cdef inline double fmin(double a, double b) noexcept nogil:
    return a if a <= b else b


cdef inline int sign_of(double x) noexcept nogil:
    return 1 if x > 0 else (-1 if x < 0 else 0)


cdef struct Costs:
    # The account settings shared by the sets of one pass.
    double commission_percent
    double commission_per_share
    double commission_fixed
    double commission_minimum
    double slippage_bps
    double slippage_fixed
    double borrow_rate
    double periods_per_year
    bint fractional
    bint shorting


cdef inline double cash_value(Account* acc) noexcept nogil:
    return acc.cash + acc.carry


cdef inline void add_cash(Account* acc, double amount) noexcept nogil:
    # Broker.add_cash: Neumaier summation.
    cdef double total = acc.cash + amount
    if fabs(acc.cash) >= fabs(amount):
        acc.carry += (acc.cash - total) + amount
    else:
        acc.carry += (amount - total) + acc.cash
    acc.cash = total


cdef inline double commission_for(Costs* c, double qty, double price) noexcept nogil:
    cdef double q = fabs(qty)
    if q == 0:
        return 0.0
    return fmax(c.commission_minimum,
                c.commission_percent * q * price + c.commission_per_share * q
                + c.commission_fixed)


cdef inline double slipped(Costs* c, double price, int side) noexcept nogil:
    return price * (1.0 + side * c.slippage_bps * 1e-4) + side * c.slippage_fixed


cdef double affordable(Costs* c, double budget, double price) noexcept nogil:
    # Broker.affordable
    cdef double unit = price * (1.0 + c.commission_percent) + c.commission_per_share
    cdef double qty
    cdef int tries = 0
    if budget <= 0 or price <= 0:
        return 0.0
    qty = (budget - c.commission_fixed) / unit
    if c.commission_minimum > 0 and commission_for(c, qty, price) <= c.commission_minimum:
        qty = (budget - c.commission_minimum) / price
    if qty <= 0:
        return 0.0
    if c.fractional:
        return qty
    qty = floor(qty)
    while qty > 0 and qty * price + commission_for(c, qty, price) > budget and tries < 8:
        qty -= 1.0
        tries += 1
    return qty


cdef inline double whole(Costs* c, double qty) noexcept nogil:
    if c.fractional:
        return qty
    return floor(qty) if qty >= 0 else -floor(-qty)


cdef double equity_at(Account* acc, double* pos, double* lot_qty, double* lot_price,
                      const double* last, Py_ssize_t k, Py_ssize_t symbol,
                      double price) noexcept nogil:
    # Broker.equity_at; a position not marked yet is valued at its lot's entry price,
    # as the broker's average_entry computes it for one lot.
    cdef double value = cash_value(acc)
    cdef double mark, qty, cost
    cdef Py_ssize_t s
    for s in range(k):
        if pos[s] != 0:
            mark = price if s == symbol else (last[s] if last != NULL else NAN)
            if isnan(mark):
                qty = 0.0 + lot_qty[s]
                cost = 0.0 + lot_qty[s] * lot_price[s]
                mark = cost / qty if qty > 0 else 0.0
            value += pos[s] * mark
    return value


cdef double resolve_entry(Costs* c, Account* acc, double* pos, double* lot_qty,
                          double* lot_price, const double* last, Py_ssize_t k,
                          Py_ssize_t s, int mode, double amount, int side,
                          double price) noexcept nogil:
    # Broker.resolve_qty for an entry (no bracket parent; never TARGET_SHARES).
    cdef double budget, target
    cdef double unit = price * (1.0 + c.commission_percent) + c.commission_per_share
    if mode == SHARES:
        return amount * side
    if mode == TARGET_PERCENT:
        target = amount * equity_at(acc, pos, lot_qty, lot_price, last, k, s, price)
        return whole(c, target / unit) - pos[s]
    if mode == ALL_CASH:
        budget = cash_value(acc)
    elif mode == CASH:
        budget = amount
    else:  # PERCENT_EQUITY
        budget = amount * equity_at(acc, pos, lot_qty, lot_price, last, k, s, price)
    if side > 0:
        return affordable(c, budget, price)
    return -whole(c, budget / price)


cdef struct Ledger:
    Lot* lots
    Py_ssize_t n
    Py_ssize_t cap
    bint failed             # out of memory


cdef Py_ssize_t new_lot(Ledger* ledger, Py_ssize_t j) noexcept nogil:
    cdef Lot* grown
    if ledger.n == ledger.cap:
        grown = <Lot*> realloc(ledger.lots, 2 * ledger.cap * sizeof(Lot))
        if grown == NULL:
            ledger.failed = True
            return -1
        ledger.lots = grown
        ledger.cap *= 2
    ledger.lots[ledger.n].set_index = j
    ledger.lots[ledger.n].closed = False
    ledger.lots[ledger.n].pnl = 0.0
    ledger.lots[ledger.n].ret = NAN
    ledger.n += 1
    return ledger.n - 1


cdef void fill_close(Costs* c, Account* acc, Ledger* ledger, double* pos, double* lot_qty,
                     double* lot_price, double* lot_costs, int* lot_dir,
                     Py_ssize_t* lot_row, Py_ssize_t s, int direction,
                     double raw) noexcept nogil:
    # Broker.execute of the exit's target-0 market order, then apply_fill/close_lots.
    cdef double p = pos[s]
    cdef double qty = 0.0 - p
    cdef int side
    cdef double price, commission, cash_after, size, gain, costs, pnl
    cdef Lot* lot
    if qty == 0:
        return                                  # cancelled: already at its target
    side = sign_of(qty)
    price = slipped(c, raw, side)
    if not (isfinite(price) and price > 0):
        acc.rejected += 1
        acc.outside = True                      # the position stays: outside the model
        return
    qty = 0.0 - p
    commission = commission_for(c, qty, price)
    cash_after = cash_value(acc) - qty * price - commission
    if cash_after < -1e-9 * fmax(1.0, fabs(cash_value(acc))):
        acc.rejected += 1
        acc.outside = True
        return
    add_cash(acc, -qty * price - commission)
    acc.commissions += commission
    size = fabs(qty)
    gain = lot_dir[s] * lot_qty[s] * (price - lot_price[s])
    costs = lot_costs[s] + commission * (lot_qty[s] / size)
    pnl = gain - costs
    lot = &ledger.lots[lot_row[s]]
    lot.closed = True
    lot.pnl = pnl
    lot.ret = pnl / (lot_price[s] * fabs(lot_dir[s] * lot_qty[s]))
    pos[s] = 0.0
    lot_row[s] = -1


cdef void fill_entry(Costs* c, Account* acc, Ledger* ledger, Py_ssize_t j, double* pos,
                     double* lot_qty, double* lot_price, double* lot_costs, int* lot_dir,
                     Py_ssize_t* lot_row, const double* last, Py_ssize_t k, Py_ssize_t s,
                     int mode, double amount, int direction, double raw) noexcept nogil:
    # Broker.execute of the entry's market order, then apply_fill/open_lot.
    cdef int side = direction
    cdef double qty, price, commission, cash_after
    cdef double p = pos[s]
    cdef Py_ssize_t row
    if mode == TARGET_PERCENT:
        qty = resolve_entry(c, acc, pos, lot_qty, lot_price, last, k, s, mode, amount, side,
                            raw)
        if qty == 0:
            return                              # cancelled: already at its target
        side = sign_of(qty)
    price = slipped(c, raw, side)
    if not (isfinite(price) and price > 0):
        acc.rejected += 1
        return
    qty = resolve_entry(c, acc, pos, lot_qty, lot_price, last, k, s, mode, amount, side,
                        price)
    if qty == 0 or sign_of(qty) != side:
        acc.rejected += 1
        return
    if p != 0:
        acc.outside = True                      # would add to a position: outside the model
        return
    if qty < 0 and p + qty < -QTY_EPS * fabs(qty) and not c.shorting:
        acc.rejected += 1
        return
    commission = commission_for(c, qty, price)
    cash_after = cash_value(acc) - qty * price - commission
    if cash_after < -1e-9 * fmax(1.0, fabs(cash_value(acc))):
        acc.rejected += 1
        return
    row = new_lot(ledger, j)
    if row < 0:
        acc.outside = True
        return
    add_cash(acc, -qty * price - commission)
    acc.commissions += commission
    lot_qty[s] = fabs(qty)
    lot_price[s] = price
    lot_costs[s] = commission
    lot_dir[s] = side
    lot_row[s] = row
    pos[s] = p + qty


cdef void fill_pending(Costs* c, Account* acc, Ledger* ledger, Py_ssize_t j,
                       unsigned char* pending, double* amount, double* pos,
                       double* lot_qty, double* lot_price, double* lot_costs, int* lot_dir,
                       Py_ssize_t* lot_row, const double* last, Py_ssize_t k, int mode,
                       int direction, const double* raw) noexcept nogil:
    # The orders of one set placed on one bar, in the broker's order (by id): per
    # symbol, the exit, then the entry.
    cdef Py_ssize_t s
    cdef unsigned char flags
    for s in range(k):
        flags = pending[s]
        if flags == 0:
            continue
        pending[s] = 0
        if flags & PENDING_CLOSE:
            fill_close(c, acc, ledger, pos, lot_qty, lot_price, lot_costs, lot_dir, lot_row,
                       s, direction, raw[s])
        if acc.outside:
            return
        if flags & PENDING_ENTRY:
            fill_entry(c, acc, ledger, j, pos, lot_qty, lot_price, lot_costs, lot_dir,
                       lot_row, last, k, s, mode, amount[s], direction, raw[s])
        if acc.outside:
            return


@cython.boundscheck(False)
def simulate(const double[:, ::1] open, const double[:, ::1] close,
             const unsigned char[:, :, ::1] entries, const unsigned char[:, :, ::1] exits,
             const double[:, :, ::1] size, const signed char[::1] modes,
             const signed char[::1] directions, double cash, *,
             double commission_percent=0.0, double commission_per_share=0.0,
             double commission_fixed=0.0, double commission_minimum=0.0,
             double slippage_bps=0.0, double slippage_fixed=0.0, double borrow_rate=0.0,
             double periods_per_year=252.0, bint fractional=False, bint shorting=False,
             bint fill_on_close=False, double rf_bar=0.0, const double[::1] bench_dy=None,
             double bench_mean=0.0, double bench_m2=0.0,
             const Py_ssize_t[::1] summary_edges=None):
    """Run ``n_sets`` accounts over the bars in one pass; return their statistics.

    Parameters
    ----------
    open, close : numpy.ndarray
        ``(n_bars, n_symbols)`` float64, C-contiguous; every close finite.
    entries, exits : numpy.ndarray
        ``(n_bars, n_sets, n_symbols)`` uint8: set ``j``'s signals are ``[:, j, :]``.
    size : numpy.ndarray
        ``(1 or n_bars, n_sets, n_symbols)`` float64, the entry sizes.
    modes, directions : numpy.ndarray
        Per set, the broker's size mode (:data:`SIZE_MODES`) and +1 long / -1 short.
    cash, commission_percent, ... fill_on_close
        The account settings, as for :class:`engine._core.broker.Broker`.
    rf_bar : float
        The per-bar risk-free rate (``sortino``'s ``x = r - rf_bar``).
    bench_dy, bench_mean, bench_m2 : optional
        The benchmark's per-bar returns less their mean, their mean and the sum of
        the squared deviations, as ``StreamingMetrics`` computes them; None for no
        benchmark (then ``c_xy`` is 0).

    summary_edges : numpy.ndarray of intp, optional
        The ``n_blocks + 1`` bar edges of the sweep statistics' blocks (from 0 to
        ``n_bars``, as :func:`engine.analysis.stats.block_edges` makes them): also
        return each set's summary of its per-bar returns (:func:`set_summary`).

    Returns
    -------
    stats : numpy.ndarray
        ``(len(STAT_NAMES), n_sets)`` float64 (the rows named by :data:`STAT_NAMES`).
    summaries : numpy.ndarray or None
        With ``summary_edges``, ``(n_sets, 1 + 5 * n_blocks)`` float64: row ``j``
        equals :func:`engine.analysis.stats.set_summaries` of set ``j``'s returns bit
        for bit (NaN for a set whose equity is not finite: it leaves the batch).
    """
    cdef Py_ssize_t n = close.shape[0]
    cdef Py_ssize_t k = close.shape[1]
    cdef Py_ssize_t n_sets = entries.shape[1]
    cdef Py_ssize_t size_rows = size.shape[0]
    cdef Py_ssize_t r, j, s, i, row, t
    cdef Costs c
    cdef Ledger ledger
    cdef Account* acc
    cdef int direction, mode
    cdef double p, amount, held, value
    cdef bint closing, in_market, bad
    cdef const double* last
    if open.shape[0] != n or open.shape[1] != k:
        raise ValueError(f"open has shape ({open.shape[0]}, {open.shape[1]}); expected "
                         f"({n}, {k})")
    for name, arr in (("entries", entries), ("exits", exits)):
        if arr.shape[0] != n or arr.shape[1] != n_sets or arr.shape[2] != k:
            raise ValueError(f"{name} must have shape ({n}, {n_sets}, {k})")
    if (size_rows != 1 and size_rows != n) or size.shape[1] != n_sets or size.shape[2] != k:
        raise ValueError(f"size must have shape (1, {n_sets}, {k}) or ({n}, {n_sets}, {k})")
    if modes.shape[0] != n_sets or directions.shape[0] != n_sets:
        raise ValueError(f"modes and directions need one value per set ({n_sets})")
    if bench_dy is not None and bench_dy.shape[0] != n:
        raise ValueError(f"bench_dy needs {n} values")
    cdef Py_ssize_t n_blocks = -1
    if summary_edges is not None:
        n_blocks = summary_edges.shape[0] - 1
        check_edges(summary_edges, n)
    c.commission_percent = commission_percent
    c.commission_per_share = commission_per_share
    c.commission_fixed = commission_fixed
    c.commission_minimum = commission_minimum
    c.slippage_bps = slippage_bps
    c.slippage_fixed = slippage_fixed
    c.borrow_rate = borrow_rate
    c.periods_per_year = periods_per_year
    c.fractional = fractional
    c.shorting = shorting

    # Sets advance in tiles of TILE columns: the tile's equity (set-major) stays in cache
    # for the statistics computed right after its bars.
    tile_arr = np.empty((min(TILE, max(n_sets, 1)), max(n, 1)))
    stats_arr = np.zeros((N_STATS, n_sets))
    cdef double[:, ::1] equity = tile_arr
    summaries_arr = None if n_blocks < 0 else np.full((n_sets, 1 + 5 * n_blocks), NAN)
    cdef double[:, ::1] summaries = summaries_arr if n_blocks >= 0 else stats_arr
    cdef const Py_ssize_t* edges = &summary_edges[0] if n_blocks >= 0 else NULL
    cdef Py_ssize_t j0, j1
    cdef double[:, ::1] stats = stats_arr
    accounts_arr = np.zeros(n_sets * sizeof(Account), dtype=np.uint8)
    state_arr = np.zeros((5, n_sets * k))        # position, lot qty, price, costs, amount
    lot_dir_arr = np.zeros(n_sets * k, dtype=np.intc)
    lot_row_arr = np.full(n_sets * k, -1, dtype=np.intp)
    pending_arr = np.zeros(n_sets * k, dtype=np.uint8)
    scratch_arr = np.empty((6, max(n, k, 1)))    # r, squares, dx, products, powers, prices
    cdef unsigned char[::1] accounts_bytes = accounts_arr
    cdef double[:, ::1] state = state_arr
    cdef int[::1] lot_dir = lot_dir_arr
    cdef Py_ssize_t[::1] lot_row = lot_row_arr
    cdef unsigned char[::1] pending = pending_arr
    cdef double[:, ::1] scratch = scratch_arr
    cdef Account* accounts = <Account*> &accounts_bytes[0] if n_sets else NULL
    cdef double* pos = &state[0, 0] if n_sets * k else NULL
    cdef double* lot_qty = &state[1, 0] if n_sets * k else NULL
    cdef double* lot_price = &state[2, 0] if n_sets * k else NULL
    cdef double* lot_costs = &state[3, 0] if n_sets * k else NULL
    cdef double* amounts = &state[4, 0] if n_sets * k else NULL
    cdef const double* dy = &bench_dy[0] if bench_dy is not None and n else NULL
    cdef double* rbuf = &scratch[0, 0]
    cdef double* wbuf = &scratch[1, 0]
    cdef double* dxbuf = &scratch[2, 0]
    cdef double* pbuf = &scratch[3, 0]
    cdef double* qbuf = &scratch[4, 0]
    cdef double* tbuf = &scratch[5, 0]
    cdef Py_ssize_t n_lots, count
    cdef double* trade_pnl
    cdef double* trade_buf
    cdef double* trade_ret
    cdef Py_ssize_t* offsets

    if n_sets == 0 or n == 0:
        return stats_arr, summaries_arr
    for j in range(n_sets):
        accounts[j].cash = cash
    ledger.cap = 64
    ledger.n = 0
    ledger.failed = False
    ledger.lots = <Lot*> malloc(ledger.cap * sizeof(Lot))
    if ledger.lots == NULL:
        raise MemoryError()
    try:
        with nogil:
            j0 = 0
            while j0 < n_sets:
                j1 = j0 + TILE if j0 + TILE < n_sets else n_sets
                for r in range(n):
                    last = &close[r - 1, 0] if r > 0 else NULL
                    if not fill_on_close and r > 0:
                        for s in range(k):
                            tbuf[s] = open[r, s] if isfinite(open[r, s]) else close[r, s]
                    row = r if size_rows != 1 else 0
                    # Each set's bar in the broker's order; the sets are independent.
                    for j in range(j0, j1):
                        acc = &accounts[j]
                        if acc.outside:
                            continue
                        if acc.pending_any and not fill_on_close:
                            # Broker.process_bar: the orders placed on the previous bar, at
                            # the open (at the close where the open is missing)
                            acc.pending_any = False
                            fill_pending(&c, acc, &ledger, j, &pending[j * k], &amounts[j * k],
                                         &pos[j * k], &lot_qty[j * k], &lot_price[j * k],
                                         &lot_costs[j * k], &lot_dir[j * k], &lot_row[j * k],
                                         last, k, modes[j], directions[j], tbuf)
                            if acc.outside:
                                continue
                        # run_vector: this bar's signals become orders
                        direction = directions[j]
                        mode = modes[j]
                        for s in range(k):
                            if entries[r, j, s] == 0 and exits[r, j, s] == 0:
                                continue
                            p = pos[j * k + s]
                            closing = False
                            if exits[r, j, s] and p * direction > 0:
                                pending[j * k + s] |= PENDING_CLOSE
                                acc.pending_any = True
                                closing = True
                            if entries[r, j, s] and (p == 0 or closing):
                                amount = size[row, j, s]
                                if isnan(amount):
                                    continue
                                if mode == TARGET_PERCENT:
                                    amount = direction * amount
                                pending[j * k + s] |= PENDING_ENTRY
                                acc.pending_any = True
                                amounts[j * k + s] = amount
                        if fill_on_close and acc.pending_any:
                            # Broker.process_close: at this bar's close
                            acc.pending_any = False
                            fill_pending(&c, acc, &ledger, j, &pending[j * k], &amounts[j * k],
                                         &pos[j * k], &lot_qty[j * k], &lot_price[j * k],
                                         &lot_costs[j * k], &lot_dir[j * k], &lot_row[j * k],
                                         last, k, modes[j], directions[j], &close[r, 0])
                    # Broker.mark: equity at the close, borrow on shorts
                    for j in range(j0, j1):
                        acc = &accounts[j]
                        held = 0.0
                        in_market = False
                        for s in range(k):
                            p = pos[j * k + s]
                            if p != 0:
                                in_market = True
                                if p < 0 and c.borrow_rate > 0:
                                    value = (-p * close[r, s] * c.borrow_rate
                                             / c.periods_per_year)
                                    add_cash(acc, -value)
                                    acc.borrow += value
                                    lot_costs[j * k + s] += value
                                held += p * close[r, s]
                        equity[j - j0, r] = cash_value(acc) + held
                        acc.in_market += in_market
                # the tile's equity statistics (StreamingMetrics.add_bars)
                for j in range(j0, j1):
                    bad = False
                    for r in range(n):
                        if not isfinite(equity[j - j0, r]):
                            bad = True
                    stats[ST_OUTSIDE, j] = bad
                    if not bad:
                        set_statistics(&equity[j - j0, 0], n, cash, rf_bar, dy, bench_mean,
                                       bench_m2, rbuf, wbuf, dxbuf, pbuf, &stats[0, j], n_sets)
                        if n_blocks >= 0:   # from the returns set_statistics left in rbuf
                            set_summary(rbuf, n, edges, n_blocks, wbuf, dxbuf, pbuf, qbuf,
                                        &summaries[j, 0])
                j0 = j1
            if ledger.failed:
                with gil:
                    raise MemoryError()
        # ---------------------------------------------------------------- statistics
        n_lots = ledger.n
        offsets = <Py_ssize_t*> malloc((n_sets + 1) * sizeof(Py_ssize_t))
        trade_pnl = <double*> malloc((n_lots + 1) * sizeof(double))
        trade_ret = <double*> malloc((n_lots + 1) * sizeof(double))
        trade_buf = <double*> malloc((n_lots + 1) * sizeof(double))
        if offsets == NULL or trade_pnl == NULL or trade_ret == NULL or trade_buf == NULL:
            free(offsets)
            free(trade_pnl)
            free(trade_ret)
            free(trade_buf)
            raise MemoryError()
        try:
            with nogil:
                # closed rows of each set, in the ledger's (opening) order
                for j in range(n_sets + 1):
                    offsets[j] = 0
                for t in range(n_lots):
                    if ledger.lots[t].closed:
                        offsets[ledger.lots[t].set_index + 1] += 1
                for j in range(n_sets):
                    offsets[j + 1] += offsets[j]
                for j in range(n_sets):
                    stats[ST_TRADES, j] = offsets[j + 1] - offsets[j]
                for t in range(n_lots):
                    if ledger.lots[t].closed:
                        j = ledger.lots[t].set_index
                        i = offsets[j]
                        trade_pnl[i] = ledger.lots[t].pnl
                        trade_ret[i] = ledger.lots[t].ret
                        offsets[j] += 1
                for j in range(n_sets - 1, -1, -1):
                    offsets[j + 1] = offsets[j]
                offsets[0] = 0
                for j in range(n_sets):
                    acc = &accounts[j]
                    stats[ST_COMMISSIONS, j] = acc.commissions
                    stats[ST_BORROW, j] = acc.borrow
                    stats[ST_REJECTED, j] = acc.rejected
                    stats[ST_IN_MARKET, j] = acc.in_market
                    count = 0
                    for s in range(k):
                        count += pos[j * k + s] != 0
                    stats[ST_OPEN_TRADES, j] = count
                    bad = acc.outside or stats[ST_OUTSIDE, j] != 0
                    trade_statistics(&trade_pnl[offsets[j]], &trade_ret[offsets[j]],
                                     offsets[j + 1] - offsets[j], trade_buf, &stats[0, j],
                                     n_sets)
                    for t in range(offsets[j], offsets[j + 1]):
                        if not (isfinite(trade_pnl[t]) and isfinite(trade_ret[t])):
                            bad = True
                    stats[ST_OUTSIDE, j] = bad
        finally:
            free(offsets)
            free(trade_pnl)
            free(trade_ret)
            free(trade_buf)
    finally:
        free(ledger.lots)
    return stats_arr, summaries_arr


cdef void set_statistics(const double* eq, Py_ssize_t m, double start, double rf_bar,
                         const double* dy, double bench_mean, double bench_m2, double* r,
                         double* w, double* dx, double* prod, double* out,
                         Py_ssize_t stride) noexcept nogil:
    """StreamingMetrics.add_bars on one chunk (the whole curve), from a fresh state.

    The merge formulas are _Moments.add's with the previous count ``a = 0`` and
    previous moments 0, written out in the same order so that the rounding is the same.
    """
    cdef Py_ssize_t i, first, longest, max_duration
    cdef double prev, v, mx, m2x, m3x, m4x, cxy, my, delta_x, delta_y, weight
    cdef double peak, dd, max_dd, max_abs
    cdef double a = 0.0
    cdef double mm = <double> m
    cdef double nn = <double> m
    cdef bint returns_nan = False
    cdef bint was, under
    for i in range(m):
        prev = start if i == 0 else eq[i - 1]
        v = eq[i] / prev - 1.0
        r[i] = v if prev > 0 else NAN
        if isnan(r[i]):
            returns_nan = True
    out[ST_RETURNS_NAN * stride] = returns_nan
    out[ST_LAST * stride] = eq[m - 1]
    if not returns_nan:
        max_abs = fabs(r[0])
        for i in range(1, m):
            if fabs(r[i]) > max_abs:
                max_abs = fabs(r[i])
        out[ST_MAX_ABS_R * stride] = max_abs
        for i in range(m):
            v = fmin(r[i] - rf_bar, 0.0)
            w[i] = v * v
        out[ST_DOWNSIDE * stride] = pairwise_sum(w, m, 1)
        mx = pairwise_sum(r, m, 1) / mm
        for i in range(m):
            dx[i] = r[i] - mx
            w[i] = dx[i] * dx[i]
        m2x = pairwise_sum(w, m, 1)
        for i in range(m):
            prod[i] = w[i] * dx[i]
        m3x = pairwise_sum(prod, m, 1)
        for i in range(m):
            prod[i] = w[i] * w[i]
        m4x = pairwise_sum(prod, m, 1)
        if dy != NULL:
            my = bench_mean
            for i in range(m):
                prod[i] = dx[i] * dy[i]
            cxy = pairwise_sum(prod, m, 1)
        else:
            my = 0.0
            cxy = 0.0
        delta_x = mx - 0.0
        delta_y = my - 0.0
        weight = a * mm / nn
        out[ST_M4_X * stride] = 0.0 + (
            m4x + pow(delta_x, 4.0) * a * mm * (a * a - a * mm + mm * mm) / pow(nn, 3.0)
            + 6 * pow(delta_x, 2.0) * (a * a * m2x + mm * mm * 0.0) / pow(nn, 2.0)
            + 4 * delta_x * (a * m3x - mm * 0.0) / nn)
        out[ST_M3_X * stride] = 0.0 + (
            m3x + pow(delta_x, 3.0) * a * mm * (a - mm) / pow(nn, 2.0)
            + 3 * delta_x * (a * m2x - mm * 0.0) / nn)
        out[ST_M2_X * stride] = 0.0 + (m2x + delta_x * delta_x * weight)
        out[ST_C_XY * stride] = 0.0 + (cxy + delta_x * delta_y * weight)
        out[ST_MEAN_X * stride] = 0.0 + delta_x * mm / nn
    # drawdowns: StreamingMetrics._drawdowns from peak = start, nothing under yet
    peak = start
    max_dd = 0.0
    was = False
    first = -1
    max_duration = 0
    for i in range(m):
        # np.maximum(np.maximum.accumulate(eq), start)
        if not (peak >= eq[i]):
            peak = eq[i]
        dd = 1.0 - eq[i] / peak
        if i == 0 or dd > max_dd:
            max_dd = dd
        under = eq[i] < peak
        if under and not was:
            first = i + 1
        elif was and not under:
            longest = (i + 1) - (first - 1)
            if longest > max_duration:
                max_duration = longest
        was = under
    out[ST_PEAK * stride] = peak
    # Python's max(0.0, dd.max()): 0.0 unless the largest drawdown is above it
    out[ST_MAX_DD * stride] = max_dd if max_dd > 0.0 else 0.0
    out[ST_MAX_DURATION * stride] = max_duration
    out[ST_UNDER_SINCE * stride] = first if was else -1


cdef void trade_statistics(const double* pnl, const double* ret, Py_ssize_t n,
                           double* buf, double* out, Py_ssize_t stride) noexcept nogil:
    """StreamingMetrics.add_trades on a fresh state: the sums are numpy's."""
    cdef Py_ssize_t i, count = 0
    cdef double best, worst
    for i in range(n):
        if pnl[i] > 0:
            buf[count] = pnl[i]
            count += 1
    out[ST_WINS * stride] = count
    out[ST_GROSS_WIN * stride] = pairwise_sum(buf, count, 1)
    count = 0
    for i in range(n):
        if pnl[i] < 0:
            buf[count] = pnl[i]
            count += 1
    out[ST_LOSSES * stride] = count
    out[ST_GROSS_LOSS * stride] = -pairwise_sum(buf, count, 1)
    out[ST_PNL_SUM * stride] = pairwise_sum(pnl, n, 1)
    if n:
        best = ret[0]
        worst = ret[0]
        for i in range(1, n):
            if ret[i] > best:
                best = ret[i]
            if ret[i] < worst:
                worst = ret[i]
        out[ST_BEST * stride] = best
        out[ST_WORST * stride] = worst
    else:
        out[ST_BEST * stride] = NAN
        out[ST_WORST * stride] = NAN


cdef int check_edges(const Py_ssize_t[::1] edges, Py_ssize_t n) except -1:
    cdef Py_ssize_t b
    if edges.shape[0] < 2 or edges[0] != 0 or edges[edges.shape[0] - 1] != n:
        raise ValueError(f"summary_edges must run from 0 to the {n} bars, with at least one "
                         f"block")
    for b in range(edges.shape[0] - 1):
        if edges[b + 1] < edges[b]:
            raise ValueError(f"summary_edges must not decrease; edge {b + 1} is "
                             f"{edges[b + 1]} after {edges[b]}")
    return 0


cdef void set_summary(const double* r, Py_ssize_t m, const Py_ssize_t* edges,
                      Py_ssize_t n_blocks, double* x1, double* x2, double* x3, double* x4,
                      double* out) noexcept nogil:
    """engine.analysis.stats.set_summaries of one set's returns ``r``, bit for bit.

    ``out`` holds ``1 + 5 * n_blocks`` doubles (NaN where set_summaries leaves NaN:
    the blocks, when there are fewer bars than blocks). set_summaries takes a block's
    power sum as a difference of NumPy running sums (``cumsum``, which adds in bar
    order, its first value the first term itself, after a 0 for no bar); so does this.
    The powers are formed in one loop and summed in another: a product never feeds an
    addition in one expression, which a compiler may fuse (FMA) and round once.
    """
    cdef Py_ssize_t i, b, end, count = 0
    cdef double v, sq
    cdef double c1 = 0.0, c2 = 0.0, c3 = 0.0, c4 = 0.0
    cdef double l1, l2, l3, l4
    for i in range(m):
        # np.where(np.isfinite(r), r, 0.0), then x * x, x2 * x and x2 * x2
        if isfinite(r[i]):
            count += 1
            v = r[i]
        else:
            v = 0.0
        sq = v * v
        x1[i] = v
        x2[i] = sq
        x3[i] = sq * v
        x4[i] = sq * sq
    out[0] = <double> count
    if m < n_blocks:
        return
    i = 0
    for b in range(n_blocks):
        out[1 + b] = <double> (edges[b + 1] - edges[b])
        l1 = c1
        l2 = c2
        l3 = c3
        l4 = c4
        end = edges[b + 1]
        if i == 0 and end > 0:
            c1 = x1[0]
            c2 = x2[0]
            c3 = x3[0]
            c4 = x4[0]
            i = 1
        while i < end:
            c1 = c1 + x1[i]
            c2 = c2 + x2[i]
            c3 = c3 + x3[i]
            c4 = c4 + x4[i]
            i += 1
        out[1 + n_blocks + b] = c1 - l1
        out[1 + 2 * n_blocks + b] = c2 - l2
        out[1 + 3 * n_blocks + b] = c3 - l3
        out[1 + 4 * n_blocks + b] = c4 - l4


def returns_summaries(const double[:, ::1] returns, const Py_ssize_t[::1] edges):
    """:func:`set_summary` of each row of ``returns`` (sets × bars), as :func:`simulate`
    computes it (for the test against :func:`engine.analysis.stats.set_summaries`)."""
    cdef Py_ssize_t k = returns.shape[0], m = returns.shape[1], j
    cdef Py_ssize_t n_blocks = edges.shape[0] - 1
    check_edges(edges, m)
    out_arr = np.full((k, 1 + 5 * n_blocks), NAN)
    if m == 0:
        out_arr[:, 0] = 0.0
        return out_arr
    buf_arr = np.empty((4, max(m, 1)))
    cdef double[:, ::1] out = out_arr
    cdef double[:, ::1] buf = buf_arr
    with nogil:
        for j in range(k):
            set_summary(&returns[j, 0], m, &edges[0], n_blocks, &buf[0, 0], &buf[1, 0],
                        &buf[2, 0], &buf[3, 0], &out[j, 0])
    return out_arr
