# The order simulator: orders, fills, positions, one cash account, the ledger.

cdef enum OrderKind:
    MARKET = 0
    LIMIT = 1
    STOP = 2
    STOP_LIMIT = 3

cdef enum SizeMode:
    SHARES = 0          # size = quantity, direction from side
    CASH = 1            # size = money to spend (buy) or to raise (sell)
    PERCENT_EQUITY = 2  # size = fraction of equity to spend or raise
    TARGET_PERCENT = 3  # size = signed target position value / equity
    TARGET_SHARES = 4   # size = signed target quantity (0 closes)
    ALL_CASH = 5        # buy with all available cash

cdef enum TimeInForce:
    GTC = 0
    DAY = 1             # valid on the first bar it can fill on, then expires

cdef enum OrderStatus:
    OPEN = 0
    FILLED = 1
    CANCELLED = 2
    REJECTED = 3
    EXPIRED = 4

cdef enum OrderTag:
    TAG_SIGNAL = 0
    TAG_STOP_LOSS = 1
    TAG_TAKE_PROFIT = 2
    TAG_CLOSE = 3
    TAG_LIMIT = 4
    TAG_STOP = 5
    TAG_USER = 6        # a reason string supplied by the strategy
    TAG_TRAILING_STOP = 7  # a trailing stop, or a bracket's stop leg once it has trailed

cdef struct Order:
    Py_ssize_t id
    Py_ssize_t symbol
    int side                # +1 buy, -1 sell; 0 while a target order is unresolved
    int kind
    int size_mode
    int tif
    int status
    int tag
    bint triggered          # stop-limit whose stop has been touched
    Py_ssize_t triggered_bar  # bar on which it was triggered (-1 before)
    bint on_close           # market order filled at the close of the bar it was placed on
    bint bracket_relative   # stop_loss/take_profit are fractions of the fill price
    double size
    double limit
    double stop
    double stop_loss        # bracket child prices (NaN when absent)
    double take_profit
    Py_ssize_t oco          # id of the order cancelled when this one fills, -1 for none
    Py_ssize_t parent       # bracket parent id, -1 for none
    Py_ssize_t placed_bar
    Py_ssize_t active_bar   # first bar on which it may fill
    Py_ssize_t done_bar     # bar it was filled, cancelled, rejected or expired on
    double fill_price
    double fill_qty         # signed
    double commission
    # trailing
    double trail_percent    # trailing stop: distance from the extreme, a fraction (NaN: none)
    double trail_amount     # or a price distance (NaN: none)
    double trail_extreme    # highest high (a sell) or lowest low (a buy) since it started
    double bracket_trail_percent  # on a parent: its bracket's stop leg trails by this
    double bracket_trail_amount
    # account/time-in-force
    Py_ssize_t expire_bar   # last bar it may fill on (good_till), -1 for no limit
    Py_ssize_t continues    # the order whose unfilled rest this one is (volume limit), -1

cdef struct Trade:
    # One lot: the quantity one fill opened (or added), first in, first out. A closed
    # row is the part of a lot one fill closed; the part still held is an open row.
    Py_ssize_t symbol
    Py_ssize_t entry_bar
    Py_ssize_t exit_bar     # -1 while open
    Py_ssize_t entry_order  # the order whose fill opened the lot
    Py_ssize_t exit_order   # the order whose fill closed this row, -1 while open
    Py_ssize_t next_lot     # the next open lot of the symbol (FIFO), -1 for none
    int direction           # +1 long, -1 short
    int exit_tag
    bint stop_and_target_same_bar
    double qty              # absolute quantity of the row
    double entry_price      # the opening fill's price
    double exit_price       # the closing fill's price
    double pnl              # closed: direction * qty * (exit - entry) - costs; open: -costs
    double costs            # commissions and borrow costs charged to this row


