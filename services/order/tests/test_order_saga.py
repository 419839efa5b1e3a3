# mypy: disable-error-code="comparison-overlap"
"""The order saga's transition function, state by state and input by input (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from order_saga_kit import (
    TIMING,
    Driver,
    booked,
    committed,
    dispatched,
    new_saga,
    packed,
    refunded,
    released,
    reserved,
    scan,
    ship_one,
    started,
)

from oms_order.saga import COMMAND_MODELS, CancelRequested, Timeout, decide, message_id_for
from oms_order.saga_state import TERMINAL, saga_to_json
from oms_shared.contracts.common import LineQuantity
from oms_shared.contracts.fulfillment import CancelFulfillment, CreateFulfillment, FulfillmentCancelled
from oms_shared.contracts.inventory import (
    Allocation,
    CommitStock,
    ReleaseStock,
    ReportShortPick,
    ReserveStock,
    ShortPickRecorded,
    StockReservationFailed,
)
from oms_shared.contracts.returns import IssueRefund, RefundRejected
from oms_shared.contracts.shipping import (
    BookShipment,
    CancelShipment,
    ShipmentBookingFailed,
    ShipmentCancelled,
    ShipmentCancelRefused,
)


def failed(cmd: ReserveStock, reason: str = "out_of_stock") -> StockReservationFailed:
    unfilled = tuple(LineQuantity(line_no=x.line_no, sku=x.sku, quantity=x.quantity) for x in cmd.lines)
    return StockReservationFailed(order_id=cmd.order_id, request_id=cmd.request_id, reason=reason,
                                  unfilled=unfilled, decision_id="d")  # fmt: skip


class TestHappyPath:
    """Accepted -> reserved -> fulfilling -> packed -> booked -> shipped -> delivered -> completed."""

    def test_single_warehouse(self) -> None:
        d = Driver(new_saga())
        reserve = d.one(ReserveStock)
        assert reserve.allow_partial is False  # 'reject' policy: all or nothing
        d.feed(reserved(reserve))
        create = d.one(CreateFulfillment)
        assert create.warehouse_id == "WH-A"
        ship_one(d, create)
        assert d.saga.phase == "completed"
        assert d.saga.closed
        assert d.statuses() == [
            "received", "accepted", "reserved", "fulfilling", "packed", "shipment_booked", "shipped",
            "in_transit", "out_for_delivery", "delivered", "completed",
        ]  # fmt: skip
        assert not d.commands(IssueRefund)

    def test_split_over_two_warehouses_completes_when_both_delivered(self) -> None:
        d = Driver(new_saga(lines=[("SKU-1", 2, 1000), ("SKU-2", 1, 500)]))
        d.feed(reserved(d.one(ReserveStock), split={1: [("WH-A", 2)], 2: [("WH-B", 1)]}))
        creates = d.commands(CreateFulfillment, d.last)
        assert sorted(c.warehouse_id for c in creates) == ["WH-A", "WH-B"]
        ship_one(d, creates[0])
        assert d.saga.phase == "fulfilling"
        ship_one(d, creates[1])
        assert d.saga.phase == "completed"

    def test_commands_carry_stable_message_ids(self) -> None:
        d = Driver(new_saga())
        command = d.last.commands[0]
        request_id = command.payload.request_id  # type: ignore[attr-defined]
        assert command.message_id == message_id_for(d.saga.order_id, request_id)
        assert set(COMMAND_MODELS) >= {type(c.payload).ce_type for c in d.last.commands}


class TestStockShortage:
    """No stock or partial stock, under each channel policy."""

    def test_out_of_stock_reject_policy_rejects_and_refunds_everything(self) -> None:
        d = Driver(new_saga("reject"))
        d.feed(failed(d.one(ReserveStock)))
        assert d.saga.phase == "rejected"
        refund = d.one(IssueRefund)
        assert refund.amount == d.saga.amount_paid
        assert not d.commands(ReleaseStock, d.last), "nothing was reserved"
        d.feed(refunded(refund))
        assert d.saga.closed
        assert d.statuses()[-2:] == ["rejected", "refunded"]

    def test_partial_stock_ship_available_refunds_the_rest(self) -> None:
        d = Driver(new_saga("ship_available", lines=[("SKU-1", 2, 1000), ("SKU-2", 3, 700)]))
        reserve = d.one(ReserveStock)
        assert reserve.allow_partial is True
        only_first = reserved(reserve).model_copy(
            update={
                "allocations": tuple(a for a in reserved(reserve).allocations if a.line_no == 1),
                "unfilled": (LineQuantity(line_no=2, sku="SKU-2", quantity=3),),
            }
        )
        d.feed(only_first)
        assert "partially_reserved" in d.statuses()
        create = d.one(CreateFulfillment)
        assert [x.line_no for x in create.lines] == [1]
        ship_one(d, create)
        refund = d.one(IssueRefund)
        assert refund.amount == 3 * 700
        d.feed(refunded(refund))
        assert d.saga.phase == "completed"
        assert d.saga.refunded == 2100

    def test_backorder_waits_then_ships_when_stock_arrives(self) -> None:
        d = Driver(new_saga("backorder"))
        d.feed(failed(d.one(ReserveStock)))
        assert d.saga.phase == "backordered"
        assert not d.last.commands
        d.feed(Timeout(), after=TIMING.backorder_retry)
        retry = d.one(ReserveStock)
        assert retry.allow_partial is True
        d.feed(reserved(retry))
        assert d.saga.phase == "fulfilling"
        ship_one(d, d.one(CreateFulfillment))
        assert d.saga.phase == "completed"

    def test_backorder_expires_into_cancellation_and_refund(self) -> None:
        d = Driver(new_saga("backorder"))
        d.feed(failed(d.one(ReserveStock)))
        d.feed(Timeout(), after=TIMING.backorder_window + timedelta(seconds=1))
        assert d.saga.phase == "cancelling"
        release = d.one(ReleaseStock)
        assert release.warehouse_id is None
        d.feed(released(release))
        d.feed(refunded(d.one(IssueRefund)))
        assert d.saga.phase == "cancelled"
        assert d.saga.refunded == d.saga.amount_paid


class TestCancellation:
    """Cancellation at every stage: compensated before the pivot, refused after it."""

    def test_while_reserving_waits_for_the_reply_then_releases_and_refunds(self) -> None:
        d = Driver(new_saga())
        reserve = d.one(ReserveStock)
        d.feed(CancelRequested("changed my mind"))
        assert d.saga.phase == "cancelling"
        assert not d.last.commands, "the reservation reply is still outstanding"
        d.feed(reserved(reserve))
        assert not d.commands(CreateFulfillment, d.last)
        release = d.one(ReleaseStock)
        d.feed(released(release))
        refund = d.one(IssueRefund)
        assert refund.amount == d.saga.amount_paid
        d.feed(refunded(refund))
        assert d.saga.phase == "cancelled"
        assert d.saga.closed

    def test_during_picking_puts_away_then_releases(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(CancelRequested("too slow"))
        cancel = d.one(CancelFulfillment)
        d.feed(FulfillmentCancelled(order_id=cancel.order_id, request_id=cancel.request_id,
                                    fulfillment_id=cancel.fulfillment_id))  # fmt: skip
        release = d.one(ReleaseStock)
        assert release.warehouse_id == "WH-A"
        d.feed(released(release))
        final_release = d.one(ReleaseStock)
        assert final_release.warehouse_id is None
        d.feed(released(final_release))
        d.feed(refunded(d.one(IssueRefund)))
        assert d.saga.phase == "cancelled"
        assert d.statuses()[-3:] == ["cancelling", "refunded", "cancelled"]

    def test_after_booking_voids_the_shipment_first(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(booked(book))
        d.feed(CancelRequested("no longer needed"))
        void = d.one(CancelShipment)
        d.feed(ShipmentCancelled(order_id=void.order_id, request_id=void.request_id, shipment_id=void.shipment_id))
        assert d.one(CancelFulfillment).fulfillment_id == create.fulfillment_id

    def test_while_the_carrier_has_not_answered(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(CancelRequested("changed my mind"))
        assert all(p.kind != "book" for p in d.saga.pending.values()), "the booking reply is no longer awaited"
        void = d.one(CancelShipment)
        late = d.feed(booked(book))
        assert not late.commands, "a late booking answer changes nothing"
        d.feed(ShipmentCancelled(order_id=void.order_id, request_id=void.request_id, shipment_id=void.shipment_id))
        cancel = d.one(CancelFulfillment)
        d.feed(FulfillmentCancelled(order_id=cancel.order_id, request_id=cancel.request_id,
                                    fulfillment_id=cancel.fulfillment_id))  # fmt: skip
        d.feed(released(d.one(ReleaseStock)))
        d.feed(released(d.one(ReleaseStock)))
        d.feed(refunded(d.one(IssueRefund)))
        assert d.saga.phase == "cancelled"
        assert d.saga.closed

    def test_after_dispatch_is_refused(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(booked(book))
        d.feed(dispatched(book))
        out = d.feed(CancelRequested("too late"))
        assert [s.status for s in out.statuses] == ["cancel_refused"]
        assert "carrier" in out.statuses[0].reasons[0]
        assert not out.commands
        assert d.saga.phase == "fulfilling"
        assert d.saga.status == "shipped"

    def test_race_with_pickup_is_refused_by_shipping(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(booked(book))
        d.feed(CancelRequested("race"))
        void = d.one(CancelShipment)
        d.feed(dispatched(book))
        refusal = ShipmentCancelRefused(
            order_id=void.order_id, request_id=void.request_id, shipment_id=void.shipment_id, reason="handed over"
        )
        out = d.feed(refusal)
        assert "cancel_refused" in [s.status for s in out.statuses]
        assert d.saga.phase == "fulfilling"

    def test_after_completion_and_twice(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        ship_one(d, d.one(CreateFulfillment))
        out = d.feed(CancelRequested("late"))
        assert [s.status for s in out.statuses] == ["cancel_refused"]
        assert d.saga.phase == "completed"
        d2 = Driver(new_saga())
        d2.feed(CancelRequested("once"))
        second = d2.feed(CancelRequested("twice"))
        assert not second.statuses
        assert not second.commands


class TestShortPickAndCarrierFailure:
    """Short picks are re-sourced; carrier failures are compensated and refunded."""

    def test_short_pick_is_written_off_and_resourced_elsewhere(self) -> None:
        d = Driver(new_saga(lines=[("SKU-1", 3, 1000)]))
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create, short={1: 1}))
        report = d.one(ReportShortPick)
        assert report.shortages[0].quantity == 1
        first_book = d.one(BookShipment)
        d.feed(ShortPickRecorded(order_id=report.order_id, request_id=report.request_id,
                                 warehouse_id=report.warehouse_id, written_off=report.shortages))  # fmt: skip
        resource = d.one(ReserveStock)
        assert resource.exclude_warehouses == ("WH-A",)
        assert resource.lines[0].quantity == 1
        d.feed(reserved(resource, split={1: [("WH-B", 1)]}))
        second = d.one(CreateFulfillment)
        assert second.warehouse_id == "WH-B"
        d.feed(booked(first_book))
        d.feed(dispatched(first_book))
        d.feed(committed(d.one(CommitStock)))
        d.feed(scan(first_book, "delivered"))
        ship_one(d, second)
        assert d.saga.phase == "completed"
        assert not d.commands(IssueRefund)

    def test_short_pick_not_available_elsewhere_is_refunded(self) -> None:
        d = Driver(new_saga(lines=[("SKU-1", 3, 1000)]))
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create, short={1: 1}))
        report = d.one(ReportShortPick)
        book = d.one(BookShipment)
        d.feed(ShortPickRecorded(order_id=report.order_id, request_id=report.request_id,
                                 warehouse_id=report.warehouse_id, written_off=report.shortages))  # fmt: skip
        d.feed(failed(d.one(ReserveStock)))
        d.feed(booked(book))
        d.feed(dispatched(book))
        d.feed(committed(d.one(CommitStock)))
        d.feed(scan(book, "delivered"))
        refund = d.one(IssueRefund)
        assert refund.amount == 1000
        d.feed(refunded(refund))
        assert d.saga.phase == "completed"

    def test_no_carrier_compensates_the_fulfillment_and_refunds(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(ShipmentBookingFailed(order_id=book.order_id, request_id=book.request_id, shipment_id=book.shipment_id,
                                     reason="all carriers refused", carriers_tried=("a", "b")))  # fmt: skip
        assert "shipment_failed" in d.statuses()
        cancel = d.one(CancelFulfillment)
        d.feed(FulfillmentCancelled(order_id=cancel.order_id, request_id=cancel.request_id,
                                    fulfillment_id=cancel.fulfillment_id))  # fmt: skip
        release = d.one(ReleaseStock)
        d.feed(released(release, (Allocation(warehouse_id="WH-A", line_no=1, sku="SKU-1", quantity=2),)))
        refund = d.one(IssueRefund)
        assert refund.amount == d.saga.amount_paid
        d.feed(refunded(refund))
        assert d.saga.phase == "cancelled"
        assert d.saga.reserved == []


class TestDuplicatesStaleAndTimeouts:
    """Duplicate and stale replies change nothing; timeouts re-send, then compensate or park."""

    def test_duplicate_reply_is_ignored(self) -> None:
        d = Driver(new_saga())
        reply = reserved(d.one(ReserveStock))
        d.feed(reply)
        before = d.saga
        again = d.feed(reply)
        assert again.saga == before
        assert not again.commands
        assert not again.statuses

    def test_stale_reply_is_ignored(self) -> None:
        d = Driver(new_saga())
        stale = reserved(d.one(ReserveStock)).model_copy(update={"request_id": "reserve-999"})
        out = d.feed(stale)
        assert out.saga == d.outcomes[0].saga
        assert not out.commands

    def test_timeout_resends_the_same_message_then_rejects(self) -> None:
        d = Driver(new_saga())
        first = d.last.commands[0]
        for _ in range(TIMING.max_attempts - 1):
            out = d.feed(Timeout(), after=timedelta(minutes=10))
            assert [c.message_id for c in out.commands] == [first.message_id]
        out = d.feed(Timeout(), after=timedelta(minutes=10))
        assert d.saga.phase == "rejected"
        kinds = sorted(type(c.payload).__name__ for c in out.commands)
        assert kinds == ["IssueRefund", "ReleaseStock"], "maybe reserved: release, then refund"

    def test_timeout_before_deadline_does_nothing(self) -> None:
        d = Driver(new_saga())
        out = d.feed(Timeout(), after=timedelta(seconds=1))
        assert not out.commands
        assert out.saga == d.outcomes[0].saga

    def test_unanswered_compensation_parks_the_saga_and_keeps_retrying(self) -> None:
        d = Driver(new_saga())
        d.feed(CancelRequested("x"))
        d.feed(reserved(d.one(ReserveStock, d.outcomes[0])))
        release = d.last.commands[0]
        for _ in range(TIMING.max_attempts):
            out = d.feed(Timeout(), after=timedelta(minutes=10))
        assert d.saga.stuck_reason is not None
        assert "stuck" in d.statuses()
        assert out.commands[0].message_id == release.message_id
        later = d.feed(Timeout(), after=TIMING.stuck_retry + timedelta(seconds=1))
        assert later.commands, "a parked saga still retries, slowly"
        d.feed(released(release.payload))  # type: ignore[arg-type]
        d.feed(refunded(d.one(IssueRefund)))
        assert d.saga.phase == "cancelled"

    def test_refund_refused_parks_the_saga(self) -> None:
        d = Driver(new_saga())
        d.feed(failed(d.one(ReserveStock)))
        refund = d.one(IssueRefund)
        d.feed(RefundRejected(order_id=refund.order_id, request_id=refund.request_id, refund_key=refund.refund_key,
                              reason="above paid"))  # fmt: skip
        assert d.saga.stuck_reason == "refund refused: above paid"

    def test_lost_parcel_parks_the_saga(self) -> None:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        d.feed(started(create))
        d.feed(packed(create))
        book = d.one(BookShipment)
        d.feed(booked(book))
        d.feed(dispatched(book))
        d.feed(committed(d.one(CommitStock)))
        d.feed(scan(book, "exception"))
        assert d.saga.stuck_reason is not None
        assert d.saga.phase == "fulfilling"
        assert d.statuses()[-2:] == ["delivery_exception", "stuck"]


def _every_stage() -> list[Driver]:
    """One driver parked at each stage of the journey."""
    stages: list[Driver] = []
    d = Driver(new_saga())
    stages.append(d)
    steps = ["reserved", "started", "packed", "booked", "dispatched", "delivered"]
    for step in steps:
        d = Driver(new_saga())
        d.feed(reserved(d.one(ReserveStock)))
        create = d.one(CreateFulfillment)
        if step != "reserved":
            d.feed(started(create))
        if step in ("packed", "booked", "dispatched", "delivered"):
            d.feed(packed(create))
            book = d.one(BookShipment)
            if step in ("booked", "dispatched", "delivered"):
                d.feed(booked(book))
            if step in ("dispatched", "delivered"):
                d.feed(dispatched(book))
            if step == "delivered":
                d.feed(committed(d.one(CommitStock)))
                d.feed(scan(book, "delivered"))
        stages.append(d)
    for policy in ("reject", "backorder"):
        d = Driver(new_saga(policy))
        d.feed(failed(d.one(ReserveStock)))
        stages.append(d)
    d = Driver(new_saga())
    d.feed(CancelRequested("x"))
    stages.append(d)
    return stages


def _bogus_inputs(order_id: str) -> list[object]:
    """Every input type, answering requests the saga never made."""
    kit = Driver(new_saga())
    reserve = kit.one(ReserveStock).model_copy(update={"order_id": order_id, "request_id": "nope-1"})
    create = CreateFulfillment(order_id=order_id, request_id="nope-2", fulfillment_id="nope", warehouse_id="WH-Z",
                               lines=(LineQuantity(line_no=1, sku="SKU-1", quantity=1),))  # fmt: skip
    return [
        reserved(reserve), failed(reserve), started(create), packed(create), packed(create, short={1: 1}),
        booked(BookShipment(order_id=order_id, request_id="nope-3", shipment_id="nope", warehouse_id="WH-Z",
                            origin={"lat": 0, "lon": 0}, destination={"lat": 0, "lon": 0},
                            shipping_method="standard", packages=packed(create).packages)),
        ShipmentBookingFailed(order_id=order_id, request_id="nope-4", shipment_id="nope", reason="x"),
        ShipmentCancelled(order_id=order_id, request_id="nope-5", shipment_id="nope"),
        ShipmentCancelRefused(order_id=order_id, request_id="nope-6", shipment_id="nope", reason="x"),
        FulfillmentCancelled(order_id=order_id, request_id="nope-7", fulfillment_id="nope"),
        ShortPickRecorded(order_id=order_id, request_id="nope-8", warehouse_id="WH-Z", written_off=()),
        RefundRejected(order_id=order_id, request_id="nope-9", refund_key="k", reason="x"),
        Timeout(),
    ]  # fmt: skip


class TestEveryStageAndInput:
    """Any input at any stage: never an error, never a refund above what was paid, terminal stays terminal."""

    @pytest.mark.parametrize("stage", range(10))
    def test_unsolicited_inputs_change_nothing_harmful(self, stage: int) -> None:
        d = _every_stage()[stage]
        for event in _bogus_inputs(d.saga.order_id):
            before = d.saga
            out = decide(before, event, d.now + timedelta(seconds=1), TIMING)  # type: ignore[arg-type]
            assert out.saga.refunded <= out.saga.amount_paid
            if before.phase in TERMINAL:
                assert out.saga.phase == before.phase
            if not isinstance(event, Timeout):
                assert out.saga.pending.keys() == before.pending.keys() or not before.pending
                assert not [c for c in out.commands if isinstance(c.payload, IssueRefund)]

    @pytest.mark.parametrize("stage", range(10))
    def test_cancel_at_every_stage_ends_cancelled_or_refused(self, stage: int) -> None:
        d = _every_stage()[stage]
        out = d.feed(CancelRequested("customer"))
        statuses = [s.status for s in out.statuses]
        if d.saga.phase == "cancelling":
            assert statuses in (["cancelling"], [])
        else:
            assert statuses in (["cancel_refused"], []), statuses


class TestCopyOrHandOver:
    """decide leaves its input alone unless the caller hands the saga over."""

    def test_by_default_the_input_is_untouched(self) -> None:
        d = Driver(new_saga())
        before = saga_to_json(d.saga)
        out = decide(d.saga, reserved(d.one(ReserveStock)), d.now, TIMING)
        assert out.saga is not d.saga
        assert saga_to_json(d.saga) == before
        assert out.saga.phase != d.saga.phase

    def test_in_place_changes_the_given_saga_with_the_same_outcome(self) -> None:
        base = new_saga()
        copied, handed = Driver(base), Driver(base)
        event = reserved(copied.one(ReserveStock))
        expected = decide(copied.saga, event, copied.now, TIMING)
        out = decide(handed.saga, event, handed.now, TIMING, in_place=True)
        assert out.saga is handed.saga
        assert out.saga == expected.saga
        assert [c.message_id for c in out.commands] == [c.message_id for c in expected.commands]
        assert out.statuses == expected.statuses
