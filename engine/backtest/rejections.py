"""Orders the broker rejected, grouped by reason: what a run warns about.

The broker never resizes an order it cannot fill as asked: it rejects it and writes
the reason in the order log (``orders.parquet``, the ``reason`` column). A run whose
orders were rejected is still a run, but not the one the strategy meant, so the
rejections are summarised for the user: per kind of reason, how many and the first
case (the bar, its timestamp, the order and the broker's full reason).
:meth:`engine.backtest.result.Result.rejections` gives them for a run,
``metrics["rejected"]`` counts them (so sweeps and comparisons carry the count), the
command line prints one warning per kind, and ``strict=True`` (``--strict``) turns
any of them into a :class:`~engine.errors.RejectedOrdersError`.

The summary reads the orders frame once, filtered to its rejected rows; its cost
grows with the rejections, not with the orders or the bars.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.errors import RejectedOrdersError

#: The kinds of rejection, by how the broker's reason starts
#: (``engine/_core/broker.pyx``, ``Broker.execute``), each with its short name.
REASON_KINDS = (
    ("insufficient cash", "insufficient cash"),
    ("short selling is off", "short selling is off"),
    ("size rounds to zero", "size rounds to zero"),
    ("fill price", "fill price not positive"),
)

#: The order's columns the first case of each kind keeps.
FIRST_FIELDS = ("order_id", "placed_ts", "symbol", "side", "kind", "size_mode", "size", "limit",
                "stop", "done_ts", "reason")


def reason_kind(text: str | None) -> str:
    """The kind of a rejection from the broker's reason text, e.g. ``"insufficient cash"``.

    A reason the broker gains later and :data:`REASON_KINDS` does not list yet is
    grouped by its text up to the first colon, so it is still counted and shown.
    """
    text = text or ""
    for prefix, kind in REASON_KINDS:
        if text.startswith(prefix):
            return kind
    return text.partition(":")[0].strip() or "no reason given"


def _when(value) -> str:
    """A timestamp as the data's messages show it: the date alone for daily bars."""
    if value is None:
        return "?"
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        value = value.replace(tzinfo=None)      # the local time of the data's zone
    text = np.datetime_as_string(np.datetime64(value, "ns"), unit="s")
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


@dataclass(frozen=True)
class Rejection:
    """The rejections of one kind in a run: how many and the first.

    Attributes
    ----------
    reason : str
        The kind of reason (:func:`reason_kind`), e.g. ``"insufficient cash"``.
    count : int
        How many orders were rejected for it.
    first : dict
        The first of them in time (by the bar it was rejected on, then order id):
        ``bar`` (the run's bar number, from 0; None when unknown), ``ts`` (that
        bar's timestamp) and the order's ``order_id, placed_ts, symbol, side, kind,
        size_mode, size, limit, stop`` and the broker's full ``reason``.
    """

    reason: str
    count: int
    first: dict

    def as_dict(self) -> dict:
        """``{"reason", "count", "first": {...}}`` as plain JSON-ready values (timestamps
        in ISO 8601)."""
        first = {k: v.isoformat() if isinstance(v, (datetime.date, datetime.datetime)) else v
                 for k, v in self.first.items()}
        return {"reason": self.reason, "count": int(self.count), "first": first}

    def order_text(self) -> str:
        """The first order in words: ``order 12 (sell SPX market, shares 100)``."""
        f = self.first
        prices = "".join(f" {name} {f[name]:g}" for name in ("limit", "stop")
                         if f.get(name) is not None)
        size = ("all cash" if f["size_mode"] == "all_cash"  # its size is not used
                else f"{f['size_mode']} {f['size']:g}")
        return f"order {f['order_id']} ({f['side']} {f['symbol']} {f['kind']}{prices}, {size})"

    def where(self) -> str:
        """The bar of the first case: ``bar 17 (2020-01-27)``, or its timestamp alone."""
        bar = self.first.get("bar")
        when = _when(self.first.get("ts"))
        return f"bar {bar} ({when})" if bar is not None else when

    def describe(self) -> str:
        """One line: the count, the kind, and the first case with the broker's reason."""
        orders = "order" if self.count == 1 else "orders"
        return (f"{self.count:,} {orders} rejected ({self.reason}); the first on "
                f"{self.where()}: {self.order_text()}: {self.first['reason']}")


def rejections_of(orders: pl.DataFrame,
                  bar_of: Callable[[int], int | None] | None = None) -> list[Rejection]:
    """The rejected orders of an orders frame, by kind: most frequent first.

    Parameters
    ----------
    orders : polars.DataFrame
        An orders frame (:func:`engine.backtest.result.orders_frame`).
    bar_of : callable, optional
        Row number of ``orders`` → the bar the order was rejected on, for the first
        case of each kind; without it ``bar`` is None.
    """
    rejected = (orders.with_row_index("row").filter(pl.col("status") == "rejected")
                .sort("done_ts", "order_id", maintain_order=True))
    if rejected.height == 0:
        return []
    kinds = pl.Series("kind_of_reason", [reason_kind(t) for t in rejected["reason"].to_list()])
    rejected = rejected.with_columns(kinds)
    out = []
    for (kind,), group in rejected.group_by("kind_of_reason", maintain_order=True):
        row = group.row(0, named=True)
        first = {"bar": bar_of(row["row"]) if bar_of is not None else None,
                 "ts": row["done_ts"], **{name: row[name] for name in FIRST_FIELDS}}
        del first["done_ts"]
        out.append(Rejection(kind, group.height, first))
    return sorted(out, key=lambda r: -r.count)


def merged(earlier: Iterable[Rejection], later: Iterable[Rejection]) -> list[Rejection]:
    """Two summaries of one run as one (a streamed run summarises chunk by chunk)."""
    by_kind = {r.reason: r for r in earlier}
    for r in later:
        seen = by_kind.get(r.reason)
        if seen is None:
            by_kind[r.reason] = r
            continue
        # Orders are drained in id order, not always in time order: keep the earliest.
        firsts = sorted((seen.first, r.first), key=lambda f: (f["ts"], f["order_id"]))
        by_kind[r.reason] = Rejection(r.reason, seen.count + r.count, firsts[0])
    return sorted(by_kind.values(), key=lambda r: -r.count)


def total(rejections: Iterable[Rejection]) -> int:
    """How many orders were rejected, of every kind."""
    return sum(r.count for r in rejections)


def strict_error(rejections: list[Rejection]) -> RejectedOrdersError:
    """The error of a ``strict=True`` run that had rejections: the count, the kinds and
    the first case in time."""
    count = total(rejections)
    first = min(rejections, key=lambda r: (r.first["ts"], r.first["order_id"]))
    orders = "order was" if count == 1 else "orders were"
    kinds = ""
    if len(rejections) > 1:
        kinds = " (" + ", ".join(f"{r.count:,} {r.reason}" for r in rejections) + ")"
    return RejectedOrdersError(
        f"{count:,} {orders} rejected{kinds} and strict=True (CLI --strict) makes that an "
        f"error; the first on {first.where()}: {first.order_text()}: {first.first['reason']}. "
        f"Fix: change the strategy's sizes or the account settings, or run without --strict "
        f"(orders.parquet then lists every rejected order)",
        count=count, rejections=rejections)
