"""Availability events: one per SKU whose levels a batch changed, with its levels after the batch.

Handlers and the books of the batch mark the SKUs they changed
(:func:`availability_changed`); the batch part reads their levels in one statement
when it flushes. Books that write stock at flush mark their SKUs while flushing; the
unit of work then flushes this part after them (again, if it had flushed already), so
the levels read always include their writes. A write that returns the levels it left
(the reserve and commit statements) hands them over instead (:func:`availability_known`):
no read for those SKUs unless something marks them changed again later in the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from oms_inventory import store
from oms_inventory.stock import WarehouseLevel, availability
from oms_shared import topics
from oms_shared.contracts import payload_json
from oms_shared.contracts.inventory import AvailabilityChanged
from oms_shared.outbox import UnitOfWork

__all__ = ["AvailabilityBatch", "availability_changed", "availability_known"]


def availability_changed(uow: UnitOfWork, skus: Iterable[str]) -> None:
    """These SKUs' levels changed: their availability is published once, at the end of the batch."""
    uow.part(AvailabilityBatch).changed(skus)


def availability_known(uow: UnitOfWork, levels: Iterable[WarehouseLevel]) -> None:
    """Every stock row of some SKUs as a write just left them: publish those, without reading them."""
    uow.part(AvailabilityBatch).known(levels)


class AvailabilityBatch:
    """The SKUs whose availability a batch changed: one AvailabilityChanged each, at flush.

    The topic is compacted and keyed by SKU (the last event counts), so a hot SKU
    reserved by forty orders in one batch is published once with its final levels,
    read in one statement for the whole batch, instead of forty times.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._skus: set[str] = set()
        #: SKU -> all its stock rows, as the last write of them left them.
        self._known: dict[str, list[WarehouseLevel]] = {}

    def changed(self, skus: Iterable[str]) -> None:
        """Mark SKUs whose levels this batch changed (levels known before are stale now)."""
        for sku in skus:
            self._skus.add(sku)
            self._known.pop(sku, None)

    def known(self, levels: Iterable[WarehouseLevel]) -> None:
        """Mark the SKUs of ``levels`` changed, with all their rows as they are now."""
        fresh: dict[str, list[WarehouseLevel]] = {}
        for level in levels:
            fresh.setdefault(level.sku, []).append(level)
        self._skus.update(fresh)
        self._known.update(fresh)

    async def flush(self) -> None:
        """Read the marked SKUs' levels not known yet and emit one event per SKU."""
        if not self._skus:
            return
        unknown = self._skus - self._known.keys()
        levels = [level for rows in self._known.values() for level in rows]
        if unknown:
            levels += await store.stock_levels(self._uow.conn, unknown)
        self._skus, self._known = set(), {}
        at = datetime.now(UTC)
        for sku in availability(levels):
            # AvailabilityChanged as its model would dump it (the handler tests check the
            # bytes), without building and validating six models per event: ~4 per order.
            event = {
                "sku": sku.sku,
                "available": sku.available,
                "warehouses": [
                    {
                        "warehouse_id": w.warehouse_id,
                        "on_hand": w.on_hand,
                        "reserved": w.reserved,
                        "safety_stock": w.safety_stock,
                        "available": w.available,
                    }
                    for w in sku.warehouses
                ],
                "at": at,
            }
            data = payload_json(event)
            self._uow.emit_json(topics.INVENTORY_AVAILABILITY, AvailabilityChanged.ce_type, data, key=sku.sku)
