"""The strategy API: one ``Strategy`` subclass per plugin file.

Two paths drive the same simulator:

* **Event path** — override ``on_bar(self, bar)`` (and optionally ``on_start``,
  ``on_fill``, ``on_stop``). The compiled loop calls it after each bar closes;
  ``self.data`` and indicators declared with ``self.I`` show bars up to the
  current one only, and orders placed now are matched from the next bar.
* **Vectorised path** — override ``signals(self, data)`` and return
  :class:`Signals` computed once over the whole data; the compiled loop turns them
  into orders with no Python call per bar.

Signals and ``self.I`` indicators see the whole data, so the engine audits them
(:mod:`engine.strategy.lookahead`): recomputed on prefixes of the data cut at
points spread over all of it (``audit="cuts"``, the default), or at every bar
(``"full"``), they must not change up to the cut; ``"off"`` trusts them.

What a strategy can see, and where the guarantee stops
------------------------------------------------------
* **Event path.** ``self.data.<field>``, ``self.data[symbol].<field>`` and
  indicators are :class:`~engine._core.loop.Series`: reading a later bar raises
  ``LookAheadError``. Every array they give — ``visible()``, ``np.asarray(s)``,
  a slice ``s[a:b]``, the row of a panel-wide series ``s[-1]``, ``self.data.ts``,
  ``bar.<field>`` over several symbols — is *sealed* (:mod:`engine._core.sealed`):
  a view of the visible bars (no copy) that cannot be made writeable, whose
  ``.base`` chain ends at an opaque object exposing no later bar, no buffer and
  no pickle state. ``np.array(s)`` gives a writeable copy.
* **Vectorised path.** ``signals(data)`` sees the whole data by design. Its arrays
  (``data.close``, features, ``data.ts``) are sealed views of the panel the broker
  fills at: no strategy can rewrite a price (``flags.writeable = True`` is refused
  at every level of ``.base``). The audit checks what the signals read.
* **Code given the whole data** — ``signals``, functions passed to ``self.I`` — is
  checked through its outputs only. State it keeps elsewhere (a copy of its input
  saved on ``self`` or in a global and read later in ``on_bar``) is not watched:
  keep such functions free of side effects. ``entry_condition`` and
  ``entry_labels`` feed reports, not orders, and are not audited.
* **Outside the boundary**, as for any Python code running in the same process:
  engine internals reached through underscore names (``self._panel``,
  ``self._broker``, ``self.data._panel``, ``Series._full()``), introspection
  (``gc``, ``inspect``, frames) and raw memory (``ctypes``, ``arr.ctypes.data``,
  ``numpy.lib.stride_tricks.as_strided`` reading past the end of a view). The
  engine keeps a strategy written in good faith from looking ahead by accident;
  it does not sandbox one written to defeat it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engine._core.broker import Broker
from engine._core.loop import Bar, Cursor, Series
from engine._core.sealed import sealed_prefix
from engine.data.panel import Panel
from engine.errors import LookAheadError, OrderError, did_you_mean, known_names
from engine.strategy.lookahead import FIX, audit_prefixes, cut_points, gap_rows, stops_at, where
from engine.strategy.parameter_sets import ParameterSets
from engine.strategy.params import collect_params, resolve_params

# codes shared with engine/_core/broker.pxd
MARKET, LIMIT, STOP, STOP_LIMIT = 0, 1, 2, 3
SHARES, CASH, PERCENT_EQUITY, TARGET_PERCENT, TARGET_SHARES, ALL_CASH = 0, 1, 2, 3, 4, 5
TIF_CODES = {"gtc": 0, "day": 1}


@dataclass
class Signals:
    """Entry and exit signals for the vectorised path.

    Parameters
    ----------
    entries, exits : array-like of bool
        Shape ``(n_bars,)`` for one symbol or ``(n_bars, n_symbols)``. A signal on
        bar ``t`` becomes a market order matched on bar ``t + 1`` (or at ``t``'s
        close with ``fill="close"``). An exit while a position is held closes it;
        an entry while flat opens one. Exits are handled before entries.
    size : float or array-like, optional
        Entry size, interpreted by ``size_type``; ignored for ``"all_cash"``.
    size_type : {"all_cash", "shares", "cash", "percent", "target_percent"}
        How ``size`` is read: all available cash (whole shares, floor(cash/price)),
        a share count, an amount of money, a fraction of equity, or a target
        fraction of equity.
    direction : {"long", "short"}
        Whether entries buy or sell short.
    stop_loss, take_profit : float or array-like, optional
        A bracket on every entry, as a fraction of the entry's fill price: a long
        entry filled at 100 with ``stop_loss=0.05, take_profit=0.1`` exits with a
        stop at 95 and a limit at 110, whichever is touched first (both on one bar:
        the stop). A scalar, one value per symbol (shape ``(n_symbols,)``), or one
        per bar (``(n_bars, n_symbols)``, or ``(n_bars,)`` for one symbol), read at
        the entry signal's bar; NaN means none for that entry.
    trail_percent, trail_amount : float or array-like, optional
        Make the bracket's stop a trailing stop: it follows the highest high since
        the fill (the fill bar included) at this fraction (or price distance) below
        it, never moving down (mirrored for shorts); with ``stop_loss`` too, it starts
        at the fixed stop and rises once the trail passes it. Shapes as ``stop_loss``.
        Exits are tagged ``stop_loss``, ``take_profit`` or ``trailing_stop``.
    weights : array-like, optional
        Target weights instead of entries and exits: shape ``(n_bars, n_symbols)``
        (``(n_bars,)`` for one symbol), the signed fraction of equity to hold in each
        symbol; NaN means no change. At each bar with a weight the symbols with one are
        rebalanced to it (sells first, then buys; whole shares unless fractional),
        filled as market orders (next open, or this close with ``fill="close"``).
    rebalance_threshold : float, optional
        With ``weights``: skip a symbol whose weight would change by less than this
        (0.02 = two percentage points of equity). Default: trade every change.

    indicators : dict of str to array-like, optional
        What to draw on the report's chart: name → values, ``(n_bars,)`` or
        ``(n_bars, n_symbols)`` (e.g. ``{"fast": fast, "slow": slow}``), on the price
        when they lie in its range, else on a panel of their own. They do not trade.

    The options after ``direction`` default to None (unset);
    :meth:`uses_exits_or_weights` tells whether any is used.
    """

    entries: Any = None
    exits: Any = None
    size: Any = None
    size_type: str = "all_cash"
    direction: str = "long"
    # exits and target weights (None: unset)
    stop_loss: Any = None
    take_profit: Any = None
    trail_percent: Any = None
    trail_amount: Any = None
    weights: Any = None
    rebalance_threshold: Any = None
    # for the report only
    indicators: Any = None

    #: The options beyond plain entries and exits.
    EXIT_OPTIONS: ClassVar[tuple[str, ...]] = (
        "stop_loss", "take_profit", "trail_percent", "trail_amount")
    WEIGHT_OPTIONS: ClassVar[tuple[str, ...]] = ("weights", "rebalance_threshold")

    def options_used(self) -> tuple[str, ...]:
        """The names of the exit and weight options set (not None)."""
        return tuple(name for name in (*self.EXIT_OPTIONS, *self.WEIGHT_OPTIONS)
                     if getattr(self, name) is not None)

    def uses_exits_or_weights(self) -> bool:
        """Whether any option beyond plain entries and exits is set: a simulator
        that handles only those (``run_vector``) must not run these signals."""
        return bool(self.options_used())


class DataView:
    """What a strategy reads: fields and features as bounded :class:`Series`.

    ``self.data.close`` is the close of the only symbol (or a row per bar over all
    symbols); ``self.data["GME"].close`` the close of one symbol;
    ``self.data.ts`` the visible timestamps (UTC instants for data with a time
    zone) and ``self.data.local_ts`` the same as local times of the zone.
    """

    def __init__(self, panel: Panel, cursor: Cursor, column: int | None = None):
        self._panel = panel
        self._cursor = cursor
        self._column = column if column is not None else (0 if panel.n_symbols == 1 else -1)
        self._series: dict[str, Series] = {}
        self._symbols = {name: i for i, name in enumerate(panel.symbols)}
        self._children: dict[int, DataView] = {}  # self.data["GME"], built once per symbol

    def __getattr__(self, name: str) -> Series:
        if name.startswith("_"):
            raise AttributeError(name)
        series = self._series.get(name)
        if series is None:
            if name not in self._panel.fields:
                raise AttributeError(
                    f"the data has no field {name!r}; fields: {', '.join(self._panel.fields)}."
                    + did_you_mean(name, self._panel.fields)
                )
            series = Series(self._panel.fields[name], self._cursor, self._column, name)
            self._series[name] = series
        return series

    def __getitem__(self, symbol: str) -> DataView:
        if symbol not in self._symbols:
            raise KeyError(
                f"unknown symbol {symbol!r}." + did_you_mean(symbol, self._symbols)
                + known_names("symbol", self._symbols)
            )
        column = self._symbols[symbol]
        child = self._children.get(column)
        if child is None:
            child = self._children[column] = DataView(self._panel, self._cursor, column)
        return child

    def __len__(self) -> int:
        return self._cursor.index + 1

    @property
    def ts(self) -> np.ndarray:
        """Timestamps of the visible bars (a sealed read-only view of them only).

        Passed to ``self.I`` (e.g. ``self.I(resample, self.data.close, self.data.ts,
        "W-FRI")``) it stands for the timestamps of every bar, cut with the data.
        """
        out = sealed_prefix(self._panel.ts, self._cursor.index + 1)
        self._ts_given = out    # recognised by Strategy.I (see _BarTimes)
        return out

    @property
    def local_ts(self) -> np.ndarray:
        """The visible timestamps as local times of the data's zone (``ts`` holds UTC
        instants when the data has one; without a zone the two are the same).

        Passed to ``self.I`` it stands for every bar's local time, as ``ts`` does.
        """
        out = sealed_prefix(self._panel.local_ts, self._cursor.index + 1)
        self._local_ts_given = out    # recognised by Strategy.I (see _BarTimes)
        return out

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._panel.symbols

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._panel.fields)


class VectorData:
    """The whole data, for ``signals()``: read-only numpy arrays.

    Fields are 1-D for one symbol and ``(n_bars, n_symbols)`` otherwise. They are
    views of the panel the broker fills at, sealed: no view of them can be made
    writeable (``numpy.array(x)`` gives a writeable copy).
    """

    def __init__(self, panel: Panel):
        self._panel = panel
        self.ts = panel.ts
        self.local_ts = panel.local_ts
        self.symbols = panel.symbols

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self._panel.fields
        if name not in fields:
            raise AttributeError(
                f"the data has no field {name!r}; fields: {', '.join(fields)}."
                + did_you_mean(name, fields)
            )
        arr = fields[name]
        return arr[:, 0] if self._panel.n_symbols == 1 else arr

    def __len__(self) -> int:
        return self._panel.n_bars


class Strategy:
    """Base class of every strategy.

    Parameters are annotated class attributes (``fast: int = 10``) or
    :func:`engine.param` declarations. Class-level settings:

    ``default_data``
        Path of the dataset used when none is given, relative to the strategy's
        file (e.g. ``"../datasets/sp500_daily.parquet"``).
    ``default_start``, ``default_end``
        Date range used with the default data.
    ``feeds``
        Alternative data joined onto the bars point-in-time, as feature fields:
        name → :class:`engine.Feed` (paths relative to the strategy's file). They
        are joined onto any data the strategy runs on; override :meth:`feed_specs`
        when a feed setting (a lag, which feeds) is a parameter.
    """

    default_data: ClassVar[str | None] = None
    default_start: ClassVar[str | None] = None
    default_end: ClassVar[str | None] = None
    feeds: ClassVar[dict[str, Any]] = {}
    #: Success rates the source notes claim, by entry label (see ``entry_labels``)
    #: or ``"entry_condition"``: label → claimed share of positive forward returns.
    claims: ClassVar[dict[str, float]] = {}

    def __init__(self, **params):
        self.params = resolve_params(type(self), params)
        for name, value in self.params.items():
            setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        """Check parameters against each other; raise ``ParameterError`` to refuse them."""

    @classmethod
    def parameters(cls):
        """The declared parameters: name → :class:`engine.strategy.params.Param`."""
        return collect_params(cls)

    def feed_specs(self) -> dict[str, Any]:
        """The feeds this run joins (default: the class's ``feeds``).

        Override to derive them from parameters, e.g.
        ``{"fear_greed": self.feeds["fear_greed"].replace(lag=self.fg_lag)}``.
        """
        return dict(type(self).feeds)

    # -- lifecycle hooks (override what you need) -------------------------------

    def on_start(self) -> None:
        """Called once before the first bar: declare indicators with ``self.I``."""

    def on_bar(self, bar: Bar) -> None:
        """Called after each bar closes (event path)."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither on_bar (event path) nor signals "
            f"(vectorised path); define one of them"
        )

    def on_fill(self, fill: dict) -> None:
        """Called for each fill, before ``on_bar`` of the bar it happened on."""

    def on_stop(self) -> None:
        """Called once after the last bar."""

    def signals(self, data: VectorData) -> Signals:
        """Vectorised path: return :class:`Signals` for the whole data."""
        raise NotImplementedError

    @classmethod
    def signals_batch(cls, data: VectorData, sets: ParameterSets) -> Signals:
        """Sweeps: the signals of many parameter sets in one call (optional).

        A batched sweep calls it with a batch of parameter sets (``sets``, a
        :class:`~engine.strategy.parameter_sets.ParameterSets`: ``sets.fast`` is
        the value of ``fast`` in each set) instead of :meth:`signals` once per set.
        Return :class:`Signals` whose ``entries`` and ``exits`` have one column per
        set: ``(n_bars, n_sets)`` for one symbol, ``(n_bars, n_sets, n_symbols)``
        otherwise. ``size`` is a scalar, one value per set (``(n_sets,)``), or laid
        out as the entries; ``size_type`` and ``direction`` a string or one per set.
        Exit options and weights are not taken here (those strategies run
        :meth:`signals` per set).

        Column ``j`` must equal what :meth:`signals` gives for set ``j``: the sweep
        checks it (with the look-ahead audit) for every parameter value in each
        worker process, and a difference makes the batch's rows errors saying where.
        """
        raise NotImplementedError

    def lookback(self, data: VectorData) -> int | None:
        """Streaming: how many of the last bars of ``data`` the next bars' signals need.

        :func:`engine.stream_run` reads a file too large for memory in chunks. For
        each chunk it calls :meth:`signals` on the bars this hook asked to keep from
        before the chunk, followed by the chunk, and trades the chunk's rows only.
        After a chunk it calls ``lookback(data)`` with that same data (kept bars +
        chunk): return how many of its last bars the signals of the following bars
        depend on, so that they come out exactly as in one run over the whole file.

        For signals built on fixed windows that is the longest window plus what the
        rule compares with (``slow`` for a crossover of two moving averages, whose
        first value needs ``slow - 1`` earlier bars and whose cross compares with
        the bar before). A rule that carries state further back (the last non-zero
        sign of a crossover across a run of ties, a position held since an old
        signal) must count those bars too, which is why ``data`` is given:
        :class:`strategies.sma_cross.SmaCross` is the worked example. Returning more
        bars is always safe; the value is clipped to ``len(data)``.

        Returns
        -------
        int or None
            The number of bars; ``None`` (the default) means the strategy does not
            say, and ``stream_run`` refuses to stream it.
        """
        return None

    def entry_condition(self, data: VectorData):
        """Bars on which the rule's entry condition holds (bool array), or None.

        Used by reports (event studies, hit rate by condition), not by trading.
        Must be causal like ``signals``.
        """
        return None

    def entry_labels(self, data: VectorData):
        """A label per bar describing the entry context (e.g. the fear band), or None."""
        return None

    @classmethod
    def has_event_path(cls) -> bool:
        return cls.on_bar is not Strategy.on_bar

    @classmethod
    def has_vector_path(cls) -> bool:
        return cls.signals is not Strategy.signals

    @classmethod
    def has_batch_path(cls) -> bool:
        """Whether sweeps can ask :meth:`signals_batch` for many sets at once: it is
        defined, by the class that defines :meth:`signals` or one below it (a subclass
        that changes ``signals`` alone does not inherit its parent's batch of them)."""
        if not cls.has_vector_path():
            return False
        hook = next((k for k in cls.__mro__ if "signals_batch" in vars(k)), Strategy)
        own = next((k for k in cls.__mro__ if "signals" in vars(k)), Strategy)
        given = vars(hook)["signals_batch"]
        return (getattr(given, "__func__", given)
                is not vars(Strategy)["signals_batch"].__func__) and issubclass(hook, own)

    # -- binding to a run --------------------------------------------------------

    def _bind(self, panel: Panel, broker: Broker, cursor: Cursor, audit: str = "cuts") -> None:
        self._panel = panel
        self._broker = broker
        self._cursor = cursor
        self._audit = audit  # the run's look-ahead audit mode, for self.I
        self._symbol_index = {name: i for i, name in enumerate(panel.symbols)}
        self.data = DataView(panel, cursor)
        #: ``(name, arrays, overlay)`` of each ``self.I`` call, in order, for the chart.
        self.declared_indicators: list[tuple[str, tuple, bool | None]] = []

    # -- indicators ----------------------------------------------------------------

    def I(self, func, *args, name: str | None = None, audit: bool = True,  # noqa: E743
          overlay: bool | None = None, **kwargs):
        """Compute an indicator once over all bars and return bounded views of it.

        ``Series`` arguments (``self.data.close``) are passed to ``func`` as whole
        numpy arrays (read-only); the result (an array or a tuple of arrays of
        ``n_bars`` rows) comes back as :class:`Series` that show only bars up to
        the current one.

        The indicator is audited for look-ahead as the run's ``audit`` option says
        (:mod:`engine.strategy.lookahead`): recomputed on prefixes of the data
        ending at cut points spread over all of it, it must give the same values
        up to each cut, else ``LookAheadError`` names the first bar that differs.
        ``audit=False`` skips the audit of this indicator alone.

        ``overlay`` says where the report's chart draws it: ``True`` over the price,
        ``False`` on a panel of its own, ``None`` (the default) over the price when its
        values lie in the price's range (a moving average), else on its own panel (an
        RSI). The arrays are kept in :attr:`declared_indicators` for the chart.
        """
        label = name or getattr(func, "__name__", "indicator")
        panel = self._panel
        n = panel.n_bars
        # timestamps: self.data.ts (local_ts) stands for every bar's timestamp (local
        # time), cut with the data
        for attr, times in (("_ts_given", "ts"), ("_local_ts_given", "local_ts")):
            given = self.data.__dict__.get(attr)
            if given is not None:
                whole = _BarTimes(getattr(panel, times))
                args = tuple(whole if a is given else a for a in args)
                kwargs = {k: whole if v is given else v for k, v in kwargs.items()}
        full = _call_indicator(func, args, kwargs, n)
        mode = getattr(self, "_audit", "cuts") if audit else "off"
        inputs = [a._full() for a in (*args, *kwargs.values()) if isinstance(a, Series)]
        cuts = cut_points(n, mode, gaps=gap_rows(inputs) if mode == "cuts" else None,
                          seed=(panel.n_symbols,))

        def describe(k, row, col, cut, whole, prefix):
            output = f" (output {k})" if len(full) > 1 else ""
            cols = full[k].shape[1] if full[k].ndim == 2 else 1
            return (
                f"indicator {label!r}{output} reads the future: its value at "
                f"{where(panel, row, col, cols)} is {whole!r} with all {n} bars but "
                f"{prefix!r} when {stops_at(panel, cut)}. A value must depend only on bars "
                f"up to its own. {FIX}. self.I(..., audit=False) skips the audit of this "
                f"indicator and audit='off' (CLI --audit off) that of the run: only for "
                f"code you trust."
            )

        audit_prefixes(full, lambda cut: _call_indicator(func, args, kwargs, cut), cuts, describe)
        views = tuple(
            Series(arr, self._cursor, 0 if arr.ndim == 1 or arr.shape[1] == 1 else -1, label)
            for arr in full
        )
        self.declared_indicators.append((label, full, overlay))
        return views[0] if len(views) == 1 else views

    # -- account -----------------------------------------------------------------------

    def _symbol(self, symbol) -> int:
        if symbol is None:
            if self._panel.n_symbols == 1:
                return 0
            raise OrderError(
                f"the data holds {self._panel.n_symbols} symbols; name one with symbol=..."
            )
        if isinstance(symbol, (int, np.integer)) and 0 <= symbol < self._panel.n_symbols:
            return int(symbol)
        index = self._symbol_index.get(symbol)
        if index is None:
            raise OrderError(
                f"unknown symbol {symbol!r}." + did_you_mean(symbol, self._symbol_index)
                + known_names("symbol", self._symbol_index)
            )
        return index

    def position_of(self, symbol=None) -> float:
        """Signed quantity held in ``symbol`` (the only symbol when omitted)."""
        return self._broker.get_position(self._symbol(symbol))

    @property
    def position(self) -> float:
        """Signed quantity held in the only symbol."""
        return self._broker.get_position(self._symbol(None))

    @property
    def cash(self) -> float:
        return self._broker.cash

    @property
    def equity(self) -> float:
        """Cash plus positions marked at their last close."""
        return self._broker.equity

    def open_orders(self, symbol=None) -> list[int]:
        """Ids of the orders not yet filled, cancelled or expired."""
        return self._broker.open_order_ids(-1 if symbol is None else self._symbol(symbol))

    def order(self, order_id: int) -> dict:
        """An order's state: status, fill price and quantity, reason."""
        return self._broker.order_info(order_id)

    # -- orders ------------------------------------------------------------------------

    def buy(self, size=None, *, cash=None, percent=None, limit=None, stop=None,
            sl=None, tp=None, sl_pct=None, tp_pct=None, tif="gtc", symbol=None,
            tag=None, oco=None,
            trail_percent=None, trail_amount=None, sl_trail_pct=None,
            sl_trail_amount=None,
            at=None, good_till=None) -> int:
        """Place a buy order; returns its id.

        Size: ``size`` shares, or ``cash`` money, or ``percent`` of equity
        (a fraction, 0.5 = half); none of them buys with all available cash.
        Type: market by default; ``limit=`` a limit, ``stop=`` a stop, both a
        stop-limit. ``sl``/``tp`` (prices) or ``sl_pct``/``tp_pct`` (fractions of
        the fill price) attach a bracket: a stop-loss and a take-profit, one
        cancelling the other. ``tif`` is ``"gtc"`` or ``"day"``. ``oco`` links to
        another order id: when one fills the other is cancelled.

        Trailing stops: ``trail_percent=`` (a fraction) or ``trail_amount=`` (a price
        distance) makes this order a trailing stop (a buy stop that follows the lowest
        low since the bar it is placed on); ``sl_trail_pct=`` or ``sl_trail_amount=``
        makes the bracket's stop leg trail (with ``sl``/``sl_pct`` it starts there).

        ``at="close"`` fills a market order at the close of this bar (market-on-close),
        ``at="open"`` at the next bar's open, whatever the run's ``fill``.
        ``good_till`` ends the order unfilled after that many bars (``good_till=1``:
        only the next bar) or after that date (inclusive); it is then ``expired``.
        """
        return self._order(1, size, cash=cash, percent=percent, limit=limit, stop=stop,
                           sl=sl, tp=tp, sl_pct=sl_pct, tp_pct=tp_pct, tif=tif, symbol=symbol,
                           tag=tag, oco=oco, trail_percent=trail_percent,
                           trail_amount=trail_amount, sl_trail_pct=sl_trail_pct,
                           sl_trail_amount=sl_trail_amount, at=at, good_till=good_till)

    def sell(self, size=None, *, cash=None, percent=None, limit=None, stop=None,
             sl=None, tp=None, sl_pct=None, tp_pct=None, tif="gtc", symbol=None,
             tag=None, oco=None,
             trail_percent=None, trail_amount=None, sl_trail_pct=None,
             sl_trail_amount=None,
             at=None, good_till=None) -> int:
        """Place a sell order; returns its id. Arguments as for :meth:`buy`.

        With no size, sells the whole long position held now. Selling more than
        is held opens a short, which is rejected unless shorting is enabled.
        ``sell(trail_percent=0.03)`` is a trailing stop on the long position held:
        its stop follows the highest high since the bar it is placed on, 3% below it.
        """
        return self._order(-1, size, cash=cash, percent=percent, limit=limit, stop=stop,
                           sl=sl, tp=tp, sl_pct=sl_pct, tp_pct=tp_pct, tif=tif, symbol=symbol,
                           tag=tag, oco=oco, trail_percent=trail_percent,
                           trail_amount=trail_amount, sl_trail_pct=sl_trail_pct,
                           sl_trail_amount=sl_trail_amount, at=at, good_till=good_till)

    def _order(self, side: int, size, *, cash, percent, limit, stop, sl, tp, sl_pct, tp_pct,
               tif, symbol, tag, oco, trail_percent, trail_amount, sl_trail_pct,
               sl_trail_amount, at, good_till) -> int:
        """:meth:`buy` (``side=1``) or :meth:`sell` (``side=-1``)."""
        timing = self._timing(at, good_till, limit,
                              stop if trail_percent is None and trail_amount is None
                              else True)  # a trailing stop takes no at=
        trailing = self._trailing_order(side, size, cash, percent, trail_percent, trail_amount,
                                        tif, symbol, tag, limit=limit, stop=stop, sl=sl,
                                        tp=tp, sl_pct=sl_pct, tp_pct=tp_pct, oco=oco,
                                        sl_trail_pct=sl_trail_pct,
                                        sl_trail_amount=sl_trail_amount)
        if trailing is not None:
            return self._timed(trailing, timing)
        bracket_trail = _trail_distance("sl_trail_pct", sl_trail_pct,
                                        "sl_trail_amount", sl_trail_amount)
        oid = self._place(side, size, cash, percent, limit, stop, sl, tp, sl_pct, tp_pct,
                          tif, symbol, tag, oco)
        if bracket_trail is not None:
            self._broker.set_bracket_trail(oid, *bracket_trail)
        return self._timed(oid, timing)

    def close(self, symbol=None, *, tag=None) -> int | None:
        """Close the position in ``symbol`` at market; None when already flat."""
        index = self._symbol(symbol)
        if self._broker.get_position(index) == 0:
            return None
        return self._broker.submit(index, 0, MARKET, TARGET_SHARES, 0.0, tag=_user_tag(tag))

    def order_target_percent(self, percent: float, *, symbol=None, tag=None,
                             at=None, good_till=None) -> int:
        """Trade to hold ``percent`` of equity (signed; -0.5 is a half-equity short).
        ``at`` and ``good_till`` as for :meth:`buy`."""
        _check_number("percent", percent, allow_negative=True)
        timing = self._timing(at, good_till, None, None)
        return self._timed(self._broker.submit(self._symbol(symbol), 0, MARKET,
                                               TARGET_PERCENT, float(percent), tag=_user_tag(tag)),
                           timing)

    def order_target_shares(self, shares: float, *, symbol=None, tag=None) -> int:
        """Trade to hold ``shares`` (signed)."""
        _check_number("shares", shares, allow_negative=True)
        self._check_whole("shares", shares)
        return self._broker.submit(self._symbol(symbol), 0, MARKET, TARGET_SHARES,
                                   float(shares), tag=_user_tag(tag))

    def cancel(self, order_id: int) -> bool:
        """Cancel an open order; False when it had already filled or ended."""
        return self._broker.cancel(order_id)

    def _timing(self, at, good_till, limit, stop):
        return _timing_of(self, at, good_till, limit, stop)

    def _timed(self, order_id, timing):
        """Apply ``at``/``good_till`` (checked by :meth:`_timing`) to ``order_id``."""
        if timing is not None:
            at, expire_bar, good_till = timing
            self._broker.set_time_in_force(order_id, at, expire_bar, good_till)
        return order_id

    def _check_whole(self, name, value):
        if not self._broker.fractional and not float(value).is_integer():
            raise OrderError(
                f"{name} must be a whole number of shares; got {value!r}. Round it, or "
                f"run with fractional=True (CLI --fractional) to trade fractions"
            )

    def _sized(self, size, cash, percent):
        """``(size mode, amount)`` of an order's ``size``/``cash``/``percent``, checked;
        None when none is given (each order type has its own default)."""
        given = [n for n, v in (("size", size), ("cash", cash), ("percent", percent))
                 if v is not None]
        if len(given) > 1:
            raise OrderError(f"give one of size, cash or percent; got {', '.join(given)}")
        if size is not None:
            _check_number("size", size)
            self._check_whole("size", size)
            return SHARES, float(size)
        if cash is not None:
            _check_number("cash", cash)
            return CASH, float(cash)
        if percent is not None:
            _check_number("percent", percent)
            return PERCENT_EQUITY, float(percent)
        return None

    def _place(self, side, size, cash, percent, limit, stop, sl, tp, sl_pct, tp_pct,
               tif, symbol, tag, oco) -> int:
        index = self._symbol(symbol)
        sized = self._sized(size, cash, percent)
        if sized is not None:
            mode, amount = sized
        elif side > 0:
            mode, amount = ALL_CASH, 0.0
        else:
            held = self._broker.get_position(index)
            if held <= 0:
                raise OrderError(
                    "sell() without a size sells the long position, but none is held; "
                    "give size=, cash= or percent= to open a short"
                )
            mode, amount = SHARES, held
        for name, value in (("limit", limit), ("stop", stop), ("sl", sl), ("tp", tp)):
            if value is not None:
                _check_number(name, value)
        for name, value in (("sl_pct", sl_pct), ("tp_pct", tp_pct)):
            if value is not None:
                _check_number(name, value)
                if value >= 1:
                    raise OrderError(f"{name} is a fraction of the fill price (0.05 = 5%); "
                                     f"got {value!r}")
        if (sl is not None or tp is not None) and (sl_pct is not None or tp_pct is not None):
            raise OrderError("give bracket prices (sl, tp) or fractions (sl_pct, tp_pct), "
                             "not both")
        relative = sl_pct is not None or tp_pct is not None
        if tif not in TIF_CODES:
            raise OrderError(f"tif must be 'gtc' or 'day'; got {tif!r}."
                             + did_you_mean(tif, TIF_CODES))
        kind = (STOP_LIMIT if limit is not None and stop is not None else
                LIMIT if limit is not None else STOP if stop is not None else MARKET)
        nan = math.nan
        stop_loss = sl_pct if relative else sl
        take_profit = tp_pct if relative else tp
        return self._broker.submit(
            index, side, kind, mode, amount,
            nan if limit is None else float(limit), nan if stop is None else float(stop),
            TIF_CODES[tif],
            nan if stop_loss is None else float(stop_loss),
            nan if take_profit is None else float(take_profit),
            relative, _user_tag(tag), -1 if oco is None else int(oco),
        )

    # -- trailing stops and rebalancing ------------------------------------------------

    def _trailing_order(self, side, size, cash, percent, trail_percent, trail_amount, tif,
                        symbol, tag, **others) -> int | None:
        """Place a trailing stop when ``trail_percent``/``trail_amount`` is given."""
        distance = _trail_distance("trail_percent", trail_percent,
                                   "trail_amount", trail_amount)
        if distance is None:
            return None
        extra = [name for name, value in others.items() if value is not None]
        if extra:
            raise OrderError(
                f"a trailing stop (trail_percent/trail_amount) takes no {', '.join(extra)}; "
                f"to trail the stop leg of a bracket, use sl_trail_pct= or sl_trail_amount="
            )
        if tif not in TIF_CODES:
            raise OrderError(f"tif must be 'gtc' or 'day'; got {tif!r}."
                             + did_you_mean(tif, TIF_CODES))
        index = self._symbol(symbol)
        sized = self._sized(size, cash, percent)
        if sized is not None:
            mode, amount = sized
        else:
            held = self._broker.get_position(index)
            if held * side >= 0:
                side_name = "sell" if side < 0 else "buy"
                held_name = "long" if side < 0 else "short"
                raise OrderError(
                    f"{side_name}(trail_percent/trail_amount) without a size closes the "
                    f"{held_name} position, but none is held; give size=, cash= or percent="
                )
            mode, amount = SHARES, abs(held)
        return self._broker.submit_trailing(index, side, mode, amount, *distance,
                                            TIF_CODES[tif], _user_tag(tag))

    def rebalance(self, weights, *, threshold: float = 0.0) -> None:
        """Trade every symbol with a weight to that fraction of equity.

        ``weights``: a number per symbol (an array in the data's symbol order, or a
        dict symbol → weight; a number for one symbol); NaN or a missing symbol leaves
        it alone, 0 closes it. Valued at this bar's close, the orders (target-percent,
        market) are placed sells first, then buys; a symbol whose weight would change
        by less than ``threshold`` is skipped. ``Signals(weights=...)`` on the
        vectorised path does exactly this at each bar with a weight.
        """
        n = self._panel.n_symbols
        if isinstance(weights, dict):
            row = np.full(n, np.nan)
            for name, value in weights.items():
                row[self._symbol(name)] = value
        else:
            row = np.array(weights, dtype=np.float64, ndmin=1).reshape(-1)
            if row.shape != (n,):
                raise OrderError(f"weights has {row.size} values for {n} symbols; give one "
                                 f"per symbol (NaN to leave one alone) or a dict")
        if np.isinf(row).any() or (np.abs(row[~np.isnan(row)]) > MAX_FRACTION).any():
            raise OrderError(f"weights must be finite fractions of equity (1 = all of it); "
                             f"got {row.tolist()}")
        _check_number("threshold", threshold, allow_negative=True)
        if threshold < 0:
            raise OrderError(f"threshold must be >= 0; got {threshold!r}")
        self._broker.rebalance(np.ascontiguousarray(row), float(threshold))


def _trail_distance(pct_name, pct, amount_name, amount):
    """``(percent, amount)`` for the broker (one NaN), or None when neither is given."""
    if pct is None and amount is None:
        return None
    if pct is not None and amount is not None:
        raise OrderError(f"give {pct_name} or {amount_name}, not both")
    if pct is not None:
        _check_number(pct_name, pct)
        if pct >= 1:
            raise OrderError(f"{pct_name} is a fraction of the price (0.03 = 3%); got {pct!r}")
        return float(pct), math.nan
    _check_number(amount_name, amount)
    return math.nan, float(amount)


def _user_tag(tag):
    """A strategy's tag as the text recorded as the exit reason (``tag=3`` is ``"3"``).

    The broker reads an ``int`` tag as one of its own codes (``signal``, ``close``...),
    so a strategy's tags always reach it as text.
    """
    return None if tag is None else str(tag)


#: The largest size, amount of money or price an order may name. Prices above it are
#: refused at load (engine.data.bars.MAX_PRICE); an order beyond it is a bug in the
#: strategy (a size computed as cash / 0), and would only be rejected with a cost of
#: hundreds of digits.
MAX_AMOUNT = 1e15
#: The largest fraction of equity (percent=, order_target_percent): 1000 times equity,
#: beyond any broker's leverage.
MAX_FRACTION = 1e3
_FIXES = {
    "size": "pass a number of shares (e.g. size=100), or size the order by money "
            "(cash=...) or by equity (percent=0.5 for half)",
    "shares": "pass the number of shares to hold (e.g. 100, or -100 for a short)",
    "cash": "pass the amount of money to spend (e.g. cash=10_000), or percent= of equity",
    "percent": "pass a fraction of equity (0.5 = half, 1 = all of it)",
}


# -- account/time-in-force: at= and good_till= of an order ------------------------------

def _timing_of(strategy, at, good_till, limit, stop):
    """``(at, expire_bar, good_till)`` checked, or None when both are left unset."""
    if at is None and good_till is None:
        return None
    if at is not None:
        if at not in ("open", "close"):
            raise OrderError(f"at must be 'open' or 'close' (None: the run's fill setting); "
                             f"got {at!r}." + did_you_mean(str(at), ("open", "close")))
        if limit is not None or stop is not None:
            raise OrderError(f"at={at!r} applies to market orders; this order has "
                             f"{'limit=' if limit is not None else 'stop='}. Drop at=, or "
                             f"drop the limit/stop price")
    expire_bar = -1
    if good_till is not None:
        now = strategy._cursor.index
        market = limit is None and stop is None
        on_close = at == "close" or (at is None and market and strategy._broker.fill_on_close)
        first = now if on_close else now + 1
        if isinstance(good_till, (bool, np.bool_)):
            raise OrderError(f"good_till must be a number of bars (>= 1) or a date; got "
                             f"{good_till!r}")
        if isinstance(good_till, (int, np.integer)):
            if good_till < 1:
                raise OrderError(f"good_till must be a number of bars >= 1 (1: the next "
                                 f"bar only) or a date; got {good_till!r}")
            expire_bar = first + int(good_till) - 1
        else:
            from engine.data.bars import _bound

            try:
                bound = _bound(good_till, "good_till", is_end=True,
                               zone=strategy._panel.meta.get("tz"))
            except Exception as exc:
                raise OrderError(f"good_till must be a number of bars (>= 1) or a date such "
                                 f"as '2021-03-31'; got {good_till!r}") from exc
            expire_bar = int(np.searchsorted(strategy._panel.ts, bound, side="right")) - 1
            if expire_bar < first:
                raise OrderError(f"good_till={good_till!r} ends before the first bar this order "
                                 f"can fill on (bar {first}); give a later date or a number "
                                 f"of bars")
    return at, expire_bar, good_till


def _shown(value) -> str:
    """``value`` for a message: a huge number as 1e+300, not its 300 digits."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    if math.isfinite(number) and abs(number) >= 1e15:
        return f"{number:g}"
    return repr(value)


def _check_number(name, value, allow_negative=False):
    try:
        number = float(value)
    except OverflowError:       # an int with hundreds of digits
        number = math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        raise OrderError(f"{name} must be a number; got {_shown(value)}") from None
    if math.isnan(number) or (not allow_negative and number <= 0) or (
            math.isinf(number) and not isinstance(value, int)):
        bound = "finite" if allow_negative else "finite and > 0"
        raise OrderError(f"{name} must be {bound}; got {_shown(value)}")
    limit = MAX_FRACTION if name == "percent" else MAX_AMOUNT
    if abs(number) > limit:
        fix = _FIXES.get(name, "pass a price near the data's prices")
        shown = (_shown(value) if math.isfinite(number)
                 else f"a {len(str(abs(value)))}-digit integer")
        raise OrderError(
            f"{name} is {shown}, beyond {limit:g}, the largest {name} an order may name. "
            f"Fix: {fix}."
        )


class _BarTimes:
    """Every bar's timestamps, as ``self.data.ts`` passed to ``self.I`` stands for them."""

    def __init__(self, ts: np.ndarray):
        self._ts = ts

    def _full(self) -> np.ndarray:
        return self._ts


def _call_indicator(func, args, kwargs, stop):
    call_args = [a._full()[:stop] if isinstance(a, (Series, _BarTimes)) else a for a in args]
    call_kwargs = {k: (v._full()[:stop] if isinstance(v, (Series, _BarTimes)) else v)
                   for k, v in kwargs.items()}
    out = func(*call_args, **call_kwargs)
    parts = out if isinstance(out, tuple) else (out,)
    arrays = []
    for part in parts:
        arr = np.asarray(part, dtype=np.float64)
        if arr.shape[0] != stop:
            raise LookAheadError(
                f"indicator {getattr(func, '__name__', func)!r} returned {arr.shape[0]} rows "
                f"for {stop} bars; an indicator must return one value per bar"
            )
        arrays.append(arr)
    return tuple(arrays)
