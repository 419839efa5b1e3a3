"""The commit commands of one batch (dispatches), written with one statement at the end of it.

Committing closes an order's active reservations at a warehouse: ``on_hand`` and
``reserved`` go down by their units and each becomes a ``shipment`` movement. The
handler only notes the command; at flush one set-based statement commits them all and
the replies are emitted then, one per command, as the one-by-one path would have
built them (a repeat of a request gets the reservations it closed before). The statement
also returns the changed SKUs' stock rows after it, for their availability events.

Other handlers that read or change reservations or stock through their own SQL
(release, short pick, movements, ...) call :meth:`CommitBook.flush` first, so they
see every commit before them in the batch.
"""

from __future__ import annotations

import structlog

from oms_inventory import store
from oms_inventory.availability import availability_known
from oms_inventory.one_statement import BatchStock
from oms_inventory.replies import allocations
from oms_shared import topics
from oms_shared.contracts.inventory import CommitStock, StockCommitted
from oms_shared.outbox import UnitOfWork

__all__ = ["CommitBook"]

log = structlog.get_logger(__name__)


class CommitBook:
    """One unit of work's commit commands still to be written."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._commands: list[CommitStock] = []
        #: A one-statement batch's read and write (None: this unit of work is a transaction).
        self._batch: BatchStock | None = BatchStock.of(uow) if uow.one_statement else None

    @staticmethod
    def of(uow: UnitOfWork) -> CommitBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(CommitBook)

    def add(self, cmd: CommitStock) -> None:
        """Commit this request's reservations at flush."""
        self._commands.append(cmd)

    async def flush(self) -> None:
        """Commit every noted request in one statement, then reply to each."""
        if not self._commands:
            return
        commands, self._commands = self._commands, []
        requests = [(c.order_id, c.request_id, c.warehouse_id) for c in commands]
        if self._batch is not None:
            closed = self._batch.commit(requests)
            levels = self._batch.levels(sku for _, changed in closed.values() for sku in changed)
        else:
            closed, levels = await store.commit_reservations(self._uow.conn, requests)
        for cmd in commands:
            committed, _ = closed.get((cmd.order_id, cmd.request_id, cmd.warehouse_id), ([], set()))
            log.info("stock_committed", order_id=cmd.order_id, lines=len(committed), warehouse_id=cmd.warehouse_id)
            reply = StockCommitted(
                order_id=cmd.order_id,
                request_id=cmd.request_id,
                warehouse_id=cmd.warehouse_id,
                committed=allocations(committed),
            )
            self._uow.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)
        availability_known(self._uow, levels)
