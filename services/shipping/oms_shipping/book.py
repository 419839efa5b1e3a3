"""The shipments one batch of carrier events touches: loaded once, written once.

Carrier events are most of shipping's traffic: a booking answer and four or more
scans per parcel, and with a fast carrier the answer and the first scans of a parcel
arrive in the same batch. The runtime's ``prepare`` hook loads and locks every
shipment the batch's bookings, answers and scans name (one statement; a booking's is
usually not there yet) and the owners of the tracking numbers its answers bring
(another). Each handler reads and changes the shipment in the book; at flush the new
shipments are inserted, the answers saved, then the scans inserted and the shipments'
scan states saved, one statement each, instead of one to three round trips per message.

A shipment has at most one answer waiting to be written, and an answer is never
written after scans computed before it: an answer for a shipment with writes pending
makes the book flush first (the book stays valid, the database now agrees with it).
Cancellations call :meth:`ShipmentBook.settle` with the shipment they are about to
read and change through the store: if the book holds it, the book writes what it has
first and forgets it. A shipment the book does not hold costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from oms_shared.contracts.shipping import BookShipment, CarrierBookingAnswered, CarrierScan
from oms_shared.errors import RetryableError
from oms_shared.outbox import UnitOfWork
from oms_shipping import store
from oms_shipping.domain import AnswerOutcome, Attempt, CarrierAnswer, Shipment
from oms_shipping.store import SavedAnswer, SavedScan

__all__ = ["ShipmentBook", "prepare"]


class ShipmentBook:
    """One unit of work's locked shipments (latest state), tracking number owners and writes due."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._shipments: dict[str, Shipment | None] = {}
        self._owners: dict[str, str | None] = {}
        self._opened: dict[str, tuple[Shipment, datetime]] = {}
        self._answers: dict[str, SavedAnswer] = {}
        self._scans: list[tuple[str, str, str, str, str, datetime, str]] = []
        self._saved: dict[str, SavedScan] = {}

    @staticmethod
    def of(uow: UnitOfWork) -> ShipmentBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(ShipmentBook)

    async def load(self, shipment_ids: Iterable[str], tracking_numbers: Iterable[str] = ()) -> None:
        """Load and lock the shipments, and read the tracking numbers' owners, not in the book yet."""
        wanted = sorted({sid for sid in shipment_ids if sid not in self._shipments})
        if wanted:
            found = await store.load_shipments(self._uow.conn, wanted)
            self._shipments.update({sid: found.get(sid) for sid in wanted})
        numbers = sorted({n for n in tracking_numbers if n not in self._owners})
        if numbers:
            owners = await store.tracking_number_owners(self._uow.conn, numbers)
            self._owners.update({n: owners.get(n) for n in numbers})

    async def get(self, shipment_id: str) -> Shipment | None:
        """The shipment as of the events applied so far in this unit of work; None if unknown."""
        await self.load([shipment_id])
        return self._shipments[shipment_id]

    def open(self, shipment: Shipment, at: datetime) -> None:
        """A new shipment (its id unknown so far): inserted at flush, before the answers."""
        self._shipments[shipment.shipment_id] = shipment
        self._opened[shipment.shipment_id] = (shipment, at)

    async def for_answer(self, shipment_id: str, tracking_number: str | None) -> tuple[Shipment | None, bool]:
        """The shipment, and whether ``tracking_number`` already belongs to another shipment."""
        await self.load([shipment_id], [tracking_number] if tracking_number else [])
        owner = self._owners.get(tracking_number) if tracking_number else None
        return self._shipments[shipment_id], owner is not None and owner != shipment_id

    async def answer(
        self, outcome: AnswerOutcome, answered: Attempt, answer: CarrierAnswer, at: datetime, label: str | None
    ) -> None:
        """The shipment after a carrier's answer (booked, retrying or failed): saved at flush."""
        shipment = outcome.shipment
        if shipment.shipment_id in self._answers or shipment.shipment_id in self._saved:
            await self.flush()
        self._shipments[shipment.shipment_id] = shipment
        if outcome.kind == "booked" and shipment.tracking_number:
            self._owners[shipment.tracking_number] = shipment.shipment_id
        self._answers[shipment.shipment_id] = SavedAnswer(outcome, answered, answer, at, label)

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
        """Insert the new shipments, save the answers, insert the scans and save the shipments' scan states.

        One statement each; a new shipment whose id a concurrent transaction created
        first makes the whole batch retry (and answer as a repeat).
        """
        opened, self._opened = list(self._opened.values()), {}
        answers, self._answers = list(self._answers.values()), {}
        scans, self._scans = self._scans, []
        saved, self._saved = list(self._saved.values()), {}
        if await store.insert_shipments(self._uow.conn, opened) != len(opened):
            raise RetryableError("a shipment of this batch was opened concurrently; the retry answers as a repeat")
        await store.save_answers(self._uow.conn, answers)
        await store.record_scans(self._uow.conn, scans)
        await store.save_scans(self._uow.conn, saved)


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook: load and lock what the batch's bookings, answers and scans name."""
    events = [p for p in payloads if isinstance(p, (BookShipment, CarrierScan, CarrierBookingAnswered))]
    await ShipmentBook.of(uow).load(
        (p.shipment_id for p in events),
        (p.tracking_number for p in events if isinstance(p, CarrierBookingAnswered) and p.tracking_number),
    )
