"""Shipping's message handlers: load, decide (domain), store, emit. One function per message type.

Handlers that choose carriers take the rate card as a keyword argument (the
built-in :data:`~oms_shipping.rates.CARRIERS` by default); :func:`subscriptions`
binds a configured one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import structlog

from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, LineQuantity, PackageSpec
from oms_shared.contracts.shipping import (
    BookShipment,
    CancelShipment,
    CarrierBookingAnswered,
    CarrierBookingCancelled,
    CarrierBookingRequested,
    CarrierScan,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentCancelled,
    ShipmentCancelRefused,
    ShipmentDispatched,
    ShipmentStatusChanged,
)
from oms_shared.runtime import Handler, MessageContext, Subscription
from oms_shipping import domain, store
from oms_shipping.book import ShipmentBook
from oms_shipping.domain import Attempt, CarrierAnswer, Package, PackedItem, Shipment, ShipmentRequest
from oms_shipping.labels import LABEL_FORMAT, render_label
from oms_shipping.rates import CARRIERS, Carrier, GeoPoint

__all__ = [
    "CARRIER_EVENT_HANDLERS",
    "COMMAND_HANDLERS",
    "on_book_shipment",
    "on_cancel_shipment",
    "on_carrier_booking_answered",
    "on_carrier_scan",
    "subscriptions",
]

log = structlog.get_logger(__name__)


async def on_book_shipment(cmd: BookShipment, ctx: MessageContext, *, carriers: Sequence[Carrier] = CARRIERS) -> None:
    """Open the shipment and ask the cheapest eligible carrier; a repeat answers with the current outcome."""
    book = ShipmentBook.of(ctx.uow)
    existing = await book.get(cmd.shipment_id)
    if existing is None:
        shipment = domain.open_shipment(cmd.shipment_id, cmd.order_id, _request(cmd), ctx.envelope.time, carriers)
        book.open(shipment, ctx.envelope.time)
        if shipment.attempt is not None:
            _request_booking(ctx, shipment, shipment.attempt)
        else:
            _reply_failed(ctx, shipment, cmd.request_id)
        return
    log.info("booking_repeated", shipment_id=cmd.shipment_id, status=existing.status)
    _reply_outcome(ctx, existing, cmd.request_id)


async def on_carrier_booking_answered(
    evt: CarrierBookingAnswered, ctx: MessageContext, *, carriers: Sequence[Carrier] = CARRIERS
) -> None:
    """Book on acceptance; on refusal ask the next cheapest carrier, or fail when none is left."""
    book = ShipmentBook.of(ctx.uow)
    shipment, taken = await book.for_answer(evt.shipment_id, evt.tracking_number)
    if shipment is None or shipment.attempt is None:
        why = "unknown shipment" if shipment is None else f"no booking in hand ({shipment.status})"
        log.warning("booking_answer_ignored", shipment_id=evt.shipment_id, booking_id=evt.booking_id, why=why)
        return
    answer = CarrierAnswer(evt.booking_id, evt.carrier, evt.accepted, evt.tracking_number, evt.reason, taken)
    outcome = domain.answer_booking(shipment, answer, ctx.envelope.time, carriers)
    if outcome.kind == "stale":
        log.info("booking_answer_ignored", shipment_id=evt.shipment_id, booking_id=evt.booking_id, why="stale")
        return
    updated = outcome.shipment
    label = render_label(updated) if outcome.kind == "booked" else None
    await book.answer(outcome, shipment.attempt, answer, ctx.envelope.time, label)
    if outcome.void is not None:
        _void_booking(ctx, updated, outcome.void)
    if outcome.refusal:
        log.info("carrier_booking_refused", carrier=evt.carrier, booking_id=evt.booking_id, reason=outcome.refusal)
    assert updated.request is not None
    if outcome.kind == "booked":
        _reply_booked(ctx, updated, updated.request.request_id)
    elif outcome.kind == "retrying" and updated.attempt is not None:
        _request_booking(ctx, updated, updated.attempt)
    else:
        _reply_failed(ctx, updated, updated.request.request_id)


async def on_carrier_scan(evt: CarrierScan, ctx: MessageContext) -> None:
    """Record the scan; dispatch on the first pick-up, report each later status once."""
    book = ShipmentBook.of(ctx.uow)
    book.record(evt)
    shipment = await book.get(evt.shipment_id)
    outcome = domain.apply_scan(shipment, evt.scan, evt.carrier, evt.tracking_number)
    if outcome.shipment is None or outcome.ignored:
        log.info("scan_ignored", shipment_id=evt.shipment_id, scan=evt.scan, why=outcome.ignored)
        return
    updated = outcome.shipment
    book.save(updated, evt.at, dispatched=outcome.dispatched)
    assert updated.request is not None
    assert updated.attempt is not None
    assert updated.tracking_number is not None
    carrier, tracking_number = updated.attempt.carrier, updated.tracking_number
    if outcome.dispatched:
        dispatched = ShipmentDispatched(
            order_id=evt.order_id,
            shipment_id=evt.shipment_id,
            warehouse_id=updated.request.warehouse_id,
            carrier=carrier,
            tracking_number=tracking_number,
            at=evt.at,
        )
        ctx.emit(topics.SHIPPING_REPLIES, dispatched, key=evt.order_id)
        log.info("shipment_dispatched", shipment_id=evt.shipment_id, scan=evt.scan)
    if outcome.reported is not None:
        changed = ShipmentStatusChanged(
            order_id=evt.order_id,
            shipment_id=evt.shipment_id,
            status=outcome.reported,
            carrier=carrier,
            tracking_number=tracking_number,
            at=evt.at,
            detail=evt.detail,
        )
        ctx.emit(topics.SHIPPING_REPLIES, changed, key=evt.order_id)
        log.info("shipment_status_changed", shipment_id=evt.shipment_id, status=outcome.reported)


async def on_cancel_shipment(cmd: CancelShipment, ctx: MessageContext) -> None:
    """Cancel before the hand-over (voiding the booking in hand); refuse after it."""
    await ShipmentBook.of(ctx.uow).settle(cmd.shipment_id)
    shipment = await store.load_shipment(ctx.conn, cmd.shipment_id)
    outcome = domain.cancel_shipment(shipment, cmd.shipment_id, cmd.order_id)
    if outcome.kind == "refused":
        refused = ShipmentCancelRefused(
            order_id=cmd.order_id, request_id=cmd.request_id, shipment_id=cmd.shipment_id, reason=outcome.reason
        )
        ctx.emit(topics.SHIPPING_REPLIES, refused, key=cmd.order_id)
        log.info("shipment_cancel_refused", shipment_id=cmd.shipment_id, status=outcome.shipment.status)
        return
    if outcome.kind == "cancelled":
        await store.save_cancel(ctx.conn, outcome.shipment, ctx.envelope.time, outcome.void)
        if outcome.void is not None:
            _void_booking(ctx, outcome.shipment, outcome.void)
        log.info("shipment_cancelled", shipment_id=cmd.shipment_id, tombstone=shipment is None)
    _reply_cancelled(ctx, outcome.shipment, cmd.request_id)


COMMAND_HANDLERS: dict[type[Contract], Handler] = {BookShipment: on_book_shipment, CancelShipment: on_cancel_shipment}
CARRIER_EVENT_HANDLERS: dict[type[Contract], Handler] = {
    CarrierBookingAnswered: on_carrier_booking_answered,
    CarrierScan: on_carrier_scan,
}


def subscriptions(carriers: Sequence[Carrier] = CARRIERS) -> list[Subscription]:
    """The service's subscriptions, choosing among ``carriers``."""
    book = partial(on_book_shipment, carriers=carriers)
    answered = partial(on_carrier_booking_answered, carriers=carriers)
    return [
        Subscription(topics.SHIPPING_COMMANDS, {**COMMAND_HANDLERS, BookShipment: book}),
        Subscription(topics.CARRIER_EVENTS, {**CARRIER_EVENT_HANDLERS, CarrierBookingAnswered: answered}),
    ]


