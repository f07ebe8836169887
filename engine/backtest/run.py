"""``engine.run``: one backtest from a strategy, data and account settings."""

from __future__ import annotations

import functools
import inspect
import math
import traceback
from pathlib import Path

import numpy as np

from engine._core.broker import STATUS_NAMES, Broker
from engine._core.loop import Bar, Cursor, run_event, run_vector, run_vector_exits, run_weights
from engine.analysis.conventions import choose_periods_per_year, resolve_periods_per_year
from engine.analysis.metrics import compute_metrics
from engine.backtest.result import Result
from engine.data.panel import Panel
from engine.errors import EngineError, LookAheadError, ParameterError, StrategyError
from engine.strategy.base import MAX_FRACTION, Signals, Strategy, VectorData
from engine.strategy.lookahead import (
    FIX,
    audit_prefixes,
    check_audit,
    cut_points,
    gap_rows,
    stops_at,
    where,
)
from engine.strategy.plugins import load_strategy

FILL_MODES = ("open", "close")
RUN_MODES = ("auto", "event", "vector")
SIZE_TYPES = ("all_cash", "shares", "cash", "percent", "target_percent")
#: The broker's status code of a rejected order.
REJECTED = STATUS_NAMES.index("rejected")


def run(strategy, data=None, *, cash: float = 100_000.0, commission: float = 0.0,
        commission_per_share: float = 0.0, commission_fixed: float = 0.0,
        commission_minimum: float = 0.0, slippage_bps: float = 0.0,
        slippage_fixed: float = 0.0, fill: str = "open", mode: str = "auto",
        fractional: bool = False, shorting: bool = False, borrow_rate: float = 0.0,
        start=None, end=None, periods_per_year=None, risk_free: float = 0.0,
        feeds=None, strict: bool = False, date_format: str | None = None,
        tz: str | None = None, audit: str = "cuts",
        leverage: float = 1.0, maintenance_margin: float = 0.25, margin_rate: float = 0.0,
        max_volume_share: float | None = None, benchmark=None, adjust: bool = False,
        **params) -> Result:
    """Run one backtest and return its :class:`~engine.backtest.result.Result`.

    Parameters
    ----------
    strategy : str, pathlib.Path, module or Strategy subclass
        The strategy: a plugin file path, a module, or the class.
    data : str, pathlib.Path, pandas.DataFrame, polars.DataFrame or Panel, optional
        Bars in the documented schema. Default: the strategy's ``default_data``.
    cash : float
        Starting cash.
    commission : float
        Commission as a fraction of the traded value (0.001 = 0.1%), below 1: a
        value of 1 or more is refused (a fee per order is ``commission_fixed``).
    commission_per_share, commission_fixed, commission_minimum : float
        Further commission terms: per share, per order, and the minimum per order.
    slippage_bps, slippage_fixed : float
        Adverse slippage on market and stop fills, in basis points and in price units.
    fill : {"open", "close"}
        Market orders fill at the next bar's open (default) or at the close of the
        bar they were placed on.
    mode : {"auto", "event", "vector"}
        Which path runs: ``auto`` takes ``signals`` when the strategy defines it,
        ``on_bar`` otherwise.
    fractional : bool
        Allow fractional quantities (whole shares otherwise).
    shorting : bool
        Allow short positions.
    borrow_rate : float
        Annual borrow rate charged on short positions, accrued per bar.
    start, end : str or date, optional
        Inclusive date range of bars to use (local times of the data's zone).
    periods_per_year : float, str or None
        Annualisation factor for the metrics and the borrow accrual: any positive
        number of bars per year. None (the default) or ``"auto"`` reads it off
        the data (:func:`~engine.analysis.conventions.infer_periods_per_year`:
        252 for exchange days, 365 when weekends trade, bars per day times that
        for intraday bars); ``settings["periods_per_year_from"]`` says how.
    risk_free : float
        Annual risk-free rate for Sharpe and Sortino.
    feeds : dict of str to engine.Feed, optional
        Alternative data joined onto the bars point-in-time, replacing the
        strategy's own feeds (``{}`` joins none); relative paths are taken from the
        working directory. Default: the strategy's ``feed_specs()``.
    strict : bool
        Raise :class:`~engine.errors.RejectedOrdersError` (with the count and the
        first case) when any order was rejected, instead of returning a result
        whose ``rejections()`` list them.
    date_format : str, optional
        A ``strptime`` format for dates stored as text (``"%d/%m/%Y"``), for data
        whose day/month order the loader cannot tell (CLI ``--date-format``).
    tz : str, optional
        The IANA time zone the results are shown in (CLI ``--tz``): time-zone-aware
        data is converted to it, data without a zone is taken to be in it. Default:
        the data's own zone (none for data without one).
    audit : {"cuts", "full", "off"}
        The look-ahead audit of ``signals`` and of ``self.I`` indicators
        (:mod:`engine.strategy.lookahead`): recomputed on prefixes of the data
        ending at cut points spread over all of it (``"cuts"``, about 4-6 times
        their cost), at every bar (``"full"``, quadratic: small data or a
        pre-flight check), or not at all (``"off"``, for audited code in sweeps;
        a leak then goes through). ``settings["audit"]`` records it.
    leverage : float
        1 (the default) is a cash account; above 1 a margin account whose positions
        may be worth up to ``leverage`` x equity (docs/execution.md, "Margin account").
    maintenance_margin : float
        Margin account: when equity falls below this fraction of the gross position
        value at a close, positions are closed at the next open, largest first
        (exit reason ``margin_call``).
    margin_rate : float
        Margin account: annual interest on borrowed cash (negative cash), charged at
        each close as ``-cash * margin_rate / periods_per_year``.
    max_volume_share : float, optional
        Fill at most this fraction of a bar's volume per order; the rest of a GTC
        order carries to the next bars, a day order's is cancelled.
    benchmark : str, pathlib.Path, DataFrame or Panel, optional
        What the run is measured against (``benchmark_return``, ``beta``, ``alpha``,
        ``information_ratio``, ``tracking_error``, the plots): a symbol of the data,
        a bar file ``PATH[:SYMBOL]``, a bundled dataset ``NAME[:SYMBOL]`` (e.g.
        ``"sp500_daily"``) or bars (:func:`engine.backtest.benchmark.benchmark_from`).
        Default: equal-weight buy-and-hold of the data.
    adjust : bool
        Data with an ``adj_close`` column (a Yahoo CSV): trade open, high, low and
        close multiplied by ``adj_close / close`` (CLI ``--adjust``). Without it such
        data trades its unadjusted close, with a warning. ``settings["prices"]``
        says which prices were traded.
    **params
        Strategy parameters, by name.
    """
    cls = load_strategy(strategy)
    instance = cls(**params)
    audit = check_audit(audit)
    if fill not in FILL_MODES:
        raise ParameterError(f"fill must be 'open' or 'close'; got {fill!r}")
    if mode not in RUN_MODES:
        raise ParameterError(f"mode must be one of {', '.join(RUN_MODES)}; got {mode!r}")
    check_commission(commission)
    if periods_per_year is not None:
        resolve_periods_per_year(periods_per_year)  # a bad value fails before the data loads
    path = _choose_path(cls, mode)      # a strategy with no way to run fails before the data
    panel = _panel_for(cls, data, start, end, instance=instance, feeds=feeds,
                       date_format=date_format, tz=tz, adjust=adjust)
    # Calendar days where the data trades: a Tokyo session opens on the previous UTC day.
    local = panel.local_ts
    if periods_per_year is None:  # read off the data: once per panel (a sweep's is shared)
        ppy, ppy_from = panel_memo(panel, "periods_per_year",
                                   lambda: choose_periods_per_year(None, local))
    else:
        ppy, ppy_from = choose_periods_per_year(periods_per_year, local)
    try:
        broker = Broker(
            panel.fields["open"], panel.fields["high"], panel.fields["low"],
            panel.fields["close"], float(cash),
            commission_percent=float(commission), commission_per_share=float(commission_per_share),
            commission_fixed=float(commission_fixed),
            commission_minimum=float(commission_minimum),
            slippage_bps=float(slippage_bps), slippage_fixed=float(slippage_fixed),
            borrow_rate=float(borrow_rate), periods_per_year=float(ppy),
            fractional=bool(fractional), shorting=bool(shorting), fill_on_close=fill == "close",
            **_account_options(panel, leverage, maintenance_margin, margin_rate,
                               max_volume_share),
        )
    except (ValueError, TypeError) as exc:
        raise ParameterError(_account_message(str(exc))) from None
    against = None
    if benchmark is not None:       # a bad benchmark fails before the run, not after it
        from engine.backtest.benchmark import benchmark_from

        against = benchmark_from(benchmark, panel, float(cash))
    cursor = Cursor()
    instance._bind(panel, broker, cursor, audit=audit)
    if path == "vector":
        _run_vector(instance, panel, broker, audit)
    else:
        _run_event(instance, panel, broker, cursor)
    settings = {
        "cash": float(cash), "commission": float(commission),
        "commission_per_share": float(commission_per_share),
        "commission_fixed": float(commission_fixed),
        "commission_minimum": float(commission_minimum),
        "slippage_bps": float(slippage_bps), "slippage_fixed": float(slippage_fixed),
        "fill": fill, "mode": path, "fractional": bool(fractional), "shorting": bool(shorting),
        "borrow_rate": float(borrow_rate), "periods_per_year": ppy,
        "periods_per_year_from": ppy_from, "risk_free": float(risk_free), "audit": audit,
        "data": panel.source,
        "start": str(local[0])[:10] if panel.n_bars else None,
        "end": str(local[-1])[:10] if panel.n_bars else None,
        "tz": panel.meta.get("tz"),
        "leverage": float(leverage), "maintenance_margin": float(maintenance_margin),
        "margin_rate": float(margin_rate),
        "max_volume_share": None if max_volume_share is None else float(max_volume_share),
        "prices": panel.meta.get("prices", "as given"),
    }
    result = _result(cls, instance, panel, broker, settings, ppy, risk_free, against)
    if strict and result.metrics["rejected"]:
        from engine.backtest.rejections import strict_error

        raise strict_error(result.rejections())
    return result


