"""The order saga's transition function: ``decide(saga, input, now) -> Outcome``. Pure.

Happy path: accepted -> reserved -> fulfilling (one fulfillment per warehouse) ->
packed -> shipment booked -> shipped (dispatch: the PIVOT, stock committed) ->
in transit -> delivered -> completed. Before the pivot everything can be
compensated (cancel shipment, cancel fulfillment with put-away, release stock,
refund); after it the order only moves forward.

Every command gets a ``request_id`` and a message id derived from it, so a
timeout re-sends the very same message (the participant's inbox drops it if it
was already handled). Replies whose request is not pending are stale or
duplicates and change nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from oms_order.saga_state import (
    FINAL_FULFILLMENT,
    TERMINAL,
    Alloc,
    Command,
    FulfillmentState,
    Outcome,
    Pending,
    Saga,
    Status,
    Units,
    copy_saga,
)
from oms_shared import topics
from oms_shared.contracts import Contract, payload_json
from oms_shared.contracts.common import Coordinates, LineQuantity, PackageSpec
from oms_shared.contracts.fulfillment import (
    CancelFulfillment,
    CreateFulfillment,
    FulfillmentCancelled,
    FulfillmentCancelRefused,
    FulfillmentPacked,
    FulfillmentStarted,
)
from oms_shared.contracts.inventory import (
    CommitStock,
    ReleaseStock,
    ReportShortPick,
    ReserveStock,
    ShortPickRecorded,
    StockCommitted,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_shared.contracts.returns import IssueRefund, RefundIssued, RefundRejected
from oms_shared.contracts.shipping import (
    BookShipment,
    CancelShipment,
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentCancelled,
    ShipmentCancelRefused,
    ShipmentDispatched,
    ShipmentStatusChanged,
)

__all__ = ["COMMAND_MODELS", "CancelRequested", "Timeout", "Timing", "decide", "start"]


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the saga waits for replies, and how often it retries before giving up."""

    reply_timeout: timedelta = timedelta(seconds=15)
    booking_timeout: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    stuck_retry: timedelta = timedelta(seconds=60)
    backorder_retry: timedelta = timedelta(seconds=30)
    backorder_window: timedelta = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The customer asked to cancel."""

    reason: str


@dataclass(frozen=True, slots=True)
class Timeout:
    """The poller found a passed deadline."""


Input = Contract | CancelRequested | Timeout

#: Command models by ce_type, to rebuild a pending command for a re-send.
COMMAND_MODELS: dict[str, type[Contract]] = {
    m.ce_type: m
    for m in (
        ReserveStock,
        ReleaseStock,
        CommitStock,
        ReportShortPick,
        CreateFulfillment,
        CancelFulfillment,
        BookShipment,
        CancelShipment,
        IssueRefund,
    )
}

_TOPIC_OF: dict[type[Contract], topics.Topic] = {
    ReserveStock: topics.INVENTORY_COMMANDS,
    ReleaseStock: topics.INVENTORY_COMMANDS,
    CommitStock: topics.INVENTORY_COMMANDS,
    ReportShortPick: topics.INVENTORY_COMMANDS,
    CreateFulfillment: topics.FULFILLMENT_COMMANDS,
    CancelFulfillment: topics.FULFILLMENT_COMMANDS,
    BookShipment: topics.SHIPPING_COMMANDS,
    CancelShipment: topics.SHIPPING_COMMANDS,
    IssueRefund: topics.RETURNS_COMMANDS,
}


def message_id_for(order_id: str, request_id: str) -> str:
    """The message id of a command: the same for every re-send of one request."""
    return str(uuid.uuid5(uuid.UUID(order_id), request_id))


class _Step:
    """One transition in progress: a private copy of the saga plus what it emits."""

    def __init__(self, saga: Saga, now: datetime, timing: Timing, *, in_place: bool = False) -> None:
        # A private copy unless the caller hands the saga over: copying was a tenth of the
        # order service's time under load when the state was pydantic models.
        self.saga = saga if in_place else copy_saga(saga)
        self.now = now
        self.timing = timing
        self.out = Outcome(self.saga)

    # --- emitting -------------------------------------------------------------------
    def status(self, status: str, *reasons: str, **details: Any) -> None:
        """Publish a step of the timeline; it becomes the order's current status."""
        self.saga.status = status
        self.out.statuses.append(Status(status, tuple(reasons), details))

    def notice(self, status: str, *reasons: str, **details: Any) -> None:
        """Publish an event about the order that does not change its status (e.g. a refused cancel)."""
        self.out.statuses.append(Status(status, tuple(reasons), details))

    def send(
        self,
        kind: str,
        build: Callable[[str], Contract],
        *,
        fulfillment_id: str | None = None,
        units: Iterable[Units] = (),
        timeout: timedelta | None = None,
    ) -> None:
        self.saga.counter += 1
        request_id = f"{kind}-{self.saga.counter}"
        payload = build(request_id)
        topic = _TOPIC_OF[type(payload)]
        message_id = message_id_for(self.saga.order_id, request_id)
        document = payload.model_dump(mode="json")
        self.saga.pending[request_id] = Pending(
            request_id=request_id,
            kind=kind,
            message_id=message_id,
            topic=topic.name,
            ce_type=payload.ce_type,
            payload=document,
            deadline=self.now + (timeout or self.timing.reply_timeout),
            fulfillment_id=fulfillment_id,
            units=list(units),
        )
        self.out.commands.append(Command(topic, payload, message_id, payload_json(document)))

    def timer(self, kind: str, after: timedelta, units: Iterable[Units] = ()) -> None:
        self.saga.counter += 1
        request_id = f"{kind}-{self.saga.counter}"
        self.saga.pending[request_id] = Pending(
            request_id=request_id, kind=kind, deadline=self.now + after, units=list(units)
        )

    def take(self, request_id: str) -> Pending | None:
        """The pending request this reply answers, or None for a stale or duplicate reply."""
        return self.saga.pending.pop(request_id, None)

    def has_pending(self, *kinds: str) -> bool:
        return any(p.kind in kinds for p in self.saga.pending.values())

    # --- commands -------------------------------------------------------------------
    def reserve(self, kind: str, lines: list[Units], *, allow_partial: bool, exclude: list[str]) -> None:
        s = self.saga
        self.send(
            kind,
            lambda rid: ReserveStock(
                order_id=s.order_id,
                request_id=rid,
                channel=s.channel,
                ship_to=Coordinates(lat=s.lat, lon=s.lon),
                lines=tuple(_lq(u) for u in lines),
                allow_partial=allow_partial,
                max_split=s.max_split,
                exclude_warehouses=tuple(exclude),
            ),
            units=lines,
        )

    def release(self, warehouse_id: str | None, fulfillment_id: str | None = None) -> None:
        s = self.saga
        self.send(
            "release",
            lambda rid: ReleaseStock(order_id=s.order_id, request_id=rid, warehouse_id=warehouse_id),
            fulfillment_id=fulfillment_id,
        )

    def refund(self, amount: int, reason: str) -> None:
        s = self.saga
        amount = min(amount, s.amount_paid - s.refunded - self.refunds_in_flight())
        if amount <= 0:
            return
        self.send(
            "refund",
            lambda rid: IssueRefund(
                order_id=s.order_id,
                request_id=rid,
                refund_key=f"{s.order_id}:{rid}",
                amount=amount,
                currency=s.currency,
                amount_paid=s.amount_paid,
                payment_reference=s.payment_reference,
                reason=reason,
            ),
        )

    def refunds_in_flight(self) -> int:
        return sum(int((p.payload or {}).get("amount", 0)) for p in self.saga.pending.values() if p.kind == "refund")

    def fulfil(self, allocations: list[Alloc]) -> None:
        """One fulfillment per warehouse for newly reserved allocations."""
        s = self.saga
        by_warehouse: dict[str, list[Alloc]] = defaultdict(list)
        for alloc in allocations:
            by_warehouse[alloc.warehouse_id].append(alloc)
        for warehouse_id, allocs in sorted(by_warehouse.items()):
            fid = f"{s.order_id}:{warehouse_id}:{s.counter + 1}"
            units = _merge(Units(line_no=a.line_no, sku=a.sku, quantity=a.quantity) for a in allocs)
            s.fulfillments[fid] = FulfillmentState(
                fulfillment_id=fid, warehouse_id=warehouse_id, origin=allocs[0].location, lines=units
            )
            self.send("fulfil", _create_fulfillment(s.order_id, fid, warehouse_id, units), fulfillment_id=fid)

    def compensate(self, f: FulfillmentState, why: str) -> None:
        """Undo one fulfillment before the pivot: void the booking, put away, release its stock."""
        s = self.saga
        f.compensation = why
        previous, f.status = f.status, "compensating"
        # Replies to this fulfillment's forward steps are moot now: stop waiting (and re-sending).
        s.pending = {
            k: p for k, p in s.pending.items() if not (p.fulfillment_id == f.fulfillment_id and p.kind in _FORWARD)
        }
        if previous in ("booking", "booked"):
            self.send(
                "cancel_shipment",
                lambda rid: CancelShipment(order_id=s.order_id, request_id=rid, shipment_id=f.fulfillment_id),
                fulfillment_id=f.fulfillment_id,
            )
        else:
            self.cancel_fulfillment(f)

    def cancel_fulfillment(self, f: FulfillmentState) -> None:
        s = self.saga
        self.send(
            "cancel_fulfillment",
            lambda rid: CancelFulfillment(order_id=s.order_id, request_id=rid, fulfillment_id=f.fulfillment_id),
            fulfillment_id=f.fulfillment_id,
        )

    # --- bookkeeping ----------------------------------------------------------------
    def unship(self, units: Iterable[Units], reason: str) -> None:
        """These units will not be shipped: their value is owed back to the customer."""
        s = self.saga
        lost = list(units)
        s.refund_due += sum(u.quantity * s.price(u.line_no) for u in lost)

    def finish_if_done(self) -> None:
        """Close the order when nothing is in flight and every fulfillment has ended."""
        s = self.saga
        if s.phase == "cancelling":
            self._finish_cancel()
            return
        if s.phase != "fulfilling" or s.pending:
            return
        if not all(f.status in FINAL_FULFILLMENT for f in s.fulfillments.values()):
            return
        if any(f.status == "lost" for f in s.fulfillments.values()):
            return  # parked: an operator decides about a lost parcel
        delivered = [f for f in s.fulfillments.values() if f.status == "delivered"]
        owed = (s.amount_paid - s.refunded) if not delivered else s.refund_due - s.refunded
        if owed > 0:
            self.refund(owed, "items that could not be shipped" if delivered else "nothing could be shipped")
            return
        if delivered:
            s.phase = "completed"
            self.status("completed", refunded=s.refunded)
        else:
            s.phase = "cancelled"
            self.status("cancelled", "nothing could be shipped", refunded=s.refunded)

    def _finish_cancel(self) -> None:
        s = self.saga
        # A cancelled order waits for no more stock.
        s.pending = {k: p for k, p in s.pending.items() if p.kind != "backorder_retry"}
        if s.pending or any(f.status not in FINAL_FULFILLMENT for f in s.fulfillments.values()):
            return
        if not s.released_all:
            # Covers reservations no fulfillment holds (and "maybe reserved" after a timeout).
            s.released_all = True
            self.release(None)
            return
        owed = s.amount_paid - s.refunded
        if owed > 0:
            self.refund(owed, s.cancel_reason or "order cancelled")
            return
        s.phase = "cancelled"
        self.status("cancelled", s.cancel_reason or "order cancelled", refunded=s.refunded)


