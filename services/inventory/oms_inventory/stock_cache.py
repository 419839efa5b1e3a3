"""The stock rows and reservations one-statement batches left behind, kept for the next batches.

A one-statement batch (:mod:`oms_inventory.one_statement`) reads every stock row of its
SKUs before it plans, and its write checks that each of those rows still holds what was
read, that the SKU has no other row, and that each warehouse is as active and where it
was: otherwise the write aborts whole and the runtime replays the batch in a transaction
that locks. So the rows as a committed batch left them are what the database holds until
something else writes them: another instance, or a transaction of this one (a release, a
short pick, a movement). Kept here, they let the next batch that only reserves those SKUs
plan without reading (that read was ~0.2 ms of PostgreSQL's CPU per order and a round trip
on the way to ``reserved``: bench/README.md, session 23). Rows gone stale cost that
batch's write an abort and a replay, as any stale read does; nothing is written from them.

A batch *takes* the rows of its SKUs out, and after it commits puts back the rows as it
left them; a batch that rolls back puts back nothing, so the next batch of those SKUs
reads them. A SKU without stock rows is not kept (a row added later would go unseen), and
beyond ``capacity`` SKUs the least recently put back go first. The first batch fills the
cache with the whole catalogue (up to ``capacity`` SKUs), which a busy consumer would
otherwise take minutes of reads to meet.

It also keeps the active reservations those batches made, by (order, warehouse), so the
batch that commits them (the order's dispatch) needs no read either when it holds every
SKU involved: the write closes each reservation only if it is still active with the same
SKU and units, and checks that the order has no other active reservation at that
warehouse (one made by a transaction, or by another instance while the order's partition
was elsewhere), so a stale or missing entry aborts the batch like a stale row. A commit
takes its order's entries out; beyond ``orders`` (order, warehouse) pairs the least
recently added go first (an order shipped days later is read, as before).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from oms_inventory import reserving, store
from oms_inventory.one_statement import BatchStock
from oms_inventory.store import ActiveReservation, LocatedLevel
from oms_shared.outbox import UnitOfWork

__all__ = ["StockCache"]


K = TypeVar("K")
V = TypeVar("V")

#: (order id, warehouse id): the reservations a commit request closes.
OrderAt = tuple[str, str]


class StockCache:
    """Stock rows by SKU, as the last committed batch of each SKU left them (at most ``capacity``
    SKUs), and the active reservations such batches made (at most ``orders`` pairs)."""

    def __init__(self, capacity: int, orders: int = 0) -> None:
        self.capacity = capacity
        self.orders = orders
        self._held: dict[str, list[LocatedLevel]] = {}
        self._reservations: dict[OrderAt, list[ActiveReservation]] = {}
        self._filled = capacity <= 0

    def __len__(self) -> int:
        return len(self._held)

    def take(self, skus: Collection[str]) -> list[LocatedLevel] | None:
        """Remove the rows of ``skus``; return them if every SKU was held (None: read them all)."""
        held = _take_all(self._held, skus)
        return None if held is None else [row for rows in held.values() for row in rows]

    def put(self, rows: Mapping[str, list[LocatedLevel]]) -> None:
        """Keep each SKU's rows (all of them, as committed) in place of what was held."""
        if self.capacity <= 0:
            return
        for sku, kept in rows.items():
            self._held.pop(sku, None)
            self._held[sku] = kept
        _keep_newest(self._held, self.capacity)

    def take_reservations(self, pairs: Collection[OrderAt]) -> dict[OrderAt, list[ActiveReservation]] | None:
        """Remove the reservations of (order, warehouse) ``pairs``; return them, in the order a
        read lists them (line, request), if every pair was held (None: read them all)."""
        held = _take_all(self._reservations, pairs)
        if held is None:
            return None
        return {pair: sorted(rows, key=lambda r: (r.line_no, r.request_id)) for pair, rows in held.items()}

    def put_reservations(self, made: Iterable[ActiveReservation]) -> None:
        """Keep reservations a committed batch made, beside those held for the same order and warehouse."""
        if self.orders <= 0:
            return
        for r in made:
            self._reservations.setdefault((r.order_id, r.warehouse_id), []).append(r)
        _keep_newest(self._reservations, self.orders)

    async def prepare(self, uow: UnitOfWork, payloads: Sequence[Any]) -> None:
        """The runtime's per-batch hook (:func:`reserving.prepare`), with this cache behind a one-statement batch."""
        if uow.one_statement:
            if not self._filled:
                self._filled = True
                by_sku: dict[str, list[LocatedLevel]] = {}
                for row in await store.stock_rows(uow.conn, self.capacity):
                    by_sku.setdefault(row[0].sku, []).append(row)
                self.put(by_sku)
            BatchStock.of(uow).keep_in(self)
        await reserving.prepare(uow, payloads)


def _take_all(held: dict[K, V], keys: Collection[K]) -> dict[K, V] | None:
    """Remove ``keys`` from ``held``; what they held if every one was there (None otherwise)."""
    taken = {key: held.pop(key, None) for key in keys}
    found = {key: value for key, value in taken.items() if value is not None}
    return found if len(found) == len(taken) else None


def _keep_newest(held: dict[K, V], capacity: int) -> None:
    """Drop the entries added longest ago until at most ``capacity`` are left."""
    while len(held) > capacity:
        del held[next(iter(held))]
