"""The carrier simulator's handlers against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest

from oms_shared import topics
from oms_shared.contracts.common import Coordinates, LineQuantity, PackageSpec
from oms_shared.contracts.shipping import (
    CarrierBookingAnswered,
    CarrierBookingCancelled,
    CarrierBookingRequested,
    CarrierScan,
)
from oms_shared.envelope import derived_message_id
from oms_shared.outbox import UnitOfWork
from oms_shared.runtime import MessageContext
from oms_shared.testing import envelope_of, handle, payloads
from oms_simulators.carrier.domain import CarrierPolicy, tracking_number
from oms_simulators.carrier.handlers import handlers, on_booking_cancelled, on_booking_requested

Handler = Callable[..., Any]
SCANS = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
NOW = CarrierPolicy(booking_delay_s=0, pickup_delay_s=0, scan_interval_s=0)


@pytest.fixture(scope="module")
async def db(fresh_service_db: Any) -> asyncpg.Pool[Any]:
    pool: asyncpg.Pool[Any] = await fresh_service_db("simulators", "oms_simulators.migrations")
    return pool


@pytest.fixture
async def pool(db: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    await db.execute("TRUNCATE schedule, outbox")
    return db


def requested(carrier: str = "dhl", warehouse_id: str = "wh-1") -> CarrierBookingRequested:
    return CarrierBookingRequested(
        order_id=f"ord-{uuid.uuid4().hex[:8]}",
        shipment_id="sh-1",
        booking_id=f"bk-{uuid.uuid4().hex[:8]}",
        carrier=carrier,
        service_level="standard",
        warehouse_id=warehouse_id,
        origin=Coordinates(lat=52.5, lon=13.4),
        destination=Coordinates(lat=48.1, lon=11.6),
        packages=(
            PackageSpec(package_id="p-1", weight_grams=900, items=(LineQuantity(line_no=1, sku="SKU-A", quantity=1),)),
        ),
    )


def cancelled(booking: CarrierBookingRequested) -> CarrierBookingCancelled:
    return CarrierBookingCancelled(
        order_id=booking.order_id,
        shipment_id=booking.shipment_id,
        booking_id=booking.booking_id,
        carrier=booking.carrier,
    )


def book(policy: CarrierPolicy) -> Handler:
    return partial(on_booking_requested, policy=policy)


def cancel(policy: CarrierPolicy = NOW) -> Handler:
    return partial(on_booking_cancelled, policy=policy)


async def schedule_rows(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM schedule ORDER BY due_at, id"))


async def pending(pool: asyncpg.Pool[Any]) -> list[str]:
    return [r["step"] for r in await schedule_rows(pool) if not r["sent"]]


class TestBookingAccepted:
    """An accepted booking schedules the answer and the four scans at their delays."""

    async def test_the_answer_and_the_scans_are_scheduled_at_their_delays(self, pool: asyncpg.Pool[Any]) -> None:
        booking = requested()
        assert await handle(pool, book(CarrierPolicy()), booking) == []
        rows = await schedule_rows(pool)
        assert [r["step"] for r in rows] == ["answer", *SCANS]
        assert {(r["simulator"], r["tag"], r["topic"], r["key"]) for r in rows} == {
            ("carrier", booking.booking_id, topics.CARRIER_EVENTS.name, booking.order_id)
        }
        start = rows[0]["due_at"] - timedelta(seconds=0.1)
        assert [(r["due_at"] - start).total_seconds() for r in rows] == pytest.approx([0.1, 0.4, 0.6, 0.8, 1.0])
        answer = CarrierBookingAnswered.model_validate(rows[0]["payload"])
        assert answer.accepted
        assert answer.tracking_number == tracking_number("dhl", booking.booking_id)
        scans = [CarrierScan.model_validate(r["payload"]) for r in rows[1:]]
        assert [s.scan for s in scans] == SCANS
        assert [s.at for s in scans] == [r["due_at"] for r in rows[1:]]
        assert {(s.tracking_number, s.shipment_id, s.carrier) for s in scans} == {
            (answer.tracking_number, "sh-1", "dhl")
        }

    async def test_zero_delays_emit_the_answer_and_every_scan_directly(self, pool: asyncpg.Pool[Any]) -> None:
        booking = requested()
        emitted = await handle(pool, book(NOW), booking)
        assert {(m.topic, m.envelope.key) for m in emitted} == {(topics.CARRIER_EVENTS.name, booking.order_id.encode())}
        [answer] = payloads(emitted, CarrierBookingAnswered)
        assert answer.accepted
        assert [s.scan for s in payloads(emitted, CarrierScan)] == SCANS
        assert emitted[0].envelope.type == CarrierBookingAnswered.ce_type
        assert await schedule_rows(pool) == []

    async def test_an_immediate_answer_is_emitted_and_the_scans_still_scheduled(self, pool: asyncpg.Pool[Any]) -> None:
        emitted = await handle(pool, book(CarrierPolicy(booking_delay_s=0)), requested())
        assert [m.envelope.type for m in emitted] == [CarrierBookingAnswered.ce_type]
        assert await pending(pool) == SCANS

    async def test_a_lost_parcel_is_scheduled_with_an_exception_scan(self, pool: asyncpg.Pool[Any]) -> None:
        await handle(pool, book(CarrierPolicy(lost_parcel_rate=1.0)), requested())
        rows = await schedule_rows(pool)
        assert [r["step"] for r in rows] == ["answer", "picked_up", "in_transit", "exception"]
        assert CarrierScan.model_validate(rows[-1]["payload"]).detail == "parcel lost"

    async def test_the_same_booking_twice_is_planned_once(self, pool: asyncpg.Pool[Any]) -> None:
        booking = requested()
        await handle(pool, book(CarrierPolicy()), booking)
        await handle(pool, book(CarrierPolicy()), booking)
        assert len(await schedule_rows(pool)) == 5

    async def test_handlers_are_registered_for_both_request_messages(self) -> None:
        assert set(handlers(CarrierPolicy())) == {CarrierBookingRequested, CarrierBookingCancelled}


class TestBookingRejected:
    """A rejected booking gets an answer and no scans."""

    async def test_a_failing_carrier_rejects_without_scans(self, pool: asyncpg.Pool[Any]) -> None:
        await handle(pool, book(CarrierPolicy(failing_carriers=frozenset({"dhl"}))), requested("dhl"))
        [row] = await schedule_rows(pool)
        answer = CarrierBookingAnswered.model_validate(row["payload"])
        assert (answer.accepted, answer.tracking_number) == (False, None)
        assert answer.reason

    async def test_failure_rate_one_rejects_immediately_when_undelayed(self, pool: asyncpg.Pool[Any]) -> None:
        emitted = await handle(pool, book(CarrierPolicy(booking_delay_s=0, failure_rate=1.0)), requested())
        assert [a.accepted for a in payloads(emitted, CarrierBookingAnswered)] == [False]
        assert payloads(emitted, CarrierScan) == []
        assert await schedule_rows(pool) == []


class TestManualWarehouses:
    """Bookings from manual warehouses are left to the tests."""

    async def test_a_booking_from_a_manual_warehouse_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        policy = CarrierPolicy(manual_warehouses=frozenset({"wh-manual"}))
        assert await handle(pool, book(policy), requested(warehouse_id="wh-manual")) == []
        zero = CarrierPolicy(
            booking_delay_s=0, pickup_delay_s=0, scan_interval_s=0, manual_warehouses=frozenset({"wh-manual"})
        )
        assert await handle(pool, book(zero), requested(warehouse_id="wh-manual")) == []
        assert await schedule_rows(pool) == []


class TestBookingCancelled:
    """Before pickup a cancel drops the pending scans; after pickup it changes nothing."""

    async def test_a_cancel_before_the_answer_drops_the_scans_and_keeps_the_answer(
        self, pool: asyncpg.Pool[Any]
    ) -> None:
        booking = requested()
        await handle(pool, book(CarrierPolicy()), booking)
        assert await handle(pool, cancel(), cancelled(booking)) == []
        assert await pending(pool) == ["answer"]

    async def test_a_cancel_after_the_answer_before_pickup_drops_the_scans(self, pool: asyncpg.Pool[Any]) -> None:
        booking = requested()
        await handle(pool, book(CarrierPolicy()), booking)
        await pool.execute("UPDATE schedule SET sent = true WHERE step = 'answer'")
        await handle(pool, cancel(), cancelled(booking))
        assert [(r["step"], r["sent"]) for r in await schedule_rows(pool)] == [("answer", True)]

    async def test_a_cancel_after_pickup_changes_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        booking = requested()
        await handle(pool, book(CarrierPolicy()), booking)
        await pool.execute("UPDATE schedule SET sent = true WHERE step IN ('answer', 'picked_up')")
        await handle(pool, cancel(), cancelled(booking))
        assert await pending(pool) == ["in_transit", "out_for_delivery", "delivered"]

    async def test_a_cancel_only_touches_its_own_booking(self, pool: asyncpg.Pool[Any]) -> None:
        kept, dropped = requested(), requested()
        await handle(pool, book(CarrierPolicy()), kept)
        await handle(pool, book(CarrierPolicy()), dropped)
        await handle(pool, cancel(), cancelled(dropped))
        rows = await schedule_rows(pool)
        assert [r["step"] for r in rows if r["tag"] == kept.booking_id] == ["answer", *SCANS]
        assert [r["step"] for r in rows if r["tag"] == dropped.booking_id] == ["answer"]

    async def test_a_cancel_of_an_unknown_booking_does_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        assert await handle(pool, cancel(), cancelled(requested())) == []
        assert await schedule_rows(pool) == []


class TestStateless:
    """Without a database (the runtime's stateless mode): everything at once, ids derived, a cancel is nothing."""

    async def test_answer_and_scans_at_once_with_ids_derived_from_the_request(self) -> None:
        booking = requested()
        envelope = envelope_of(booking)
        uow = UnitOfWork(None, "oms/carrier-sim")
        await on_booking_requested(booking, MessageContext(envelope, uow), policy=NOW)
        types = [m.envelope.type for m in uow.pending]
        assert types == [CarrierBookingAnswered.ce_type] + [CarrierScan.ce_type] * 4
        assert [m.envelope.id for m in uow.pending] == [derived_message_id(envelope.id, i) for i in range(5)]
        assert {m.topic for m in uow.pending} == {topics.CARRIER_EVENTS.name}
        await on_booking_cancelled(cancelled(booking), MessageContext(envelope_of(cancelled(booking)), uow), policy=NOW)
        assert len(uow.pending) == 5, "the cancel sent nothing"

    async def test_a_delay_is_refused(self) -> None:
        booking = requested()
        uow = UnitOfWork(None, "oms/carrier-sim")
        with pytest.raises(RuntimeError, match="cannot delay"):
            await on_booking_requested(booking, MessageContext(envelope_of(booking), uow), policy=CarrierPolicy())
