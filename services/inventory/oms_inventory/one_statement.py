"""Batches of reserve and commit commands only: one read, one write, no transaction block.

Most of the consumer's batches hold nothing but ``ReserveStock`` (the way to
``reserved``) and ``CommitStock`` (dispatches). The runtime runs such a batch
one-statement (see :mod:`oms_shared.runtime`): the prepare hook reads what it needs in
one statement that locks nothing (:func:`store.batch_context`: the committing orders'
active reservations, every stock row of the SKUs involved; every request is taken as
new, which the write checks, since a repeat from an earlier batch is rare), or takes
them from what earlier batches left (:mod:`oms_inventory.stock_cache`); the books
plan, reply and compute the levels after the batch in memory against this
:class:`BatchStock`; and ONE statement, its own transaction,
writes it all (:func:`store.write_batch`): each stock row moved once by its merged delta
and only if it still holds the values read, every other row of those SKUs checked
unchanged, decisions, reservations, commit claims, closed reservations, shipment
movements, the outbox and the inbox claim. If anything the batch read has changed, the
statement aborts whole (OMS02) and the runtime replays the batch in a transaction
through the locking path (:mod:`oms_inventory.reserving`, :mod:`oms_inventory.committing`),
so nothing is ever written from a stale read; the stock table's CHECK refuses an
oversell whatever runs.

A batch with any other message (release, short pick, movements) is not run this way
(:func:`takes_one_statement`), nor one that reserves and commits for the same order.
Two round trips per batch instead of five (BEGIN, read and lock, reserve, outbox and
inbox, COMMIT).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from oms_inventory import store
from oms_inventory.domain import Allocation, Point, StockLevel
from oms_inventory.stock import WarehouseLevel
from oms_inventory.store import ActiveReservation, CommitClose, LocatedLevel, RecordedDecision, StockWrite
from oms_shared.contracts.inventory import CommitStock, ReserveStock
from oms_shared.outbox import OutboxWrite, UnitOfWork

if TYPE_CHECKING:
    from oms_inventory.stock_cache import StockCache

__all__ = ["BatchStock", "NeedsTransaction", "takes_one_statement"]


def takes_one_statement(payloads: Sequence[Any]) -> bool:
    """The runtime's predicate: a batch of reserve and commit commands only."""
    return all(isinstance(p, ReserveStock | CommitStock) for p in payloads)


class NeedsTransaction(Exception):
    """This batch cannot be written in one statement: the runtime replays it in a transaction."""


