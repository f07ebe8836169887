"""The look-ahead audit: code that sees the whole data, recomputed on its prefixes.

``signals()`` (the vectorised path) and indicators declared with ``self.I`` (the event
path) are computed once over every bar, so nothing stops them from reading a later
bar: a ``shift(-1)``, a backward fill over a gap, a centred window, a weekly value
filled back onto the days of its week, a statistic of the whole data. The audit
recomputes them on prefixes of the data, each *cut* after some bar, and compares
bar by bar up to the cut: a causal computation gives on the prefix exactly what it
gives on the whole data (floats within a relative 1e-9, NaN equal to NaN, booleans
exactly). The first bar that differs is reported with its timestamp, symbol, both
values and the cut.

Modes (``engine.run(audit=...)``, CLI ``--audit``):

``"cuts"`` (default)
    Prefixes ending at a few cut points spread over the whole data: seven drawn at
    random (one in each seventh of the first nine tenths) and one in the last tenth,
    plus up to four just inside gaps of the data (a run of NaN followed by a value,
    where a backward fill or an interpolation would read ahead). The draws are seeded
    by the data's shape, so a run audits the same cuts every time. Memory: the
    prefixes are zero-copy views; one prefix's output is held at a time. Time: about
    4 to 6 times the cost of the audited computation (the prefixes hold ~4-6 times
    the data between them); a whole ``engine.run`` of the SMA cross takes 1.05-1.45
    times as long as with ``"off"`` (``bench/test_bench_lookahead.py``). Data of at
    most :data:`EVERY_BAR_UP_TO` bars is checked at every bar, which costs little there.
``"full"``
    A prefix ending at every bar: nothing escapes, at a cost quadratic in the number
    of bars (``n / 2`` times the computation; 9 s for the SMA cross on the 24,777
    bars of the bundled S&P 500) — for small data, or as a pre-flight check of a new
    strategy on a few thousand bars.
``"off"``
    No audit, for code already audited (sweeps over its parameters). A leak then goes
    through; the run's settings record ``audit: "off"``.

The audit is a test, not a proof: in ``"cuts"`` mode a leak confined to a few bars
between cuts (a backward fill over a short gap the strategy made itself) can pass.
``"full"`` checks every bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import LookAheadError, ParameterError, did_you_mean

#: The audit modes, default first.
AUDIT_MODES = ("cuts", "full", "off")
#: Cut points drawn at random in the first nine tenths of the data (one per stratum).
RANDOM_CUTS = 7
#: Cut points just inside gaps of the data, at most.
GAP_CUTS = 4
#: Data with at most this many bars is checked at every bar in ``"cuts"`` mode.
EVERY_BAR_UP_TO = 32
#: Relative tolerance of float comparisons (NaN equals NaN).
RTOL = 1e-9
#: Rows compared at once: bounds the audit's temporaries (a bool per value).
BLOCK = 1 << 16

#: What to look for when the audit fails.
FIX = (
    "Fix: look for what reads later bars — shift(-k) or np.roll, a backward fill "
    "(bfill, fill_null('backward')) or an interpolation over a gap, a centred window "
    "(center=True), a resample labelled at the period's end and filled back onto its "
    "bars, or a statistic of the whole data (its mean, max or last value)"
)


def check_audit(audit) -> str:
    """``audit`` if it is a valid mode, else a ``ParameterError`` naming the modes.

    Parameters
    ----------
    audit : str
        One of :data:`AUDIT_MODES`.
    """
    if isinstance(audit, str) and audit in AUDIT_MODES:
        return audit
    hint = ""
    if isinstance(audit, bool):
        hint = " Use audit='cuts'." if audit else " Use audit='off'."
    elif isinstance(audit, str):
        hint = did_you_mean(audit, AUDIT_MODES)
    raise ParameterError(
        f"audit must be one of {', '.join(repr(m) for m in AUDIT_MODES)} (CLI --audit); "
        f"got {audit!r}.{hint}"
    )


def gap_rows(fields: Sequence[np.ndarray]) -> np.ndarray:
    """Bars that start a gap: a run of NaN in some column followed by a value.

    A cut just after such a bar ends the prefix inside the gap, where a backward
    fill or an interpolation gives a different value than on the whole data.
    """
    rows = []
    for arr in fields:
        missing = np.isnan(arr)
        if not missing.any():
            continue
        if missing.ndim == 1:
            missing = missing[:, None]
        n = missing.shape[0]
        starts = missing.copy()
        starts[1:] &= ~missing[:-1]
        present = ~missing
        last = n - 1 - np.argmax(present[::-1], axis=0)  # last bar with a value, per column
        r, c = np.nonzero(starts)
        keep = present.any(axis=0)[c] & (r < last[c])
        rows.append(r[keep])
    if not rows:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(rows))


def cut_points(n_bars: int, mode: str, *, gaps: np.ndarray | None = None, first: int = 0,
               seed: Sequence[int] = ()) -> np.ndarray:
    """The cuts an audit checks: prefix ``[0, cut)`` for each ``cut``, ascending.

    Parameters
    ----------
    n_bars : int
        Bars of the whole data; cuts lie in ``first + 1 .. n_bars - 1``.
    mode : {"cuts", "full", "off"}
        See the module's documentation.
    gaps : numpy.ndarray of int, optional
        Bars that start a gap (:func:`gap_rows`); up to :data:`GAP_CUTS` of them get
        a cut just after.
    first : int
        Bars before ``first + 1`` are not cut (a streamed chunk's kept bars).
    seed : sequence of int
        Seeds the random draws, with the data's length: the same run draws the
        same cuts.

    Returns
    -------
    numpy.ndarray of int64
    """
    key = (n_bars, mode, first, tuple(int(x) for x in seed),
           None if gaps is None else np.asarray(gaps, dtype=np.int64).tobytes())
    found = _CUTS.get(key)
    if found is None:
        if len(_CUTS) >= 256:
            _CUTS.clear()
        found = _CUTS[key] = _cut_points(n_bars, mode, gaps=gaps, first=first, seed=seed)
        found.flags.writeable = False   # shared by every later run on such data
    return found


#: cut_points' results by their arguments: the same data draws the same cuts, and a
#: sweep or a run of many sets asks for them once per set.
_CUTS: dict = {}


def _cut_points(n_bars: int, mode: str, *, gaps: np.ndarray | None, first: int,
                seed: Sequence[int]) -> np.ndarray:
    lo, hi = first + 1, n_bars - 1  # inclusive range of cuts
    if mode == "off" or hi < lo:
        return np.empty(0, dtype=np.int64)
    if mode == "full" or hi - lo + 1 <= EVERY_BAR_UP_TO:
        return np.arange(lo, hi + 1, dtype=np.int64)
    rng = np.random.default_rng([n_bars, first, *seed])
    # One cut ending the prefix in the last tenth of the data, and one in each of
    # RANDOM_CUTS equal strata of the rest: spread over the whole data.
    tenth = max(lo, min(hi, n_bars - n_bars // 10))
    edges = np.linspace(lo, tenth, RANDOM_CUTS + 1)
    cuts = [int(rng.integers(int(a), max(int(a) + 1, int(b)))) for a, b in zip(edges[:-1],
                                                                                 edges[1:],
                                                                                 strict=True)]
    cuts.append(int(rng.integers(tenth, hi + 1)))
    if gaps is not None and len(gaps):
        inside = gaps[(gaps + 1 >= lo) & (gaps + 1 <= hi)] + 1
        if len(inside) > GAP_CUTS:
            inside = rng.choice(inside, GAP_CUTS, replace=False)
        cuts.extend(int(c) for c in inside)
    return np.unique(np.asarray(cuts, dtype=np.int64))


def first_difference(whole: np.ndarray, part: np.ndarray, cut: int):
    """Where ``part`` (computed on bars ``[0, cut)``) first differs from ``whole``.

    Booleans and integers compare exactly; floats within :data:`RTOL`, NaN equal to
    NaN. Both are read as ``(rows, columns)``, and either may have a single row
    (one value for every bar), which is compared with every row of the other.

    Returns
    -------
    tuple or None
        ``(row, column, value on the whole data, value on the prefix)``, or None.
    """
    head = _columns(whole if whole.shape[0] == 1 else whole[:cut])
    part = _columns(part)
    exact = head.dtype.kind != "f" and part.dtype.kind != "f"
    # The usual answer, "no difference", in one comparison (NaN equal to NaN; floats
    # equal bit for bit need no tolerance)
    if head.shape == part.shape and head.dtype == part.dtype and head.flags.c_contiguous \
            and part.flags.c_contiguous and head.size \
            and memoryview(head).cast("B") == memoryview(part).cast("B"):
        return None                 # the same bytes: the same values, NaN where NaN
    if head.shape == part.shape and head.dtype.kind in "biuf" and part.dtype.kind in "biuf":
        if exact:
            if np.array_equal(head, part):
                return None
        elif np.array_equal(*(x if x.dtype.kind == "f" else x.astype(np.float64)
                              for x in (head, part)), equal_nan=True):
            return None
    shape = np.broadcast_shapes(head.shape, part.shape)
    head, part = np.broadcast_to(head, shape), np.broadcast_to(part, shape)
    # Block by block: temporaries stay small, and the scan stops at the first block
    # with a real difference. NaN != NaN, so a block with candidates is settled by
    # isclose (equal_nan) on the candidates alone: warm-up NaN cost one block.
    for start in range(0, shape[0], BLOCK):
        a, b = head[start:start + BLOCK], part[start:start + BLOCK]
        differs = a != b
        if not differs.any():
            continue
        rows, cols = np.nonzero(differs)
        if not exact:
            x = a[rows, cols].astype(np.float64)
            y = b[rows, cols].astype(np.float64)
            real = ~np.isclose(x, y, rtol=RTOL, atol=0.0, equal_nan=True)
            rows, cols = rows[real], cols[real]
            if not len(rows):
                continue
        # np.nonzero is row-major: the first entry is the earliest bar
        row, col = int(rows[0]), int(cols[0])
        return start + row, col, a[row, col].item(), b[row, col].item()
    return None


def _columns(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(arr.shape[0], -1)


def audit_prefixes(whole: Sequence[np.ndarray], compute: Callable[[int], Sequence[np.ndarray]],
                   cuts: np.ndarray, describe: Callable[[int, int, int, int, object, object],
                                                        str]) -> None:
    """Recompute on each prefix and raise ``LookAheadError`` at the first difference.

    Parameters
    ----------
    whole : sequence of numpy.ndarray
        The outputs on the whole data, each with a row per bar (or one row).
    compute : callable
        ``compute(cut)`` → the same outputs on bars ``[0, cut)``.
    cuts : numpy.ndarray of int
        Ascending (:func:`cut_points`): the cheapest prefixes first, and the first
        failure stops the audit.
    describe : callable
        ``describe(output, row, column, cut, value_whole, value_prefix)`` → the
        error message.
    """
    for cut in cuts:
        cut = int(cut)
        parts = compute(cut)
        for k, (full, part) in enumerate(zip(whole, parts, strict=True)):
            hit = first_difference(full, part, cut)
            if hit is not None:
                raise LookAheadError(describe(k, *hit[:2], cut, *hit[2:]))
        del parts


def fmt_ts(value) -> str:
    """A bar's timestamp as in messages: the date alone for daily bars."""
    text = np.datetime_as_string(np.datetime64(value, "ns"), unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


def where(panel, row: int, col: int, n_cols: int, offset: int = 0) -> str:
    """``bar 12 (2020-01-16, symbol SPX)``: a bar and column named for a message.

    ``row`` is a row of ``panel``; ``offset`` the number of the panel's first bar in
    the whole run (a streamed chunk's), so that the bar is named as in the run.
    """
    text = f"bar {row + offset} ({fmt_ts(_local(panel)[row])}"
    if n_cols == panel.n_symbols:
        text += f", symbol {panel.symbols[col]}"
    elif n_cols > 1:
        text += f", column {col}"
    return text + ")"


def stops_at(panel, cut: int, offset: int = 0) -> str:
    """``the data stops at bar 99 (2020-05-20)``: a cut named for a message."""
    return f"the data stops at bar {cut - 1 + offset} ({fmt_ts(_local(panel)[cut - 1])})"


def _local(panel) -> np.ndarray:
    # Timestamps as the data's own messages show them: local times of its zone.
    return getattr(panel, "local_ts", panel.ts)