cdef class Broker:
    # market data, read-only views of the panel (or of the chunk bound by bind_chunk)
    cdef const double[:, ::1] open
    cdef const double[:, ::1] high
    cdef const double[:, ::1] low
    cdef const double[:, ::1] close
    cdef readonly Py_ssize_t n_bars     # bars in the bound arrays
    cdef readonly Py_ssize_t n_symbols
    # Global index of the bound arrays' first row. Bar indices (in orders, trades,
    # `bar`) are global, so a run streamed in chunks records the same numbers as one
    # run over the whole panel; only the array reads subtract `base`.
    cdef readonly Py_ssize_t base

    # configuration
    cdef readonly double starting_cash
    cdef readonly double commission_percent
    cdef readonly double commission_per_share
    cdef readonly double commission_fixed
    cdef readonly double commission_minimum
    cdef readonly double slippage_bps
    cdef readonly double slippage_fixed
    cdef readonly double borrow_rate
    cdef readonly double periods_per_year
    cdef readonly bint fractional
    cdef readonly bint shorting
    cdef readonly bint fill_on_close

    # account state
    cdef double _cash
    cdef double _cash_carry        # Neumaier compensation term, so cash does not drift
    cdef readonly double realised  # realised P&L, net of commissions and borrow costs
    cdef readonly double commissions_paid
    cdef readonly double borrow_paid
    cdef double[::1] position
    cdef double[::1] last_price
    cdef Py_ssize_t[::1] lot_head       # oldest open lot of each symbol, -1 when flat
    cdef Py_ssize_t[::1] lot_tail       # newest open lot of each symbol
    cdef readonly Py_ssize_t bar        # the bar being processed
    cdef readonly Py_ssize_t same_bar_exits  # bars where stop-loss and take-profit both touched
    cdef bint same_bar_fill         # the fill being executed is such a stop (flags its rows)

    # Orders and trades, grown on demand. Ids are global and never reused: `n_orders`
    # is the next order id; ids below `order_base` were drained (finished, handed out
    # by drain_orders and freed), so `orders[0]` holds order `order_base`. The same
    # for trades. Every access goes through order() / trade().
    cdef Order* orders
    cdef readonly Py_ssize_t n_orders
    cdef readonly Py_ssize_t order_base
    cdef Py_ssize_t cap_orders
    cdef Py_ssize_t* active
    cdef Py_ssize_t n_active
    cdef Py_ssize_t cap_active
    cdef Trade* trades
    cdef readonly Py_ssize_t n_trades
    cdef readonly Py_ssize_t trade_base
    cdef Py_ssize_t cap_trades
    cdef Py_ssize_t* new_fills
    cdef public Py_ssize_t n_new_fills
    cdef dict reasons
    cdef dict user_tags
    cdef dict exit_tags             # trade id -> user tag of its exit order

    # per-bar outputs
    cdef double[::1] equity_out
    cdef double[::1] cash_out
    cdef unsigned char[::1] exposure_out

    # trailing
    cdef readonly Py_ssize_t n_trailing  # trailing orders placed (0: mark skips the update)

    cdef inline double cash_value(self) noexcept nogil
    cdef inline Order* order(self, Py_ssize_t oid) noexcept nogil
    cdef inline Trade* trade(self, Py_ssize_t tid) noexcept nogil
    cdef inline bint is_open(self, Py_ssize_t oid) noexcept nogil
    cdef void add_cash(self, double amount) noexcept nogil
    cdef double commission_for(self, double qty, double price) noexcept nogil
    cdef double slipped(self, double price, int side) noexcept nogil
    cdef double equity_at(self, Py_ssize_t symbol, double price) noexcept nogil
    cdef double average_entry(self, Py_ssize_t s) noexcept nogil
    cdef Py_ssize_t new_order(self) except -1
    cdef int push_active(self, Py_ssize_t oid) except -1
    cdef Py_ssize_t new_trade(self, Py_ssize_t symbol, Py_ssize_t bar, int direction) except -1
    cdef int open_lot(self, Order* o, double qty, double price, double costs,
                      Py_ssize_t i) except -1
    cdef int close_lots(self, Order* o, double qty, double price, double commission,
                        double filled, bint everything, Py_ssize_t i) except -1
    cdef int close_row(self, Py_ssize_t t, Order* o, double price, double exit_costs,
                       Py_ssize_t i) except -1
    cdef Py_ssize_t place(self, Py_ssize_t symbol, int side, int kind, int size_mode,
                          double size, double limit, double stop, int tif,
                          double stop_loss, double take_profit, bint bracket_relative,
                          int tag, Py_ssize_t oco, Py_ssize_t parent, bint on_close,
                          Py_ssize_t active_bar) except -1
    cdef double match_price(self, Order* o, Py_ssize_t i, bint* slip) noexcept
    cdef double affordable(self, double budget, double price)
    cdef double whole(self, double qty) noexcept
    cdef double resolve_qty(self, Order* o, double price)
    cdef int finish(self, Order* o, int status, str reason) except -1
    cdef int execute(self, Py_ssize_t oid, double raw, bint slip, Py_ssize_t i) except -1
    cdef int cancel_children(self, Py_ssize_t symbol, Py_ssize_t filled) except -1
    cdef str tag_name(self, Order* o)
    cdef int apply_fill(self, Order* o, double qty, double price, double commission,
                        Py_ssize_t i) except -1
    cdef int spawn_bracket(self, Order* parent, double qty, Py_ssize_t i,
                           bint same_bar) except -1
    cdef int process_bar(self, Py_ssize_t i) except -1
    cdef int process_close(self, Py_ssize_t i) except -1
    cdef int mark(self, Py_ssize_t i) except -1
    cdef void charge_borrow(self, Py_ssize_t s, double qty) noexcept nogil
    cpdef Py_ssize_t submit(self, Py_ssize_t symbol, int side, int kind, int size_mode,
                            double size, double limit=*, double stop=*, int tif=*,
                            double stop_loss=*, double take_profit=*,
                            bint bracket_relative=*, object tag=*, Py_ssize_t oco=*)
    cpdef bint cancel(self, Py_ssize_t order_id)
    cpdef double get_position(self, Py_ssize_t symbol)
    # trailing stops and rebalancing
    cdef bint has_trail(self, Order* o) noexcept nogil
    cdef int trail_stops(self, Py_ssize_t i) except -1
    cpdef Py_ssize_t submit_trailing(self, Py_ssize_t symbol, int side, int size_mode,
                                     double size, double trail_percent, double trail_amount,
                                     int tif=*, object tag=*)
    cpdef int set_bracket_trail(self, Py_ssize_t order_id, double trail_percent,
                                double trail_amount) except -1
    cpdef int rebalance(self, const double[::1] weights, double threshold=*) except -1

    # account/time-in-force: margin account, market-on-close and good_till per order,
    # volume-limited fills (engine/_core/broker.pyx, the block of the same name)
    cdef readonly double leverage            # 1: a cash account; above 1: a margin account
    cdef readonly double maintenance_margin  # fraction of the gross position value
    cdef readonly double margin_rate         # annual, on borrowed cash
    cdef readonly double max_volume_share    # NaN: no volume limit
    cdef const double[:, ::1] volume
    cdef readonly double margin_interest_paid
    cdef readonly Py_ssize_t margin_calls    # closes at which maintenance was not met
    cdef readonly bint close_orders          # some order fills at its placing bar's close
    cdef bint margin_account                 # leverage > 1: the checks of this block run
    cdef bint calls_pending                  # margin-call orders wait for the next open
    cdef list margin_call_orders             # liquidation orders due at the next open
    cdef dict good_till_text                 # order id -> its good_till as given
    cdef int init_account(self, double leverage, double maintenance_margin,
                          double margin_rate, object volume,
                          double max_volume_share) except -1
    cdef double gross_value(self) noexcept nogil
    cdef bint beyond_margin(self, Order* o, double qty, double price,
                            double commission) except -1
    cdef double volume_capped(self, Order* o, double qty, Py_ssize_t i) except? -1
    cdef int carry_rest(self, Py_ssize_t oid, double rest, double wanted,
                        Py_ssize_t i) except -1
    cdef int charge_margin_interest(self) except -1
    cdef int check_maintenance(self, Py_ssize_t i) except -1
    cdef int liquidate(self, Py_ssize_t i) except -1
    cdef bint expired(self, Order* o, Py_ssize_t i) except -1
