"""One handler per message: load through the store, ask the domain, write back, emit replies."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import structlog

from oms_fulfillment import domain, store
from oms_fulfillment.book import FulfillmentBook
from oms_fulfillment.domain import CancelOutcome, CreateAnswer, Fulfillment
from oms_fulfillment.packing import PackingRules, Units
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import LineQuantity, PackageSpec
from oms_shared.contracts.fulfillment import (
    CancelFulfillment,
    CreateFulfillment,
    FulfillmentCancelled,
    FulfillmentCancelRefused,
    FulfillmentPacked,
    FulfillmentStarted,
    PickConfirmed,
    PickInstruction,
    PickListCancelled,
    PickListIssued,
)
from oms_shared.errors import RetryableError
from oms_shared.runtime import Handler, MessageContext

__all__ = [
    "COMMAND_HANDLERS",
    "on_cancel_fulfillment",
    "on_create_fulfillment",
    "on_pick_confirmed",
    "warehouse_handlers",
]

log = structlog.get_logger(__name__)

DEFAULT_PACKING = PackingRules()


async def on_create_fulfillment(cmd: CreateFulfillment, ctx: MessageContext) -> None:
    """Create the fulfillment and its pick list in walking order; a known id creates nothing."""
    book = FulfillmentBook.of(ctx.uow)
    existing = await book.get(cmd.fulfillment_id)
    if existing is None:
        known = await book.catalogue(line.sku for line in cmd.lines)
        lines = (Units(line.line_no, line.sku, line.quantity) for line in cmd.lines)
        planned = domain.plan_fulfillment(cmd.fulfillment_id, cmd.order_id, cmd.warehouse_id, lines, known)
        book.create(planned)
        ctx.emit(topics.WAREHOUSE_TASKS, _pick_list(planned), key=cmd.order_id)
        ctx.emit(topics.FULFILLMENT_REPLIES, _started(planned, cmd.request_id), key=cmd.order_id)
        log.info("fulfillment_started", fulfillment_id=cmd.fulfillment_id, stops=len(planned.lines))
        return
    if domain.answer_repeated_create(existing) is CreateAnswer.CANCELLED:
        ctx.emit(topics.FULFILLMENT_REPLIES, _cancelled(existing, cmd.request_id), key=cmd.order_id)
        log.info("fulfillment_create_after_cancel", fulfillment_id=cmd.fulfillment_id)
        return
    ctx.emit(topics.FULFILLMENT_REPLIES, _started(existing, cmd.request_id), key=cmd.order_id)
    log.info("fulfillment_create_repeated", fulfillment_id=cmd.fulfillment_id, status=existing.status.value)


async def on_pick_confirmed(
    evt: PickConfirmed, ctx: MessageContext, *, packing: PackingRules = DEFAULT_PACKING
) -> None:
    """Pack what was picked and report packages and shortages; late or repeated confirmations are ignored."""
    book = FulfillmentBook.of(ctx.uow)
    existing = await book.get(evt.fulfillment_id)
    if existing is None:
        raise domain.InvalidPickConfirmation(f"unknown fulfillment {evt.fulfillment_id}")
    picked = (Units(line.line_no, line.sku, line.picked) for line in evt.lines)
    result = domain.confirm_pick(existing, evt.pick_list_id, picked, packing)
    if result.fulfillment is None:
        log.info("pick_confirmation_ignored", fulfillment_id=evt.fulfillment_id, reason=result.ignored)
        return
    packed = result.fulfillment
    book.pack(packed, result.packages)
    reply = FulfillmentPacked(
        order_id=packed.order_id,
        fulfillment_id=packed.fulfillment_id,
        warehouse_id=packed.warehouse_id or "",
        packages=tuple(
            PackageSpec(
                package_id=p.package_id(packed.fulfillment_id),
                weight_grams=p.weight_grams,
                items=_line_quantities(p.items),
            )
            for p in result.packages
        ),
        shortages=_line_quantities(packed.shortages),
    )
    ctx.emit(topics.FULFILLMENT_REPLIES, reply, key=packed.order_id)
    log.info(
        "fulfillment_packed",
        fulfillment_id=evt.fulfillment_id,
        packages=len(result.packages),
        short_lines=len(reply.shortages),
    )


async def on_cancel_fulfillment(cmd: CancelFulfillment, ctx: MessageContext) -> None:
    """Cancel (stopping the pick list or putting packed units away), unless handed to the carrier."""
    await FulfillmentBook.of(ctx.uow).settle(cmd.fulfillment_id)
    existing = await store.load_fulfillment(ctx.conn, cmd.fulfillment_id)
    decision = domain.cancel(existing, cmd.fulfillment_id, cmd.order_id)
    after = decision.fulfillment
    if decision.outcome is CancelOutcome.REFUSED:
        refused = FulfillmentCancelRefused(
            order_id=cmd.order_id, request_id=cmd.request_id, fulfillment_id=cmd.fulfillment_id, reason=decision.reason
        )
        ctx.emit(topics.FULFILLMENT_REPLIES, refused, key=cmd.order_id)
        log.info("fulfillment_cancel_refused", fulfillment_id=cmd.fulfillment_id, reason=decision.reason)
        return
    if decision.outcome is not CancelOutcome.ALREADY_CANCELLED and not await store.save_cancelled(
        ctx.conn, existing, after
    ):
        raise RetryableError(f"fulfillment {cmd.fulfillment_id} changed while cancelling")
    if decision.outcome is CancelOutcome.STOP_PICKING:
        ctx.emit(topics.WAREHOUSE_TASKS, _pick_list_cancelled(after), key=cmd.order_id)
    ctx.emit(topics.FULFILLMENT_REPLIES, _cancelled(after, cmd.request_id, cmd.order_id), key=cmd.order_id)
    log.info(
        "fulfillment_cancelled",
        fulfillment_id=cmd.fulfillment_id,
        outcome=decision.outcome.value,
        put_away_lines=len(decision.put_away),
    )


COMMAND_HANDLERS: dict[type[Contract], Handler] = {
    CreateFulfillment: on_create_fulfillment,
    CancelFulfillment: on_cancel_fulfillment,
}


def warehouse_handlers(packing: PackingRules) -> dict[type[Contract], Handler]:
    """Handlers of the warehouse events, packing by ``packing``."""
    return {PickConfirmed: partial(on_pick_confirmed, packing=packing)}


# --- messages out ------------------------------------------------------------------------------
def _line_quantities(units: Iterable[Units]) -> tuple[LineQuantity, ...]:
    return tuple(LineQuantity(line_no=u.line_no, sku=u.sku, quantity=u.quantity) for u in units)


def _pick_list(f: Fulfillment) -> PickListIssued:
    return PickListIssued(
        order_id=f.order_id,
        fulfillment_id=f.fulfillment_id,
        warehouse_id=f.warehouse_id or "",
        pick_list_id=f.pick_list_id or "",
        picks=tuple(
            PickInstruction(seq=seq, bin=line.bin, line_no=line.line_no, sku=line.sku, quantity=line.quantity)
            for seq, line in enumerate(f.lines, start=1)
        ),
    )


def _pick_list_cancelled(f: Fulfillment) -> PickListCancelled:
    return PickListCancelled(
        order_id=f.order_id,
        fulfillment_id=f.fulfillment_id,
        warehouse_id=f.warehouse_id or "",
        pick_list_id=f.pick_list_id or "",
    )


def _started(f: Fulfillment, request_id: str) -> FulfillmentStarted:
    return FulfillmentStarted(
        order_id=f.order_id,
        request_id=request_id,
        fulfillment_id=f.fulfillment_id,
        warehouse_id=f.warehouse_id or "",
        pick_list_id=f.pick_list_id or "",
    )


def _cancelled(f: Fulfillment, request_id: str, order_id: str | None = None) -> FulfillmentCancelled:
    return FulfillmentCancelled(
        order_id=order_id or f.order_id,
        request_id=request_id,
        fulfillment_id=f.fulfillment_id,
        put_away=_line_quantities(f.put_away),
    )