# --- translation between contracts and the domain ------------------------------------------------
def _request(cmd: BookShipment) -> ShipmentRequest:
    return ShipmentRequest(
        request_id=cmd.request_id,
        warehouse_id=cmd.warehouse_id,
        method=cmd.shipping_method,
        origin=GeoPoint(cmd.origin.lat, cmd.origin.lon),
        destination=GeoPoint(cmd.destination.lat, cmd.destination.lon),
        packages=tuple(
            Package(p.package_id, p.weight_grams, tuple(PackedItem(i.line_no, i.sku, i.quantity) for i in p.items))
            for p in cmd.packages
        ),
    )


def _package_spec(package: Package) -> PackageSpec:
    items = tuple(LineQuantity(line_no=i.line_no, sku=i.sku, quantity=i.quantity) for i in package.items)
    return PackageSpec(package_id=package.package_id, weight_grams=package.weight_grams, items=items)


def _request_booking(ctx: MessageContext, shipment: Shipment, attempt: Attempt) -> None:
    request = shipment.request
    assert request is not None
    booking = CarrierBookingRequested(
        order_id=shipment.order_id,
        shipment_id=shipment.shipment_id,
        booking_id=attempt.booking_id,
        carrier=attempt.carrier,
        service_level=attempt.service_level,
        warehouse_id=request.warehouse_id,
        origin=Coordinates(lat=request.origin.lat, lon=request.origin.lon),
        destination=Coordinates(lat=request.destination.lat, lon=request.destination.lon),
        packages=tuple(_package_spec(p) for p in request.packages),
        promised_ship_date=attempt.promised_ship_date,
        quoted_cost_minor=attempt.cost_minor,
        currency=attempt.currency,
    )
    ctx.emit(topics.CARRIER_REQUESTS, booking, key=shipment.order_id)
    log.info("carrier_booking_requested", booking_id=attempt.booking_id, carrier=attempt.carrier)


