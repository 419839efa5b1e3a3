"""One short function per message inventory consumes: load, decide (domain), write, reply."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict

import structlog

from oms_inventory import store
from oms_inventory.availability import availability_changed
from oms_inventory.committing import CommitBook
from oms_inventory.domain import (
    Decision,
    Line,
    Point,
    plan_sourcing,
)
from oms_inventory.replies import allocations
from oms_inventory.reserving import ReserveBook
from oms_inventory.stock import (
    Movement,
    MovementVerdict,
    judge_movement,
    plan_write_offs,
    written_off,
)
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import LineQuantity
from oms_shared.contracts.inventory import (
    CommitStock,
    ReleaseStock,
    ReportShortPick,
    ReserveStock,
    SafetyStockSet,
    ShortPickRecorded,
    StockMovementRecorded,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    WarehouseUpserted,
)
from oms_shared.errors import RetryableError
from oms_shared.runtime import Handler, MessageContext

__all__ = ["COMMAND_HANDLERS", "MOVEMENT_HANDLERS"]

log = structlog.get_logger(__name__)


# --- saga commands -------------------------------------------------------------------
async def on_reserve_stock(cmd: ReserveStock, ctx: MessageContext) -> None:
    """Source and reserve the order's lines; a repeat of the request gets the recorded answer."""
    lines = [Line(line.line_no, line.sku, line.quantity) for line in cmd.lines]
    skus = sorted({line.sku for line in lines})
    book = ReserveBook.of(ctx.uow)
    await book.load([(cmd.order_id, cmd.request_id)], skus)
    prior = book.decision(cmd.order_id, cmd.request_id)
    if prior is not None:
        log.info("reservation_replayed", decision_id=prior.decision_id)
        _reply_reservation(ctx, cmd, prior)
        return
    ship_to = Point(cmd.ship_to.lat, cmd.ship_to.lon)
    plan = plan_sourcing(
        lines,
        ship_to,
        book.stock(skus),
        max_split=cmd.max_split,
        allow_partial=cmd.allow_partial,
        exclude=cmd.exclude_warehouses,
    )
    decision = Decision.of(uuid.uuid4().hex, plan)
    book.record(cmd, decision, ship_to, plan.candidates)
    log.info(
        "stock_reserved" if plan.failure is None else "stock_reservation_failed",
        decision_id=decision.decision_id,
        reason=plan.failure,
        warehouses=plan.warehouses,
        unfilled=len(plan.unfilled),
    )
    _reply_reservation(ctx, cmd, decision)


async def on_release_stock(cmd: ReleaseStock, ctx: MessageContext) -> None:
    """Release the order's active reservations (all, or one warehouse's); fine if there are none."""
    await _settle(ctx)
    released, changed = await store.release_reservations(ctx.conn, cmd.order_id, cmd.request_id, cmd.warehouse_id)
    log.info("stock_released", lines=len(released), warehouse_id=cmd.warehouse_id)
    reply = StockReleased(order_id=cmd.order_id, request_id=cmd.request_id, released=allocations(released))
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)
    availability_changed(ctx.uow, changed)


async def on_commit_stock(cmd: CommitStock, ctx: MessageContext) -> None:
    """Dispatch: the reservations at the warehouse leave on hand, one 'shipment' movement each.

    Written and answered with the batch's other commits when the batch flushes
    (:mod:`oms_inventory.committing`). Reserves in the batch need not re-read: committing
    lowers on hand and reserved alike, so what the reserve book plans with stays true.
    """
    CommitBook.of(ctx.uow).add(cmd)


async def on_report_short_pick(cmd: ReportShortPick, ctx: MessageContext) -> None:
    """Write the missing units off and shrink the order's reservation at that warehouse."""
    await _settle(ctx)
    prior, active = await store.short_pick_context(ctx.conn, cmd.order_id, cmd.request_id, cmd.warehouse_id)
    changed: set[str] = set()
    if prior is None:
        cuts = plan_write_offs(active, [Line(s.line_no, s.sku, s.quantity) for s in cmd.shortages])
        prior = written_off(cuts)
        written = await store.write_off_short_pick(
            ctx.conn, cmd.order_id, cmd.request_id, cmd.warehouse_id, cuts, prior
        )
        if written is None:
            raise RetryableError("the same short pick was recorded concurrently; the retry replays it")
        changed = written
        log.info("short_pick_recorded", warehouse_id=cmd.warehouse_id, units=sum(w.quantity for w in prior))
    reply = ShortPickRecorded(
        order_id=cmd.order_id,
        request_id=cmd.request_id,
        warehouse_id=cmd.warehouse_id,
        written_off=tuple(LineQuantity(line_no=w.line_no, sku=w.sku, quantity=w.quantity) for w in prior),
    )
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)
    availability_changed(ctx.uow, changed)