def panel_memo(panel: Panel, key, compute):
    """``compute()`` once per panel and ``key``: what a run reads off its bars alone
    (the inferred periods per year, the buy-and-hold curve) is the same for every
    run of a sweep on that panel. The panel's arrays are read-only, so the value
    cannot go stale; it lives in the panel's ``__dict__`` (a frozen dataclass)."""
    memo = panel.__dict__.get("_run_memo")
    if memo is None:
        memo = {}
        object.__setattr__(panel, "_run_memo", memo)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _account_options(panel: Panel, leverage, maintenance_margin, margin_rate,
                     max_volume_share) -> dict:
    """The broker's margin and volume settings (account/time-in-force), as numbers."""
    options = {}
    for name, value in (("leverage", leverage), ("maintenance_margin", maintenance_margin),
                        ("margin_rate", margin_rate), ("max_volume_share", max_volume_share)):
        if value is None and name == "max_volume_share":
            continue
        try:
            options[name] = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name} must be a number; got {value!r} "
                                 f"(CLI --{name.replace('_', '-')})") from None
    if "max_volume_share" in options:
        volume = panel.fields.get("volume")
        if volume is None or panel.meta.get("volume_missing") or not np.isfinite(volume).any():
            raise ParameterError(
                f"max_volume_share needs the bars' volume, and {panel.source} has no volume "
                f"column (CLI --max-volume-share); add one or drop the option")
        options["volume"] = np.ascontiguousarray(volume, dtype=np.float64)
    return options


