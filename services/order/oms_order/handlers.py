"""The order service's handlers: intake (validate, deduplicate, start the saga) and saga replies.

Every handler has the same shape: get the saga from the batch's :class:`SagaBook`,
call the pure domain (intake / saga), hand the outcome back to the book. The book
emits the saga's commands (with their fixed message ids) and, once per batch,
saves the sagas and appends the statuses to the timeline and the status topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from oms_order import intake, store
from oms_order.book import SagaBook
from oms_order.saga import CancelRequested, Timing, decide, start
from oms_order.saga_state import Line, Saga, Status
from oms_shared import topics
from oms_shared.contracts import Contract, RawPayload
from oms_shared.contracts.fulfillment import (
    FulfillmentCancelled,
    FulfillmentCancelRefused,
    FulfillmentPacked,
    FulfillmentStarted,
)
from oms_shared.contracts.inventory import (
    ShortPickRecorded,
    StockCommitted,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_shared.contracts.order import CancelOrder, PlaceOrder, order_id_for
from oms_shared.contracts.returns import RefundIssued, RefundRejected
from oms_shared.contracts.shipping import (
    ShipmentBooked,
    ShipmentBookingFailed,
    ShipmentCancelled,
    ShipmentCancelRefused,
    ShipmentDispatched,
    ShipmentStatusChanged,
)
from oms_shared.runtime import Handler, MessageContext

__all__ = ["REPLY_TOPICS", "CancelOrderMessage", "Handlers", "PlaceOrderMessage"]

log = structlog.get_logger(__name__)


class PlaceOrderMessage(RawPayload):
    """The intake's place-order message, validated by :mod:`oms_order.intake`, not by the runtime."""

    ce_type = PlaceOrder.ce_type


class CancelOrderMessage(RawPayload):
    """The intake's cancel-order message, validated by :mod:`oms_order.intake`."""

    ce_type = CancelOrder.ce_type


def _now() -> datetime:
    return datetime.now(UTC)