class BatchStock:
    """A one-statement batch's read, the stock rows as its commands leave them, and its write.

    The unit of work's writer: the books record into it (:meth:`reserve`, :meth:`commit`)
    while they flush, and :meth:`write` writes everything with the outbox.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        #: (sku, warehouse) -> the row as read, and as the batch leaves it.
        self._read: dict[tuple[str, str], WarehouseLevel] = {}
        self._now: dict[tuple[str, str], WarehouseLevel] = {}
        self._by_sku: dict[str, list[tuple[str, str]]] = {}
        self._where: dict[tuple[str, str], Point] = {}
        #: Where the rows come from and go back to after the commit (None: read every batch).
        self._cache: StockCache | None = None
        #: (order, warehouse) -> its active reservations not closed by this batch yet.
        self._active: dict[tuple[str, str], list[ActiveReservation]] = {}
        self._recorded: list[RecordedDecision] = []
        self._claims: list[tuple[str, str, str]] = []
        self._closes: list[CommitClose] = []
        uow.write_with(self)

    @staticmethod
    def of(uow: UnitOfWork) -> BatchStock:
        """The batch's (one per unit of work; take it before the parts flush)."""
        return uow.part(BatchStock)

    def keep_in(self, cache: StockCache) -> None:
        """Take the batch's rows from ``cache`` when it holds them all, and put them back after the commit."""
        self._cache = cache
        self._uow.on_commit(self._put_back)

    async def load(self, reserves: Sequence[ReserveStock], commits: Sequence[CommitStock]) -> list[StockLevel]:
        """Read what the batch needs (from the cache, if it holds every SKU and every committing
        order's reservations); return the candidate rows of the reserves' SKUs."""
        if {c.order_id for c in reserves} & {c.order_id for c in commits}:
            raise NeedsTransaction("an order reserves and commits in one batch")
        skus = sorted({line.sku for c in reserves for line in c.lines})
        committing = sorted({(c.order_id, c.warehouse_id) for c in commits})
        held = self._held(skus, committing)
        if held is None:
            context = await store.batch_context(self._uow.conn, skus, committing)
            rows = context.stock
            if self._cache is not None:  # what it held of these SKUs is older than this read
                self._cache.take({level.sku for level, _ in rows})
            for r in context.active:
                self._active.setdefault((r.order_id, r.warehouse_id), []).append(r)
        else:
            rows = held
        wanted = set(skus)
        candidates = []
        for level, location in rows:
            key = (level.sku, level.warehouse_id)
            self._read[key] = self._now[key] = level
            self._where[key] = location
            self._by_sku.setdefault(level.sku, []).append(key)
            if level.active and level.available > 0 and level.sku in wanted:
                on_hand, reserved, safety = level.on_hand, level.reserved, level.safety_stock
                candidates.append(StockLevel(level.sku, level.warehouse_id, on_hand, reserved, safety, location))
        return candidates

    def _held(self, skus: Sequence[str], committing: Sequence[tuple[str, str]]) -> list[LocatedLevel] | None:
        """The rows of ``skus`` and of the committing orders' SKUs, with those orders' active
        reservations, from the cache if it holds them all (None: the batch reads)."""
        if self._cache is None:
            return None
        active = self._cache.take_reservations(committing)
        if active is None:
            return None
        rows = self._cache.take(sorted({*skus, *(r.sku for held in active.values() for r in held)}))
        if rows is not None:
            self._active.update(active)
        return rows

    def reserve(self, steps: Sequence[tuple[str, str, int]], recorded: Sequence[RecordedDecision]) -> None:
        """Take the steps' units (sku, warehouse, units) and keep the decisions for the write."""
        for sku, warehouse_id, units in steps:
            self._move(sku, warehouse_id, 0, units)
        self._recorded.extend(recorded)

    def commit(
        self, requests: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[list[Allocation], set[str]]]:
        """Commit each (order, request, warehouse) as :func:`store.commit_reservations` would:
        what each closed and the SKUs it changed (each request taken as new: the write's
        claim checks)."""
        done: dict[tuple[str, str, str], tuple[list[Allocation], set[str]]] = {}
        for key in requests:
            if key in done:
                continue
            order_id, request_id, warehouse_id = key
            closing = self._active.pop((order_id, warehouse_id), [])
            self._claims.append(key)
            for r in closing:
                self._closes.append(CommitClose(r, request_id))
                self._move(r.sku, r.warehouse_id, -r.quantity, -r.quantity)
            done[key] = (
                [Allocation(r.line_no, r.sku, r.warehouse_id, r.quantity) for r in closing],
                {r.sku for r in closing},
            )
        return done

    def levels(self, skus: Iterable[str]) -> list[WarehouseLevel]:
        """Every stock row of ``skus`` as the batch leaves it."""
        return [self._now[key] for sku in sorted(set(skus)) for key in self._by_sku.get(sku, [])]

    def _move(self, sku: str, warehouse_id: str, on_hand: int, reserved: int) -> None:
        key = (sku, warehouse_id)
        if key not in self._now:
            raise NeedsTransaction(f"stock row {key} was not read")
        level = self._now[key]
        self._now[key] = WarehouseLevel(
            sku, warehouse_id, level.on_hand + on_hand, level.reserved + reserved, level.safety_stock, level.active
        )

    async def flush(self) -> None:
        """Nothing before the outbox: the batch writes with it (:meth:`write`)."""

    async def write(self, outbox: OutboxWrite) -> int | None:
        """Write the batch and ``outbox`` in one statement that checks the read still holds.

        Every stock row read goes in, in the order every stock writer locks rows in (code
        point, as ``COLLATE "C"``): the ones the batch moves with their deltas, the others
        to be checked unchanged, so the plans, refusals and availability events of the
        batch are as of one state of the stock.
        """
        stock = [
            StockWrite(read, now.on_hand - read.on_hand, now.reserved - read.reserved, self._where[key])
            for key in sorted(self._read)
            for read, now in [(self._read[key], self._now[key])]
        ]
        return await store.write_batch(self._uow.conn, stock, self._recorded, self._claims, self._closes, outbox)

    def _put_back(self) -> None:
        """After the commit: the rows as the batch left them are the database's."""
        assert self._cache is not None
        self._cache.put({sku: [(self._now[k], self._where[k]) for k in keys] for sku, keys in self._by_sku.items()})
        self._cache.put_reservations(
            ActiveReservation(r.order_id, r.request_id, a.line_no, a.warehouse_id, a.sku, a.quantity)
            for r in self._recorded
            for a in r.decision.allocations
        )