#: Forward steps of a fulfillment, abandoned when it is compensated.
_FORWARD = frozenset({"fulfil", "book"})


def _create_fulfillment(order_id: str, fid: str, warehouse_id: str, units: list[Units]) -> Callable[[str], Contract]:
    def build(request_id: str) -> Contract:
        return CreateFulfillment(
            order_id=order_id,
            request_id=request_id,
            fulfillment_id=fid,
            warehouse_id=warehouse_id,
            lines=tuple(_lq(u) for u in units),
        )

    return build


def _lq(u: Units) -> LineQuantity:
    return LineQuantity(line_no=u.line_no, sku=u.sku, quantity=u.quantity)


def _merge(units: Iterable[Units]) -> list[Units]:
    total: dict[tuple[int, str], int] = defaultdict(int)
    for u in units:
        total[(u.line_no, u.sku)] += u.quantity
    return [Units(line_no=n, sku=sku, quantity=q) for (n, sku), q in sorted(total.items())]


def _subtract(allocs: list[Alloc], u: Units, warehouse_id: str | None) -> None:
    left = u.quantity
    for alloc in allocs:
        if left and alloc.line_no == u.line_no and warehouse_id in (None, alloc.warehouse_id):
            taken = min(left, alloc.quantity)
            alloc.quantity -= taken
            left -= taken
    allocs[:] = [a for a in allocs if a.quantity > 0]


