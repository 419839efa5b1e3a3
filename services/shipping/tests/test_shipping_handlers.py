"""Shipping's handlers against the real PostgreSQL: tables written and messages emitted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest

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
from oms_shared.errors import RetryableError
from oms_shared.outbox import OutgoingMessage
from oms_shared.runtime import Handler, MessageContext
from oms_shared.testing import envelope_of, handle, handle_batch, payloads, rolled_back
from oms_shipping import store
from oms_shipping.book import ShipmentBook, prepare
from oms_shipping.handlers import (
    on_book_shipment,
    on_cancel_shipment,
    on_carrier_booking_answered,
    on_carrier_scan,
    subscriptions,
)
from oms_shipping.rates import Carrier, ServiceLevel, WeightBand

PARIS = Coordinates(lat=48.8566, lon=2.3522)
VERSAILLES = Coordinates(lat=48.8049, lon=2.1204)  # local
MADRID = Coordinates(lat=40.4168, lon=-3.7038)  # international
NOON = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 3, 15, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(fresh_service_db: Any) -> AsyncIterator[asyncpg.Pool[Any]]:
    db: asyncpg.Pool[Any] = await fresh_service_db("shipping", "oms_shipping.migrations")
    yield db
    await db.close()


async def run(
    pool: asyncpg.Pool[Any], handler: Handler, payload: Contract, at: datetime = NOON
) -> list[OutgoingMessage]:
    """Handle ``payload`` as if it was sent at ``at``."""
    return await handle(pool, handler, payload, envelope=replace(envelope_of(payload), time=at))


def book(
    *weights: int,
    method: str = "standard",
    destination: Coordinates = VERSAILLES,
    shipment_id: str | None = None,
    order_id: str | None = None,
) -> BookShipment:
    packages = tuple(
        PackageSpec(package_id=f"P{n}", weight_grams=w, items=(LineQuantity(line_no=n, sku=f"SKU-{n}", quantity=2),))
        for n, w in enumerate(weights or (800,), start=1)
    )
    return BookShipment(
        order_id=order_id or f"O-{uuid.uuid4()}",
        request_id=str(uuid.uuid4()),
        shipment_id=shipment_id or f"S-{uuid.uuid4()}",
        warehouse_id="W1",
        origin=PARIS,
        destination=destination,
        shipping_method=method,
        packages=packages,
    )


def answer(
    request: CarrierBookingRequested, *, accepted: bool = True, tracking: str | None = None, reason: str = ""
) -> CarrierBookingAnswered:
    return CarrierBookingAnswered(
        order_id=request.order_id,
        shipment_id=request.shipment_id,
        booking_id=request.booking_id,
        carrier=request.carrier,
        accepted=accepted,
        tracking_number=(tracking or f"TRK-{uuid.uuid4().hex[:12]}") if accepted else None,
        reason=reason,
    )


def scan(booked: ShipmentBooked, kind: str, at: datetime = T0, detail: str = "") -> CarrierScan:
    return CarrierScan(
        order_id=booked.order_id,
        shipment_id=booked.shipment_id,
        carrier=booked.carrier,
        tracking_number=booked.tracking_number,
        scan=kind,
        at=at,
        detail=detail,
    )


def cancel(cmd: BookShipment | ShipmentBooked) -> CancelShipment:
    return CancelShipment(order_id=cmd.order_id, request_id=str(uuid.uuid4()), shipment_id=cmd.shipment_id)


def only(emitted: list[OutgoingMessage], model: type[Contract]) -> Any:
    """The one message emitted, of type ``model``."""
    assert [m.envelope.type for m in emitted] == [model.ce_type], [m.envelope.type for m in emitted]
    return payloads(emitted, model)[0]


async def requested(pool: asyncpg.Pool[Any], cmd: BookShipment, at: datetime = NOON) -> CarrierBookingRequested:
    return only(await run(pool, on_book_shipment, cmd, at), CarrierBookingRequested)  # type: ignore[no-any-return]


async def booked(pool: asyncpg.Pool[Any], cmd: BookShipment | None = None) -> ShipmentBooked:
    req = await requested(pool, cmd or book())
    return only(await run(pool, on_carrier_booking_answered, answer(req)), ShipmentBooked)  # type: ignore[no-any-return]


async def dispatched(pool: asyncpg.Pool[Any]) -> ShipmentBooked:
    done = await booked(pool)
    only(await run(pool, on_carrier_scan, scan(done, "picked_up")), ShipmentDispatched)
    return done


async def row(pool: asyncpg.Pool[Any], shipment_id: str) -> asyncpg.Record:
    record: asyncpg.Record | None = await pool.fetchrow("SELECT * FROM shipments WHERE shipment_id = $1", shipment_id)
    assert record is not None
    return record


async def attempts(pool: asyncpg.Pool[Any], shipment_id: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT booking_id, carrier, status, reason FROM booking_attempts WHERE shipment_id = $1 ORDER BY attempt",
        shipment_id,
    )
    return [tuple(r) for r in rows]


async def count(pool: asyncpg.Pool[Any], table: str, shipment_id: str) -> int:
    n: int = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE shipment_id = $1", shipment_id)  # noqa: S608
    return n


class TestBookShipment:
    """A booking opens the shipment and asks the cheapest eligible carrier, keyed by the order."""

    async def test_asks_the_cheapest_carrier(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(800, 1_200)
        emitted = await run(pool, on_book_shipment, cmd)
        assert [m.topic for m in emitted] == [topics.CARRIER_REQUESTS.name]
        assert emitted[0].envelope.key == cmd.order_id.encode()
        req = only(emitted, CarrierBookingRequested)
        assert (req.booking_id, req.carrier, req.service_level) == (f"{cmd.shipment_id}:1", "budgetpost", "standard")
        assert req.packages == cmd.packages
        assert (req.origin, req.destination, req.warehouse_id) == (PARIS, VERSAILLES, "W1")
        assert (req.quoted_cost_minor, req.currency, req.promised_ship_date) == (350 + 550, "EUR", date(2025, 3, 14))
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["carrier"], shipment["attempt"], shipment["zone"]) == (
            "booking",
            "budgetpost",
            1,
            "local",
        )
        assert (shipment["cost_minor"], shipment["request_id"], shipment["tracking_number"]) == (
            900,
            cmd.request_id,
            None,
        )
        assert await attempts(pool, cmd.shipment_id) == [(f"{cmd.shipment_id}:1", "budgetpost", "requested", None)]
        packages = await pool.fetch(
            "SELECT package_id, weight_grams, items FROM shipment_packages WHERE shipment_id = $1 ORDER BY seq",
            cmd.shipment_id,
        )
        assert [tuple(p) for p in packages] == [
            ("P1", 800, [{"line_no": 1, "sku": "SKU-1", "quantity": 2}]),
            ("P2", 1_200, [{"line_no": 2, "sku": "SKU-2", "quantity": 2}]),
        ]

    @pytest.mark.parametrize(
        ("method", "weights", "destination", "carrier"),
        [
            ("standard", (800,), MADRID, "parcelco"),
            ("express", (800,), VERSAILLES, "quickship"),
            ("express", (12_000,), VERSAILLES, "parcelco"),
        ],
    )
    async def test_choice_depends_on_method_weight_and_zone(
        self, pool: asyncpg.Pool[Any], method: str, weights: tuple[int, ...], destination: Coordinates, carrier: str
    ) -> None:
        req = await requested(pool, book(*weights, method=method, destination=destination))
        assert req.carrier == carrier
        assert req.service_level == method

    async def test_after_the_cut_off_ships_the_next_day(self, pool: asyncpg.Pool[Any]) -> None:
        req = await requested(pool, book(), datetime(2025, 3, 14, 16, 0, tzinfo=UTC))  # budgetpost: 16:00
        assert req.promised_ship_date == date(2025, 3, 15)
        assert (await row(pool, req.shipment_id))["promised_ship_date"] == date(2025, 3, 15)

    async def test_no_eligible_carrier_fails_at_once(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(35_000)
        failed = only(await run(pool, on_book_shipment, cmd), ShipmentBookingFailed)
        assert (failed.request_id, failed.carriers_tried) == (cmd.request_id, ())
        assert "no carrier offers standard" in failed.reason
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["carrier"], shipment["failure_reason"]) == ("failed", None, failed.reason)
        assert await attempts(pool, cmd.shipment_id) == []

    async def test_a_configured_rate_card_is_used(self, pool: asyncpg.Pool[Any]) -> None:
        level = ServiceLevel("standard", "EUR", time(20), (WeightBand(50_000, (100, 200, 300, 400)),))
        card = (Carrier("hauler", (level,)),)
        handler = subscriptions(card)[0].handlers[BookShipment]
        req = only(await run(pool, handler, book(40_000)), CarrierBookingRequested)
        assert (req.carrier, req.quoted_cost_minor) == ("hauler", 100)


class TestBookShipmentRepeated:
    """The same shipment id again creates nothing and answers with the current outcome."""

    async def test_while_pending_resends_the_same_booking(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        first = await requested(pool, cmd)
        again = only(await run(pool, on_book_shipment, cmd, NOON + timedelta(hours=6)), CarrierBookingRequested)
        assert again == first
        assert await attempts(pool, cmd.shipment_id) == [(first.booking_id, "budgetpost", "requested", None)]
        assert await count(pool, "shipment_packages", cmd.shipment_id) == 1

    async def test_after_booking_repeats_the_booked_reply(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        done = await booked(pool, cmd)
        retry = cmd.model_copy(update={"request_id": "retry-1"})
        again = only(await run(pool, on_book_shipment, retry), ShipmentBooked)
        assert again == done.model_copy(update={"request_id": "retry-1"})
        assert await count(pool, "labels", cmd.shipment_id) == 1
        assert len(await attempts(pool, cmd.shipment_id)) == 1

    async def test_after_dispatch_still_answers_booked(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        await run(pool, on_carrier_scan, scan(done, "picked_up"))
        cmd = book(shipment_id=done.shipment_id, order_id=done.order_id)
        again = only(await run(pool, on_book_shipment, cmd), ShipmentBooked)
        assert again.tracking_number == done.tracking_number
        assert (await row(pool, done.shipment_id))["status"] == "dispatched"

    async def test_after_failure_repeats_the_failure(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(35_000)
        first = only(await run(pool, on_book_shipment, cmd), ShipmentBookingFailed)
        assert only(await run(pool, on_book_shipment, cmd), ShipmentBookingFailed) == first

    async def test_a_different_payload_under_the_same_id_changes_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(800)
        await requested(pool, cmd)
        other = book(15_000, method="express", shipment_id=cmd.shipment_id, order_id=cmd.order_id)
        again = only(await run(pool, on_book_shipment, other), CarrierBookingRequested)
        assert (again.carrier, again.packages) == ("budgetpost", cmd.packages)
        assert (await row(pool, cmd.shipment_id))["method"] == "standard"


class TestCarrierAnswers:
    """Accepted books with a label; refused moves to the next carrier; none left fails; stale is ignored."""

    async def test_accepted_books_with_tracking_number_and_label(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(2_500)
        req = await requested(pool, cmd)
        emitted = await run(pool, on_carrier_booking_answered, answer(req, tracking="TRK-A1-" + cmd.shipment_id))
        assert [m.topic for m in emitted] == [topics.SHIPPING_REPLIES.name]
        assert emitted[0].envelope.key == cmd.order_id.encode()
        done = only(emitted, ShipmentBooked)
        assert done.model_dump() == {
            "order_id": cmd.order_id,
            "request_id": cmd.request_id,
            "shipment_id": cmd.shipment_id,
            "carrier": "budgetpost",
            "service_level": "standard",
            "tracking_number": "TRK-A1-" + cmd.shipment_id,
            "label_format": "ZPL",
            "cost_minor": 550,
            "currency": "EUR",
            "carriers_tried": ("budgetpost",),
            "promised_ship_date": date(2025, 3, 14),
        }
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["tracking_number"]) == ("booked", done.tracking_number)
        assert shipment["booked_at"] == NOON
        assert await attempts(pool, cmd.shipment_id) == [(req.booking_id, "budgetpost", "accepted", None)]
        label = await pool.fetchrow("SELECT * FROM labels WHERE shipment_id = $1", cmd.shipment_id)
        assert label is not None
        assert (label["format"], label["carrier"], label["tracking_number"]) == (
            "ZPL",
            "budgetpost",
            done.tracking_number,
        )
        for text in ("^XA", "BUDGETPOST", "STANDARD", done.tracking_number, "2.500 kg", "48.80490, 2.12040", "^XZ"):
            assert text in label["content"]

    async def test_refused_asks_the_next_cheapest_carrier(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        first = await requested(pool, cmd)
        emitted = await run(pool, on_carrier_booking_answered, answer(first, accepted=False, reason="no capacity"))
        second = only(emitted, CarrierBookingRequested)
        assert (second.booking_id, second.carrier, second.quoted_cost_minor) == (
            f"{cmd.shipment_id}:2",
            "parcelco",
            450,
        )
        assert await attempts(pool, cmd.shipment_id) == [
            (first.booking_id, "budgetpost", "rejected", "no capacity"),
            (second.booking_id, "parcelco", "requested", None),
        ]
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["carrier"], shipment["attempt"], shipment["booking_id"]) == (
            "booking",
            "parcelco",
            2,
            second.booking_id,
        )
        done = only(await run(pool, on_carrier_booking_answered, answer(second)), ShipmentBooked)
        assert (done.carrier, done.cost_minor, done.carriers_tried) == ("parcelco", 450, ("budgetpost", "parcelco"))
        assert (await row(pool, cmd.shipment_id))["status"] == "booked"

    async def test_every_carrier_refusing_fails_the_booking(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        first = await requested(pool, cmd)
        second = only(
            await run(pool, on_carrier_booking_answered, answer(first, accepted=False)), CarrierBookingRequested
        )
        emitted = await run(pool, on_carrier_booking_answered, answer(second, accepted=False, reason="strike"))
        failed = only(emitted, ShipmentBookingFailed)
        assert (failed.request_id, failed.carriers_tried) == (cmd.request_id, ("budgetpost", "parcelco"))
        assert failed.reason == "every eligible carrier refused the booking (last: parcelco: strike)"
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["failure_reason"]) == ("failed", failed.reason)
        assert [a[2] for a in await attempts(pool, cmd.shipment_id)] == ["rejected", "rejected"]
        assert only(await run(pool, on_book_shipment, cmd), ShipmentBookingFailed) == failed

    async def test_an_answer_to_an_earlier_attempt_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        first = await requested(pool, cmd)
        await run(pool, on_carrier_booking_answered, answer(first, accepted=False))
        before = await row(pool, cmd.shipment_id)
        assert await run(pool, on_carrier_booking_answered, answer(first)) == []
        assert await run(pool, on_carrier_booking_answered, answer(first, accepted=False)) == []
        assert await row(pool, cmd.shipment_id) == before
        assert len(await attempts(pool, cmd.shipment_id)) == 2

    async def test_a_repeated_acceptance_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        req = await requested(pool, book())
        ok = answer(req)
        only(await run(pool, on_carrier_booking_answered, ok), ShipmentBooked)
        assert await run(pool, on_carrier_booking_answered, ok) == []
        assert await count(pool, "labels", req.shipment_id) == 1

    async def test_an_answer_from_another_carrier_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        req = await requested(pool, book())
        assert (
            await run(pool, on_carrier_booking_answered, answer(req).model_copy(update={"carrier": "quickship"})) == []
        )
        assert (await row(pool, req.shipment_id))["status"] == "booking"

    async def test_an_answer_after_cancellation_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        req = await requested(pool, cmd)
        await run(pool, on_cancel_shipment, cancel(cmd))
        assert await run(pool, on_carrier_booking_answered, answer(req)) == []
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["tracking_number"]) == ("cancelled", None)
        assert await count(pool, "labels", cmd.shipment_id) == 0

    async def test_an_answer_for_an_unknown_shipment_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        ghost = CarrierBookingAnswered(
            order_id="O-ghost", shipment_id=f"S-{uuid.uuid4()}", booking_id="x:1", carrier="parcelco", accepted=True
        )
        assert await run(pool, on_carrier_booking_answered, ghost) == []

    async def test_a_tracking_number_of_another_shipment_is_voided(self, pool: asyncpg.Pool[Any]) -> None:
        other = await booked(pool)
        cmd = book()
        first = await requested(pool, cmd)
        emitted = await run(pool, on_carrier_booking_answered, answer(first, tracking=other.tracking_number))
        void = only([m for m in emitted if m.envelope.type == CarrierBookingCancelled.ce_type], CarrierBookingCancelled)
        assert (void.booking_id, void.carrier) == (first.booking_id, "budgetpost")
        second = payloads(emitted, CarrierBookingRequested)
        assert [r.carrier for r in second] == ["parcelco"]
        status, reason = (await attempts(pool, cmd.shipment_id))[0][2:]
        assert status == "cancelled"
        assert "already belongs to another shipment" in reason

    async def test_accepted_without_tracking_number_moves_on(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        first = await requested(pool, cmd)
        nothing = answer(first).model_copy(update={"tracking_number": None})
        emitted = await run(pool, on_carrier_booking_answered, nothing)
        assert [m.envelope.type for m in emitted] == [CarrierBookingCancelled.ce_type, CarrierBookingRequested.ce_type]
        assert (await row(pool, cmd.shipment_id))["carrier"] == "parcelco"


class TestScans:
    """Scans are stored once each; the pick-up dispatches once; later statuses are reported once each."""

    async def test_pick_up_dispatches_once(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        emitted = await run(pool, on_carrier_scan, scan(done, "picked_up"))
        assert [m.topic for m in emitted] == [topics.SHIPPING_REPLIES.name]
        assert emitted[0].envelope.key == done.order_id.encode()
        assert only(emitted, ShipmentDispatched).model_dump() == {
            "order_id": done.order_id,
            "shipment_id": done.shipment_id,
            "warehouse_id": "W1",
            "carrier": "budgetpost",
            "tracking_number": done.tracking_number,
            "at": T0,
        }
        shipment = await row(pool, done.shipment_id)
        assert (shipment["status"], shipment["dispatched_at"]) == ("dispatched", T0)
        assert await run(pool, on_carrier_scan, scan(done, "picked_up")) == []
        assert await run(pool, on_carrier_scan, scan(done, "picked_up", T0 + timedelta(minutes=5))) == []
        assert await count(pool, "tracking_events", done.shipment_id) == 2  # identical scan stored once

    async def test_the_journey_is_reported_once_per_status(self, pool: asyncpg.Pool[Any]) -> None:
        done = await dispatched(pool)
        journey = ["in_transit", "in_transit", "exception", "out_for_delivery", "exception", "delivered", "delivered"]
        reported = []
        for n, kind in enumerate(journey, start=1):
            emitted = await run(pool, on_carrier_scan, scan(done, kind, T0 + timedelta(hours=n), detail=f"hub {n}"))
            reported += [(p.status, p.at, p.detail) for p in payloads(emitted, ShipmentStatusChanged)]
            assert len(emitted) == len(payloads(emitted, ShipmentStatusChanged))
        assert reported == [
            ("in_transit", T0 + timedelta(hours=1), "hub 1"),
            ("exception", T0 + timedelta(hours=3), "hub 3"),
            ("out_for_delivery", T0 + timedelta(hours=4), "hub 4"),
            ("delivered", T0 + timedelta(hours=6), "hub 6"),
        ]
        shipment = await row(pool, done.shipment_id)
        assert (shipment["status"], shipment["delivered_at"]) == ("delivered", T0 + timedelta(hours=6))
        assert sorted(shipment["reported"]) == ["delivered", "exception", "in_transit", "out_for_delivery"]
        assert await count(pool, "tracking_events", done.shipment_id) == 1 + len(journey)

    async def test_a_missed_pick_up_is_implied_by_in_transit(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        emitted = await run(pool, on_carrier_scan, scan(done, "in_transit"))
        assert [m.envelope.type for m in emitted] == [ShipmentDispatched.ce_type, ShipmentStatusChanged.ce_type]
        assert (await row(pool, done.shipment_id))["status"] == "dispatched"
        assert await run(pool, on_carrier_scan, scan(done, "picked_up", T0 - timedelta(hours=1))) == []

    async def test_an_exception_before_pick_up_is_only_recorded(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        assert await run(pool, on_carrier_scan, scan(done, "exception", detail="nobody at the dock")) == []
        assert (await row(pool, done.shipment_id))["status"] == "booked"
        assert await count(pool, "tracking_events", done.shipment_id) == 1

    async def test_scans_of_a_cancelled_shipment_are_only_recorded(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        await run(pool, on_cancel_shipment, cancel(done))
        assert await run(pool, on_carrier_scan, scan(done, "picked_up")) == []
        assert (await row(pool, done.shipment_id))["status"] == "cancelled"
        assert await count(pool, "tracking_events", done.shipment_id) == 1

    async def test_scans_of_an_unknown_shipment_are_only_recorded(self, pool: asyncpg.Pool[Any]) -> None:
        ghost = CarrierScan(
            order_id="O-ghost",
            shipment_id=f"S-{uuid.uuid4()}",
            carrier="parcelco",
            tracking_number="T",
            scan="picked_up",
            at=T0,
        )
        assert await run(pool, on_carrier_scan, ghost) == []
        assert await count(pool, "tracking_events", ghost.shipment_id) == 1
        assert await count(pool, "shipments", ghost.shipment_id) == 0

    async def test_a_scan_with_another_tracking_number_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        assert (
            await run(pool, on_carrier_scan, scan(done, "picked_up").model_copy(update={"tracking_number": "OTHER"}))
            == []
        )
        assert (await row(pool, done.shipment_id))["status"] == "booked"


class TestScansInOneBatch:
    """A batch's scans share one load and one write per shipment, with the same outcome as one by one."""

    async def test_a_whole_journey_in_one_batch(self, pool: asyncpg.Pool[Any]) -> None:
        done, other = await booked(pool), await booked(pool)
        hours = [("picked_up", 0), ("picked_up", 0), ("in_transit", 1), ("out_for_delivery", 2), ("delivered", 4)]
        batch = [(on_carrier_scan, scan(done, kind, T0 + timedelta(hours=h))) for kind, h in hours]
        batch.insert(2, (on_carrier_scan, scan(other, "in_transit", T0)))
        emitted = await handle_batch(pool, batch, prepare=prepare)
        mine = [m for m in emitted if m.envelope.key == done.order_id.encode()]
        assert [m.envelope.type for m in mine] == [ShipmentDispatched.ce_type] + [ShipmentStatusChanged.ce_type] * 3
        assert [p.status for p in payloads(mine, ShipmentStatusChanged)] == ["in_transit", "out_for_delivery",
                                                                              "delivered"]  # fmt: skip
        shipment = await row(pool, done.shipment_id)
        assert (shipment["status"], shipment["dispatched_at"], shipment["delivered_at"]) == (
            "delivered", T0, T0 + timedelta(hours=4),
        )  # fmt: skip
        assert sorted(shipment["reported"]) == ["delivered", "in_transit", "out_for_delivery"]
        assert await count(pool, "tracking_events", done.shipment_id) == 4  # the repeated pick-up is one row
        assert (await row(pool, other.shipment_id))["status"] == "dispatched"

    async def test_a_cancel_after_a_pick_up_in_the_same_batch_sees_it(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        batch: list[tuple[Handler, Contract]] = [
            (on_carrier_scan, scan(done, "picked_up")),
            (on_cancel_shipment, cancel(done)),
            (on_carrier_scan, scan(done, "in_transit", T0 + timedelta(hours=1))),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        assert [m.envelope.type for m in emitted] == [
            ShipmentDispatched.ce_type, ShipmentCancelRefused.ce_type, ShipmentStatusChanged.ce_type,
        ]  # fmt: skip
        assert (await row(pool, done.shipment_id))["status"] == "dispatched"
        assert await count(pool, "tracking_events", done.shipment_id) == 2

    async def test_a_booking_of_another_parcel_between_scans_keeps_them(self, pool: asyncpg.Pool[Any]) -> None:
        """Bookings and answers of other parcels do not make the book write early; nothing is lost."""
        done, other = await booked(pool), book()
        req = await requested(pool, other)
        batch: list[tuple[Handler, Contract]] = [
            (on_carrier_scan, scan(done, "picked_up")),
            (on_book_shipment, book()),
            (on_carrier_booking_answered, answer(req)),
            (on_carrier_scan, scan(done, "in_transit", T0 + timedelta(hours=1))),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        mine = [m.envelope.type for m in emitted if m.envelope.key == done.order_id.encode()]
        assert mine == [ShipmentDispatched.ce_type, ShipmentStatusChanged.ce_type]
        shipment = await row(pool, done.shipment_id)
        assert (shipment["status"], list(shipment["reported"])) == ("dispatched", ["in_transit"])
        assert await count(pool, "tracking_events", done.shipment_id) == 2
        assert (await row(pool, other.shipment_id))["status"] == "booked"

    async def test_an_answer_and_the_first_scans_in_one_batch(self, pool: asyncpg.Pool[Any]) -> None:
        """A fast carrier: the acceptance and the pick-up of a parcel arrive together; both take effect."""
        cmd = book()
        req = await requested(pool, cmd)
        accepted = answer(req)
        ticket = ShipmentBooked(
            order_id=cmd.order_id, request_id=cmd.request_id, shipment_id=cmd.shipment_id, carrier=req.carrier,
            service_level=req.service_level, tracking_number=accepted.tracking_number or "", label_format="ZPL",
            cost_minor=req.quoted_cost_minor, currency=req.currency, carriers_tried=(req.carrier,),
            promised_ship_date=req.promised_ship_date,
        )  # fmt: skip
        batch: list[tuple[Handler, Contract]] = [
            (on_carrier_booking_answered, accepted),
            (on_carrier_scan, scan(ticket, "picked_up")),
            (on_carrier_scan, scan(ticket, "in_transit", T0 + timedelta(hours=1))),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        assert [m.envelope.type for m in emitted] == [
            ShipmentBooked.ce_type, ShipmentDispatched.ce_type, ShipmentStatusChanged.ce_type,
        ]  # fmt: skip
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["tracking_number"], shipment["dispatched_at"]) == (
            "dispatched", accepted.tracking_number, T0,
        )  # fmt: skip
        assert await attempts(pool, cmd.shipment_id) == [(req.booking_id, "budgetpost", "accepted", None)]
        assert await count(pool, "labels", cmd.shipment_id) == 1

    async def test_a_refusal_and_the_next_answer_in_one_batch(self, pool: asyncpg.Pool[Any]) -> None:
        """Two answers for one parcel in a batch: the first is written before the second is taken."""
        cmd = book()
        first = await requested(pool, cmd)
        second_id = f"{cmd.shipment_id}:2"
        retry = CarrierBookingRequested.model_validate(first.model_dump() | {"booking_id": second_id})
        retry = retry.model_copy(update={"carrier": "parcelco"})
        batch: list[tuple[Handler, Contract]] = [
            (on_carrier_booking_answered, answer(first, accepted=False, reason="no capacity")),
            (on_carrier_booking_answered, answer(retry)),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        assert [m.envelope.type for m in emitted] == [CarrierBookingRequested.ce_type, ShipmentBooked.ce_type]
        assert await attempts(pool, cmd.shipment_id) == [
            (first.booking_id, "budgetpost", "rejected", "no capacity"),
            (second_id, "parcelco", "accepted", None),
        ]
        assert (await row(pool, cmd.shipment_id))["status"] == "booked"

    async def test_a_tracking_number_taken_earlier_in_the_batch_is_refused(self, pool: asyncpg.Pool[Any]) -> None:
        """Two parcels answered with the same tracking number in one batch: the second cannot book with it."""
        one, two = book(), book()
        req_one, req_two = await requested(pool, one), await requested(pool, two)
        number = f"TRK-{uuid.uuid4().hex[:12]}"
        batch: list[tuple[Handler, Contract]] = [
            (on_carrier_booking_answered, answer(req_one, tracking=number)),
            (on_carrier_booking_answered, answer(req_two, tracking=number)),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        assert (await row(pool, one.shipment_id))["tracking_number"] == number
        assert (await row(pool, two.shipment_id))["tracking_number"] != number
        assert len(payloads(emitted, ShipmentBooked)) == 1

    async def test_a_booking_twice_in_one_batch_opens_one_shipment(self, pool: asyncpg.Pool[Any]) -> None:
        """The repeat is answered from the book: the pending request is sent again, nothing inserted twice."""
        cmd = book()
        emitted = await handle_batch(pool, [(on_book_shipment, cmd), (on_book_shipment, cmd)], prepare=prepare)
        first, again = payloads(emitted, CarrierBookingRequested)
        assert first == again
        assert await count(pool, "shipments", cmd.shipment_id) == 1
        assert len(await attempts(pool, cmd.shipment_id)) == 1

    async def test_a_shipment_opened_concurrently_retries_the_batch(self, pool: asyncpg.Pool[Any]) -> None:
        """Another transaction opened the id after the book looked: the insert falls short and the batch retries."""
        cmd = book()
        async with rolled_back(pool) as uow:
            await on_book_shipment(cmd, MessageContext(envelope_of(cmd), uow))
            await run(pool, on_book_shipment, cmd)  # commits first, on another connection
            with pytest.raises(RetryableError, match="opened concurrently"):
                await ShipmentBook.of(uow).flush()
        assert await count(pool, "shipments", cmd.shipment_id) == 1

    async def test_a_cancel_before_the_pick_up_in_the_same_batch_wins(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        batch: list[tuple[Handler, Contract]] = [
            (on_cancel_shipment, cancel(done)),
            (on_carrier_scan, scan(done, "picked_up")),
        ]
        emitted = await handle_batch(pool, batch, prepare=prepare)
        assert ShipmentDispatched.ce_type not in [m.envelope.type for m in emitted]
        assert (await row(pool, done.shipment_id))["status"] == "cancelled"


class TestCancelShipment:
    """Before the hand-over a cancel voids the booking; after it, it is refused; every cancel is idempotent."""

    async def test_while_booking_voids_the_request(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        req = await requested(pool, cmd)
        stop = cancel(cmd)
        emitted = await run(pool, on_cancel_shipment, stop)
        assert [(m.topic, m.envelope.type) for m in emitted] == [
            (topics.CARRIER_REQUESTS.name, CarrierBookingCancelled.ce_type),
            (topics.SHIPPING_REPLIES.name, ShipmentCancelled.ce_type),
        ]
        assert all(m.envelope.key == cmd.order_id.encode() for m in emitted)
        void = payloads(emitted, CarrierBookingCancelled)[0]
        assert (void.booking_id, void.carrier) == (req.booking_id, "budgetpost")
        assert payloads(emitted, ShipmentCancelled)[0].request_id == stop.request_id
        assert (await row(pool, cmd.shipment_id))["status"] == "cancelled"
        assert (await attempts(pool, cmd.shipment_id))[0][2] == "cancelled"

    async def test_when_booked_voids_booking_and_label(self, pool: asyncpg.Pool[Any]) -> None:
        done = await booked(pool)
        emitted = await run(pool, on_cancel_shipment, cancel(done), T0)
        assert [m.envelope.type for m in emitted] == [CarrierBookingCancelled.ce_type, ShipmentCancelled.ce_type]
        shipment = await row(pool, done.shipment_id)
        assert (shipment["status"], shipment["cancelled_at"]) == ("cancelled", T0)
        assert await pool.fetchval("SELECT voided_at FROM labels WHERE shipment_id = $1", done.shipment_id) == T0

    async def test_when_failed_has_no_booking_to_void(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book(35_000)
        await run(pool, on_book_shipment, cmd)
        only(await run(pool, on_cancel_shipment, cancel(cmd)), ShipmentCancelled)
        assert (await row(pool, cmd.shipment_id))["status"] == "cancelled"

    async def test_twice_replies_twice_and_voids_once(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        await requested(pool, cmd)
        stop = cancel(cmd)
        await run(pool, on_cancel_shipment, stop)
        again = only(await run(pool, on_cancel_shipment, stop), ShipmentCancelled)
        assert again.request_id == stop.request_id
        assert only(await run(pool, on_book_shipment, cmd), ShipmentCancelled).request_id == cmd.request_id

    async def test_after_dispatch_is_refused(self, pool: asyncpg.Pool[Any]) -> None:
        done = await dispatched(pool)
        stop = cancel(done)
        for _ in range(2):
            refused = only(await run(pool, on_cancel_shipment, stop), ShipmentCancelRefused)
            assert (refused.request_id, refused.reason) == (stop.request_id, "parcel already handed to the carrier")
        assert (await row(pool, done.shipment_id))["status"] == "dispatched"
        assert await pool.fetchval("SELECT voided_at FROM labels WHERE shipment_id = $1", done.shipment_id) is None

    async def test_after_delivery_is_refused(self, pool: asyncpg.Pool[Any]) -> None:
        done = await dispatched(pool)
        await run(pool, on_carrier_scan, scan(done, "delivered", T0 + timedelta(days=1)))
        only(await run(pool, on_cancel_shipment, cancel(done)), ShipmentCancelRefused)

    async def test_unknown_leaves_a_tombstone_that_blocks_a_late_booking(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = book()
        stop = cancel(cmd)
        assert only(await run(pool, on_cancel_shipment, stop), ShipmentCancelled).shipment_id == cmd.shipment_id
        shipment = await row(pool, cmd.shipment_id)
        assert (shipment["status"], shipment["order_id"], shipment["request_id"]) == ("cancelled", cmd.order_id, None)
        late = only(await run(pool, on_book_shipment, cmd), ShipmentCancelled)
        assert late.request_id == cmd.request_id
        assert await attempts(pool, cmd.shipment_id) == []
        assert await count(pool, "shipment_packages", cmd.shipment_id) == 0
        only(await run(pool, on_cancel_shipment, stop), ShipmentCancelled)


class TestTrackingView:
    """The customer sees each shipment of the order with carrier, tracking number and scans in time order."""

    async def test_shipments_and_scans_in_time_order(self, pool: asyncpg.Pool[Any]) -> None:
        order_id = f"O-{uuid.uuid4()}"
        first = await booked(pool, book(order_id=order_id))
        second = await booked(pool, book(800, method="express", order_id=order_id))
        for kind, hours in [("delivered", 30), ("picked_up", 0), ("in_transit", 5)]:
            await run(pool, on_carrier_scan, scan(first, kind, T0 + timedelta(hours=hours), detail=kind))
        await run(pool, on_carrier_scan, scan(first, "exception").model_copy(update={"tracking_number": "NOT-OURS"}))
        await run(pool, on_cancel_shipment, cancel(book(order_id=order_id)))  # a tombstone: not shown
        async with pool.acquire() as conn:
            view = await store.tracking_view(conn, order_id)
        assert [(v.shipment_id, v.carrier, v.tracking_number) for v in view] == [
            (first.shipment_id, "budgetpost", first.tracking_number),
            (second.shipment_id, "quickship", second.tracking_number),
        ]
        # Scans arrived out of order: the late in_transit was stored, not reported after delivered.
        assert await pool.fetchval("SELECT reported FROM shipments WHERE shipment_id = $1", first.shipment_id) == [
            "delivered"
        ]
        assert [(s.scan, s.at, s.detail) for s in view[0].scans] == [
            ("picked_up", T0, "picked_up"),
            ("in_transit", T0 + timedelta(hours=5), "in_transit"),
            ("delivered", T0 + timedelta(hours=30), "delivered"),
        ]
        assert (view[0].status, view[1].status, view[1].scans) == ("delivered", "booked", ())
        assert view[1].service_level == "express"

    async def test_unknown_order_has_no_shipments(self, pool: asyncpg.Pool[Any]) -> None:
        async with pool.acquire() as conn:
            assert await store.tracking_view(conn, "O-nobody") == []


class TestSubscriptions:
    """The service listens to its commands and the carriers' events, with a handler for each message type."""

    def test_topics_and_types(self) -> None:
        subs = subscriptions()
        expected: list[tuple[topics.Topic, set[type[Contract]]]] = [
            (topics.SHIPPING_COMMANDS, {BookShipment, CancelShipment}),
            (topics.CARRIER_EVENTS, {CarrierBookingAnswered, CarrierScan}),
        ]
        assert [(s.topic, set(s.handlers)) for s in subs] == expected
        assert isinstance(subs[0].handlers[BookShipment], partial)
