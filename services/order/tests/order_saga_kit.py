"""Builders for saga unit tests: a fresh saga, and the replies a well-behaved participant sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from oms_order.saga import Input, Timing, decide, start
from oms_order.saga_state import Line, Outcome, Policy, Saga
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, LineQuantity, PackageSpec
from oms_shared.contracts.fulfillment import CreateFulfillment, FulfillmentPacked, FulfillmentStarted
from oms_shared.contracts.inventory import (
    Allocation,
    CommitStock,
    ReleaseStock,
    ReserveStock,
    StockCommitted,
    StockReleased,
    StockReserved,
)
from oms_shared.contracts.returns import IssueRefund, RefundIssued
from oms_shared.contracts.shipping import BookShipment, ShipmentBooked, ShipmentDispatched, ShipmentStatusChanged

T = TypeVar("T", bound=Contract)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TIMING = Timing()


def new_saga(policy: Policy = "reject", lines: list[tuple[str, int, int]] | None = None) -> Saga:
    lines = lines or [("SKU-1", 2, 1000)]
    total = sum(q * p for _, q, p in lines)
    return Saga(
        order_id=str(uuid.uuid4()),
        channel="web",
        external_order_id="ext-1",
        lines=[Line(line_no=i, sku=s, quantity=q, unit_price=p) for i, (s, q, p) in enumerate(lines, start=1)],
        lat=52.5,
        lon=13.4,
        shipping_method="standard",
        currency="EUR",
        amount_paid=total + 500,
        payment_reference="pay-1",
        policy=policy,
    )


class Driver:
    """Feeds inputs to the saga and keeps the latest state and every outcome."""

    def __init__(self, saga: Saga) -> None:
        self.now = T0
        out = start(saga, self.now, TIMING)
        self.saga = out.saga
        self.outcomes = [out]
        _dumped_as_the_model(out)

    @property
    def last(self) -> Outcome:
        return self.outcomes[-1]

    def feed(self, event: Input, *, after: timedelta = timedelta(seconds=1)) -> Outcome:
        self.now += after
        out = decide(self.saga, event, self.now, TIMING)
        self.saga = out.saga
        self.outcomes.append(out)
        _dumped_as_the_model(out)
        return out

    def statuses(self) -> list[str]:
        return [s.status for o in self.outcomes for s in o.statuses]

    def commands(self, model: type[T], outcome: Outcome | None = None) -> list[T]:
        source = [outcome] if outcome else self.outcomes
        return [c.payload for o in source for c in o.commands if isinstance(c.payload, model)]

    def one(self, model: type[T], outcome: Outcome | None = None) -> T:
        found = self.commands(model, outcome or self.last)
        assert len(found) == 1, f"expected one {model.__name__}, got {found}"
        return found[0]


def _dumped_as_the_model(out: Outcome) -> None:
    """Every command's JSON (dumped from its pending request's document, re-sends too) is
    byte for byte what its contract model writes: every saga test checks it."""
    for command in out.commands:
        assert command.data == command.payload.model_dump_json().encode(), command.payload


def reserved(cmd: ReserveStock, split: dict[int, list[tuple[str, int]]] | None = None, **kw: Any) -> StockReserved:
    """All lines reserved, at WH-A unless ``split`` says {line_no: [(warehouse, qty), ...]}."""
    allocations = []
    for line in cmd.lines:
        for warehouse, qty in (split or {}).get(line.line_no, [("WH-A", line.quantity)]):
            allocations.append(
                Allocation(warehouse_id=warehouse, line_no=line.line_no, sku=line.sku, quantity=qty,
                           location=Coordinates(lat=52.0, lon=13.0))
            )  # fmt: skip
    return StockReserved(
        order_id=cmd.order_id, request_id=cmd.request_id, allocations=tuple(allocations), decision_id="d", **kw
    )


def started(cmd: CreateFulfillment) -> FulfillmentStarted:
    return FulfillmentStarted(order_id=cmd.order_id, request_id=cmd.request_id, fulfillment_id=cmd.fulfillment_id,
                              warehouse_id=cmd.warehouse_id, pick_list_id=f"pl-{cmd.fulfillment_id}")  # fmt: skip


def packed(cmd: CreateFulfillment, short: dict[int, int] | None = None) -> FulfillmentPacked:
    short = short or {}
    items = tuple(
        LineQuantity(line_no=line.line_no, sku=line.sku, quantity=line.quantity - short.get(line.line_no, 0))
        for line in cmd.lines
        if line.quantity - short.get(line.line_no, 0) > 0
    )
    shortages = tuple(
        LineQuantity(line_no=line.line_no, sku=line.sku, quantity=short[line.line_no])
        for line in cmd.lines
        if short.get(line.line_no)
    )
    packages = (PackageSpec(package_id=f"{cmd.fulfillment_id}-p1", weight_grams=1200, items=items),) if items else ()
    return FulfillmentPacked(order_id=cmd.order_id, fulfillment_id=cmd.fulfillment_id, warehouse_id=cmd.warehouse_id,
                             packages=packages, shortages=shortages)  # fmt: skip


def booked(cmd: BookShipment) -> ShipmentBooked:
    return ShipmentBooked(order_id=cmd.order_id, request_id=cmd.request_id, shipment_id=cmd.shipment_id,
                          carrier="parcelco", service_level="standard", tracking_number=f"T-{cmd.shipment_id}",
                          label_format="ZPL", cost_minor=499, currency="EUR")  # fmt: skip


def dispatched(cmd: BookShipment) -> ShipmentDispatched:
    return ShipmentDispatched(order_id=cmd.order_id, shipment_id=cmd.shipment_id, warehouse_id=cmd.warehouse_id,
                              carrier="parcelco", tracking_number=f"T-{cmd.shipment_id}", at=T0)  # fmt: skip


def scan(cmd: BookShipment, status: str) -> ShipmentStatusChanged:
    return ShipmentStatusChanged(order_id=cmd.order_id, shipment_id=cmd.shipment_id, status=status,
                                 carrier="parcelco", tracking_number=f"T-{cmd.shipment_id}", at=T0)  # fmt: skip


def committed(cmd: CommitStock) -> StockCommitted:
    return StockCommitted(order_id=cmd.order_id, request_id=cmd.request_id, warehouse_id=cmd.warehouse_id,
                          committed=())  # fmt: skip


def released(cmd: ReleaseStock, allocations: tuple[Allocation, ...] = ()) -> StockReleased:
    return StockReleased(order_id=cmd.order_id, request_id=cmd.request_id, released=allocations)


def refunded(cmd: IssueRefund, total: int | None = None) -> RefundIssued:
    return RefundIssued(order_id=cmd.order_id, request_id=cmd.request_id, refund_id=f"r-{cmd.request_id}",
                        refund_key=cmd.refund_key, amount=cmd.amount, currency=cmd.currency,
                        total_refunded=total or cmd.amount, payment_reference=cmd.payment_reference,
                        reason=cmd.reason)  # fmt: skip


def ship_one(d: Driver, create: CreateFulfillment) -> BookShipment:
    """Drive one fulfillment from pick list to delivery; return its booking."""
    d.feed(started(create))
    d.feed(packed(create))
    book = d.one(BookShipment)
    d.feed(booked(book))
    d.feed(dispatched(book))
    d.feed(committed(d.one(CommitStock)))
    for status in ("in_transit", "out_for_delivery", "delivered"):
        d.feed(scan(book, status))
    return book
