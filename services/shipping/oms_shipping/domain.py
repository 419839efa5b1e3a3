"""Shipping's business rules: a shipment's life from booking to delivery, as pure decisions.

Pure: standard library only, no I/O. Each decision takes the stored shipment (or
None) and what happened, and returns the new shipment plus what to tell the world;
the handlers store and emit exactly that. The rate card lives in :mod:`oms_shipping.rates`.

::

    booking --accepted--> booked --picked_up--> dispatched --delivered--> delivered
       |  \\--rejected, next carrier--> booking (attempt + 1)
       |   \\--rejected, none left--> failed
       \\------ cancel (booking | booked | failed) --> cancelled; refused from dispatched on
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from oms_shipping.rates import (
    CARRIERS,
    Carrier,
    GeoPoint,
    Quote,
    Zone,
    haversine_km,
    next_quote,
    promised_ship_date,
    rank_carriers,
    zone_for,
)

__all__ = [
    "CANCEL_REFUSED_REASON",
    "CARRIERS",
    "AnswerOutcome",
    "Attempt",
    "CancelOutcome",
    "CarrierAnswer",
    "Package",
    "PackedItem",
    "ScanOutcome",
    "Shipment",
    "ShipmentRequest",
    "Status",
    "TrackedShipment",
    "TrackingScan",
    "answer_booking",
    "apply_scan",
    "booking_id_for",
    "booking_state",
    "cancel_shipment",
    "open_shipment",
]

Status = Literal["booking", "booked", "failed", "cancelled", "dispatched", "delivered"]
BookingState = Literal["pending", "booked", "failed", "cancelled"]
CANCEL_REFUSED_REASON = "parcel already handed to the carrier"
#: Scans that prove the carrier holds the parcel: on a booked shipment they imply a missed pick-up scan.
_IN_CARRIER_HANDS = frozenset({"picked_up", "in_transit", "out_for_delivery", "delivered"})
#: The legs of the journey in order; exceptions can happen on any leg.
_JOURNEY = {"in_transit": 1, "out_for_delivery": 2, "delivered": 3}
ReportedStatus = Literal["in_transit", "out_for_delivery", "delivered", "exception"]
_STATUS_SCANS: dict[str, ReportedStatus] = {
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
    "exception": "exception",
}


@dataclass(frozen=True, slots=True)
class PackedItem:
    """Units of one order line inside a parcel."""

    line_no: int
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Package:
    """One parcel of the shipment."""

    package_id: str
    weight_grams: int
    items: tuple[PackedItem, ...] = ()


@dataclass(frozen=True, slots=True)
class ShipmentRequest:
    """What the saga asked to ship: from where, to where, how fast, which parcels."""

    request_id: str
    warehouse_id: str
    method: str
    origin: GeoPoint
    destination: GeoPoint
    packages: tuple[Package, ...]

    def __post_init__(self) -> None:
        ids = [p.package_id for p in self.packages]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"a shipment needs parcels with distinct ids, got {ids}")

    @property
    def weights(self) -> tuple[int, ...]:
        """The weight of each parcel, in grams."""
        return tuple(p.weight_grams for p in self.packages)

    @property
    def distance_km(self) -> float:
        """Great-circle distance from the warehouse to the customer."""
        return haversine_km(self.origin, self.destination)

    @property
    def zone(self) -> Zone:
        """The rate zone of the destination."""
        return zone_for(self.distance_km)


def booking_id_for(shipment_id: str, attempt: int) -> str:
    """The id of one booking request: a carrier's answer names it, so a stale answer is told apart."""
    return f"{shipment_id}:{attempt}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One booking request to one carrier."""

    shipment_id: str
    attempt: int
    carrier: str
    service_level: str
    cost_minor: int
    currency: str
    promised_ship_date: date

    @property
    def booking_id(self) -> str:
        """The id the carrier answers with."""
        return booking_id_for(self.shipment_id, self.attempt)

    @classmethod
    def of(cls, shipment_id: str, attempt: int, chosen: Quote, at: datetime) -> Attempt:
        """The attempt booking ``chosen`` at time ``at`` (which sets the promised collection day)."""
        ship_date = promised_ship_date(at, chosen.cutoff_utc)
        cost, currency = chosen.cost_minor, chosen.currency
        return cls(shipment_id, attempt, chosen.carrier, chosen.service_level, cost, currency, ship_date)