class Handlers:
    """The order service's handlers, configured with the saga's timing."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def intake(self) -> dict[type[Contract], Handler]:
        """Handlers of the public intake topic."""
        return {PlaceOrderMessage: self.on_place_order, CancelOrderMessage: self.on_cancel_order}

    def replies(self, topic: topics.Topic) -> dict[type[Contract], Handler]:
        """Handlers of one participant's reply topic (every reply goes to the saga)."""
        return {model: self.on_reply for model in REPLY_TOPICS[topic]}

    async def on_place_order(self, msg: PlaceOrderMessage, ctx: MessageContext) -> None:
        """Validate, deduplicate by (channel, external id), and start the saga."""
        now = _now()
        result = intake.parse_order(msg.data)
        if isinstance(result, intake.Invalid):
            await _refuse(ctx, "invalid", result.reasons, result.hint, msg.data, now)
            return
        order = result.order
        order_id = order_id_for(order.channel, order.external_order_id)
        fingerprint = intake.fingerprint(order)
        book = SagaBook.of(ctx.uow)
        existing = await book.accept(
            store.NewOrder(
                order_id=order_id,
                channel=order.channel,
                external_order_id=order.external_order_id,
                fingerprint=fingerprint,
                customer_id=order.customer.id,
                currency=order.currency,
                total=order.total,
                amount_paid=order.payment.amount_paid,
                payload=order.model_dump(mode="json"),
                message_id=ctx.envelope.id,
            )
        )
        if existing == fingerprint:
            log.info("duplicate_order_ignored", order_id=order_id)
            return
        if existing is not None:
            reason = "an order with this channel and external id exists with different content; not merged"
            hint = {"channel": order.channel, "external_order_id": order.external_order_id}
            await _refuse(ctx, "conflict", (reason,), hint, msg.data, now)
            return
        policy, max_split = await book.policy(order.channel)
        saga = Saga(
            order_id=order_id,
            channel=order.channel,
            external_order_id=order.external_order_id,
            lines=[
                Line(line_no=n, sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for n, line in enumerate(order.lines, start=1)
            ],
            lat=result.lat,
            lon=result.lon,
            shipping_method=order.shipping_method,
            currency=order.currency,
            amount_paid=order.payment.amount_paid,
            payment_reference=order.payment.reference,
            policy=policy,
            max_split=max_split,
        )
        book.started(start(saga, now, self.timing, in_place=True), now, ctx.envelope.id)
        log.info("order_accepted", order_id=order_id, channel=order.channel, policy=policy)

    async def on_cancel_order(self, msg: CancelOrderMessage, ctx: MessageContext) -> None:
        """A customer's cancellation: the saga decides whether it can still be done."""
        now = _now()
        result = intake.parse_cancel(msg.data)
        if isinstance(result, intake.Invalid):
            await _refuse(ctx, "invalid", result.reasons, result.hint, msg.data, now)
            return
        # The id derives from (channel, external id); an accepted order has a saga, maybe
        # only in this batch's book so far.
        saga = await SagaBook.of(ctx.uow).get(order_id_for(result.channel, result.external_order_id))
        if saga is None:
            hint = {"channel": result.channel, "external_order_id": result.external_order_id}
            await _refuse(ctx, "unknown_order", ("no such order",), hint, msg.data, now, status="cancel_refused")
            return
        await self._transition(ctx, saga, CancelRequested(result.reason), now)

    async def on_reply(self, reply: Any, ctx: MessageContext) -> None:
        """A participant answered (or reported progress): apply it to the order's saga."""
        saga = await SagaBook.of(ctx.uow).get(reply.order_id)
        if saga is None:
            log.warning("reply_for_unknown_order", order_id=reply.order_id, reply=type(reply).__name__)
            return
        await self._transition(ctx, saga, reply, _now())

    async def _transition(self, ctx: MessageContext, saga: Saga, event: Any, now: datetime) -> None:
        outcome = decide(saga, event, now, self.timing, in_place=True)  # the book's saga is ours to change
        SagaBook.of(ctx.uow).transitioned(outcome, now, ctx.envelope.id)


async def _refuse(
    ctx: MessageContext,
    kind: str,
    reasons: tuple[str, ...],
    hint: dict[str, str],
    raw: bytes,
    now: datetime,
    *,
    status: str | None = None,
) -> None:
    """Keep a refused intake message and tell the channel why on the status topic."""
    channel, external_id = hint.get("channel"), hint.get("external_order_id")
    order_id = order_id_for(channel, external_id) if channel and external_id else order_id_for("?", ctx.envelope.id)
    label = status or ("conflict" if kind == "conflict" else "rejected")
    await SagaBook.of(ctx.uow).refuse(
        store.Rejection(
            message_id=ctx.envelope.id,
            kind=kind,
            order_id=order_id,
            channel=channel,
            external_order_id=external_id,
            reasons=reasons,
            raw=raw,
        ),
        Status(label, reasons, {"intake": kind}),
        now,
        ctx.envelope.id,
    )
    log.info("intake_refused", order_id=order_id, kind=kind, reasons=list(reasons)[:10])


#: Which replies arrive on which topic.
REPLY_TOPICS: dict[topics.Topic, tuple[type[Contract], ...]] = {
    topics.INVENTORY_REPLIES: (StockReserved, StockReservationFailed, StockReleased, StockCommitted,
                               ShortPickRecorded),
    topics.FULFILLMENT_REPLIES: (FulfillmentStarted, FulfillmentPacked, FulfillmentCancelled,
                                 FulfillmentCancelRefused),
    topics.SHIPPING_REPLIES: (ShipmentBooked, ShipmentBookingFailed, ShipmentDispatched, ShipmentStatusChanged,
                              ShipmentCancelled, ShipmentCancelRefused),
    topics.RETURNS_REPLIES: (RefundIssued, RefundRejected),
}  # fmt: skip