def _units(items: Iterable[LineQuantity]) -> list[Units]:
    return [Units(line_no=i.line_no, sku=i.sku, quantity=i.quantity) for i in items]


# --- the transition function ---------------------------------------------------------


def start(saga: Saga, now: datetime, timing: Timing = Timing(), *, in_place: bool = False) -> Outcome:
    """A validated order enters the saga: ask inventory to source and reserve it.

    ``in_place``: as for :func:`decide`.
    """
    step = _Step(saga, now, timing, in_place=in_place)
    step.status("received")
    step.status("accepted", policy=saga.policy)
    lines = [Units(line_no=line.line_no, sku=line.sku, quantity=line.quantity) for line in saga.lines]
    step.reserve("reserve", lines, allow_partial=saga.policy != "reject", exclude=[])
    return step.out


def decide(saga: Saga, event: Input, now: datetime, timing: Timing = Timing(), *, in_place: bool = False) -> Outcome:
    """Apply one input to the saga; the input's type selects the rule.

    The given saga is left as it was and the outcome carries a new one, unless the
    caller hands it over with ``in_place=True`` (the outcome's saga is then the same
    object, changed): the handlers do, since each load gives them a saga of their own.
    """
    step = _Step(saga, now, timing, in_place=in_place)
    rule = _RULES.get(type(event))
    if rule is not None:
        rule(step, event)
    step.finish_if_done()
    return step.out