@dataclass(frozen=True, slots=True)
class Shipment:
    """A shipment's state. ``request`` is None for a tombstone (cancelled before it was ever booked)."""

    shipment_id: str
    order_id: str
    status: Status
    request: ShipmentRequest | None = None
    #: The latest booking attempt (the one in hand while booking or booked).
    attempt: Attempt | None = None
    carriers_tried: tuple[str, ...] = ()
    tracking_number: str | None = None
    failure_reason: str | None = None
    #: Post-dispatch statuses already reported to the saga (each is reported once).
    reported: frozenset[str] = field(default_factory=frozenset)


def open_shipment(
    shipment_id: str, order_id: str, request: ShipmentRequest, at: datetime, carriers: Sequence[Carrier] = CARRIERS
) -> Shipment:
    """A new shipment booking the cheapest eligible carrier, or failed if none is eligible."""
    ranked = rank_carriers(carriers, request.method, request.weights, request.zone)
    if not ranked:
        reason = (
            f"no carrier offers {request.method} for parcels up to {max(request.weights)} g"
            f" to a {request.zone} destination"
        )
        return Shipment(shipment_id, order_id, "failed", request, failure_reason=reason)
    first = Attempt.of(shipment_id, 1, ranked[0], at)
    return Shipment(shipment_id, order_id, "booking", request, first, (first.carrier,))


def booking_state(shipment: Shipment) -> BookingState:
    """The outcome of the booking so far, which a repeated BookShipment is answered with."""
    if shipment.status == "booking":
        return "pending"
    if shipment.status in ("failed", "cancelled"):
        return shipment.status
    return "booked"


@dataclass(frozen=True, slots=True)
class CarrierAnswer:
    """A carrier's answer to a booking request; ``tracking_number_taken`` if another shipment has it."""

    booking_id: str
    carrier: str
    accepted: bool
    tracking_number: str | None = None
    reason: str = ""
    tracking_number_taken: bool = False


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What an answer does: nothing (stale), books, moves on to the next carrier, or fails."""

    kind: Literal["stale", "booked", "retrying", "failed"]
    shipment: Shipment
    #: Why the answered booking did not book the shipment ("" when booked or stale).
    refusal: str = ""
    #: A booking the carrier accepted but we cannot use: tell the carrier it is void.
    void: Attempt | None = None


def answer_booking(
    shipment: Shipment, answer: CarrierAnswer, at: datetime, carriers: Sequence[Carrier] = CARRIERS
) -> AnswerOutcome:
    """Apply a carrier's answer: book, or try the next cheapest carrier not tried yet, or fail."""
    current = shipment.attempt
    if (
        shipment.status != "booking"
        or current is None
        or shipment.request is None
        or answer.booking_id != current.booking_id
        or answer.carrier != current.carrier
    ):
        return AnswerOutcome("stale", shipment)
    refusal = _refusal(answer)
    if refusal is None:
        return AnswerOutcome("booked", replace(shipment, status="booked", tracking_number=answer.tracking_number))
    void = current if answer.accepted else None
    request = shipment.request
    ranked = rank_carriers(carriers, request.method, request.weights, request.zone)
    chosen = next_quote(ranked, shipment.carriers_tried)
    if chosen is None:
        reason = f"every eligible carrier refused the booking (last: {current.carrier}: {refusal})"
        return AnswerOutcome("failed", replace(shipment, status="failed", failure_reason=reason), refusal, void)
    attempt = Attempt.of(shipment.shipment_id, current.attempt + 1, chosen, at)
    moved = replace(shipment, attempt=attempt, carriers_tried=(*shipment.carriers_tried, chosen.carrier))
    return AnswerOutcome("retrying", moved, refusal, void)