def check_commission(commission) -> None:
    """Refuse a percentage commission of 1 (100%) or more: it is almost always a fee per
    order or a percentage written as a number, and it rejects every sale it cannot fund."""
    try:
        value = float(commission)
    except (TypeError, ValueError):
        return  # not a number: the broker's own check names it
    if math.isfinite(value) and value >= 1:
        raise ParameterError(
            f"commission is a fraction of each trade's value (0.001 = 0.1%); got {value:g}, "
            f"which charges {value * 100:,.6g}% of every trade (CLI --commission). Fix: for "
            f"{value:g} per order use commission_fixed={value:g} (CLI --commission-fixed "
            f"{value:g}); for a percentage give the fraction (0.1% is 0.001)"
        )


#: The broker's names for account settings that ``run`` calls differently.
_RUN_NAMES = {"commission_percent": "commission"}


def _account_message(text: str) -> str:
    """The broker's refusal of a setting, named as ``run`` and the CLI name it."""
    name, _, rest = text.partition(" ")
    keyword = _RUN_NAMES.get(name, name)
    if keyword not in inspect.signature(run).parameters:
        return text
    return f"{keyword} {rest} (CLI --{keyword.replace('_', '-')})"


def _panel_for(cls, data, start, end, *, instance=None, feeds=None, date_format=None,
               tz=None, adjust=False) -> Panel:
    """The bars for a run, with the strategy's feeds (or ``feeds``) joined on."""
    from engine.data.bars import _bound, in_zone, load_bars
    from engine.data.timestamps import check_date_format, check_zone

    if data is None:
        if cls.default_data is None:
            raise ParameterError(
                f"{cls.__name__} declares no default_data; pass data= (CLI --data PATH)"
            )
        data = _default_data_path(cls)
        start = start if start is not None else cls.default_start
        end = end if end is not None else cls.default_end
    check_date_format(date_format)
    check_zone(tz)
    if isinstance(data, Panel):
        if adjust:
            raise ParameterError("adjust=True rescales prices as the bars load; a Panel is "
                                 "already loaded. Fix: pass the file or DataFrame, or load it "
                                 "with engine.load_bars(..., adjust=True)")
        panel = in_zone(data, tz)
        if start is not None or end is not None:
            zone = panel.meta.get("tz")
            lo = _bound(start, "start", is_end=False, zone=zone)
            hi = _bound(end, "end", is_end=True, zone=zone)
            panel = panel.between(lo, hi)
    else:
        panel = load_bars(data, start=start, end=end, date_format=date_format, tz=tz,
                          adjust=bool(adjust))
    if panel.n_bars == 0:
        raise EngineError(f"no bars in {panel.source} between {start} and {end}")
    return _join_strategy_feeds(cls, panel, instance, feeds)


