"""Event study: what the traded instrument did after each of a strategy's signals.

Definitions
-----------
Forward return
    For a signal on bar ``t`` of symbol ``j`` and a horizon of ``h`` bars:
    ``close_j[t + h] / close_j[t] - 1``, from the signal bar's close (the
    first price at which one could act on it) to the close ``h`` bars later.
    Bars are counted on the symbol's own bars (rows where it has a close), so a
    gap in one symbol does not shorten its horizon. A signal closer than ``h``
    bars to the end of the data (or on a bar where the symbol has no close) has
    no forward return: it is NaN and is **excluded** from every statistic,
    ``count`` included.
Row statistics, per ``(signal, horizon)``
    ``count``: signals with a forward return; ``share_positive``: the share of
    them with a forward return ``> 0`` (a zero return is not a success);
    ``mean_return`` and ``median_return`` of the forward returns. With
    ``count = 0`` the three are NaN (null in files).
Signals (the ``signal`` column)
    ``all_bars``
        Every bar of every symbol: the base rate a signal has to beat.
    ``entries``
        The strategy's actual entries: for each trade, the bar on which the
        order that opened it was **placed** (the signal bar, not the fill bar).
    ``entry_condition``
        Every bar on which the strategy's ``entry_condition(data)`` holds.
    ``entry_episode``
        The first bar of each run of consecutive bars on which it holds.
    ``label:<value>``
        Every bar whose ``entry_labels(data)`` value is ``<value>`` (missing
        labels -- None, NaN, "" -- are skipped).
    Several symbols are pooled: a row counts the signals of every symbol.
``claimed_rate``
    The success rate the source notes claim for that signal, from the
    strategy's ``claims`` (a fraction, or a dict horizon -> fraction): key
    ``"entry_condition"`` for ``entry_condition`` and ``entry_episode`` (an
    explicit ``"entry_episode"`` key wins), the label value for
    ``label:<value>``, ``"entries"`` for ``entries``. "Success" is measured as
    ``share_positive``. NaN (null in files) when nothing is claimed.

The hooks are evaluated once per result on ``VectorData(panel)``, the whole
data as the strategy's ``signals`` sees it.

Evidence (``evidence=True``, the default)
-----------------------------------------
Overlapping forward windows make consecutive signal days far fewer independent
trials than ``count`` says, so each row carries, from
:func:`engine.analysis.stats.rate_evidence` with success = forward return ``> 0``:
``episodes`` (runs of signal bars split at gaps longer than ``h``, per symbol,
added up); ``rate_low``/``rate_high``, the 95% interval of ``share_positive``;
``base_rate``, the share positive over every bar from the row's first to its last
signal (the same period: what the signal has to beat); ``difference`` =
``share_positive - base_rate`` with ``difference_low``/``difference_high``; and
``p_value``, two-sided, of the difference. The intervals come from a stationary
block bootstrap of whole bars (all symbols of a bar together) with a mean block
of ``max(2h, n^(1/3))`` bars, 1,000 resamples, seeded (reruns are identical).
When the signals span fewer than two blocks the intervals and p-value are null
(too short to tell). ``all_bars`` is its own base: difference 0, no interval
nor p-value.

Optional statistics and filters (off by default; the table above is unchanged)
------------------------------------------------------------------------------
``move_threshold=x`` (a fraction, e.g. 0.10)
    Adds two columns per row. ``share_fell``: the share of the counted signals
    whose **worst** close within the next ``h`` bars (``min_k close[t + k] /
    close[t] - 1`` for ``k = 1..h``, on the symbol's own bars) is at or below
    ``-x``: "a fall of more than 10% within h bars". ``share_rose``: the share
    whose **best** close within the next ``h`` bars is at or above ``+x``. The
    signals counted are those of ``count`` (a full ``h``-bar window ahead).
``signals_from`` (a date)
    Keeps only signal bars at or after that date, the base rate included; the
    forward windows still read the bars after it, and indicators keep their
    warm-up before it (e.g. "since 1950" on data from 1928).

Calendar months
---------------
:func:`monthly_returns` and :func:`calendar_month_table` (``calendar_study`` for a
result): the return of each complete calendar month from the close of the
previous month's last bar to the close of the month's last bar, and per month of
the year the count, share positive, mean, median and rank of the mean (1 = the
highest). The first month of the data (no previous month-end close) and its last
(it may be incomplete) are left out.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from engine.errors import StrategyError

#: Forward-return horizons in bars: about a week, a month and a quarter of trading days.
HORIZONS: tuple[int, ...] = (5, 21, 63)

EVENT_COLUMNS = ("signal", "horizon", "count", "share_positive", "mean_return",
                 "median_return", "claimed_rate")
#: Columns added by ``move_threshold``.
MOVE_COLUMNS = ("share_fell", "share_rose")
#: Columns of the evidence (``evidence=True``, the default): see the module docstring.
EVIDENCE_COLUMNS = ("episodes", "rate_low", "rate_high", "base_rate", "difference",
                    "difference_low", "difference_high", "p_value")


# --------------------------------------------------------------------------- the strategy's hooks


def _as_matrix(values, shape, what: str) -> np.ndarray:
    arr = np.asarray(values)
    given = arr.shape
    if arr.ndim == 1 and shape[1] == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != shape:
        raise StrategyError(
            f"{what} has shape {given}; expected {shape} (one row per bar, one column "
            f"per symbol; 1-D is accepted for one symbol)"
        )
    return arr


def _condition(values, shape, what: str) -> np.ndarray:
    arr = _as_matrix(values, shape, what)
    if arr.dtype == np.bool_:
        return arr.copy()
    try:
        numbers = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise StrategyError(f"{what} must be booleans (or 0/1); got {arr.dtype}") from None
    finite = numbers[np.isfinite(numbers)]
    if not np.isin(finite, (0.0, 1.0)).all():
        raise StrategyError(f"{what} must be booleans (or 0/1); got other numbers")
    return np.nan_to_num(numbers, nan=0.0).astype(bool)


def _labels(values, shape, what: str) -> tuple[np.ndarray, list[str]]:
    """Labels as integer codes (``-1`` = missing: None, NaN or "") and their names."""
    import pandas as pd

    arr = _as_matrix(np.asarray(values, dtype=object), shape, what)
    flat = pd.Series(arr.reshape(-1), dtype=object)
    missing = flat.isna()
    text = flat.astype(str).where(~missing, None)
    text = text.where(text != "", None)
    codes, names = pd.factorize(text, use_na_sentinel=True)
    return codes.reshape(shape).astype(np.int64), [str(n) for n in names]


def strategy_hooks(result) -> dict:
    """The strategy's report hooks evaluated on the run's data, cached on the result.

    Returns
    -------
    dict
        ``condition``: bool array ``(n_bars, n_symbols)`` or None;
        ``labels``: int array of the same shape, an index into ``label_names``
        (``-1`` where the label is missing), or None; ``label_names``: the
        distinct labels as str, by first appearance; ``claims``: the strategy's
        ``claims`` dict (``{}`` if none).
    """
    cache = result.cache
    if "hooks" in cache:
        return cache["hooks"]
    instance, panel = result.instance, result.panel
    hooks = {"condition": None, "labels": None, "label_names": [], "claims": {}}
    if instance is not None and panel is not None:
        from engine.strategy.base import VectorData

        name = type(instance).__name__
        shape = (panel.n_bars, panel.n_symbols)
        hooks["claims"] = dict(getattr(instance, "claims", None) or {})
        for hook, key, convert in (("entry_condition", "condition", _condition),
                                   ("entry_labels", "labels", _labels)):
            try:
                values = getattr(instance, hook)(VectorData(panel))
            except Exception as exc:
                raise StrategyError(f"{name}.{hook} raised {type(exc).__name__}: {exc}") from exc
            if values is None:
                continue
            if key == "labels":
                hooks["labels"], hooks["label_names"] = convert(values, shape,
                                                                f"{name}.{hook}")
            else:
                hooks[key] = convert(values, shape, f"{name}.{hook}")
    cache["hooks"] = hooks
    return hooks


# --------------------------------------------------------------------------- trades' signal bars


def entry_signal_bars(trades: pl.DataFrame, orders: pl.DataFrame, ts: np.ndarray) -> np.ndarray:
    """For each trade (row of ``trades``), the bar index its entry order was placed on.

    The opening order is the trade's ``entry_order`` (the order whose fill opened
    its lot); its ``placed_ts`` is the signal bar. Without that column (a frame
    written before it existed) it is the filled order of the trade's symbol, on
    the side of the trade, that filled on the trade's entry bar, the first placed
    when several did. A trade with no such order (not expected) falls back to its
    entry (fill) bar.

    Returns
    -------
    numpy.ndarray of int64, shape ``(trades.height,)``
    """
    if trades.height == 0:
        return np.zeros(0, dtype=np.int64)
    if "entry_order" in trades.columns:
        placed = orders.select(pl.col("order_id").alias("entry_order"), "placed_ts")
        matched = trades.select("entry_order", "entry_ts").join(
            placed, on="entry_order", how="left", maintain_order="left")
        when = matched["placed_ts"].fill_null(matched["entry_ts"]).to_numpy()
        return np.searchsorted(ts, when.astype(ts.dtype)).astype(np.int64)
    numbered = trades.select("symbol", "entry_ts", "size").with_row_index("trade")
    numbered = numbered.with_columns(
        pl.when(pl.col("size") >= 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side")
    )
    filled = orders.filter(pl.col("status") == "filled").select(
        "order_id", "symbol", "side", pl.col("done_ts").alias("entry_ts"), "placed_ts"
    )
    matched = (
        numbered.join(filled, on=["symbol", "side", "entry_ts"], how="left")
        .sort("trade", "order_id", nulls_last=True)
        .group_by("trade", maintain_order=True)
        .first()
        .sort("trade")
    )
    when = matched["placed_ts"].fill_null(matched["entry_ts"]).to_numpy()
    return np.searchsorted(ts, when.astype(ts.dtype)).astype(np.int64)


# --------------------------------------------------------------------------- forward returns


def forward_returns(close, horizon: int) -> np.ndarray:
    """``close[t + h] / close[t] - 1`` per symbol column, on the symbol's own bars.

    Parameters
    ----------
    close : array_like
        Closes, shape ``(n_bars,)`` or ``(n_bars, n_symbols)``; NaN = no bar.
    horizon : int
        ``h >= 1`` bars.

    Returns
    -------
    numpy.ndarray
        Same shape as ``close``; NaN on the last ``h`` bars of each symbol and
        where the symbol has no close.
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of bars >= 1; got {horizon!r}")
    h = int(horizon)
    close = np.asarray(close, dtype=np.float64)
    flat = close.ndim == 1
    matrix = close.reshape(-1, 1) if flat else close
    n = matrix.shape[0]
    out = np.full(matrix.shape, np.nan)
    if n > h:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:-h] = matrix[h:] / matrix[:-h] - 1.0
    # That is the answer for symbols whose bars are one block; a symbol with a gap
    # inside its history counts its own bars.
    finite = np.isfinite(matrix)
    count = finite.sum(axis=0)
    first = finite.argmax(axis=0)
    last = n - 1 - finite[::-1].argmax(axis=0)
    for j in np.flatnonzero((count > 0) & (count != last - first + 1)):
        rows = np.flatnonzero(finite[:, j])
        out[:, j] = np.nan
        if rows.size > h:
            c = matrix[rows, j]
            out[rows[:-h], j] = c[h:] / c[:-h] - 1.0
    return out[:, 0] if flat else out