def _refusal(answer: CarrierAnswer) -> str | None:
    if not answer.accepted:
        return answer.reason or "refused without a reason"
    if not answer.tracking_number:
        return "accepted without a tracking number"
    if answer.tracking_number_taken:
        return f"tracking number {answer.tracking_number} already belongs to another shipment"
    return None


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What a scan does: dispatch the shipment (once), report a status (once per status), or nothing."""

    shipment: Shipment | None
    dispatched: bool = False
    reported: ReportedStatus | None = None
    ignored: str = ""


def apply_scan(shipment: Shipment | None, scan: str, carrier: str, tracking_number: str) -> ScanOutcome:
    """Apply a carrier scan. The first scan proving the carrier holds the parcel dispatches it.

    After dispatch each status is reported once, and never one behind the journey already
    reported (scans may arrive out of order: a late in_transit after delivered is only stored).
    """
    if shipment is None:
        return ScanOutcome(None, ignored="unknown shipment")
    if shipment.status == "cancelled":
        return ScanOutcome(shipment, ignored="shipment cancelled")
    if shipment.status in ("booking", "failed") or shipment.attempt is None:
        return ScanOutcome(shipment, ignored=f"shipment not booked ({shipment.status})")
    if (carrier, tracking_number) != (shipment.attempt.carrier, shipment.tracking_number):
        return ScanOutcome(shipment, ignored="carrier or tracking number does not match the booking")
    dispatched = shipment.status == "booked" and scan in _IN_CARRIER_HANDS
    if shipment.status == "booked" and not dispatched:
        return ScanOutcome(shipment, ignored=f"{scan} before the pick-up")
    reported = _STATUS_SCANS.get(scan) if scan not in shipment.reported and not _behind(scan, shipment) else None
    status: Status = "delivered" if scan == "delivered" else ("dispatched" if dispatched else shipment.status)
    if not dispatched and reported is None and status == shipment.status:
        return ScanOutcome(shipment, ignored="already reported")
    reported_set = shipment.reported | {reported} if reported else shipment.reported
    return ScanOutcome(replace(shipment, status=status, reported=reported_set), dispatched, reported)


def _behind(scan: str, shipment: Shipment) -> bool:
    """A late scan of an earlier leg (in transit after out for delivery): stored, not reported."""
    rank = _JOURNEY.get(scan)
    return rank is not None and any(_JOURNEY.get(s, 0) > rank for s in shipment.reported)


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancellation does: cancel (voiding the booking in hand), repeat itself, or refuse."""

    kind: Literal["cancelled", "already_cancelled", "refused"]
    shipment: Shipment
    void: Attempt | None = None
    reason: str = ""


def cancel_shipment(shipment: Shipment | None, shipment_id: str, order_id: str) -> CancelOutcome:
    """Cancel before the hand-over to the carrier; an unknown shipment leaves a cancelled tombstone."""
    if shipment is None:
        return CancelOutcome("cancelled", Shipment(shipment_id, order_id, "cancelled"))
    if shipment.status == "cancelled":
        return CancelOutcome("already_cancelled", shipment)
    if shipment.status in ("dispatched", "delivered"):
        return CancelOutcome("refused", shipment, reason=CANCEL_REFUSED_REASON)
    void = shipment.attempt if shipment.status in ("booking", "booked") else None
    return CancelOutcome("cancelled", replace(shipment, status="cancelled"), void)


@dataclass(frozen=True, slots=True)
class TrackingScan:
    """One carrier scan as the customer sees it."""

    scan: str
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TrackedShipment:
    """A shipment of an order, for the customer-facing tracking view."""

    shipment_id: str
    warehouse_id: str
    status: Status
    carrier: str | None
    service_level: str | None
    tracking_number: str | None
    promised_ship_date: date | None
    scans: tuple[TrackingScan, ...] = ()