def _join_strategy_feeds(cls, panel: Panel, instance=None, feeds=None) -> Panel:
    """Join ``feeds`` (paths from the working directory) or else the strategy's own
    (``instance.feed_specs()``, or the class's ``feeds``; paths from its file)."""
    from engine.data.feeds import join_feeds

    if feeds is not None:
        base = None
    else:
        feeds = instance.feed_specs() if instance is not None else dict(cls.feeds)
        home = _strategy_file(cls)
        base = home.parent if home is not None else None
    if feeds and not isinstance(feeds, dict):
        raise ParameterError(
            f"feeds must be a dict of name -> engine.Feed; got {type(feeds).__name__}"
        )
    return join_feeds(panel, feeds, base) if feeds else panel


def _default_data_path(cls) -> Path:
    try:
        home = Path(inspect.getfile(cls)).resolve().parent
    except (TypeError, OSError):
        home = Path.cwd()
    path = (home / cls.default_data).resolve()
    if not path.exists():
        raise ParameterError(
            f"{cls.__name__}.default_data points to {path}, which does not exist; "
            f"pass data= (CLI --data PATH) or fix default_data (it is relative to the "
            f"strategy's file)"
        )
    return path


def _choose_path(cls, mode: str) -> str:
    if not cls.has_vector_path() and not cls.has_event_path():
        home = _strategy_file(cls)
        where = f"{_shown_path(str(home))}: " if home is not None else ""
        name = cls.__name__
        raise StrategyError(
            f"{where}{name} defines neither on_bar (event path) nor signals (vectorised "
            f"path), so it cannot trade. Fix: add `def on_bar(self, bar):` to {name} (called "
            f"after each bar closes) or `def signals(self, data):` returning "
            f"engine.Signals(entries=..., exits=...)."
        )
    if mode == "vector" and not cls.has_vector_path():
        raise ParameterError(f"mode='vector' but {cls.__name__} defines no signals() method")
    if mode == "event" and not cls.has_event_path():
        raise ParameterError(f"mode='event' but {cls.__name__} defines no on_bar() method")
    if mode == "auto":
        return "vector" if cls.has_vector_path() else "event"
    return mode


def _strategy_file(cls) -> Path | None:
    try:
        name = inspect.getfile(cls)
    except (TypeError, OSError):
        return None
    if not Path(name).is_absolute():  # relative to the working directory: never cached
        return Path(name).resolve()
    return _resolved(name)


@functools.lru_cache(maxsize=1024)
def _resolved(name: str) -> Path:
    return Path(name).resolve()


def _read_only(array):
    if array is not None:
        array.setflags(write=False)  # shared by every run on the panel
    return array


