"""The reserve commands of one batch: stock locked and read once, planned in memory, written once.

A consumer batch is one transaction. Before its handlers run, the runtime's
``prepare`` hook reads the earlier decisions of every reserve request in the batch
and locks (``FOR UPDATE``, in the ``COLLATE "C"`` order every stock writer uses) the
candidate stock rows of every SKU they name, in one statement. With those rows
locked nobody else can change them until the batch commits, so each order is planned
against the book's in-memory levels, which already hold the units the batch's earlier
orders took, and the plan cannot lose a race. At flush, the reserved units (one delta
per stock row), the decisions and their reservations go in with one statement, which
still reserves only ``WHERE on_hand - reserved - safety_stock >= units``: if the
database disagrees with the book, the whole batch rolls back and is retried.

Each statement takes its row locks in the one fixed order, but a batch takes locks in
several statements (the prepare read, a later read after a release, the release
itself), so two instances' batches can still wait on each other; PostgreSQL detects
that within a second and the runtime retries the batch (a deadlock is transient).

Handlers that change stock through their own SQL in a way that changes what can be
promised (release, short pick, movements, warehouses, safety stock) call
:meth:`ReserveBook.settle` first: the book writes what it holds and forgets the
levels, so later reserves of the batch read them again. Committing reservations
needs no settling: it lowers ``on_hand`` and ``reserved`` by the same units, so
availability, the only thing the book plans with, does not change. The statement that
writes the reserves returns the reserved SKUs' levels after it, for their availability
events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oms_inventory import store
from oms_inventory.availability import availability_known
from oms_inventory.domain import Candidate, Decision, Point, StockLevel, reservation_steps
from oms_inventory.one_statement import BatchStock, NeedsTransaction
from oms_inventory.store import RecordedDecision
from oms_shared.contracts.inventory import CommitStock, ReserveStock
from oms_shared.errors import RetryableError
from oms_shared.outbox import UnitOfWork

__all__ = ["ReserveBook", "prepare"]

#: (order id, request id): reserve requests are unique per order only.
RequestKey = tuple[str, str]


class ReserveBook:
    """One unit of work's locked stock levels, known decisions and the writes still due."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        # Per SKU read, its candidate rows (active warehouse, units available when read).
        self._stock: dict[str, dict[str, StockLevel]] = {}
        self._decisions: dict[RequestKey, Decision | None] = {}
        self._recorded: list[RecordedDecision] = []
        #: A one-statement batch's read and write (None: this unit of work is a transaction).
        self._batch: BatchStock | None = BatchStock.of(uow) if uow.one_statement else None

    @staticmethod
    def of(uow: UnitOfWork) -> ReserveBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(ReserveBook)

    async def load(self, requests: Iterable[RequestKey], skus: Iterable[str]) -> None:
        """Read the decisions and lock the stock rows not in the book yet, in one statement."""
        wanted_requests = sorted({r for r in requests if r not in self._decisions})
        wanted_skus = sorted({sku for sku in skus if sku not in self._stock})
        if not wanted_requests and not wanted_skus:
            return
        if self._batch is not None:  # the batch's one read (the prepare hook's) had them all
            raise NeedsTransaction("a reserve request or SKU the batch did not read")
        priors, levels = await store.reserve_context(self._uow.conn, wanted_requests, wanted_skus)
        self._known(wanted_requests, wanted_skus, priors, levels)

    async def load_batch(self, reserves: Sequence[ReserveStock], commits: Sequence[CommitStock]) -> None:
        """A one-statement batch: the batch's one read, for these reserves and the commits beside them."""
        assert self._batch is not None
        levels = await self._batch.load(reserves, commits)
        requests = {(c.order_id, c.request_id) for c in reserves}
        # No decision is read: each request is taken as new (the write's insert checks).
        self._known(requests, {line.sku for c in reserves for line in c.lines}, {}, levels)

    def _known(
        self,
        requests: Iterable[RequestKey],
        skus: Iterable[str],
        priors: Mapping[RequestKey, Decision],
        levels: Iterable[StockLevel],
    ) -> None:
        """Take what a read found: the requests' decisions (if any) and the SKUs' candidate rows."""
        self._decisions.update({r: priors.get(r) for r in requests})
        self._stock.update({sku: {} for sku in skus})
        for level in levels:
            self._stock[level.sku][level.warehouse_id] = level

    def decision(self, order_id: str, request_id: str) -> Decision | None:
        """The decision already taken on this request (recorded, or earlier in this batch)."""
        return self._decisions[(order_id, request_id)]

    def stock(self, skus: Iterable[str]) -> list[StockLevel]:
        """The candidate rows of ``skus`` with units still available, as of this batch's reserves."""
        return [level for sku in skus for level in self._stock[sku].values() if level.available > 0]

    def record(self, cmd: ReserveStock, decision: Decision, ship_to: Point, candidates: Sequence[Candidate]) -> None:
        """Take the decision's units from the book's levels; it is written at flush."""
        for a in decision.allocations:
            level = self._stock[a.sku][a.warehouse_id]
            self._stock[a.sku][a.warehouse_id] = dataclasses.replace(level, reserved=level.reserved + a.quantity)
        self._decisions[(cmd.order_id, cmd.request_id)] = decision
        self._recorded.append(RecordedDecision(cmd.order_id, cmd.request_id, decision, ship_to, tuple(candidates)))

    async def settle(self) -> None:
        """Write what the book holds and forget the levels (another handler is about to change stock)."""
        await self.flush()
        self._stock.clear()

    async def flush(self) -> None:
        """Reserve the units and insert the decisions with their reservations, in one statement."""
        if not self._recorded:
            return
        recorded, self._recorded = self._recorded, []
        steps = reservation_steps(a for r in recorded for a in r.decision.allocations)
        if self._batch is not None:
            self._batch.reserve(steps, recorded)
            if steps:
                availability_known(self._uow, self._batch.levels(sku for sku, _, _ in steps))
            return
        reserved, inserted, levels = await store.record_reservations(self._uow.conn, steps, recorded)
        if reserved != len(steps) or inserted != len(recorded):
            # A duplicate request recorded by a concurrent consumer (a rebalance), or stock
            # changed behind the book's locks: redo the batch from the database's state.
            raise RetryableError(
                f"reserved {reserved} of {len(steps)} stock rows, recorded {inserted} of {len(recorded)} decisions"
            )
        availability_known(self._uow, levels)


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook: read and lock what the batch's reserve commands need
    (a one-statement batch: read what its reserves and commits need, locking nothing)."""
    commands = [p for p in payloads if isinstance(p, ReserveStock)]
    if uow.one_statement:
        await ReserveBook.of(uow).load_batch(commands, [p for p in payloads if isinstance(p, CommitStock)])
        return
    if commands:
        await ReserveBook.of(uow).load(
            ((c.order_id, c.request_id) for c in commands), (line.sku for c in commands for line in c.lines)
        )