def forward_extremes(close, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Worst and best return from ``close[t]`` to any close of the next ``h`` bars.

    ``worst[t] = min_k close[t + k] / close[t] - 1`` and ``best[t]`` the max, for
    ``k = 1..h`` counted on the symbol's own bars (as :func:`forward_returns`).
    NaN where the ``h``-bar forward return is NaN (no full window ahead).

    Parameters
    ----------
    close : array_like
        Closes, ``(n_bars,)`` or ``(n_bars, n_symbols)``; NaN = no bar.
    horizon : int
        ``h >= 1`` bars.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``worst`` and ``best``, each the shape of ``close``.
    """
    last = forward_returns(close, horizon)
    worst, best = last.copy(), last.copy()
    for k in range(1, int(horizon)):
        step = forward_returns(close, k)
        np.fmin(worst, step, out=worst)
        np.fmax(best, step, out=best)
    missing = np.isnan(last)
    worst[missing] = np.nan
    best[missing] = np.nan
    return worst, best


def episodes(condition: np.ndarray) -> np.ndarray:
    """The first bar of each run of consecutive True values, per column."""
    condition = np.asarray(condition, dtype=bool)
    before = np.zeros_like(condition)
    before[1:] = condition[:-1]
    return condition & ~before


def _claim(claims: dict, keys, horizon: int) -> float:
    for key in keys:
        if key in claims:
            value = claims[key]
            if isinstance(value, dict):
                value = value.get(horizon, value.get(str(horizon)))
                if value is None:
                    return math.nan
            return float(value)
    return math.nan


def event_table(close, signals: dict, horizons=HORIZONS, claims=None, *,
                move_threshold: float | None = None, evidence: bool = True,
                reps: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The event-study table for given signals.

    Parameters
    ----------
    close : array_like
        Closes of the traded instrument(s), ``(n_bars,)`` or ``(n_bars, n_symbols)``.
    signals : dict
        Signal name -> ``(rows, cols)`` index arrays of the signal bars (one
        entry per event; the same bar may appear twice), or a bool mask of the
        shape of ``close``.
    horizons : sequence of int
        Forward horizons in bars.
    claims : dict, optional
        The strategy's ``claims``; which key applies to a signal follows from
        its name (see the module docstring).
    move_threshold : float, optional
        When given (a fraction > 0), the columns ``share_fell`` and ``share_rose``
        are added (see the module docstring).
    evidence : bool, default True
        Add :data:`EVIDENCE_COLUMNS` (episodes, intervals, base rate, difference).
    reps, seed : int
        Bootstrap resamples and seed of the evidence.

    Returns
    -------
    polars.DataFrame
        Columns :data:`EVENT_COLUMNS` (then :data:`EVIDENCE_COLUMNS` with
        ``evidence``, :data:`MOVE_COLUMNS` with ``move_threshold``), one row per
        signal and horizon.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim == 1:
        close = close.reshape(-1, 1)
    claims = claims or {}
    if move_threshold is not None and not (isinstance(move_threshold, (int, float))
                                           and not isinstance(move_threshold, bool)
                                           and 0 < move_threshold < math.inf):
        raise ValueError(f"move_threshold must be a fraction > 0, e.g. 0.10; "
                         f"got {move_threshold!r}")
    forward = {h: forward_returns(close, h) for h in horizons}
    extremes = ({h: forward_extremes(close, h) for h in horizons}
                if move_threshold is not None else {})
    rows = []
    for name, where in signals.items():
        if isinstance(where, np.ndarray) and where.dtype == np.bool_:
            mask = where.reshape(close.shape)
            where = np.nonzero(mask)
        r_idx, c_idx = (np.asarray(a, dtype=np.int64) for a in where)
        keys = _claim_keys(name)
        if evidence:
            counts = np.zeros(close.shape, dtype=np.int64)
            np.add.at(counts, (r_idx, c_idx), 1)
        for h in horizons:
            values = forward[h][r_idx, c_idx]
            counted = np.isfinite(values)
            values = values[counted]
            count = int(values.size)
            row = {
                "signal": name,
                "horizon": int(h),
                "count": count,
                "share_positive": float((values > 0).mean()) if count else None,
                "mean_return": float(values.mean()) if count else None,
                "median_return": float(np.median(values)) if count else None,
                "claimed_rate": _none_if_nan(_claim(claims, keys, h)),
            }
            if evidence:
                row.update(_evidence_columns(forward[h], counts, h, reps, seed))
                if name == "all_bars":  # its own base: no difference to test
                    row.update(difference_low=None, difference_high=None, p_value=None)
            if move_threshold is not None:
                worst, best = (e[r_idx, c_idx][counted] for e in extremes[h])
                row["share_fell"] = float((worst <= -move_threshold).mean()) if count else None
                row["share_rose"] = float((best >= move_threshold).mean()) if count else None
            rows.append(row)
    schema = {"signal": pl.String, "horizon": pl.Int64, "count": pl.Int64,
              "share_positive": pl.Float64, "mean_return": pl.Float64,
              "median_return": pl.Float64, "claimed_rate": pl.Float64}
    if evidence:
        schema.update({name: pl.Float64 for name in EVIDENCE_COLUMNS})
        schema["episodes"] = pl.Int64
    if move_threshold is not None:
        schema.update({"share_fell": pl.Float64, "share_rose": pl.Float64})
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def _evidence_columns(forward: np.ndarray, counts: np.ndarray, horizon: int, reps: int,
                      seed: int) -> dict:
    from engine.analysis.stats import rate_evidence

    success = np.where(np.isfinite(forward), (forward > 0).astype(np.float64), np.nan)
    found = rate_evidence(success, counts, int(horizon), reps=reps, seed=seed)
    return {
        "episodes": found.episodes,
        "rate_low": _none_if_nan(found.rate_low), "rate_high": _none_if_nan(found.rate_high),
        "base_rate": _none_if_nan(found.base), "difference": _none_if_nan(found.difference),
        "difference_low": _none_if_nan(found.difference_low),
        "difference_high": _none_if_nan(found.difference_high),
        "p_value": _none_if_nan(found.p_value),
    }


def _none_if_nan(value: float):
    return None if math.isnan(value) else value


def _claim_keys(name: str) -> tuple[str, ...]:
    if name == "entry_condition":
        return ("entry_condition",)
    if name == "entry_episode":
        return ("entry_episode", "entry_condition")
    if name == "entries":
        return ("entries",)
    if name.startswith("label:"):
        return (name[len("label:"):],)
    return ()


def label_order(names: list[str], claims: dict) -> list[str]:
    """Distinct labels: those named in ``claims`` first (in its order), then by first use."""
    return [key for key in claims if key in names] + [n for n in names if n not in claims]


def event_study(result, horizons=HORIZONS, *, signals_from=None,
                move_threshold: float | None = None, evidence: bool = True) -> pl.DataFrame:
    """The event study of a :class:`~engine.backtest.result.Result` (see the module docstring).

    Parameters
    ----------
    result : engine.backtest.result.Result
        A run; its panel's closes and its strategy's hooks give the signals.
    horizons : sequence of int
        Forward horizons in bars.
    signals_from : str, datetime.date or numpy.datetime64, optional
        Count only signal bars at or after this date (every signal, ``all_bars``
        included). Episodes are found on the whole data first, so a run that
        began before the date is not cut into a new episode.
    move_threshold : float, optional
        Adds ``share_fell`` and ``share_rose`` for this size of move.
    evidence : bool, default True
        Adds the evidence columns (episodes, intervals, base rate, difference).
    """
    panel = result.panel
    if panel is None:
        raise ValueError("the result holds no data panel; an event study needs the closes")
    close = panel.fields["close"]
    hooks = strategy_hooks(result)
    signals: dict = {"all_bars": np.isfinite(close)}
    bars = entry_signal_bars(result.trades, result.orders, panel.ts)
    if bars.size:
        symbol_index = {name: i for i, name in enumerate(panel.symbols)}
        cols = np.array([symbol_index[s] for s in result.trades["symbol"]], dtype=np.int64)
        signals["entries"] = (bars, cols)
    condition = hooks["condition"]
    if condition is not None:
        signals["entry_condition"] = condition
        signals["entry_episode"] = episodes(condition)
    labels, names = hooks["labels"], hooks["label_names"]
    if labels is not None:
        for value in label_order(names, hooks["claims"]):
            signals[f"label:{value}"] = np.nonzero(labels == names.index(value))
    if signals_from is not None:
        first = int(np.searchsorted(panel.ts, _as_datetime(signals_from, panel.ts.dtype)))
        signals = {name: _from_bar(where, first) for name, where in signals.items()}
    return event_table(close, signals, horizons, hooks["claims"],
                       move_threshold=move_threshold, evidence=evidence)


def _as_datetime(when, dtype) -> np.datetime64:
    try:
        return np.datetime64(str(when)[:10] if hasattr(when, "year") else when).astype(dtype)
    except (TypeError, ValueError):
        raise ValueError(f"signals_from must be a date such as '1950-01-01'; got {when!r}") \
            from None


def _from_bar(where, first: int):
    """Signal bars (a mask or ``(rows, cols)``) restricted to rows ``>= first``."""
    if isinstance(where, np.ndarray) and where.dtype == np.bool_:
        kept = where.copy()
        kept[:first] = False
        return kept
    rows, cols = (np.asarray(a, dtype=np.int64) for a in where)
    keep = rows >= first
    return rows[keep], cols[keep]


# --------------------------------------------------------------------------- calendar months


def monthly_returns(close, ts) -> pl.DataFrame:
    """The return of each complete calendar month, from month-end closes.

    Parameters
    ----------
    close : array_like
        Closes of one instrument, ``(n_bars,)``; NaN = no bar (skipped).
    ts : array_like of datetime64
        The bars' timestamps, ascending.

    Returns
    -------
    polars.DataFrame
        ``year, month`` (1-12), ``month_end`` (the date of the month's last bar),
        ``return``: ``close[last bar of the month] / close[last bar of the
        previous month] - 1``. The data's first month (no previous month-end close)
        and its last month (possibly incomplete) are left out, as is a month
        whose previous calendar month has no bar.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise ValueError(f"monthly_returns takes one instrument's closes; got shape "
                         f"{close.shape}")
    keep = np.isfinite(close)
    close = close[keep]
    days = np.asarray(ts)[keep].astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    if months.size == 0:
        return pl.DataFrame(schema={"year": pl.Int32, "month": pl.Int8, "month_end": pl.Date,
                                    "return": pl.Float64})
    last = np.r_[months[1:] != months[:-1], True]  # the last bar of each month
    ends, end_months, end_days = close[last], months[last], days[last]
    consecutive = (end_months[1:] - end_months[:-1]).astype(np.int64) == 1
    rets = ends[1:] / ends[:-1] - 1.0
    which = end_months[1:]
    keep_rows = consecutive.copy()
    keep_rows[-1:] = False  # the data's last month may be incomplete
    which, rets, end_days = which[keep_rows], rets[keep_rows], end_days[1:][keep_rows]
    number = which.astype(np.int64)
    return pl.DataFrame({
        "year": (number // 12 + 1970).astype(np.int32),
        "month": (number % 12 + 1).astype(np.int8),
        "month_end": end_days,
        "return": rets,
    })


MONTH_COLUMNS = ("month", "count", "share_positive", "mean_return", "median_return", "rank")


def calendar_month_table(close, ts, last_years: int | None = None) -> pl.DataFrame:
    """Per month of the year: how the complete months of that name did.

    Parameters
    ----------
    close, ts
        As :func:`monthly_returns`.
    last_years : int, optional
        Keep only the last ``12 * last_years`` complete months (the data's last,
        possibly incomplete, month is never counted). Default: every month.

    Returns
    -------
    polars.DataFrame
        Columns :data:`MONTH_COLUMNS`, one row per month 1-12: ``count`` of
        months, ``share_positive`` (return ``> 0``), ``mean_return``,
        ``median_return``, and ``rank`` of the mean among the 12 (1 = highest;
        ties share the lower rank).
    """
    months = monthly_returns(close, ts)
    if last_years is not None:
        if isinstance(last_years, bool) or int(last_years) != last_years or last_years < 1:
            raise ValueError(f"last_years must be a whole number >= 1; got {last_years!r}")
        months = months.tail(12 * int(last_years))
    table = (
        pl.DataFrame({"month": np.arange(1, 13, dtype=np.int8)})
        .join(months.group_by("month").agg(
            pl.len().cast(pl.Int64).alias("count"),
            (pl.col("return") > 0).mean().alias("share_positive"),
            pl.col("return").mean().alias("mean_return"),
            pl.col("return").median().alias("median_return"),
        ), on="month", how="left")
        .with_columns(pl.col("count").fill_null(0))
        .with_columns(pl.col("mean_return").rank("min", descending=True).cast(pl.Int64)
                      .alias("rank"))
    )
    return table.select(MONTH_COLUMNS)


def calendar_study(result, last_years: int | None = None) -> pl.DataFrame:
    """:func:`calendar_month_table` of a run's (single) instrument."""
    panel = result.panel
    if panel is None:
        raise ValueError("the result holds no data panel; a calendar study needs the closes")
    if panel.n_symbols != 1:
        raise ValueError(f"a calendar study takes one instrument; the run has "
                         f"{panel.n_symbols} symbols")
    return calendar_month_table(panel.fields["close"][:, 0], panel.local_ts, last_years)