def _failure(instance: Strategy, hook: str, exc: BaseException, panel: Panel, index: int):
    """The error a strategy hook raised, named by strategy, bar, timestamp, file and line."""
    cls = type(instance)
    where = f"{cls.__name__}.{hook}"
    if 0 <= index < panel.n_bars:
        where += f" at bar {index} ({_fmt_bar_ts(panel.local_ts[index])})"
    home = _strategy_file(cls)
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if home is not None and Path(f.filename).resolve() == home]
    frame = mine[-1] if mine else (frames[-1] if frames else None)
    if frame is not None:
        where += f", {_shown_path(frame.filename)} line {frame.lineno}"
        if frame.line:
            where += f" (`{frame.line.strip()}`)"
    if isinstance(exc, EngineError):
        return type(exc)(f"{where}: {exc}")
    # str(KeyError(...)) is the repr of its argument; show the text itself.
    text = str(exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc)
    fix = "correct the strategy there"
    if isinstance(exc, ValueError) and ("read-only" in text or "WRITEABLE" in text):
        # numpy's words for a write to a sealed array (engine._core.sealed)
        fix = ("the bars, timestamps and indicators a strategy reads are read-only, so "
               "that no strategy can change the prices the broker fills at; write to a "
               "copy (np.array(x)) instead")
    return StrategyError(
        f"{where} raised {type(exc).__name__}: {text.rstrip().rstrip('.')}. Fix: {fix} "
        f"(--debug shows the traceback)."
    )