def _on_reserved(step: _Step, e: StockReserved) -> None:
    s = step.saga
    pending = step.take(e.request_id)
    if pending is None:
        return
    allocs = [
        Alloc(
            warehouse_id=a.warehouse_id,
            line_no=a.line_no,
            sku=a.sku,
            quantity=a.quantity,
            location=(a.location.lat, a.location.lon) if a.location else None,
        )
        for a in e.allocations
    ]
    s.reserved.extend(allocs)
    unfilled = _units(e.unfilled)
    if s.phase in TERMINAL or s.phase == "cancelling":
        return  # late stock for an order that is ending: the final release returns it
    if pending.kind == "reserve":
        _first_reservation(step, allocs, unfilled)
    elif pending.kind == "resource":
        if unfilled:
            step.unship(unfilled, "short pick could not be re-sourced")
            step.status("partially_reserved", "short-picked units not available elsewhere", unfilled=_dump(unfilled))
        step.status("reserved", "short-picked units re-sourced", allocations=_dump(allocs))
        step.fulfil(allocs)
    elif pending.kind == "backorder":
        _backorder_progress(step, allocs, unfilled)


def _first_reservation(step: _Step, allocs: list[Alloc], unfilled: list[Units]) -> None:
    s = step.saga
    if not unfilled:
        step.status("reserved", allocations=_dump(allocs))
        s.phase = "fulfilling"
        step.fulfil(s.reserved)
    elif s.policy == "ship_available":
        step.unship(unfilled, "not in stock")
        step.status("partially_reserved", "ships what is available, refunds the rest", unfilled=_dump(unfilled))
        s.phase = "fulfilling"
        step.fulfil(s.reserved)
    elif s.policy == "backorder":
        s.phase = "backordered"
        s.backorder_until = step.now + step.timing.backorder_window
        step.status("backordered", "waiting for stock", unfilled=_dump(unfilled), until=s.backorder_until.isoformat())
        step.timer("backorder_retry", step.timing.backorder_retry, unfilled)
    else:  # reject: inventory was asked for all or nothing; be safe anyway
        _reject(step, "insufficient stock", unfilled)


def _backorder_progress(step: _Step, allocs: list[Alloc], unfilled: list[Units]) -> None:
    s = step.saga
    if allocs:
        step.status("backordered", "part of the missing stock arrived", allocations=_dump(allocs))
    if unfilled:
        step.timer("backorder_retry", step.timing.backorder_retry, unfilled)
        return
    step.status("reserved", "backorder filled")
    s.phase = "fulfilling"
    step.fulfil(s.reserved)


