"""The order simulator: order matching, fills, positions, one cash account and the ledger.

Execution rules (docs/execution.md repeats them for users):

* An order placed while bar ``t`` is processed is matched from bar ``t + 1``.
  A market order fills at that bar's open (at its close when the open is missing),
  or, with ``fill_on_close``, at the close of bar ``t`` itself.
* Limit and stop orders are matched against the bar's range. When the bar opens
  through the price (a gap) the fill is at the open, otherwise at the order price.
  A stop-limit becomes a limit once its stop is touched; touched inside a bar whose
  open did not reach it, it fills at the stop only when the limit allows it, and
  otherwise rests as a limit from the next bar.
* A bar with no close (the symbol did not trade) matches nothing. Missing opens,
  highs or lows are unknown, never invented: the range is bounded by the prices known.
* Two orders of an OCO pair that could both fill on one bar: the stop fills, the
  other is cancelled, and ``same_bar_exits`` counts it (the report says so). If the
  stop is rejected, the other order is matched on its own.
* A bracket (stop-loss and take-profit) protects the part of its parent's fill that
  opened or added to a position (on a flip, the new position only; nothing for a fill
  that only reduced one). Its exits close at most the position held when they fill,
  and are cancelled when it is flat: an exit never opens a position.
* Slippage worsens market and stop fills; a limit never fills worse than its limit.
* A trailing stop is a stop whose price moves after each close (``trail_stops``,
  called by ``mark``): a sell follows the highest high since it started (the bar it
  was placed on, or its parent's fill bar, included), times ``1 - trail_percent`` or
  less ``trail_amount``, and never moves down; a buy mirrors it with the lowest low.
  It is matched as a stop from the next bar. A bracket's stop leg trails when its
  parent carries ``bracket_trail_*``; with a fixed stop too it starts there.
* ``rebalance`` places target-percent market orders for the symbols with a weight,
  valued at the current close, sells first, then buys (see its docstring).
* Orders fill whole unless ``max_volume_share`` caps a fill (the rest carries to a new
  order, see the account/time-in-force block). Orders the account cannot fund, sells that
  would open a short while shorting is off, and sizes that round to zero are
  rejected with a reason; they are never resized.
* Equity is marked at every close; borrow cost on shorts accrues at each close.

The trade ledger is kept in lots, first in, first out (FIFO):

* Every fill that opens or adds to a position opens one lot: a trade row with its
  own entry bar, entry price (the fill's), quantity and entry order.
* A fill that reduces a position closes the symbol's oldest lots first. A lot closed
  whole becomes a closed row. A lot closed in part is split: its row becomes the
  closed part, and the part still held goes on as a new open row (at the end of the
  log, still first in line to close). A fill that flattens the position closes every
  lot; a fill that flips it closes every lot and opens one lot of the rest.
* Every row thus has one entry fill and one exit fill: ``pnl = direction * qty *
  (exit_price - entry_price) - costs``. The exit reason is the tag of the closing
  order; bracket exits and stops close lots FIFO as any other fill does.
* Costs follow quantity. A fill's commission is shared by the rows it touches in
  proportion to their quantities (the lots it closes, the lot it opens on a flip).
  When part of a lot closes, the costs the lot carries so far (its share of its
  entry commission, the borrow it accrued) are split in proportion to quantity
  between the closed part and the part still held. Borrow on a short position,
  charged at each close, is shared by its open lots in proportion to quantity.
* Hence, at every close: sum of the closed rows' ``pnl`` + sum over the open rows of
  ``direction * qty * (last close - entry_price) - costs`` = equity - starting cash.
  ``realised`` is the closed rows' ``pnl`` less the open rows' ``costs``, and
  ``average_prices`` the open lots' mean entry price weighted by quantity.
"""

cimport cython
from libc.math cimport NAN, fabs, floor, isfinite, isnan
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memmove

import numpy as np

cdef extern from *:
    """
    #ifndef ENGINE_DEBUG_BUILD
    #define ENGINE_DEBUG_BUILD 0
    #endif
    """
    const bint ENGINE_DEBUG_BUILD

# True when built with ENGINE_CYTHON_DEBUG=1: every check on (see setup.py).
DEBUG_BUILD = ENGINE_DEBUG_BUILD

KIND_NAMES = ("market", "limit", "stop", "stop_limit")
SIZE_MODE_NAMES = (
    "shares", "cash", "percent_equity", "target_percent", "target_shares", "all_cash"
)
TIF_NAMES = ("gtc", "day")
STATUS_NAMES = ("open", "filled", "cancelled", "rejected", "expired")
TAG_NAMES = ("signal", "stop_loss", "take_profit", "close", "limit", "stop", "user",
             "trailing_stop")

cdef double QTY_EPS = 1e-9


cdef inline double fmax(double a, double b) noexcept nogil:
    return a if a >= b else b


cdef inline double fmin(double a, double b) noexcept nogil:
    return a if a <= b else b


cdef inline int sign_of(double x) noexcept nogil:
    return 1 if x > 0 else (-1 if x < 0 else 0)


