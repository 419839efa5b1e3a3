"""Shipping's API: booking commands, replies to the saga, carrier requests and carrier events.

``shipment_id`` is chosen by the saga (one shipment per fulfillment) and is the
idempotency key of the booking. The hand-over to the carrier (the ``picked_up``
scan) is the saga's pivot: after it, cancellation is refused.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, PackageSpec

__all__ = [
    "BookShipment",
    "CancelShipment",
    "CarrierBookingAnswered",
    "CarrierBookingCancelled",
    "CarrierBookingRequested",
    "CarrierScan",
    "ScanKind",
    "ShipmentBooked",
    "ShipmentBookingFailed",
    "ShipmentCancelRefused",
    "ShipmentCancelled",
    "ShipmentDispatched",
    "ShipmentStatusChanged",
    "ShippingMethod",
]

ShippingMethod = Literal["standard", "express"]
ScanKind = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]


# --- commands (saga -> shipping) --------------------------------------------------------
class BookShipment(Contract):
    """Book the cheapest carrier that meets ``shipping_method`` for these packages."""

    ce_type = "oms.shipping.book-shipment.v1"
    order_id: str
    request_id: str
    shipment_id: str
    warehouse_id: str
    origin: Coordinates
    destination: Coordinates
    shipping_method: ShippingMethod
    packages: tuple[PackageSpec, ...] = Field(min_length=1)


class CancelShipment(Contract):
    """Void the booking and label; refused once the carrier has picked the parcel up."""

    ce_type = "oms.shipping.cancel-shipment.v1"
    order_id: str
    request_id: str
    shipment_id: str


# --- replies (shipping -> saga) ---------------------------------------------------------
class ShipmentBooked(Contract):
    """A carrier accepted: the shipment has a tracking number and a label."""

    ce_type = "oms.shipping.shipment-booked.v1"
    order_id: str
    request_id: str
    shipment_id: str
    carrier: str
    service_level: str
    tracking_number: str
    label_format: Literal["ZPL", "PDF"]
    cost_minor: int
    currency: str
    carriers_tried: tuple[str, ...] = ()
    #: The day the carrier collects the parcel (UTC): the next day when booked after the level's cut-off.
    promised_ship_date: date | None = None


class ShipmentBookingFailed(Contract):
    """Every eligible carrier refused (or none is eligible)."""

    ce_type = "oms.shipping.shipment-booking-failed.v1"
    order_id: str
    request_id: str
    shipment_id: str
    reason: str
    carriers_tried: tuple[str, ...] = ()


class ShipmentDispatched(Contract):
    """The carrier picked the parcel up: the pivot of the saga."""

    ce_type = "oms.shipping.shipment-dispatched.v1"
    order_id: str
    shipment_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    at: datetime


class ShipmentStatusChanged(Contract):
    """A carrier scan after dispatch: in transit, out for delivery, delivered, exception."""

    ce_type = "oms.shipping.shipment-status-changed.v1"
    order_id: str
    shipment_id: str
    status: Literal["in_transit", "out_for_delivery", "delivered", "exception"]
    carrier: str
    tracking_number: str
    at: datetime
    detail: str = ""


class ShipmentCancelled(Contract):
    """The booking (if any) is voided."""

    ce_type = "oms.shipping.shipment-cancelled.v1"
    order_id: str
    request_id: str
    shipment_id: str


class ShipmentCancelRefused(Contract):
    """The parcel is already with the carrier."""

    ce_type = "oms.shipping.shipment-cancel-refused.v1"
    order_id: str
    request_id: str
    shipment_id: str
    reason: str


# --- to carriers (oms.shipping.carrier-requests.v1) ------------------------------------
class CarrierBookingRequested(Contract):
    """Ask one carrier to take the parcels."""

    ce_type = "oms.shipping.carrier-booking-requested.v1"
    order_id: str
    shipment_id: str
    booking_id: str
    carrier: str
    service_level: str
    warehouse_id: str
    origin: Coordinates
    destination: Coordinates
    packages: tuple[PackageSpec, ...]
    #: The collection day promised to the customer (UTC): the next day after the level's cut-off.
    promised_ship_date: date | None = None
    #: What the OMS expects to pay, in minor units of ``currency`` (from its rate card).
    quoted_cost_minor: int | None = None
    currency: str | None = None


class CarrierBookingCancelled(Contract):
    """Tell the carrier the booking is void (do not pick up)."""

    ce_type = "oms.shipping.carrier-booking-cancelled.v1"
    order_id: str
    shipment_id: str
    booking_id: str
    carrier: str


# --- from carriers (oms.shipping.carrier-events.v1) ------------------------------------
class CarrierBookingAnswered(Contract):
    """The carrier's answer to a booking request."""

    ce_type = "oms.shipping.carrier-booking-answered.v1"
    order_id: str
    shipment_id: str
    booking_id: str
    carrier: str
    accepted: bool
    tracking_number: str | None = None
    reason: str = ""


class CarrierScan(Contract):
    """A scan of a parcel by the carrier."""

    ce_type = "oms.shipping.carrier-scan.v1"
    order_id: str
    shipment_id: str
    carrier: str
    tracking_number: str
    scan: ScanKind
    at: datetime
    detail: str = ""