def _void_booking(ctx: MessageContext, shipment: Shipment, attempt: Attempt) -> None:
    void = CarrierBookingCancelled(
        order_id=shipment.order_id,
        shipment_id=shipment.shipment_id,
        booking_id=attempt.booking_id,
        carrier=attempt.carrier,
    )
    ctx.emit(topics.CARRIER_REQUESTS, void, key=shipment.order_id)
    log.info("carrier_booking_cancelled", booking_id=attempt.booking_id, carrier=attempt.carrier)


def _reply_outcome(ctx: MessageContext, shipment: Shipment, request_id: str) -> None:
    """Answer a repeated BookShipment from the stored state (re-sending the request while pending)."""
    state = domain.booking_state(shipment)
    if state == "pending" and shipment.attempt is not None:
        _request_booking(ctx, shipment, shipment.attempt)
    elif state == "booked":
        _reply_booked(ctx, shipment, request_id)
    elif state == "failed":
        _reply_failed(ctx, shipment, request_id)
    else:
        _reply_cancelled(ctx, shipment, request_id)


def _reply_booked(ctx: MessageContext, shipment: Shipment, request_id: str) -> None:
    attempt = shipment.attempt
    assert attempt is not None
    assert shipment.tracking_number is not None
    booked = ShipmentBooked(
        order_id=shipment.order_id,
        request_id=request_id,
        shipment_id=shipment.shipment_id,
        carrier=attempt.carrier,
        service_level=attempt.service_level,
        tracking_number=shipment.tracking_number,
        label_format=LABEL_FORMAT,
        cost_minor=attempt.cost_minor,
        currency=attempt.currency,
        carriers_tried=shipment.carriers_tried,
        promised_ship_date=attempt.promised_ship_date,
    )
    ctx.emit(topics.SHIPPING_REPLIES, booked, key=shipment.order_id)
    log.info("shipment_booked", shipment_id=shipment.shipment_id, carrier=attempt.carrier)


def _reply_failed(ctx: MessageContext, shipment: Shipment, request_id: str) -> None:
    failed = ShipmentBookingFailed(
        order_id=shipment.order_id,
        request_id=request_id,
        shipment_id=shipment.shipment_id,
        reason=shipment.failure_reason or "booking failed",
        carriers_tried=shipment.carriers_tried,
    )
    ctx.emit(topics.SHIPPING_REPLIES, failed, key=shipment.order_id)
    log.info("shipment_booking_failed", shipment_id=shipment.shipment_id, reason=failed.reason)


def _reply_cancelled(ctx: MessageContext, shipment: Shipment, request_id: str) -> None:
    cancelled = ShipmentCancelled(order_id=shipment.order_id, request_id=request_id, shipment_id=shipment.shipment_id)
    ctx.emit(topics.SHIPPING_REPLIES, cancelled, key=shipment.order_id)