cdef class Broker:
    """Simulated broker over a panel of bars with one shared cash account.

    Parameters
    ----------
    open, high, low, close : numpy.ndarray
        ``float64`` arrays of shape ``(n_bars, n_symbols)``, C-contiguous; NaN
        where a symbol has no value. Read-only arrays are accepted.
    cash : float
        Starting cash, > 0.
    commission_percent, commission_per_share, commission_fixed, commission_minimum : float
        Commission per fill = max(minimum, percent * notional + per_share * |qty| + fixed).
    slippage_bps, slippage_fixed : float
        Adverse price adjustment on market and stop fills:
        ``price * (1 + side * bps / 1e4) + side * fixed``.
    borrow_rate : float
        Annual borrow rate on short positions, accrued at each close as
        ``|qty| * close * rate / periods_per_year``.
    periods_per_year : float
        Bars per year, for the borrow accrual.
    fractional : bool
        Allow non-whole quantities.
    shorting : bool
        Allow sells that open or increase a short position.
    fill_on_close : bool
        Market orders fill at the close of the bar they are placed on.
    """

    def __cinit__(self, open, high, low, close, double cash=100000.0, *,
                  double commission_percent=0.0, double commission_per_share=0.0,
                  double commission_fixed=0.0, double commission_minimum=0.0,
                  double slippage_bps=0.0, double slippage_fixed=0.0,
                  double borrow_rate=0.0, double periods_per_year=252.0,
                  bint fractional=False, bint shorting=False, bint fill_on_close=False,
                  double leverage=1.0, double maintenance_margin=0.25,
                  double margin_rate=0.0, volume=None, double max_volume_share=NAN):
        self.orders = NULL
        self.active = NULL
        self.trades = NULL
        self.new_fills = NULL
        if not (isfinite(cash) and cash > 0):
            raise ValueError(f"cash must be a positive number; got {cash!r}")
        for name, value in (
            ("commission_percent", commission_percent),
            ("commission_per_share", commission_per_share),
            ("commission_fixed", commission_fixed),
            ("commission_minimum", commission_minimum),
            ("slippage_bps", slippage_bps),
            ("slippage_fixed", slippage_fixed),
            ("borrow_rate", borrow_rate),
        ):
            if not (isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        if not (isfinite(periods_per_year) and periods_per_year > 0):
            raise ValueError(f"periods_per_year must be > 0; got {periods_per_year!r}")
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.n_bars = self.close.shape[0]
        self.n_symbols = self.close.shape[1]
        for name, arr in (("open", self.open), ("high", self.high), ("low", self.low)):
            if arr.shape[0] != self.n_bars or arr.shape[1] != self.n_symbols:
                raise ValueError(
                    f"{name} has shape ({arr.shape[0]}, {arr.shape[1]}) but close has "
                    f"({self.n_bars}, {self.n_symbols}); all fields must share one shape"
                )
        self.starting_cash = cash
        self._cash = cash
        self._cash_carry = 0.0
        self.commission_percent = commission_percent
        self.commission_per_share = commission_per_share
        self.commission_fixed = commission_fixed
        self.commission_minimum = commission_minimum
        self.slippage_bps = slippage_bps
        self.slippage_fixed = slippage_fixed
        self.borrow_rate = borrow_rate
        self.periods_per_year = periods_per_year
        self.fractional = fractional
        self.shorting = shorting
        self.fill_on_close = fill_on_close
        self.position = np.zeros(self.n_symbols)
        self.last_price = np.full(self.n_symbols, np.nan)
        self.lot_head = np.full(self.n_symbols, -1, dtype=np.intp)
        self.lot_tail = np.full(self.n_symbols, -1, dtype=np.intp)
        self.equity_out = np.full(self.n_bars, np.nan)
        self.cash_out = np.full(self.n_bars, np.nan)
        self.exposure_out = np.zeros(self.n_bars, dtype=np.uint8)
        self.bar = -1
        self.base = 0
        self.reasons = {}
        self.user_tags = {}
        self.exit_tags = {}
        self.cap_orders = 64
        self.cap_active = 64
        self.cap_trades = 64
        self.orders = <Order*> malloc(self.cap_orders * sizeof(Order))
        self.active = <Py_ssize_t*> malloc(self.cap_active * sizeof(Py_ssize_t))
        self.trades = <Trade*> malloc(self.cap_trades * sizeof(Trade))
        self.new_fills = <Py_ssize_t*> malloc(self.cap_orders * sizeof(Py_ssize_t))
        if not (self.orders and self.active and self.trades and self.new_fills):
            raise MemoryError()
        self.init_account(leverage, maintenance_margin, margin_rate, volume, max_volume_share)

    def __dealloc__(self):
        free(self.orders)
        free(self.active)
        free(self.trades)
        free(self.new_fills)

    # ------------------------------------------------------------------ ledger

    cdef inline double cash_value(self) noexcept nogil:
        return self._cash + self._cash_carry

    # ------------------------------------------------------------------ storage access

    cdef inline Order* order(self, Py_ssize_t oid) noexcept nogil:
        # The one way to reach an order: ids are global, the array starts at order_base.
        return &self.orders[oid - self.order_base]

    cdef inline Trade* trade(self, Py_ssize_t tid) noexcept nogil:
        return &self.trades[tid - self.trade_base]

    cdef inline bint is_open(self, Py_ssize_t oid) noexcept nogil:
        # A drained order is finished by construction (only finished ones are drained).
        return oid >= self.order_base and self.order(oid).status == OPEN

    # No None check on `self` (under nonecheck it would need the GIL, refused in a
    # nogil method): a method's self is never None, the call goes through its vtable.
    @cython.nonecheck(False)
    cdef void add_cash(self, double amount) noexcept nogil:
        # Neumaier summation: thousands of fills must not make cash drift.
        cdef double total = self._cash + amount
        if fabs(self._cash) >= fabs(amount):
            self._cash_carry += (self._cash - total) + amount
        else:
            self._cash_carry += (amount - total) + self._cash
        self._cash = total

    cdef double commission_for(self, double qty, double price) noexcept nogil:
        cdef double q = fabs(qty)
        if q == 0:
            return 0.0
        return fmax(
            self.commission_minimum,
            self.commission_percent * q * price
            + self.commission_per_share * q
            + self.commission_fixed,
        )

    cdef double slipped(self, double price, int side) noexcept nogil:
        return price * (1.0 + side * self.slippage_bps * 1e-4) + side * self.slippage_fixed

    cdef double equity_at(self, Py_ssize_t symbol, double price) noexcept nogil:
        # Positions at `price` for `symbol`, else at their last close; one not marked
        # yet (opened on its symbol's first bar, before that bar's close was marked)
        # at its cost, the open lots' mean entry price.
        cdef double value = self.cash_value()
        cdef double mark
        cdef Py_ssize_t s
        for s in range(self.n_symbols):
            if self.position[s] != 0:
                mark = price if s == symbol else self.last_price[s]
                if isnan(mark):
                    mark = self.average_entry(s)
                value += self.position[s] * mark
        return value

    cdef double average_entry(self, Py_ssize_t s) noexcept nogil:
        """The open lots' mean entry price, weighted by quantity (0 when flat)."""
        cdef double qty = 0.0
        cdef double value = 0.0
        cdef Py_ssize_t t = self.lot_head[s]
        while t >= 0:
            qty += self.trade(t).qty
            value += self.trade(t).qty * self.trade(t).entry_price
            t = self.trade(t).next_lot
        return value / qty if qty > 0 else 0.0

    # ------------------------------------------------------------------ storage

    cdef Py_ssize_t new_order(self) except -1:
        cdef Order* grown
        cdef Py_ssize_t* grown_fills
        if self.n_orders - self.order_base == self.cap_orders:
            grown = <Order*> realloc(self.orders, 2 * self.cap_orders * sizeof(Order))
            if grown == NULL:
                raise MemoryError()
            self.orders = grown
            grown_fills = <Py_ssize_t*> realloc(
                self.new_fills, 2 * self.cap_orders * sizeof(Py_ssize_t)
            )
            if grown_fills == NULL:
                raise MemoryError()
            self.new_fills = grown_fills
            self.cap_orders *= 2
        self.n_orders += 1
        return self.n_orders - 1

    cdef int push_active(self, Py_ssize_t oid) except -1:
        cdef Py_ssize_t* grown
        if self.n_active == self.cap_active:
            grown = <Py_ssize_t*> realloc(self.active, 2 * self.cap_active * sizeof(Py_ssize_t))
            if grown == NULL:
                raise MemoryError()
            self.active = grown
            self.cap_active *= 2
        self.active[self.n_active] = oid
        self.n_active += 1
        return 0

    cdef Py_ssize_t new_trade(self, Py_ssize_t symbol, Py_ssize_t bar, int direction) except -1:
        cdef Trade* grown
        cdef Trade* t
        if self.n_trades - self.trade_base == self.cap_trades:
            grown = <Trade*> realloc(self.trades, 2 * self.cap_trades * sizeof(Trade))
            if grown == NULL:
                raise MemoryError()
            self.trades = grown
            self.cap_trades *= 2
        t = self.trade(self.n_trades)
        t.symbol = symbol
        t.entry_bar = bar
        t.exit_bar = -1
        t.direction = direction
        t.exit_tag = -1
        t.entry_order = -1
        t.exit_order = -1
        t.next_lot = -1
        t.stop_and_target_same_bar = False
        t.qty = 0.0
        t.entry_price = 0.0
        t.exit_price = NAN
        t.pnl = 0.0
        t.costs = 0.0
        self.n_trades += 1
        return self.n_trades - 1

    # ------------------------------------------------------------------ orders

    cdef Py_ssize_t place(self, Py_ssize_t symbol, int side, int kind, int size_mode,
                          double size, double limit, double stop, int tif,
                          double stop_loss, double take_profit, bint bracket_relative,
                          int tag, Py_ssize_t oco, Py_ssize_t parent, bint on_close,
                          Py_ssize_t active_bar) except -1:
        cdef Py_ssize_t oid = self.new_order()
        cdef Order* o = self.order(oid)
        o.id = oid
        o.symbol = symbol
        o.side = side
        o.kind = kind
        o.size_mode = size_mode
        o.tif = tif
        o.status = OPEN
        o.tag = tag
        o.triggered = False
        o.triggered_bar = -1
        o.on_close = on_close
        o.bracket_relative = bracket_relative
        o.size = size
        o.limit = limit
        o.stop = stop
        o.stop_loss = stop_loss
        o.take_profit = take_profit
        o.oco = oco
        o.parent = parent
        o.placed_bar = self.bar
        o.active_bar = active_bar
        o.done_bar = -1
        o.fill_price = NAN
        o.fill_qty = 0.0
        o.commission = 0.0
        # trailing
        o.trail_percent = NAN
        o.trail_amount = NAN
        o.trail_extreme = NAN
        o.bracket_trail_percent = NAN
        o.bracket_trail_amount = NAN
        o.expire_bar = -1
        o.continues = -1
        self.push_active(oid)
        return oid

    cpdef Py_ssize_t submit(self, Py_ssize_t symbol, int side, int kind, int size_mode,
                            double size, double limit=NAN, double stop=NAN, int tif=GTC,
                            double stop_loss=NAN, double take_profit=NAN,
                            bint bracket_relative=False, object tag=None,
                            Py_ssize_t oco=-1):
        """Place an order on the current bar and return its id.

        The caller (the strategy API) has validated the arguments; the core only
        guards its memory. The order is matched from the next bar, or at this
        bar's close for a market order when ``fill_on_close`` is set.
        """
        cdef int tag_code
        cdef bint on_close
        cdef Py_ssize_t oid
        if symbol < 0 or symbol >= self.n_symbols:
            raise IndexError(f"symbol index {symbol} is outside [0, {self.n_symbols})")
        if oco >= self.n_orders:
            raise IndexError(f"oco order id {oco} does not exist")
        if tag is None:
            tag_code = TAG_LIMIT if kind == LIMIT else (
                TAG_STOP if kind in (STOP, STOP_LIMIT) else TAG_SIGNAL
            )
            if size_mode == TARGET_SHARES and size == 0:
                tag_code = TAG_CLOSE
        elif isinstance(tag, int):
            # A code indexes TAG_NAMES unchecked later (tag_name): out of range it read
            # past the tuple (a crash or a stray object as the tag).
            if tag < 0 or tag >= len(TAG_NAMES):
                raise ValueError(f"tag code {tag} is outside [0, {len(TAG_NAMES)}); "
                                 f"name a tag with a string")
            tag_code = tag
        else:
            tag_code = TAG_USER
        on_close = self.fill_on_close and kind == MARKET and self.bar >= 0
        oid = self.place(symbol, side, kind, size_mode, size, limit, stop, tif,
                         stop_loss, take_profit, bracket_relative, tag_code, oco, -1,
                         on_close, self.bar if on_close else self.bar + 1)
        if tag_code == TAG_USER:
            self.user_tags[oid] = str(tag)
        if oco >= self.order_base and self.order(oco).oco < 0:
            self.order(oco).oco = oid
        return oid

    cpdef bint cancel(self, Py_ssize_t order_id):
        """Cancel an open order; return False when it was no longer open."""
        if order_id < 0 or order_id >= self.n_orders:
            raise IndexError(f"order id {order_id} does not exist")
        if not self.is_open(order_id):
            return False
        self.finish(self.order(order_id), CANCELLED, "cancelled by the strategy")
        return True

    cdef int finish(self, Order* o, int status, str reason) except -1:
        o.status = status
        o.done_bar = self.bar
        if reason is not None:
            self.reasons[o.id] = reason
        return 0

    cdef double match_price(self, Order* o, Py_ssize_t i, bint* slip) noexcept:
        """Raw fill price of ``o`` on bar ``i`` (NaN when it does not fill)."""
        cdef Py_ssize_t s = o.symbol
        cdef Py_ssize_t row = i - self.base
        cdef double c = self.close[row, s]
        cdef double op = self.open[row, s]
        cdef double hi = self.high[row, s]
        cdef double lo = self.low[row, s]
        cdef bint has_open = isfinite(op)
        cdef int side = o.side
        cdef int kind = o.kind
        slip[0] = False
        if isnan(c):
            return NAN
        if isnan(hi):
            hi = fmax(op, c) if has_open else c
        if isnan(lo):
            lo = fmin(op, c) if has_open else c
        if kind == MARKET:
            slip[0] = True
            if o.on_close or not has_open:
                return c
            return op
        # The trigger is re-evaluated on the bar it happened on, so that matching an
        # order twice on one bar (as an OCO peer, then in turn) gives the same answer:
        # a stop touched inside bar i makes a limit from bar i + 1, not on bar i.
        # Without an open, a bar whose whole range lies past the order's price gapped
        # through it at an unknown first price: the order fills at the close, the one
        # price known to have traded, as a market order does on such a bar.
        if kind == STOP_LIMIT and (not o.triggered or o.triggered_bar == i):
            if side > 0:
                if op >= o.stop if has_open else lo > o.stop:
                    o.triggered = True
                    o.triggered_bar = i
                elif hi >= o.stop:
                    o.triggered = True
                    o.triggered_bar = i
                    return o.stop if o.limit >= o.stop else NAN
                else:
                    return NAN
            else:
                if op <= o.stop if has_open else hi < o.stop:
                    o.triggered = True
                    o.triggered_bar = i
                elif lo <= o.stop:
                    o.triggered = True
                    o.triggered_bar = i
                    return o.stop if o.limit <= o.stop else NAN
                else:
                    return NAN
        if kind == LIMIT or kind == STOP_LIMIT:
            if side > 0:
                if op <= o.limit if has_open else hi < o.limit:
                    slip[0] = True
                    return op if has_open else c
                return o.limit if lo <= o.limit else NAN
            if op >= o.limit if has_open else lo > o.limit:
                slip[0] = True
                return op if has_open else c
            return o.limit if hi >= o.limit else NAN
        # STOP
        slip[0] = True
        if side > 0:
            if op >= o.stop if has_open else lo > o.stop:
                return op if has_open else c
            return o.stop if hi >= o.stop else NAN
        if op <= o.stop if has_open else hi < o.stop:
            return op if has_open else c
        return o.stop if lo <= o.stop else NAN

    cdef double affordable(self, double budget, double price):
        """Largest quantity whose cost plus commission fits in ``budget``."""
        cdef double unit = price * (1.0 + self.commission_percent) + self.commission_per_share
        cdef double qty
        cdef int tries = 0
        if budget <= 0 or price <= 0:
            return 0.0
        qty = (budget - self.commission_fixed) / unit
        if (self.commission_minimum > 0
                and self.commission_for(qty, price) <= self.commission_minimum):
            qty = (budget - self.commission_minimum) / price
        if qty <= 0:
            return 0.0
        if self.fractional:
            return qty
        qty = floor(qty)
        while qty > 0 and qty * price + self.commission_for(qty, price) > budget and tries < 8:
            qty -= 1.0
            tries += 1
        return qty

    cdef double whole(self, double qty) noexcept:
        # Toward zero: a target is approached, never overshot.
        if self.fractional:
            return qty
        return floor(qty) if qty >= 0 else -floor(-qty)

    cdef double resolve_qty(self, Order* o, double price):
        """Signed quantity of ``o`` if it filled at ``price`` now."""
        cdef Py_ssize_t s = o.symbol
        cdef double pos = self.position[s]
        cdef double budget, target
        cdef double unit = price * (1.0 + self.commission_percent) + self.commission_per_share
        cdef int mode = o.size_mode
        if mode == SHARES:
            if o.parent >= 0:
                # a bracket exit closes at most the position it protects
                return o.side * fmin(o.size, fabs(pos))
            return o.size * o.side
        if mode == TARGET_SHARES:
            return o.size - pos
        if mode == TARGET_PERCENT:
            target = o.size * self.equity_at(s, price)
            return self.whole(target / unit) - pos
        if mode == ALL_CASH:
            budget = self.cash_value()
        elif mode == CASH:
            budget = o.size
        else:  # PERCENT_EQUITY
            budget = o.size * self.equity_at(s, price)
        if o.side > 0:
            return self.affordable(budget, price)
        return -self.whole(budget / price)

    cdef int execute(self, Py_ssize_t oid, double raw, bint slip, Py_ssize_t i) except -1:
        cdef Order* o = self.order(oid)
        cdef Py_ssize_t s = o.symbol
        cdef int side = o.side
        cdef double qty, price, commission, cash_after, pos, opened, wanted
        if o.parent >= 0 and not (self.position[s] * side < 0):
            # a bracket exit never opens or adds to a position
            self.finish(o, CANCELLED, "position closed")
            return 0
        if o.size_mode == TARGET_SHARES or o.size_mode == TARGET_PERCENT:
            qty = self.resolve_qty(o, raw)
            if qty == 0:
                self.finish(o, CANCELLED, "the position is already at its target")
                return 0
            side = sign_of(qty)
            o.side = side
        price = self.slipped(raw, side) if slip else raw
        if o.kind == LIMIT or (o.kind == STOP_LIMIT and o.triggered):
            price = fmin(price, o.limit) if side > 0 else fmax(price, o.limit)
        if not (isfinite(price) and price > 0):
            self.finish(o, REJECTED, f"fill price {price:.6g} is not a positive number "
                                     f"(slippage larger than the price?)")
            return 0
        qty = self.resolve_qty(o, price)
        if qty == 0 or sign_of(qty) != side:
            self.finish(o, REJECTED,
                        f"size rounds to zero at price {price:.6g} "
                        f"({SIZE_MODE_NAMES[o.size_mode]} {o.size:.6g}, cash "
                        f"{self.cash_value():.2f}); use a larger size or fractional=True")
            return 0
        pos = self.position[s]
        if qty < 0 and pos + qty < -QTY_EPS * fabs(qty) and not self.shorting:
            self.finish(o, REJECTED,
                        f"short selling is off: selling {-qty:g} with a position of {pos:g} "
                        f"would open a short; enable shorting (shorting=True, --shorting) "
                        f"or sell at most the position")
            return 0
        wanted = qty
        if isfinite(self.max_volume_share):     # account/time-in-force
            qty = self.volume_capped(o, qty, i)
            if qty == 0:
                return 0
        commission = self.commission_for(qty, price)
        cash_after = self.cash_value() - qty * price - commission
        if self.margin_account:                 # account/time-in-force
            if self.beyond_margin(o, qty, price, commission):
                return 0
        elif cash_after < -1e-9 * fmax(1.0, fabs(self.cash_value())):
            self.finish(o, REJECTED,
                        f"insufficient cash: {qty:g} at {price:.6g} plus commission "
                        f"{commission:.2f} costs {qty * price + commission:.2f}, cash is "
                        f"{self.cash_value():.2f}")
            return 0
        # the part of the fill that opened or added to a position: what a bracket protects
        opened = fabs(qty) if pos * qty >= 0 else fmax(0.0, fabs(qty) - fabs(pos))
        self.apply_fill(o, qty, price, commission, i)
        o.fill_price = price
        o.fill_qty = qty
        o.commission = commission
        self.finish(o, FILLED, None)
        self.new_fills[self.n_new_fills] = oid
        self.n_new_fills += 1
        if fabs(qty) < fabs(wanted) * (1.0 - QTY_EPS):     # account/time-in-force
            self.carry_rest(oid, wanted - qty, wanted, i)
            o = self.order(oid)         # carry_rest may move the order array
        if o.oco >= 0 and self.is_open(o.oco):
            self.finish(self.order(o.oco), CANCELLED, f"OCO: order {oid} filled")
        if isfinite(o.stop_loss) or isfinite(o.take_profit) or (
                isfinite(o.bracket_trail_percent) or isfinite(o.bracket_trail_amount)):
            if opened <= QTY_EPS * fabs(qty):
                self.reasons[oid] = "filled; no bracket attached: the fill opened no position"
            else:
                # children fill on this bar too only if the parent filled at its open
                self.spawn_bracket(o, opened, i,
                                   slip and not o.on_close and price_at_open(self, o, i, raw))
        return 0

    cdef int apply_fill(self, Order* o, double qty, double price, double commission,
                        Py_ssize_t i) except -1:
        # The trade ledger (FIFO lots; the module docstring states its rules):
        # a fill that opens or adds to a position opens one lot; a fill that reduces
        # it closes the oldest lots first. Its commission is shared by quantity between
        # the lots it closes and the lot it opens (a flip).
        cdef Py_ssize_t s = o.symbol
        cdef double pos = self.position[s]
        cdef double new_pos = pos + qty
        cdef double size = fabs(qty)
        cdef double closing, remaining
        cdef bint everything
        self.add_cash(-qty * price - commission)
        self.realised -= commission
        self.commissions_paid += commission
        if pos == 0 or sign_of(pos) == sign_of(qty):
            self.open_lot(o, size, price, commission, i)
            self.position[s] = new_pos
            return 0
        # reducing, closing or flipping
        closing = fmin(size, fabs(pos))
        remaining = size - closing
        if fabs(new_pos) <= QTY_EPS * fmax(fabs(pos), size):
            new_pos = 0.0
        everything = new_pos == 0.0 or remaining > 0
        self.close_lots(o, closing, price, commission, size, everything, i)
        if everything:
            self.cancel_children(s, o.id)
        if remaining > 0 and new_pos != 0.0:
            self.open_lot(o, remaining, price, commission * (remaining / size), i)
        self.position[s] = new_pos
        return 0

    cdef int open_lot(self, Order* o, double qty, double price, double costs,
                      Py_ssize_t i) except -1:
        """Append a lot of ``qty`` (> 0) bought (sold, for a short) at ``price`` by ``o``."""
        cdef Py_ssize_t s = o.symbol
        cdef Py_ssize_t t = self.new_trade(s, i, o.side)
        cdef Trade* tr = self.trade(t)
        tr.entry_order = o.id
        tr.qty = qty
        tr.entry_price = price
        tr.costs = costs
        tr.pnl = -costs
        if self.lot_head[s] < 0:
            self.lot_head[s] = t
        else:
            self.trade(self.lot_tail[s]).next_lot = t
        self.lot_tail[s] = t
        return 0

    cdef int close_lots(self, Order* o, double qty, double price, double commission,
                        double filled, bint everything, Py_ssize_t i) except -1:
        """Close ``qty`` of the symbol's lots, oldest first, at ``price`` for ``o``.

        ``commission`` is the fill's, for ``filled`` units: each closed row is charged
        ``commission * row qty / filled``. With ``everything`` (the position is flat
        or flipped) every open lot closes whole. A lot closed in part is split: the
        row keeps the part closed, with its share of the lot's costs by quantity, and
        the part still held becomes a new open row at the end of the log, first in
        the symbol's queue.
        """
        cdef Py_ssize_t s = o.symbol
        cdef Py_ssize_t t, r
        cdef double left = qty
        cdef double lot, share
        cdef Trade* tr
        cdef Trade* rest
        while self.lot_head[s] >= 0:
            t = self.lot_head[s]
            lot = self.trade(t).qty
            if everything or lot - left <= QTY_EPS * fmax(lot, left):
                self.lot_head[s] = self.trade(t).next_lot
                self.close_row(t, o, price, commission * (lot / filled), i)
                left -= lot
                if not everything and left <= QTY_EPS * qty:
                    break
                continue
            # part of the lot: the rest goes on as a new row, still first in line
            r = self.new_trade(s, self.trade(t).entry_bar, self.trade(t).direction)
            tr = self.trade(t)      # new_trade may move the array
            rest = self.trade(r)
            share = tr.costs * (left / lot)
            rest.entry_order = tr.entry_order
            rest.next_lot = tr.next_lot
            rest.qty = lot - left
            rest.entry_price = tr.entry_price
            rest.costs = tr.costs - share
            rest.pnl = -rest.costs
            tr.qty = left
            tr.costs = share
            self.lot_head[s] = r
            if self.lot_tail[s] == t:
                self.lot_tail[s] = r
            self.close_row(t, o, price, commission * (left / filled), i)
            break
        if self.lot_head[s] < 0:
            self.lot_tail[s] = -1
        return 0

    cdef int close_row(self, Py_ssize_t t, Order* o, double price, double exit_costs,
                       Py_ssize_t i) except -1:
        """Close the whole of row ``t`` at ``price`` by ``o``, adding ``exit_costs``."""
        cdef Trade* tr = self.trade(t)
        cdef double gain = tr.direction * tr.qty * (price - tr.entry_price)
        self.realised += gain
        tr.costs += exit_costs
        tr.pnl = gain - tr.costs
        tr.exit_bar = i
        tr.exit_price = price
        tr.exit_tag = o.tag
        tr.exit_order = o.id
        tr.next_lot = -1
        tr.stop_and_target_same_bar = self.same_bar_fill
        if o.tag == TAG_USER:
            # kept with the trade: its exit order may be drained before it is
            self.exit_tags[t] = self.tag_name(o)
        return 0

    cdef int cancel_children(self, Py_ssize_t symbol, Py_ssize_t filled) except -1:
        # Bracket exits of a position that is now flat have nothing left to protect.
        cdef Py_ssize_t j, oid
        cdef Order* o
        for j in range(self.n_active):
            oid = self.active[j]
            o = self.order(oid)
            if oid != filled and o.status == OPEN and o.parent >= 0 and o.symbol == symbol:
                self.finish(o, CANCELLED, "position closed")
        return 0

    cdef int spawn_bracket(self, Order* parent, double qty, Py_ssize_t i,
                           bint same_bar) except -1:
        # qty: the part of the parent's fill that opened or added to the position
        cdef int direction = sign_of(parent.fill_qty)
        cdef double sl = parent.stop_loss
        cdef double tp = parent.take_profit
        cdef Py_ssize_t pid = parent.id
        cdef Py_ssize_t sym = parent.symbol
        cdef Py_ssize_t sl_id = -1
        cdef Py_ssize_t tp_id = -1
        cdef Py_ssize_t start = i if same_bar else i + 1
        # trailing
        cdef double trail_pct = parent.bracket_trail_percent
        cdef double trail_amt = parent.bracket_trail_amount
        cdef bint trails = isfinite(trail_pct) or isfinite(trail_amt)
        if parent.bracket_relative:
            if isfinite(sl):
                sl = parent.fill_price * (1.0 - direction * sl)
            if isfinite(tp):
                tp = parent.fill_price * (1.0 + direction * tp)
        # `parent` may dangle after place() grows the order array: copied above.
        if isfinite(sl):
            sl_id = self.place(sym, -direction, STOP, SHARES, qty, NAN, sl, GTC, NAN, NAN,
                               False, TAG_STOP_LOSS, -1, pid, False, start)
        # trailing: the stop leg trails (from the fixed stop, if any, upwards for a long)
        if trails:
            if sl_id < 0:
                sl_id = self.place(sym, -direction, STOP, SHARES, qty, NAN, NAN, GTC, NAN,
                                   NAN, False, TAG_TRAILING_STOP, -1, pid, False, i + 1)
            self.order(sl_id).trail_percent = trail_pct
            self.order(sl_id).trail_amount = trail_amt
            self.n_trailing += 1
        if isfinite(tp):
            tp_id = self.place(sym, -direction, LIMIT, SHARES, qty, tp, NAN, GTC, NAN, NAN,
                               False, TAG_TAKE_PROFIT, sl_id, pid, False, start)
        if sl_id >= 0 and tp_id >= 0:
            self.order(sl_id).oco = tp_id
        return 0

    # ------------------------------------------------------------------ the bar cycle

    cdef int process_bar(self, Py_ssize_t i) except -1:
        """Match every open order due on bar ``i`` (the bar's open and range)."""
        cdef Py_ssize_t j = 0
        cdef Py_ssize_t keep = 0
        cdef Py_ssize_t oid, peer_id
        cdef Order* o
        cdef Order* peer
        cdef double raw, peer_raw
        cdef bint slip, peer_slip, peer_is_stop
        self.bar = i
        self.n_new_fills = 0
        if self.calls_pending:          # account/time-in-force: before any other order
            self.liquidate(i)
        while j < self.n_active:
            oid = self.active[j]
            j += 1
            o = self.order(oid)
            if o.status != OPEN:
                continue
            if o.expire_bar >= 0 and self.expired(o, i):   # account/time-in-force
                continue
            if o.active_bar > i or o.on_close:
                self.active[keep] = oid
                keep += 1
                continue
            raw = self.match_price(o, i, &slip)
            if isnan(raw):
                if o.tif == DAY and not isnan(self.close[i - self.base, o.symbol]):
                    self.finish(o, EXPIRED, "day order not filled on its bar")
                else:
                    self.active[keep] = oid
                    keep += 1
                continue
            peer_id = o.oco
            if peer_id >= 0 and self.is_open(peer_id):
                peer = self.order(peer_id)
                if peer.active_bar <= i and not peer.on_close:
                    peer_raw = self.match_price(peer, i, &peer_slip)
                    if not isnan(peer_raw):
                        # Both legs touched in one bar: the order of prices inside the
                        # bar is unknown, so assume the worse outcome, the stop.
                        peer_is_stop = peer.kind == STOP or peer.kind == STOP_LIMIT
                        # (same_bar_fill flags the trade rows the fill closes)
                        self.same_bar_fill = True
                        if peer_is_stop and not (o.kind == STOP or o.kind == STOP_LIMIT):
                            self.execute(peer_id, peer_raw, peer_slip, i)
                            self.same_bar_fill = False
                            if self.order(peer_id).status == FILLED:
                                self.same_bar_exits += 1
                                continue
                            # the stop did not fill (rejected): this leg is matched alone
                        else:
                            self.execute(oid, raw, slip, i)
                            self.same_bar_fill = False
                            if self.order(oid).status == FILLED:
                                self.same_bar_exits += 1
                            continue
            self.execute(oid, raw, slip, i)
            if self.order(oid).status == OPEN:  # account/time-in-force: no volume yet
                self.active[keep] = oid
                keep += 1
        self.n_active = keep
        return 0

    cdef int process_close(self, Py_ssize_t i) except -1:
        """Fill the market-on-close orders placed on bar ``i``."""
        cdef Py_ssize_t j, oid
        cdef Order* o
        cdef bint slip
        cdef double raw
        for j in range(self.n_active):
            oid = self.active[j]
            o = self.order(oid)
            if o.status == OPEN and o.on_close and o.active_bar <= i:
                raw = self.match_price(o, i, &slip)
                if not isnan(raw):
                    self.execute(oid, raw, slip, i)
        return 0

    cdef int mark(self, Py_ssize_t i) except -1:
        """Mark equity at the close of bar ``i`` and accrue borrow on shorts."""
        cdef Py_ssize_t s
        cdef double c, qty
        cdef double held = 0.0
        cdef bint in_market = False
        cdef Py_ssize_t row = i - self.base
        if self.n_trailing:
            self.trail_stops(i)
        for s in range(self.n_symbols):
            c = self.close[row, s]
            if not isnan(c):
                self.last_price[s] = c
            qty = self.position[s]
            if qty != 0:
                in_market = True
                if qty < 0 and self.borrow_rate > 0:
                    self.charge_borrow(s, qty)
                held += qty * self.last_price[s]
        if self.margin_account:                               # account/time-in-force
            if self.margin_rate > 0 and self.cash_value() < 0:
                self.charge_margin_interest()
        self.equity_out[row] = self.cash_value() + held
        self.cash_out[row] = self.cash_value()
        self.exposure_out[row] = in_market
        if self.margin_account and in_market:                 # account/time-in-force
            self.check_maintenance(i)
        return 0

    # No None check on `self` (see add_cash): it writes its attributes without the GIL.
    @cython.nonecheck(False)
    cdef void charge_borrow(self, Py_ssize_t s, double qty) noexcept nogil:
        """Charge one close's borrow on the short ``qty`` (< 0) of symbol ``s``.

        The cost is shared by the open lots in proportion to their quantities (the
        last lot takes the rest, so that the lots carry the whole cost).
        """
        cdef double cost = -qty * self.last_price[s] * self.borrow_rate / self.periods_per_year
        cdef double rest = cost
        cdef double part
        cdef Py_ssize_t t = self.lot_head[s]
        cdef Trade* tr
        self.add_cash(-cost)
        self.realised -= cost
        self.borrow_paid += cost
        while t >= 0:
            tr = self.trade(t)
            part = rest if tr.next_lot < 0 else cost * (tr.qty / -qty)
            tr.costs += part
            tr.pnl -= part
            rest -= part
            t = tr.next_lot

    # ------------------------------------------------------------------ Python face

    cpdef double get_position(self, Py_ssize_t symbol):
        """Signed quantity held in ``symbol`` (an index)."""
        return self.position[symbol]

    @property
    def cash(self):
        """Cash now, including the compensation term."""
        return self.cash_value()

    @property
    def equity(self):
        """Cash plus positions marked at their last known close."""
        cdef Py_ssize_t s
        cdef double value = self.cash_value()
        for s in range(self.n_symbols):
            if self.position[s] != 0:
                value += self.position[s] * self.last_price[s]
        return value

    @property
    def positions(self):
        return np.asarray(self.position).copy()

    @property
    def average_prices(self):
        """Per symbol, the mean entry price of the open lots weighted by their
        quantity (0 when flat): what the unrealised P&L is measured from, so that
        ``starting_cash + realised + sum(position * (last - average)) = equity``."""
        cdef Py_ssize_t s
        out = np.zeros(self.n_symbols)
        for s in range(self.n_symbols):
            out[s] = self.average_entry(s)
        return out

    @property
    def last_prices(self):
        return np.asarray(self.last_price).copy()

    @property
    def equity_curve(self):
        return np.asarray(self.equity_out)

    @property
    def cash_curve(self):
        return np.asarray(self.cash_out)

    @property
    def exposure(self):
        return np.asarray(self.exposure_out).astype(bool)

    @property
    def new_fill_ids(self):
        """Ids of the orders filled on the current bar so far."""
        return [self.new_fills[j] for j in range(self.n_new_fills)]

    def order_info(self, Py_ssize_t order_id):
        """One order as a dict (for ``on_fill`` and inspection)."""
        if order_id < 0 or order_id >= self.n_orders:
            raise IndexError(f"order id {order_id} does not exist")
        if order_id < self.order_base:
            raise IndexError(f"order id {order_id} was drained (finished and handed out by "
                             f"drain_orders); read it from the drained tables")
        cdef Order* o = self.order(order_id)
        return {
            "id": o.id, "symbol": o.symbol, "side": o.side, "kind": KIND_NAMES[o.kind],
            "status": STATUS_NAMES[o.status], "fill_price": o.fill_price,
            "fill_qty": o.fill_qty, "commission": o.commission, "tag": self.tag_name(o),
            "placed_bar": o.placed_bar, "done_bar": o.done_bar,
            "reason": self.reasons.get(o.id),
        }

    def open_order_ids(self, Py_ssize_t symbol=-1):
        cdef Py_ssize_t j, oid
        cdef Order* o
        out = []
        for j in range(self.n_active):
            oid = self.active[j]
            o = self.order(oid)
            if o.status == OPEN and (symbol < 0 or o.symbol == symbol):
                out.append(oid)
        return out

    cdef str tag_name(self, Order* o):
        if o.tag == TAG_USER:
            return self.user_tags.get(o.id, "user")
        return TAG_NAMES[o.tag]

    # ------------------------------------------------------------------ tables

    def orders_table(self):
        """Every order held (all of them unless some were drained) as a dict of numpy
        arrays (bar indices, not timestamps)."""
        return self._orders_table(self.n_orders)

    def trades_table(self):
        """Every round trip held (all unless some were drained) as a dict of numpy
        arrays (bar indices, not timestamps)."""
        return self._trades_table(self.n_trades)

    def _orders_table(self, Py_ssize_t stop):
        """Orders ``[order_base, stop)`` as a dict of numpy arrays."""
        cdef Py_ssize_t lo = self.order_base
        cdef Py_ssize_t n = stop - lo
        cdef Py_ssize_t k
        cdef Order* o
        order_id_arr = np.empty(n, np.int64)
        symbol_arr = np.empty(n, np.int64)
        side_arr = np.empty(n, np.int8)
        codes_arr = np.empty((4, n), np.int8)     # kind, size_mode, tif, status
        tag_arr = np.empty(n, np.int8)
        bars_arr = np.empty((4, n), np.int64)     # placed, done, parent, oco
        values_arr = np.empty((6, n))             # size, limit, stop, price, qty, commission
        cdef long long[::1] order_id = order_id_arr
        cdef long long[::1] symbol = symbol_arr
        cdef signed char[::1] side = side_arr
        cdef signed char[:, ::1] codes = codes_arr
        cdef signed char[::1] tag = tag_arr
        cdef long long[:, ::1] bars = bars_arr
        cdef double[:, ::1] values = values_arr
        for k in range(n):
            o = self.order(lo + k)
            order_id[k] = o.id
            symbol[k] = o.symbol
            side[k] = o.side
            codes[0, k] = o.kind
            codes[1, k] = o.size_mode
            codes[2, k] = o.tif
            codes[3, k] = o.status
            tag[k] = o.tag
            bars[0, k] = o.placed_bar
            bars[1, k] = o.done_bar
            bars[2, k] = o.parent
            bars[3, k] = o.oco
            values[0, k] = o.size
            values[1, k] = o.limit
            values[2, k] = o.stop
            values[3, k] = o.fill_price
            values[4, k] = o.fill_qty
            values[5, k] = o.commission
        # Names travel as codes into KIND_NAMES, SIZE_MODE_NAMES, TIF_NAMES,
        # STATUS_NAMES and TAG_NAMES, and texts as {row: text}: no string per order.
        reasons = {oid - lo: text for oid, text in self.reasons.items() if lo <= oid < stop}
        user_tags = {oid - lo: text for oid, text in self.user_tags.items()
                     if lo <= oid < stop}
        table = {
            "order_id": order_id_arr, "symbol": symbol_arr, "side": side_arr,
            "kind": codes_arr[0], "size_mode": codes_arr[1],
            "size": values_arr[0], "limit": values_arr[1], "stop": values_arr[2],
            "tif": codes_arr[2], "status": codes_arr[3],
            "reason": reasons, "tag": tag_arr, "user_tag": user_tags,
            "placed_bar": bars_arr[0], "done_bar": bars_arr[1],
            "fill_price": values_arr[3], "fill_qty": values_arr[4], "commission": values_arr[5],
            "parent": bars_arr[2], "oco": bars_arr[3],
        }
        table.update(self.account_columns(lo, stop))     # account/time-in-force
        return table

    def _trades_table(self, Py_ssize_t stop):
        """Trades ``[trade_base, stop)`` as a dict of numpy arrays."""
        cdef Py_ssize_t lo = self.trade_base
        cdef Py_ssize_t n = stop - lo
        cdef Py_ssize_t k
        cdef Trade* t
        ints_arr = np.empty((5, n), np.int64)   # symbol, entry/exit bar, entry/exit order
        small_arr = np.empty((2, n), np.int8)       # direction, exit tag (-1 while open)
        values_arr = np.empty((5, n))               # entry/exit price, size, pnl, costs
        same_bar_arr = np.empty(n, bool)
        cdef long long[:, ::1] ints = ints_arr
        cdef signed char[:, ::1] small = small_arr
        cdef double[:, ::1] values = values_arr
        cdef unsigned char[::1] same_bar = same_bar_arr.view(np.uint8)
        user_tags = {}
        for k in range(n):
            t = self.trade(lo + k)
            ints[0, k] = t.symbol
            ints[1, k] = t.entry_bar
            ints[2, k] = t.exit_bar
            ints[3, k] = t.entry_order
            ints[4, k] = t.exit_order
            small[0, k] = t.direction
            small[1, k] = t.exit_tag if t.exit_bar >= 0 else -1
            values[0, k] = t.entry_price
            values[1, k] = t.exit_price if t.exit_bar >= 0 else NAN
            values[2, k] = t.direction * t.qty
            values[3, k] = t.pnl
            values[4, k] = t.costs
            same_bar[k] = t.stop_and_target_same_bar
            if t.exit_bar >= 0 and t.exit_tag == TAG_USER:
                user_tags[k] = self.exit_tags.get(lo + k, "user")
        return {
            "symbol": ints_arr[0], "direction": small_arr[0],
            "entry_bar": ints_arr[1], "exit_bar": ints_arr[2],
            "entry_order": ints_arr[3], "exit_order": ints_arr[4],
            "entry_price": values_arr[0], "exit_price": values_arr[1],
            "size": values_arr[2],
            "pnl": values_arr[3],               # open rows: -costs so far (realised part)
            "costs": values_arr[4],
            "exit_tag": small_arr[1],           # code into TAG_NAMES, -1 while open
            "exit_user_tag": user_tags,         # row -> the strategy's own exit tag
            "stop_and_target_same_bar": same_bar_arr,
        }

    # ------------------------------------------------------------------ streaming

    def bind_chunk(self, open, high, low, close):
        """Bind the next chunk of bars, keeping the account, positions and orders.

        The chunk continues the previous one: its first row is global bar
        ``base + n_bars``. Cash (with its compensation term), positions, last
        prices, open lots and resting orders carry over unchanged, so a run fed
        chunk by chunk makes the same decisions as one run over the whole panel. The
        per-bar outputs (``equity_curve``, ``cash_curve``, ``exposure``) restart for
        the new chunk: read them before binding the next one.

        Parameters
        ----------
        open, high, low, close : numpy.ndarray
            ``float64`` arrays of shape ``(chunk_bars, n_symbols)``, C-contiguous,
            with the same symbols (columns) as before.
        """
        cdef const double[:, ::1] o = open
        cdef const double[:, ::1] h = high
        cdef const double[:, ::1] lo = low
        cdef const double[:, ::1] c = close
        cdef Py_ssize_t n = c.shape[0]
        for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
            if arr.shape[0] != n or arr.shape[1] != self.n_symbols:
                raise ValueError(
                    f"bind_chunk: {name} has shape ({arr.shape[0]}, {arr.shape[1]}); expected "
                    f"({n}, {self.n_symbols}): every field of a chunk has one row per bar and "
                    f"the run's {self.n_symbols} symbol column(s)"
                )
        self.base += self.n_bars
        self.open = o
        self.high = h
        self.low = lo
        self.close = c
        self.n_bars = n
        self.equity_out = np.full(n, np.nan)
        self.cash_out = np.full(n, np.nan)
        self.exposure_out = np.zeros(n, dtype=np.uint8)

    def drain_orders(self, bint everything=False):
        """Hand out the finished orders at the front of the log and free them.

        Orders are drained in id order up to the first one still open, so the
        concatenated drained tables are the whole order log in its usual order. A
        long-resting order (a GTC limit far from the price) holds back every later
        order until it ends. ``everything=True`` drains the open ones too (at the end
        of a run); the broker must not be used after that.

        Returns
        -------
        dict of numpy.ndarray
            The drained orders, as :meth:`orders_table` gives them.
        """
        cdef Py_ssize_t stop = self.order_base
        cdef Py_ssize_t keep, j, kept
        if everything:
            stop = self.n_orders
        else:
            while stop < self.n_orders and self.order(stop).status != OPEN:
                stop += 1
        table = self._orders_table(stop)
        keep = self.n_orders - stop
        if stop > self.order_base:
            # The active list may still name finished orders (filled at the close,
            # cancelled) until the next bar compacts it; once drained they have no
            # memory left, and reading them would read before the order array.
            kept = 0
            for j in range(self.n_active):
                if self.active[j] >= stop:
                    self.active[kept] = self.active[j]
                    kept += 1
            self.n_active = kept
            memmove(self.orders, self.order(stop), keep * sizeof(Order))
            for oid in [k for k in self.reasons if k < stop]:
                del self.reasons[oid]
            for oid in [k for k in self.user_tags if k < stop]:
                del self.user_tags[oid]
            self.order_base = stop
        return table

    def drain_trades(self, bint everything=False):
        """Hand out the closed trades at the front of the trade log and free them.

        As :meth:`drain_orders`: up to the first trade still open (a position held
        for long holds back later trades of other symbols); ``everything=True``
        drains the open ones too, at the end of a run.

        Returns
        -------
        dict of numpy.ndarray
            The drained trades, as :meth:`trades_table` gives them.
        """
        cdef Py_ssize_t stop = self.trade_base
        cdef Py_ssize_t keep
        if everything:
            stop = self.n_trades
        else:
            while stop < self.n_trades and self.trade(stop).exit_bar >= 0:
                stop += 1
        table = self._trades_table(stop)
        keep = self.n_trades - stop
        if stop > self.trade_base:
            memmove(self.trades, self.trade(stop), keep * sizeof(Trade))
            for tid in [k for k in self.exit_tags if k < stop]:
                del self.exit_tags[tid]
            self.trade_base = stop
        return table

    @property
    def held_orders(self):
        """Orders still held in memory (not drained)."""
        return self.n_orders - self.order_base

    @property
    def held_trades(self):
        """Trades still held in memory (not drained)."""
        return self.n_trades - self.trade_base

    # ------------------------------------------------------------------ trailing stops

    cdef bint has_trail(self, Order* o) noexcept nogil:
        return isfinite(o.trail_percent) or isfinite(o.trail_amount)

    cdef int trail_stops(self, Py_ssize_t i) except -1:
        """Move every open trailing stop after bar ``i`` closed.

        A sell stop (it protects a long) follows the highest high since it started
        (the bar it was placed on, or its parent's fill bar, included): its stop is
        that high times ``1 - trail_percent`` (or less ``trail_amount``), and never
        moves down. A buy stop mirrors it with the lowest low. A bar with no close
        moves nothing; a missing high or low is bounded by the open and close known.
        A bracket leg with a fixed stop keeps it until the trail passes it; from then
        on its exit reason is ``trailing_stop``.
        """
        cdef Py_ssize_t j, oid, s
        cdef Py_ssize_t row = i - self.base
        cdef Order* o
        cdef double op, hi, lo, c, level
        for j in range(self.n_active):
            oid = self.active[j]
            o = self.order(oid)
            if o.status != OPEN or not self.has_trail(o) or o.active_bar > i + 1:
                continue
            s = o.symbol
            c = self.close[row, s]
            if isnan(c):
                continue
            op = self.open[row, s]
            hi = self.high[row, s]
            lo = self.low[row, s]
            if isnan(hi):
                hi = fmax(op, c) if isfinite(op) else c
            if isnan(lo):
                lo = fmin(op, c) if isfinite(op) else c
            if o.side < 0:
                if isnan(o.trail_extreme) or hi > o.trail_extreme:
                    o.trail_extreme = hi
                level = (o.trail_extreme * (1.0 - o.trail_percent) if isfinite(o.trail_percent)
                         else o.trail_extreme - o.trail_amount)
                if isnan(o.stop) or level > o.stop:
                    o.stop = level
                    o.tag = TAG_TRAILING_STOP if o.tag == TAG_STOP_LOSS else o.tag
            else:
                if isnan(o.trail_extreme) or lo < o.trail_extreme:
                    o.trail_extreme = lo
                level = (o.trail_extreme * (1.0 + o.trail_percent) if isfinite(o.trail_percent)
                         else o.trail_extreme + o.trail_amount)
                if isnan(o.stop) or level < o.stop:
                    o.stop = level
                    o.tag = TAG_TRAILING_STOP if o.tag == TAG_STOP_LOSS else o.tag
        return 0

    cpdef Py_ssize_t submit_trailing(self, Py_ssize_t symbol, int side, int size_mode,
                                     double size, double trail_percent, double trail_amount,
                                     int tif=GTC, object tag=None):
        """Place a trailing stop on the current bar and return its id.

        Exactly one of ``trail_percent`` (a fraction) and ``trail_amount`` (a price
        distance) is finite. Its stop is set when the bar it is placed on closes
        (see :meth:`trail_stops`) and it is matched from the next bar as a stop.
        """
        cdef Py_ssize_t oid
        if isfinite(trail_percent) == isfinite(trail_amount):
            raise ValueError("give one of trail_percent and trail_amount")
        oid = self.submit(symbol, side, STOP, size_mode, size, NAN, NAN, tif, NAN, NAN,
                          False, TAG_TRAILING_STOP if tag is None else tag)
        self.order(oid).trail_percent = trail_percent
        self.order(oid).trail_amount = trail_amount
        self.n_trailing += 1
        return oid

    cpdef int set_bracket_trail(self, Py_ssize_t order_id, double trail_percent,
                                double trail_amount) except -1:
        """Make the stop leg of open order ``order_id``'s bracket a trailing stop."""
        if not self.is_open(order_id):
            raise ValueError(f"order {order_id} is not open")
        if isfinite(trail_percent) == isfinite(trail_amount):
            raise ValueError("give one of trail_percent and trail_amount")
        self.order(order_id).bracket_trail_percent = trail_percent
        self.order(order_id).bracket_trail_amount = trail_amount
        return 0

    # ------------------------------------------------------------------ rebalancing

    cpdef int rebalance(self, const double[::1] weights, double threshold=0.0) except -1:
        """Place the orders that bring every symbol with a weight to it.

        ``weights[s]`` is the target value of symbol ``s`` as a signed fraction of
        equity; NaN leaves the symbol alone. Equity and the weights held now are
        valued at the current bar's close (the last close known for a symbol with
        none). A symbol whose weight would change by less than ``threshold`` is
        skipped. Orders are target-percent market orders (a weight of 0 closes the
        position), placed sells first, then buys, each group in symbol order, so
        that the sells' cash is there when the buys fill; each is sized when it
        fills, as ``order_target_percent`` is.
        """
        cdef Py_ssize_t s, k = self.n_symbols
        cdef Py_ssize_t row = self.bar - self.base
        cdef double equity = self.cash_value()
        cdef double price, held, w
        cdef int group
        cdef double[::1] values
        if weights.shape[0] != k:
            raise ValueError(f"weights has {weights.shape[0]} values for {k} symbols")
        values = np.zeros(k)
        for s in range(k):
            if self.position[s] != 0:
                price = self.close[row, s] if 0 <= row < self.n_bars else NAN
                if isnan(price):
                    price = self.last_price[s]
                if isnan(price):
                    price = self.average_entry(s)
                values[s] = self.position[s] * price
                equity += values[s]
        if not equity > 0:
            return 0
        for group in range(2):      # 0: sells (the value falls), 1: buys
            for s in range(k):
                w = weights[s]
                if isnan(w):
                    continue
                held = values[s]
                if w == 0 and self.position[s] == 0:
                    continue
                if fabs(w - held / equity) < threshold:
                    continue
                if (w * equity < held) != (group == 0):
                    continue
                if w == 0:
                    self.submit(s, 0, MARKET, TARGET_SHARES, 0.0)
                else:
                    self.submit(s, 0, MARKET, TARGET_PERCENT, w)
        return 0

    # ------------------------------------------------------------------ account/time-in-force
    # The margin account, market-on-close and good_till per order, and volume-limited
    # fills. docs/execution.md ("Margin account", "Time in force", "Volume limit")
    # states the rules for users.

    cdef int init_account(self, double leverage, double maintenance_margin,
                          double margin_rate, object volume,
                          double max_volume_share) except -1:
        if not (isfinite(leverage) and leverage >= 1.0):
            raise ValueError(f"leverage must be a number >= 1 (1 is a cash account, 2 lets "
                             f"positions be worth twice the equity); got {leverage!r}")
        if not (isfinite(maintenance_margin) and 0.0 <= maintenance_margin < 1.0):
            raise ValueError(f"maintenance_margin must be a fraction of the gross position "
                             f"value in [0, 1) (0.25 = 25%); got {maintenance_margin!r}")
        if leverage > 1.0 and maintenance_margin >= 1.0 / leverage:
            raise ValueError(f"maintenance_margin must be below 1 / leverage = "
                             f"{1.0 / leverage:g}, or a fully used account is called at "
                             f"once; got {maintenance_margin!r} with leverage {leverage:g}")
        if not (isfinite(margin_rate) and margin_rate >= 0.0):
            raise ValueError(f"margin_rate must be a finite annual rate >= 0 (0.05 = 5% a "
                             f"year); got {margin_rate!r}")
        if not isnan(max_volume_share) and not (0.0 < max_volume_share <= 1.0):
            raise ValueError(f"max_volume_share must be a fraction of the bar's volume in "
                             f"(0, 1] (0.1 = 10%); got {max_volume_share!r}")
        self.leverage = leverage
        self.margin_account = leverage > 1.0
        self.calls_pending = False
        self.maintenance_margin = maintenance_margin
        self.margin_rate = margin_rate
        self.max_volume_share = max_volume_share
        self.margin_interest_paid = 0.0
        self.margin_calls = 0
        self.close_orders = False
        self.margin_call_orders = []
        self.good_till_text = {}
        if isfinite(max_volume_share):
            if volume is None:
                raise ValueError("max_volume_share needs the bars' volume, and the data has "
                                 "no volume column; add one or drop max_volume_share")
            self.volume = volume
            if self.volume.shape[0] != self.n_bars or self.volume.shape[1] != self.n_symbols:
                raise ValueError(f"volume has shape ({self.volume.shape[0]}, "
                                 f"{self.volume.shape[1]}) but close has ({self.n_bars}, "
                                 f"{self.n_symbols}); all fields must share one shape")
        return 0

    cdef double gross_value(self) noexcept nogil:
        """Sum of |position| x its last close (its cost before its first close)."""
        cdef double value = 0.0
        cdef double mark
        cdef Py_ssize_t s
        for s in range(self.n_symbols):
            if self.position[s] != 0:
                mark = self.last_price[s]
                if isnan(mark):
                    mark = self.average_entry(s)
                value += fabs(self.position[s]) * mark
        return value

    cdef bint beyond_margin(self, Order* o, double qty, double price,
                            double commission) except -1:
        """Reject ``o`` (and return True) when its fill leaves the positions worth more
        than leverage x equity. A fill that only reduces a position always passes."""
        cdef Py_ssize_t s = o.symbol
        cdef double pos = self.position[s]
        cdef double after = pos + qty
        cdef double mark = self.last_price[s]
        cdef double equity, gross_before, gross_after, allowed
        if pos != 0 and fabs(after) <= fabs(pos) and after * pos >= 0:
            return False
        equity = self.equity_at(s, price) - commission
        gross_before = self.gross_value()
        if pos != 0:
            if isnan(mark):
                mark = self.average_entry(s)
            gross_before -= fabs(pos) * mark
        gross_after = gross_before + fabs(after) * price
        allowed = self.leverage * equity
        if gross_after <= allowed + 1e-9 * fmax(1.0, fabs(allowed)):
            return False
        self.finish(o, REJECTED,
                    f"insufficient buying power: {qty:g} at {price:.6g} would hold positions "
                    f"worth {gross_after:.2f}, above leverage {self.leverage:g} x equity "
                    f"{equity:.2f} = {allowed:.2f} (buying power before the order: "
                    f"{allowed - gross_before - fabs(pos) * price:.2f}); trade less or raise "
                    f"leverage (--leverage)")
        return True

    cdef double volume_capped(self, Order* o, double qty, Py_ssize_t i) except? -1:
        """``qty`` cut to max_volume_share of bar ``i``'s volume (whole shares unless
        fractional). 0 when nothing can fill: a day order then expires, any other
        order waits for the next bar."""
        cdef double volume = self.volume[i - self.base, o.symbol]
        cdef double cap = self.max_volume_share * volume if volume > 0 else 0.0
        if not self.fractional:
            cap = floor(cap + 1e-9)
        if fabs(qty) <= cap:
            return qty
        if cap > 0:
            return cap if qty > 0 else -cap
        if o.tif == DAY:
            self.finish(o, EXPIRED,
                        f"day order not filled on its bar: max_volume_share "
                        f"{self.max_volume_share:g} of the bar's volume {volume:g} is "
                        f"less than one share")
        return 0.0

    cdef int carry_rest(self, Py_ssize_t oid, double rest, double wanted,
                        Py_ssize_t i) except -1:
        """After a partial fill of ``oid``: cancel the rest (a day order) or carry it to
        a new order, matched from the next bar (``continues`` names ``oid``)."""
        cdef Order* o = self.order(oid)
        cdef double filled = fabs(o.fill_qty)
        cdef double volume = self.volume[i - self.base, o.symbol]
        cdef int kind = o.kind
        cdef Py_ssize_t peer = o.oco
        cdef Py_ssize_t rest_id
        cdef Order* carried
        head = (f"partial fill: {filled:g} of {fabs(wanted):g} (max_volume_share "
                f"{self.max_volume_share:g} of the bar's volume {volume:g})")
        if o.tif == DAY:
            self.reasons[oid] = f"{head}; the rest, {fabs(rest):g}, cancelled: a day order"
            return 0
        # A stop that fired carries on as a market order, a stop-limit as its limit.
        if kind == STOP:
            kind = MARKET
        elif kind == STOP_LIMIT:
            kind = LIMIT
        rest_id = self.place(o.symbol, o.side, kind, SHARES, fabs(rest), o.limit, o.stop,
                             o.tif, o.stop_loss, o.take_profit, o.bracket_relative, o.tag,
                             -1, o.parent, o.on_close, i + 1)
        o = self.order(oid)         # place may move the order array
        carried = self.order(rest_id)
        carried.continues = oid
        carried.expire_bar = o.expire_bar
        if o.tag == TAG_USER:
            self.user_tags[rest_id] = self.user_tags.get(oid, "user")
        if oid in self.good_till_text:
            self.good_till_text[rest_id] = self.good_till_text[oid]
        if peer >= 0 and self.is_open(peer):
            # the one-cancels-other link passes to the rest
            carried.oco = peer
            self.order(peer).oco = rest_id
            o.oco = -1
        self.reasons[oid] = f"{head}; the rest, {fabs(rest):g}, carried to order {rest_id}"
        return 0

    cdef int charge_margin_interest(self) except -1:
        """Charge one bar's interest on the borrowed cash (-cash), shared by the open
        lots in proportion to their value at the last close."""
        cdef double cost = -self.cash_value() * self.margin_rate / self.periods_per_year
        cdef double gross = 0.0
        cdef double rest = cost
        cdef double part
        cdef Py_ssize_t s, t
        cdef Trade* tr
        self.add_cash(-cost)
        self.realised -= cost
        self.margin_interest_paid += cost
        for s in range(self.n_symbols):
            t = self.lot_head[s]
            while t >= 0:
                gross += self.trade(t).qty * self.last_price[s]
                t = self.trade(t).next_lot
        if not gross > 0:
            return 0
        for s in range(self.n_symbols):
            t = self.lot_head[s]
            while t >= 0:
                tr = self.trade(t)
                part = cost * (tr.qty * self.last_price[s] / gross)
                rest -= part
                tr.costs += part
                tr.pnl -= part
                t = tr.next_lot
        return 0

    cdef int check_maintenance(self, Py_ssize_t i) except -1:
        """At the close of bar ``i``: when equity is below maintenance_margin x the gross
        position value, order the largest positions closed at the next open, largest
        first, until the rest meets it (every position when equity is <= 0)."""
        cdef double equity = self.equity_out[i - self.base]
        cdef double gross = self.gross_value()
        cdef Py_ssize_t s, oid
        if not (equity < self.maintenance_margin * gross):
            return 0
        self.margin_calls += 1
        values = []
        for s in range(self.n_symbols):
            if self.position[s] != 0:
                values.append((-fabs(self.position[s]) * self.last_price[s], s))
        values.sort()
        for value, s in values:
            if equity > 0 and equity >= self.maintenance_margin * gross:
                break
            gross += value
            oid = self.place(s, -sign_of(self.position[s]), MARKET, TARGET_SHARES, 0.0,
                             NAN, NAN, GTC, NAN, NAN, False, TAG_USER, -1, -1, False, i + 1)
            self.user_tags[oid] = "margin_call"
            self.reasons[oid] = (f"margin call at bar {i}: equity {equity:.2f} below "
                                 f"maintenance_margin {self.maintenance_margin:g} x "
                                 f"positions {gross - value:.2f}")
            self.margin_call_orders.append(oid)
            self.calls_pending = True
        return 0

    cdef int liquidate(self, Py_ssize_t i) except -1:
        """Fill the margin-call orders at bar ``i``'s open, before any other order."""
        cdef Py_ssize_t oid
        cdef bint slip
        cdef double raw
        pending = self.margin_call_orders
        self.margin_call_orders = []
        self.calls_pending = False
        for oid in pending:
            if self.is_open(oid):
                raw = self.match_price(self.order(oid), i, &slip)
                if not isnan(raw):
                    self.execute(oid, raw, slip, i)
        return 0

    cdef bint expired(self, Order* o, Py_ssize_t i) except -1:
        if i <= o.expire_bar:
            return False
        self.finish(o, EXPIRED, f"good_till {self.good_till_text.get(o.id, o.expire_bar)}: "
                                f"not filled by its last bar ({o.expire_bar})")
        return True

    def set_time_in_force(self, Py_ssize_t order_id, object at=None,
                          Py_ssize_t expire_bar=-1, object good_till=None):
        """Set where an order placed on the current bar fills, and until when.

        Parameters
        ----------
        order_id : int
            An open order placed on the current bar.
        at : {None, "open", "close"}
            ``"close"``: a market order fills at the close of the bar it was placed
            on (market-on-close), ``"open"``: at the next bar's open, whatever
            ``fill_on_close`` says. None leaves the run's setting.
        expire_bar : int
            The last bar on which the order may fill (``good_till``); -1 for none.
        good_till : object
            The ``good_till`` as the strategy gave it, for the expiry reason.
        """
        if order_id < self.order_base or order_id >= self.n_orders:
            raise IndexError(f"order id {order_id} is not held")
        cdef Order* o = self.order(order_id)
        if o.status != OPEN or o.placed_bar != self.bar:
            raise ValueError(f"order {order_id} is not an open order placed on this bar")
        if at is not None:
            if o.kind != MARKET:
                raise ValueError(f"at={at!r} applies to market orders; order {order_id} is a "
                                 f"{KIND_NAMES[o.kind]} order")
            if at == "close":
                o.on_close = self.bar >= 0
                o.active_bar = self.bar
                self.close_orders = True
            elif at == "open":
                o.on_close = False
                o.active_bar = self.bar + 1
            else:
                raise ValueError(f"at must be 'open' or 'close'; got {at!r}")
        if expire_bar >= 0:
            o.expire_bar = expire_bar
            if good_till is not None:
                self.good_till_text[order_id] = str(good_till)
        return None

    def account_columns(self, Py_ssize_t lo, Py_ssize_t stop):
        """``expire_bar`` and ``continues`` of orders ``[lo, stop)``, for the order log."""
        cdef Py_ssize_t k
        expire_arr = np.empty(stop - lo, np.int64)
        continues_arr = np.empty(stop - lo, np.int64)
        cdef long long[::1] expire = expire_arr
        cdef long long[::1] continues = continues_arr
        for k in range(stop - lo):
            expire[k] = self.order(lo + k).expire_bar
            continues[k] = self.order(lo + k).continues
        return {"expire_bar": expire_arr, "continues": continues_arr}

cdef bint price_at_open(Broker broker, Order* o, Py_ssize_t i, double raw) noexcept:
    # A fill at the bar's open leaves the rest of the bar to the bracket's exits.
    cdef double op = broker.open[i - broker.base, o.symbol]
    return isfinite(op) and raw == op