def _on_reservation_failed(step: _Step, e: StockReservationFailed) -> None:
    s = step.saga
    pending = step.take(e.request_id)
    if pending is None or s.phase in TERMINAL or s.phase == "cancelling":
        return
    unfilled = _units(e.unfilled)
    if pending.kind == "reserve":
        if s.policy == "backorder":
            s.phase = "backordered"
            s.backorder_until = step.now + step.timing.backorder_window
            step.status("backordered", e.reason, unfilled=_dump(unfilled), until=s.backorder_until.isoformat())
            step.timer("backorder_retry", step.timing.backorder_retry, unfilled)
        else:
            _reject(step, e.reason, unfilled)
    elif pending.kind == "resource":
        step.unship(pending.units, "short pick could not be re-sourced")
        step.status("partially_reserved", "short-picked units not available elsewhere", unfilled=_dump(pending.units))
    elif pending.kind == "backorder":
        step.timer("backorder_retry", step.timing.backorder_retry, pending.units)


def _reject(step: _Step, reason: str, unfilled: list[Units], *, maybe_reserved: bool = False) -> None:
    s = step.saga
    s.phase = "rejected"
    step.status("rejected", reason, unfilled=_dump(unfilled))
    if s.reserved or maybe_reserved:
        s.released_all = True
        step.release(None)
    step.refund(s.amount_paid, f"order rejected: {reason}")


def _on_started(step: _Step, e: FulfillmentStarted) -> None:
    step.take(e.request_id)
    f = step.saga.fulfillments.get(e.fulfillment_id)
    if f is None or f.status != "requested":
        return
    f.status = "started"
    others = [x for x in step.saga.fulfillments.values() if x is not f]
    if all(x.status == "requested" for x in others):
        step.status("fulfilling", warehouse_id=f.warehouse_id, pick_list_id=e.pick_list_id)
    else:
        step.notice("fulfilling", warehouse_id=f.warehouse_id, pick_list_id=e.pick_list_id)


def _on_packed(step: _Step, e: FulfillmentPacked) -> None:
    s = step.saga
    f = s.fulfillments.get(e.fulfillment_id)
    if f is None or f.status not in ("requested", "started"):
        return  # duplicate, or the fulfillment is being compensated (put-away covers it)
    shortages = _units(e.shortages)
    packed = _merge(Units(line_no=i.line_no, sku=i.sku, quantity=i.quantity) for p in e.packages for i in p.items)
    f.packed = packed
    f.packages = [p.model_dump(mode="json") for p in e.packages]
    if shortages:
        step.status("short_picked", f"{sum(u.quantity for u in shortages)} units missing at {f.warehouse_id}",
                    warehouse_id=f.warehouse_id, shortages=_dump(shortages))  # fmt: skip
        for u in shortages:
            _subtract(s.reserved, u, f.warehouse_id)
        if f.warehouse_id not in s.excluded:
            s.excluded.append(f.warehouse_id)
        step.send(
            "short_pick",
            lambda rid: ReportShortPick(
                order_id=s.order_id,
                request_id=rid,
                warehouse_id=f.warehouse_id,
                shortages=tuple(_lq(u) for u in shortages),
            ),
            fulfillment_id=f.fulfillment_id,
            units=shortages,
        )
    if not e.packages:
        f.status = "empty"
        return
    f.status = "booking"
    step.status("packed", warehouse_id=f.warehouse_id, packages=len(e.packages))
    origin = f.origin or (s.lat, s.lon)
    step.send(
        "book",
        lambda rid: BookShipment(
            order_id=s.order_id,
            request_id=rid,
            shipment_id=f.fulfillment_id,
            warehouse_id=f.warehouse_id,
            origin=Coordinates(lat=origin[0], lon=origin[1]),
            destination=Coordinates(lat=s.lat, lon=s.lon),
            shipping_method=s.shipping_method,
            packages=tuple(PackageSpec.model_validate(p) for p in f.packages),
        ),
        fulfillment_id=f.fulfillment_id,
        timeout=step.timing.booking_timeout,
    )


def _on_short_pick_recorded(step: _Step, e: ShortPickRecorded) -> None:
    s = step.saga
    pending = step.take(e.request_id)
    if pending is None:
        return
    if s.phase != "fulfilling":
        step.unship(pending.units, "short pick")
        return
    step.reserve("resource", pending.units, allow_partial=True, exclude=list(s.excluded))


def _on_booked(step: _Step, e: ShipmentBooked) -> None:
    if step.take(e.request_id) is None:
        return
    f = step.saga.fulfillments.get(e.shipment_id)
    if f is None or f.status != "booking":
        return
    f.status, f.carrier, f.tracking_number = "booked", e.carrier, e.tracking_number
    step.status("shipment_booked", shipment_id=e.shipment_id, carrier=e.carrier, tracking_number=e.tracking_number,
                service_level=e.service_level, carriers_tried=list(e.carriers_tried))  # fmt: skip


