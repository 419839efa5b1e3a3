"""The shipments one batch of carrier scans touches: loaded once, written once.

Scans are most of shipping's traffic (four or more per parcel). The runtime's
``prepare`` hook loads and locks every shipment a batch's scans name in one
statement; each scan handler reads and updates the book; at flush the scans are
inserted and the shipments saved with one statement each, instead of two round
trips per scan. Handlers of other messages (bookings, answers, cancellations) call
:meth:`ScanBook.settle` with the shipment they are about to read and change: if the
book holds that shipment, it writes what it has first and forgets the shipment, so the
handler reads it with every scan before it applied and later scans reload what it
wrote. A shipment the book does not hold costs nothing: a batch mixing bookings and
answers of some parcels with scans of others still writes its scans once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from oms_shared.contracts.shipping import CarrierScan
from oms_shared.outbox import UnitOfWork
from oms_shipping import store
from oms_shipping.domain import Shipment
from oms_shipping.store import SavedScan

__all__ = ["ScanBook", "prepare"]


class ScanBook:
    """One unit of work's scanned shipments (locked, latest state) and the writes still due."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._shipments: dict[str, Shipment | None] = {}
        self._scans: list[tuple[str, str, str, str, str, datetime, str]] = []
        self._saved: dict[str, SavedScan] = {}

    @staticmethod
    def of(uow: UnitOfWork) -> ScanBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(ScanBook)

    async def load(self, shipment_ids: Iterable[str]) -> None:
        """Load and lock the shipments not in the book yet, in one statement."""
        wanted = sorted({sid for sid in shipment_ids if sid not in self._shipments})
        if wanted:
            found = await store.load_shipments(self._uow.conn, wanted)
            self._shipments.update({sid: found.get(sid) for sid in wanted})

    async def get(self, shipment_id: str) -> Shipment | None:
        """The shipment as of the scans applied so far in this unit of work; None if unknown."""
        await self.load([shipment_id])
        return self._shipments[shipment_id]

    def record(self, scan: CarrierScan) -> None:
        """Keep the scan for the tracking history (an identical scan is stored once)."""
        self._scans.append(
            (scan.shipment_id, scan.order_id, scan.carrier, scan.tracking_number, scan.scan, scan.at, scan.detail)
        )

    def save(self, shipment: Shipment, at: datetime, *, dispatched: bool) -> None:
        """The shipment's state after a scan at ``at`` (dispatched by it, or not)."""
        before = self._saved.get(shipment.shipment_id)
        dispatched_at = before.dispatched_at if before and before.dispatched_at else (at if dispatched else None)
        delivered_at = before.delivered_at if before and before.delivered_at else None
        if shipment.status == "delivered" and delivered_at is None:
            delivered_at = at
        self._shipments[shipment.shipment_id] = shipment
        self._saved[shipment.shipment_id] = SavedScan(shipment, dispatched_at, delivered_at)

    async def settle(self, shipment_id: str) -> None:
        """Another handler is about to read and change this shipment: write it first, then forget it."""
        if shipment_id in self._shipments:
            await self.flush()
            del self._shipments[shipment_id]

    async def flush(self) -> None:
        """Insert the scans and save the shipments, one statement each."""
        scans, self._scans = self._scans, []
        saved, self._saved = list(self._saved.values()), {}
        await store.record_scans(self._uow.conn, scans)
        await store.save_scans(self._uow.conn, saved)


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook: load and lock every shipment the batch's scans name."""
    await ScanBook.of(uow).load(p.shipment_id for p in payloads if isinstance(p, CarrierScan))