# --- stock movements ------------------------------------------------------------------
async def on_warehouse_upserted(event: WarehouseUpserted, ctx: MessageContext) -> None:
    """Register or update a warehouse; opening or closing it changes what its SKUs can promise."""
    await _settle(ctx)
    toggled = await store.upsert_warehouse(
        ctx.conn,
        warehouse_id=event.warehouse_id,
        name=event.name,
        location=Point(event.location.lat, event.location.lon),
        default_safety_stock=event.default_safety_stock,
        active=event.active,
    )
    log.info("warehouse_upserted", warehouse_id=event.warehouse_id, active=event.active)
    if toggled:
        availability_changed(ctx.uow, await store.skus_at(ctx.conn, event.warehouse_id))


async def on_stock_movement_recorded(event: StockMovementRecorded, ctx: MessageContext) -> None:
    """Apply a receipt or adjustment once; refuse (and keep) one that cannot apply."""
    await _settle(ctx)
    movement = Movement(event.movement_id, event.sku, event.warehouse_id, event.kind, event.quantity, event.reason)
    verdict = judge_movement(
        await store.lock_stock_row(ctx.conn, event.sku, event.warehouse_id, event.movement_id), event.quantity
    )
    if verdict is MovementVerdict.DUPLICATE:
        log.info("movement_duplicate_skipped", movement_id=event.movement_id)
    elif verdict.rejected:
        log.warning("movement_rejected", verdict=verdict.value, **asdict(movement))
        await store.reject_movement(ctx.conn, movement, verdict.value)
    elif await store.apply_movement(ctx.conn, movement):
        log.info("movement_applied", **asdict(movement))
        availability_changed(ctx.uow, [event.sku])


async def on_safety_stock_set(event: SafetyStockSet, ctx: MessageContext) -> None:
    """Keep units of a SKU back from sale at one warehouse."""
    await _settle(ctx)
    if not await store.set_safety_stock(ctx.conn, event.sku, event.warehouse_id, event.safety_stock):
        log.warning("safety_stock_ignored", reason="unknown_warehouse", warehouse_id=event.warehouse_id)
        return
    log.info("safety_stock_set", sku=event.sku, warehouse_id=event.warehouse_id, safety_stock=event.safety_stock)
    availability_changed(ctx.uow, [event.sku])


COMMAND_HANDLERS: Mapping[type[Contract], Handler] = {
    ReserveStock: on_reserve_stock,
    ReleaseStock: on_release_stock,
    CommitStock: on_commit_stock,
    ReportShortPick: on_report_short_pick,
}

MOVEMENT_HANDLERS: Mapping[type[Contract], Handler] = {
    WarehouseUpserted: on_warehouse_upserted,
    StockMovementRecorded: on_stock_movement_recorded,
    SafetyStockSet: on_safety_stock_set,
}


# --- helpers ------------------------------------------------------------------------
def _reply_reservation(ctx: MessageContext, cmd: ReserveStock, decision: Decision) -> None:
    reply: Contract
    unfilled = tuple(LineQuantity(line_no=u.line_no, sku=u.sku, quantity=u.quantity) for u in decision.unfilled)
    if decision.failure is not None:
        reply = StockReservationFailed(
            order_id=cmd.order_id,
            request_id=cmd.request_id,
            reason=decision.failure,
            unfilled=unfilled,
            decision_id=decision.decision_id,
        )
    else:
        reply = StockReserved(
            order_id=cmd.order_id,
            request_id=cmd.request_id,
            allocations=allocations(decision.allocations, decision.locations),
            unfilled=unfilled,
            decision_id=decision.decision_id,
        )
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)


async def _settle(ctx: MessageContext) -> None:
    """This handler changes stock or reservations through its own SQL: the books write theirs first."""
    await ReserveBook.of(ctx.uow).settle()
    await CommitBook.of(ctx.uow).flush()