def _on_booking_failed(step: _Step, e: ShipmentBookingFailed) -> None:
    if step.take(e.request_id) is None:
        return
    f = step.saga.fulfillments.get(e.shipment_id)
    if f is None or f.status != "booking":
        return
    f.status = "started"  # nothing to void at the carrier: go straight to put-away
    step.status("shipment_failed", f"no carrier accepted the shipment: {e.reason}",
                shipment_id=e.shipment_id, carriers_tried=list(e.carriers_tried))  # fmt: skip
    step.compensate(f, "no_carrier")


def _on_dispatched(step: _Step, e: ShipmentDispatched) -> None:
    s = step.saga
    f = s.fulfillments.get(e.shipment_id)
    if f is None or f.status in ("dispatched", "delivered", "lost"):
        return
    f.status, f.carrier, f.tracking_number = "dispatched", e.carrier, e.tracking_number
    step.status("shipped", shipment_id=e.shipment_id, carrier=e.carrier, tracking_number=e.tracking_number)
    step.send(
        "commit",
        lambda rid: CommitStock(order_id=s.order_id, request_id=rid, warehouse_id=f.warehouse_id),
        fulfillment_id=f.fulfillment_id,
    )


def _on_committed(step: _Step, e: StockCommitted) -> None:
    pending = step.take(e.request_id)
    if pending is not None and pending.fulfillment_id in step.saga.fulfillments:
        step.saga.fulfillments[pending.fulfillment_id].committed = True


def _on_shipment_status(step: _Step, e: ShipmentStatusChanged) -> None:
    s = step.saga
    f = s.fulfillments.get(e.shipment_id)
    if f is None or f.status not in ("dispatched",):
        return
    if e.status == "delivered":
        f.status = "delivered"
        step.status("delivered", shipment_id=e.shipment_id, tracking_number=e.tracking_number)
    elif e.status == "exception":
        f.status = "lost"
        s.stuck_reason = f"carrier exception for shipment {e.shipment_id}: {e.detail}"
        step.status("delivery_exception", e.detail or "carrier exception", shipment_id=e.shipment_id)
        step.status("stuck", s.stuck_reason)
    else:
        step.status(e.status, shipment_id=e.shipment_id, tracking_number=e.tracking_number)


def _on_shipment_cancelled(step: _Step, e: ShipmentCancelled) -> None:
    pending = step.take(e.request_id)
    f = step.saga.fulfillments.get(e.shipment_id)
    if pending is None or f is None or f.status != "compensating":
        return
    step.cancel_fulfillment(f)


def _on_shipment_cancel_refused(step: _Step, e: ShipmentCancelRefused) -> None:
    s = step.saga
    pending = step.take(e.request_id)
    f = s.fulfillments.get(e.shipment_id)
    if pending is None or f is None:
        return
    # The dispatch message is on its way (or already handled): this part ships.
    if f.status == "compensating":
        f.status, f.compensation = "booked", None
    if s.phase == "cancelling":
        s.phase = "fulfilling"
        step.notice("cancel_refused", e.reason, "request a return once delivered", shipment_id=e.shipment_id)


def _on_fulfillment_cancelled(step: _Step, e: FulfillmentCancelled) -> None:
    pending = step.take(e.request_id)
    f = step.saga.fulfillments.get(e.fulfillment_id)
    if pending is None or f is None or f.status != "compensating":
        return
    step.release(f.warehouse_id, f.fulfillment_id)


def _on_fulfillment_cancel_refused(step: _Step, e: FulfillmentCancelRefused) -> None:
    s = step.saga
    if step.take(e.request_id) is None:
        return
    f = s.fulfillments.get(e.fulfillment_id)
    if f is not None and f.status == "compensating":
        s.stuck_reason = f"fulfillment {e.fulfillment_id} cannot be cancelled: {e.reason}"
        step.status("stuck", s.stuck_reason)


def _on_released(step: _Step, e: StockReleased) -> None:
    s = step.saga
    pending = step.take(e.request_id)
    if pending is None:
        return
    for a in e.released:
        _subtract(s.reserved, Units(line_no=a.line_no, sku=a.sku, quantity=a.quantity), a.warehouse_id)
    f = s.fulfillments.get(pending.fulfillment_id or "")
    if f is not None and f.status == "compensating":
        f.status = "released"
        step.unship(f.packed or f.lines, "fulfillment cancelled")