def _fmt_bar_ts(value) -> str:
    """A bar's timestamp as in the data's messages: the date alone for daily bars."""
    text = np.datetime_as_string(np.datetime64(value, "ns"), unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


def _shown_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it, else absolute."""
    path = Path(filename).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_event(instance: Strategy, panel: Panel, broker: Broker, cursor: Cursor) -> None:
    hook = "on_start"
    try:
        instance.on_start()
        bar = Bar(panel.ts, panel.fields, cursor)
        on_fill = None
        if type(instance).on_fill is not Strategy.on_fill:
            symbols = panel.symbols

            def on_fill(order_id):
                info = broker.order_info(order_id)
                info["symbol"] = symbols[info["symbol"]]
                info["ts"] = panel.ts[info["done_bar"]]
                instance.on_fill(info)

        hook = "on_bar"
        run_event(broker, cursor, instance.on_bar, bar, on_fill)
        hook = "on_stop"
        instance.on_stop()
    except Exception as exc:
        index = cursor.index if hook == "on_bar" else -1
        raise _failure(instance, hook, exc, panel, index) from exc


def _signal_arrays(signals, panel: Panel, cls_name: str):
    """The arrays of ``signals``, checked against ``panel``, in :func:`_signal_parts` order.

    Entries and exits: ``entries``/``exits`` as ``uint8`` arrays of shape
    ``(n_bars, n_symbols)``, ``size`` a float64 array of one row or ``n_bars`` rows,
    then the exit options set (float64, one row or one per bar). Weights: the
    ``(n_bars, n_symbols)`` float64 weights alone.
    """
    if not isinstance(signals, Signals):
        raise StrategyError(
            f"{cls_name}.signals must return engine.Signals(entries=..., exits=...); "
            f"got {type(signals).__name__}"
        )
    if signals.weights is not None:
        return [_weight_array(signals, panel, cls_name)]
    if signals.entries is None or signals.exits is None:
        raise StrategyError(
            f"{cls_name}.signals returned Signals without "
            f"{'entries' if signals.entries is None else 'exits'}: give entries= and "
            f"exits= (boolean arrays), or weights= for target weights"
        )
    if signals.rebalance_threshold is not None:
        raise StrategyError(f"{cls_name}.signals: rebalance_threshold applies to weights=; "
                            f"give weights= or drop rebalance_threshold")
    if signals.size_type not in SIZE_TYPES:
        raise StrategyError(
            f"{cls_name}.signals: size_type must be one of {', '.join(SIZE_TYPES)}; "
            f"got {signals.size_type!r}"
        )
    if signals.direction not in ("long", "short"):
        raise StrategyError(f"{cls_name}.signals: direction must be 'long' or 'short'; "
                            f"got {signals.direction!r}")
    shape = (panel.n_bars, panel.n_symbols)
    out = []
    for name in ("entries", "exits"):
        arr = np.asarray(getattr(signals, name))
        if arr.ndim == 1 and panel.n_symbols == 1:
            arr = arr.reshape(-1, 1)
        if arr.shape != shape:
            raise StrategyError(
                f"{cls_name}.signals: {name} has shape {arr.shape}; expected {shape} "
                f"(one row per bar, one column per symbol)"
            )
        if arr.dtype == bool and arr.flags.c_contiguous:
            # bool and uint8 share their bytes: a view, not a copy of the signals
            out.append(arr.view(np.uint8))
            continue
        if arr.dtype != bool:
            if not np.isin(arr[~np.isnan(arr.astype(float))], (0, 1)).all():
                raise StrategyError(f"{cls_name}.signals: {name} must be booleans (or 0/1)")
            arr = np.nan_to_num(arr.astype(float)).astype(bool)
        out.append(np.ascontiguousarray(arr, dtype=np.uint8))
    size = signals.size if signals.size is not None else 0.0
    size = np.asarray(size, dtype=np.float64)
    if size.ndim == 0:
        size = np.full((1, panel.n_symbols), float(size))
    elif size.ndim == 1:
        size = size.reshape(-1, 1) if panel.n_symbols == 1 else size.reshape(1, -1)
    out.append(np.ascontiguousarray(size))
    if signals.trail_percent is not None and signals.trail_amount is not None:
        raise StrategyError(f"{cls_name}.signals: give trail_percent or trail_amount, not "
                            f"both")
    for name in Signals.EXIT_OPTIONS:
        if getattr(signals, name) is not None:
            out.append(_exit_array(getattr(signals, name), name, panel, cls_name))
    return out


#: What each exit option may hold (NaN always means "none"), for messages.
_EXIT_BOUNDS = {
    "stop_loss": ("a fraction of the fill price in (0, 1), e.g. 0.05 for 5%", 0.0, 1.0),
    "take_profit": ("a fraction of the fill price > 0, e.g. 0.1 for 10%", 0.0, math.inf),
    "trail_percent": ("a fraction of the price in (0, 1), e.g. 0.03 for 3%", 0.0, 1.0),
    "trail_amount": ("a price distance > 0", 0.0, math.inf),
}


def _exit_array(value, name: str, panel: Panel, cls_name: str) -> np.ndarray:
    """One exit option as float64 of shape ``(1, n_symbols)`` or ``(n_bars, n_symbols)``."""
    n, k = panel.n_bars, panel.n_symbols
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise StrategyError(f"{cls_name}.signals: {name} must be numbers; got "
                            f"{type(value).__name__}") from None
    if arr.ndim == 0:
        arr = np.full((1, k), float(arr))
    elif arr.ndim == 1 and k == 1 and len(arr) in (1, n):
        arr = arr.reshape(-1, 1)
    elif arr.ndim == 1 and len(arr) == k:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != k or arr.shape[0] not in (1, n):
        raise StrategyError(
            f"{cls_name}.signals: {name} has shape {np.shape(value)}; give a number, one "
            f"per symbol ({k},), or one per bar ({n}, {k})"
            + (f" or ({n},)" if k == 1 else "")
        )
    text, low, high = _EXIT_BOUNDS[name]
    known = arr[~np.isnan(arr)]
    bad = known[~((known > low) & (known < high))]
    if len(bad):
        raise StrategyError(f"{cls_name}.signals: {name} must be {text} (NaN for none); "
                            f"got {float(bad[0])!r}")
    return np.ascontiguousarray(arr)


def _weight_array(signals, panel: Panel, cls_name: str) -> np.ndarray:
    """``signals.weights`` as float64 ``(n_bars, n_symbols)``, checked."""
    given = [name for name in ("entries", "exits", "size", *Signals.EXIT_OPTIONS)
             if getattr(signals, name) is not None]
    given += [f"{name}={getattr(signals, name)!r}" for name, default in
              (("size_type", "all_cash"), ("direction", "long"))
              if getattr(signals, name) != default]
    if given:
        raise StrategyError(
            f"{cls_name}.signals: weights= sets the positions itself (a negative weight "
            f"is a short); it takes no {', '.join(given)}. Give weights (and "
            f"rebalance_threshold) alone, or entries and exits without weights"
        )
    shape = (panel.n_bars, panel.n_symbols)
    try:
        arr = np.asarray(signals.weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise StrategyError(f"{cls_name}.signals: weights must be numbers; got "
                            f"{type(signals.weights).__name__}") from None
    if arr.ndim == 1 and panel.n_symbols == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != shape:
        raise StrategyError(f"{cls_name}.signals: weights has shape {arr.shape}; expected "
                            f"{shape} (one row per bar, one column per symbol; NaN = no "
                            f"change)")
    known = arr[~np.isnan(arr)]
    bad = known[~(np.abs(known) <= MAX_FRACTION)]
    if len(bad):
        raise StrategyError(f"{cls_name}.signals: weights must be finite fractions of equity "
                            f"(1 = all of it, -0.5 a half-equity short); got {float(bad[0])!r}")
    threshold = signals.rebalance_threshold
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and math.isfinite(threshold) and threshold >= 0):
        raise StrategyError(f"{cls_name}.signals: rebalance_threshold must be a number >= 0 "
                            f"(a change of weight, 0.02 = two points); got {threshold!r}")
    return np.ascontiguousarray(arr)


def _signal_parts(signals) -> tuple[str, ...]:
    """The names of the arrays :func:`_signal_arrays` gives for ``signals``."""
    if signals.weights is not None:
        return ("weights",)
    return ("entries", "exits", "size",
            *(name for name in Signals.EXIT_OPTIONS if getattr(signals, name) is not None))


#: The outputs of ``signals`` the audit compares for plain entries and exits.
_SIGNAL_PARTS = ("entries", "exits", "size")
#: Settings of ``Signals`` that must not change when the data is cut.
_SIGNAL_SETTINGS = ("size_type", "direction", "rebalance_threshold")


def _checked_signals(instance: Strategy, panel: Panel, audit: str = "cuts", first: int = 0,
                     offset: int = 0):
    """``instance.signals`` on ``panel``, checked and audited: ``(signals, arrays)``.

    ``arrays`` as :func:`_signal_arrays` gives them. The signals are audited for
    look-ahead as ``audit`` says (:mod:`engine.strategy.lookahead`), every array
    (entries, exits, sizes, stop levels, weights) and setting, by cuts after bar
    ``first`` (a streamed chunk's kept bars were audited with the chunk before).
    ``offset`` is the number of the panel's first bar in the run, for messages.
    """
    cls = type(instance)
    name = cls.__name__
    try:
        signals = instance.signals(VectorData(panel))
        whole = _signal_arrays(signals, panel, name)
        parts = _signal_parts(signals)
        cuts = cut_points(panel.n_bars, audit, first=first, seed=(panel.n_symbols,),
                          gaps=gap_rows(panel.fields.values()) if audit == "cuts" else None)

        def on_prefix(cut: int):
            # A zero-copy view of the prefix: the audit must not copy the panel.
            head = panel.view(0, cut)
            early = instance.signals(VectorData(head))
            arrays = _signal_arrays(early, head, name)
            for setting in _SIGNAL_SETTINGS:
                if getattr(early, setting) != getattr(signals, setting):
                    raise LookAheadError(
                        f"{name}.signals reads the future: {setting} is "
                        f"{getattr(signals, setting)!r} with all {panel.n_bars} bars but "
                        f"{getattr(early, setting)!r} when {stops_at(panel, cut, offset)}. "
                        f"It must not depend on later bars. {FIX}."
                    )
            if _signal_parts(early) != parts:
                raise LookAheadError(
                    f"{name}.signals reads the future: it returns {', '.join(parts)} with "
                    f"all {panel.n_bars} bars but {', '.join(_signal_parts(early))} when "
                    f"{stops_at(panel, cut, offset)}. Which options it sets must not "
                    f"depend on later bars. {FIX}."
                )
            return arrays

        def describe(k, row, col, cut, full, prefix):
            if parts[k] in ("entries", "exits"):
                full, prefix = bool(full), bool(prefix)
            return (
                f"{name}.signals reads the future: {parts[k]} at "
                f"{where(panel, row, col, panel.n_symbols, offset)} is {full!r} with all "
                f"{panel.n_bars} bars but {prefix!r} when {stops_at(panel, cut, offset)}. "
                f"A signal must depend only on bars up to its own. {FIX}. audit='off' (CLI "
                f"--audit off) skips this check: only for code you trust."
            )

        audit_prefixes(whole, on_prefix, cuts, describe)
    except EngineError:
        raise
    except Exception as exc:
        raise _failure(instance, "signals", exc, panel, -1) from exc
    return signals, whole


def _vector_signals(instance: Strategy, panel: Panel, audit: str = "cuts", first: int = 0,
                    offset: int = 0):
    """``instance.signals`` on ``panel``, checked: ``(signals, entries, exits, size)``.

    Plain entries and exits only (:func:`engine.stream_run`): signals using exit
    options or weights are refused with a message saying so. ``entries``/``exits``
    are ``uint8`` arrays of shape ``(n_bars, n_symbols)`` and ``size`` a float64
    array of one row or ``n_bars`` rows, audited as :func:`_checked_signals` says.
    """
    signals, whole = _checked_signals(instance, panel, audit, first, offset)
    if signals.uses_exits_or_weights():
        raise StrategyError(
            f"{type(instance).__name__}.signals sets {', '.join(signals.options_used())}, "
            f"which streaming (engine.stream_run, CLI --stream) does not support: it "
            f"streams plain entries and exits. Fix: run it with engine.run (CLI: without "
            f"--stream/--chunk-bars)"
        )
    entries, exits, size = whole
    return signals, entries, exits, size


def _run_vector(instance: Strategy, panel: Panel, broker: Broker, audit: str = "cuts") -> None:
    signals, arrays = _checked_signals(instance, panel, audit)
    _declare_indicators(instance, signals, panel)
    if signals.weights is not None:
        threshold = signals.rebalance_threshold
        run_weights(broker, arrays[0], 0.0 if threshold is None else float(threshold))
        return
    direction = 1 if signals.direction == "long" else -1
    if not signals.uses_exits_or_weights():
        entries, exits, size = arrays
        run_vector(broker, entries, exits, size, signals.size_type, direction)
        return
    entries, exits, size = arrays[:3]
    options = dict(zip(_signal_parts(signals)[3:], arrays[3:], strict=True))
    none = np.full((1, panel.n_symbols), np.nan)
    run_vector_exits(broker, entries, exits, size, signals.size_type, direction,
                     *(options.get(name, none) for name in Signals.EXIT_OPTIONS))


def _declare_indicators(instance: Strategy, signals: Signals, panel: Panel) -> None:
    """Keep ``Signals(indicators=...)`` for the report's chart, as ``self.I`` does."""
    if signals.indicators is None:
        return
    name = type(instance).__name__
    if not isinstance(signals.indicators, dict):
        raise StrategyError(f"{name}.signals: indicators must be a dict of name -> values "
                            f"(e.g. {{'fast': fast}}); got {type(signals.indicators).__name__}")
    for label, values in signals.indicators.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape[0] != panel.n_bars or arr.ndim > 2:
            raise StrategyError(
                f"{name}.signals: indicator {label!r} has shape {arr.shape}; expected "
                f"({panel.n_bars},) or ({panel.n_bars}, {panel.n_symbols}), one row per bar")
        instance.declared_indicators.append((str(label), (arr,), None))


def closed_trade_arrays(table: dict) -> tuple[np.ndarray, np.ndarray]:
    """P&L and return (P&L over the entry value ``entry_price * |size|``) of the closed
    rows of the broker's trade table: the ``pnl`` and ``return_pct`` of
    :attr:`Result.trades` where ``exit_ts`` is set, without building the frame."""
    closed = table["exit_bar"] >= 0
    pnl = table["pnl"][closed]
    entry_value = table["entry_price"][closed] * np.abs(table["size"][closed])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        returns = pnl / entry_value
    return pnl, returns


def _result(cls, instance, panel, broker, settings, ppy, risk_free, against=None) -> Result:
    from engine.backtest.benchmark import benchmark_equity

    trades_table = broker.trades_table()
    orders_table = broker.orders_table()
    equity = broker.equity_curve
    pnl, returns = closed_trade_arrays(trades_table)
    if against is None:
        benchmark = panel_memo(panel, ("benchmark", broker.starting_cash),
                               lambda: _read_only(benchmark_equity(panel, broker.starting_cash)))
        settings["benchmark"] = "buy-and-hold of the data"
    else:
        benchmark, settings["benchmark"] = against
    metrics = compute_metrics(
        equity, starting_cash=broker.starting_cash, trade_pnl=pnl, trade_return=returns,
        in_market=broker.exposure,
        benchmark_equity=benchmark,
        benchmark_start=broker.starting_cash if benchmark is not None else None,
        periods_per_year=ppy, risk_free=risk_free,
    )
    metrics["open_trades"] = float(len(trades_table["exit_bar"]) - len(pnl))
    metrics["commissions"] = float(broker.commissions_paid)
    metrics["borrow_costs"] = float(broker.borrow_paid)
    metrics["same_bar_exits"] = float(broker.same_bar_exits)
    metrics["margin_calls"] = float(broker.margin_calls)
    metrics["margin_interest"] = float(broker.margin_interest_paid)
    metrics["bars"] = float(panel.n_bars)
    metrics["rejected"] = float(np.count_nonzero(orders_table["status"] == REJECTED))
    for key, value in metrics.items():
        if isinstance(value, float) and math.isnan(value):
            metrics[key] = float("nan")
    # The frames are built on first access (Result._frame), from these tables.
    source = {"trades_table": trades_table, "orders_table": orders_table, "equity": equity,
              "cash": broker.cash_curve}
    return Result(
        strategy=cls.__name__, params=dict(instance.params), metrics=metrics,
        settings=settings, panel=panel, instance=instance, benchmark=benchmark, source=source,
    )
