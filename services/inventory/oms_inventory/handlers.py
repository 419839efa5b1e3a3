"""One short function per message inventory consumes: load, decide (domain), write, reply."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime

import structlog

from oms_inventory import domain, store
from oms_inventory.domain import (
    Decision,
    Line,
    Point,
    plan_sourcing,
)
from oms_inventory.reserving import ReserveBook
from oms_inventory.stock import (
    Movement,
    MovementVerdict,
    availability,
    judge_movement,
    plan_write_offs,
    written_off,
)
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, LineQuantity
from oms_shared.contracts.inventory import (
    Allocation,
    AvailabilityChanged,
    CommitStock,
    ReleaseStock,
    ReportShortPick,
    ReserveStock,
    SafetyStockSet,
    ShortPickRecorded,
    StockCommitted,
    StockMovementRecorded,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    WarehouseAvailability,
    WarehouseUpserted,
)
from oms_shared.errors import RetryableError
from oms_shared.outbox import UnitOfWork
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
    _availability_changed(ctx, {a.sku for a in decision.allocations})


async def on_release_stock(cmd: ReleaseStock, ctx: MessageContext) -> None:
    """Release the order's active reservations (all, or one warehouse's); fine if there are none."""
    await ReserveBook.of(ctx.uow).settle()
    released, changed = await store.release_reservations(ctx.conn, cmd.order_id, cmd.request_id, cmd.warehouse_id)
    log.info("stock_released", lines=len(released), warehouse_id=cmd.warehouse_id)
    reply = StockReleased(order_id=cmd.order_id, request_id=cmd.request_id, released=_allocations(released))
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)
    _availability_changed(ctx, changed)


async def on_commit_stock(cmd: CommitStock, ctx: MessageContext) -> None:
    """Dispatch: the reservations at the warehouse leave on hand, one 'shipment' movement each.

    No :meth:`ReserveBook.settle`: committing lowers on hand and reserved alike, so what
    the book plans with (availability) stays true.
    """
    committed, changed = await store.commit_reservations(ctx.conn, cmd.order_id, cmd.request_id, cmd.warehouse_id)
    log.info("stock_committed", lines=len(committed), warehouse_id=cmd.warehouse_id)
    reply = StockCommitted(
        order_id=cmd.order_id,
        request_id=cmd.request_id,
        warehouse_id=cmd.warehouse_id,
        committed=_allocations(committed),
    )
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)
    _availability_changed(ctx, changed)


async def on_report_short_pick(cmd: ReportShortPick, ctx: MessageContext) -> None:
    """Write the missing units off and shrink the order's reservation at that warehouse."""
    await ReserveBook.of(ctx.uow).settle()
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
    _availability_changed(ctx, changed)


# --- stock movements ------------------------------------------------------------------
async def on_warehouse_upserted(event: WarehouseUpserted, ctx: MessageContext) -> None:
    """Register or update a warehouse; opening or closing it changes what its SKUs can promise."""
    await ReserveBook.of(ctx.uow).settle()
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
        _availability_changed(ctx, await store.skus_at(ctx.conn, event.warehouse_id))


async def on_stock_movement_recorded(event: StockMovementRecorded, ctx: MessageContext) -> None:
    """Apply a receipt or adjustment once; refuse (and keep) one that cannot apply."""
    await ReserveBook.of(ctx.uow).settle()
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
        _availability_changed(ctx, [event.sku])


async def on_safety_stock_set(event: SafetyStockSet, ctx: MessageContext) -> None:
    """Keep units of a SKU back from sale at one warehouse."""
    await ReserveBook.of(ctx.uow).settle()
    if not await store.set_safety_stock(ctx.conn, event.sku, event.warehouse_id, event.safety_stock):
        log.warning("safety_stock_ignored", reason="unknown_warehouse", warehouse_id=event.warehouse_id)
        return
    log.info("safety_stock_set", sku=event.sku, warehouse_id=event.warehouse_id, safety_stock=event.safety_stock)
    _availability_changed(ctx, [event.sku])


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
            allocations=_allocations(decision.allocations, decision.locations),
            unfilled=unfilled,
            decision_id=decision.decision_id,
        )
    ctx.emit(topics.INVENTORY_REPLIES, reply, key=cmd.order_id)


def _allocations(
    items: Iterable[domain.Allocation], locations: Mapping[str, Point] | None = None
) -> tuple[Allocation, ...]:
    where = locations or {}
    return tuple(
        Allocation(
            warehouse_id=a.warehouse_id,
            line_no=a.line_no,
            sku=a.sku,
            quantity=a.quantity,
            location=Coordinates(lat=p.lat, lon=p.lon) if (p := where.get(a.warehouse_id)) else None,
        )
        for a in items
    )


def _availability_changed(ctx: MessageContext, skus: Iterable[str]) -> None:
    """These SKUs' levels changed: their availability is published once, at the end of the batch.

    The reserve book is made first, so it writes its units before the levels are read.
    """
    ReserveBook.of(ctx.uow)
    ctx.uow.part(AvailabilityBatch).changed(skus)


class AvailabilityBatch:
    """The SKUs whose availability a batch changed: one AvailabilityChanged each, at flush.

    The topic is compacted and keyed by SKU (the last event counts), so a hot SKU
    reserved by forty orders in one batch is published once with its final levels,
    read in one statement for the whole batch, instead of forty times.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._skus: set[str] = set()

    def changed(self, skus: Iterable[str]) -> None:
        """Mark SKUs whose levels this batch changed."""
        self._skus.update(skus)

    async def flush(self) -> None:
        """Read the marked SKUs' levels and emit one event per SKU."""
        if not self._skus:
            return
        levels = await store.stock_levels(self._uow.conn, self._skus)
        self._skus = set()
        at = datetime.now(UTC)
        for sku in availability(levels):
            event = AvailabilityChanged(
                sku=sku.sku,
                available=sku.available,
                warehouses=tuple(
                    WarehouseAvailability(
                        warehouse_id=w.warehouse_id,
                        on_hand=w.on_hand,
                        reserved=w.reserved,
                        safety_stock=w.safety_stock,
                        available=w.available,
                    )
                    for w in sku.warehouses
                ),
                at=at,
            )
            self._uow.emit(topics.INVENTORY_AVAILABILITY, event, key=sku.sku)