def _on_refund_issued(step: _Step, e: RefundIssued) -> None:
    s = step.saga
    if step.take(e.request_id) is None:
        return
    s.refunded += e.amount
    step.status("refunded", amount=e.amount, total_refunded=s.refunded, refund_id=e.refund_id)


def _on_refund_rejected(step: _Step, e: RefundRejected) -> None:
    s = step.saga
    if step.take(e.request_id) is None:
        return
    s.stuck_reason = f"refund refused: {e.reason}"
    step.status("stuck", s.stuck_reason)


def _on_cancel(step: _Step, e: CancelRequested) -> None:
    s = step.saga
    if s.phase in TERMINAL:
        step.notice("cancel_refused", f"the order is already {s.phase}")
        return
    if s.phase == "cancelling":
        return
    if any(f.status in ("dispatched", "delivered", "lost") for f in s.fulfillments.values()):
        step.notice("cancel_refused", "parcel already handed to the carrier", "request a return once delivered")
        return
    s.phase = "cancelling"
    s.cancel_reason = e.reason
    step.status("cancelling", e.reason)
    for f in s.fulfillments.values():
        if f.status not in FINAL_FULFILLMENT and f.status != "compensating":
            step.compensate(f, "cancel")


def _on_timeout(step: _Step, _: Timeout) -> None:
    s = step.saga
    for request_id, p in sorted(s.pending.items(), key=lambda kv: kv[1].deadline):
        if p.deadline > step.now:
            continue
        if p.kind == "backorder_retry":
            del s.pending[request_id]
            if s.backorder_until is not None and step.now >= s.backorder_until:
                s.phase = "cancelling"
                s.cancel_reason = "backorder expired"
                step.status("cancelling", "backorder expired")
            else:
                step.reserve("backorder", p.units, allow_partial=True, exclude=[])
            continue
        _resend(step, p)


def _resend(step: _Step, p: Pending) -> None:
    """Re-send a command with its original message id, or give up on it."""
    s = step.saga
    assert p.ce_type is not None
    assert p.payload is not None
    assert p.topic is not None
    assert p.message_id is not None
    if p.kind == "reserve" and p.attempts >= step.timing.max_attempts:
        del s.pending[p.request_id]
        # "Maybe reserved": the release is idempotent and harmless if nothing was.
        _reject(step, "stock reservation timed out", [], maybe_reserved=True)
        return
    p.attempts += 1
    if p.attempts > step.timing.max_attempts:
        if s.stuck_reason is None:
            s.stuck_reason = f"{p.kind} unanswered after {step.timing.max_attempts} attempts"
            step.status("stuck", s.stuck_reason, request_id=p.request_id)
        p.deadline = step.now + step.timing.stuck_retry
    else:
        p.deadline = step.now + step.timing.reply_timeout * p.attempts
    payload = COMMAND_MODELS[p.ce_type].model_validate(p.payload)
    step.out.commands.append(Command(topics.by_name(p.topic), payload, p.message_id, payload_json(p.payload)))


def _dump(items: Iterable[Units | Alloc]) -> list[dict[str, Any]]:
    """Units for a status's details (an allocation without a location has none)."""
    return [msgspec.to_builtins(i) for i in items]


_RULES: dict[type, Callable[[_Step, Any], None]] = {
    StockReserved: _on_reserved,
    StockReservationFailed: _on_reservation_failed,
    ShortPickRecorded: _on_short_pick_recorded,
    StockCommitted: _on_committed,
    StockReleased: _on_released,
    FulfillmentStarted: _on_started,
    FulfillmentPacked: _on_packed,
    FulfillmentCancelled: _on_fulfillment_cancelled,
    FulfillmentCancelRefused: _on_fulfillment_cancel_refused,
    ShipmentBooked: _on_booked,
    ShipmentBookingFailed: _on_booking_failed,
    ShipmentDispatched: _on_dispatched,
    ShipmentStatusChanged: _on_shipment_status,
    ShipmentCancelled: _on_shipment_cancelled,
    ShipmentCancelRefused: _on_shipment_cancel_refused,
    RefundIssued: _on_refund_issued,
    RefundRejected: _on_refund_rejected,
    CancelRequested: _on_cancel,
    Timeout: _on_timeout,
}
