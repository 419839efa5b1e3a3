"""The schedule: due rows move into the outbox once, in due order; cancels respect the guard."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson
import pytest

from oms_shared import topics
from oms_shared.contracts.fulfillment import PickConfirmed, PickedLine
from oms_shared.envelope import Envelope
from oms_shared.runtime import MessageContext
from oms_shared.service import Resources
from oms_shared.testing import handle
from oms_simulators.schedule import Planned, cancel_pending, emit_or_schedule, move_due, purge_sent, schedule_worker
from oms_simulators.warehouse.settings import WarehouseSimSettings
from tests.support import eventually

SOURCE = "oms/tests-sim"


@pytest.fixture(scope="module")
async def db(fresh_service_db: Any) -> asyncpg.Pool[Any]:
    pool: asyncpg.Pool[Any] = await fresh_service_db("simulators", "oms_simulators.migrations")
    return pool


@pytest.fixture
async def pool(db: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    await db.execute("TRUNCATE schedule, outbox")
    return db


def confirmed(pick_list_id: str) -> PickConfirmed:
    line = PickedLine(line_no=1, sku="SKU-A", requested=1, picked=1)
    return PickConfirmed(order_id="ord-1", fulfillment_id="ff-1", pick_list_id=pick_list_id, lines=(line,))


async def plan(
    pool: asyncpg.Pool[Any], simulator: str, tag: str, steps: Sequence[tuple[str, float]], *, now: datetime
) -> None:
    """Schedule ``steps`` (name, seconds after ``now``) as a handler would, for message ``tag``."""

    async def planner(msg: PickConfirmed, ctx: MessageContext) -> None:
        items = [Planned(step, after, topics.WAREHOUSE_EVENTS, msg.order_id, confirmed(step)) for step, after in steps]
        await emit_or_schedule(ctx, simulator, tag, items, now)

    await handle(pool, planner, confirmed(tag))


async def outbox(pool: asyncpg.Pool[Any]) -> list[tuple[str, bytes, dict[str, str], PickConfirmed]]:
    rows = await pool.fetch("SELECT topic, key, headers, payload FROM outbox_messages ORDER BY id, position")
    return [
        (r["topic"], r["key"], dict(orjson.loads(r["headers"])), PickConfirmed.model_validate_json(r["payload"]))
        for r in rows
    ]


async def sent_steps(pool: asyncpg.Pool[Any]) -> list[str]:
    return [r["step"] for r in await pool.fetch("SELECT step FROM schedule WHERE sent ORDER BY step")]


def past(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


class TestMoveDue:
    """A worker round moves its simulator's due rows into the outbox and marks them sent."""

    async def test_due_rows_become_outbox_messages_with_their_envelope(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "warehouse", "pl-1", [("due", 1)], now=past(10))
        assert await move_due(pool, "warehouse", SOURCE, 100) == 1
        [(topic, key, headers, payload)] = await outbox(pool)
        assert (topic, key, payload) == (topics.WAREHOUSE_EVENTS.name, b"ord-1", confirmed("due"))
        assert headers["ce_type"] == PickConfirmed.ce_type
        assert headers["ce_source"] == SOURCE
        assert headers["ce_correlationid"] == "ord-1"
        assert headers["ce_causationid"]
        assert Envelope.from_record([(k, v.encode()) for k, v in headers.items()], b"{}", None).id
        assert await sent_steps(pool) == ["due"]

    async def test_rows_not_yet_due_stay_pending(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "warehouse", "pl-1", [("due", 1), ("later", 3600)], now=past(10))
        assert await move_due(pool, "warehouse", SOURCE, 100) == 1
        assert [p.pick_list_id for *_, p in await outbox(pool)] == ["due"]
        assert await move_due(pool, "warehouse", SOURCE, 100) == 0

    async def test_a_simulator_moves_only_its_own_rows(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "carrier", "bk-1", [("carrier-step", 1)], now=past(10))
        assert await move_due(pool, "warehouse", SOURCE, 100) == 0
        assert await outbox(pool) == []
        assert await move_due(pool, "carrier", SOURCE, 100) == 1

    async def test_rows_are_sent_once_in_due_order_in_batches(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "warehouse", "pl-1", [("third", 3), ("first", 1), ("second", 2)], now=past(10))
        await plan(pool, "warehouse", "pl-2", [("fourth", 4)], now=past(10))
        assert await move_due(pool, "warehouse", SOURCE, 2) == 2
        assert await move_due(pool, "warehouse", SOURCE, 2) == 2
        assert await move_due(pool, "warehouse", SOURCE, 2) == 0
        assert [p.pick_list_id for *_, p in await outbox(pool)] == ["first", "second", "third", "fourth"]

    async def test_purge_deletes_only_rows_sent_long_ago(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "warehouse", "pl-1", [("old", 1), ("recent", 3590), ("pending", 3600 * 2)], now=past(3600))
        await move_due(pool, "warehouse", SOURCE, 100)
        async with pool.acquire() as conn:
            assert await purge_sent(conn, 60) == 1
        steps = await pool.fetch("SELECT step, sent FROM schedule ORDER BY step")
        assert [(r["step"], r["sent"]) for r in steps] == [("pending", False), ("recent", True)]


class TestWorker:
    """The background worker sends rows when they fall due and stops with the service."""

    async def test_the_worker_sends_a_row_when_it_falls_due_and_stops(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "warehouse", "pl-1", [("soon", 0.3)], now=datetime.now(UTC))
        stopping = asyncio.Event()
        resources = Resources(pool, cast(Any, None), WarehouseSimSettings(), stopping)
        worker = schedule_worker("warehouse", SOURCE, interval_s=0.02, batch_size=10, retention_s=60)
        task = asyncio.create_task(worker(resources))
        try:
            assert await outbox(pool) == []
            sent = await eventually(lambda: outbox(pool), timeout=5, interval=0.02, what="the scheduled row sent")
            assert [p.pick_list_id for *_, p in sent] == ["soon"]
        finally:
            stopping.set()
            await asyncio.wait_for(task, timeout=2)
        assert task.exception() is None
        assert worker.__name__ == "warehouse_schedule"


class TestCancelPending:
    """A cancel deletes pending steps only while the guard step is still unsent."""

    async def test_a_cancel_waits_for_a_guard_being_sent_and_then_changes_nothing(
        self, pool: asyncpg.Pool[Any]
    ) -> None:
        await plan(pool, "carrier", "bk-1", [("picked_up", 1), ("in_transit", 2)], now=past(10))
        async with pool.acquire() as sender:
            tx = sender.transaction()
            await tx.start()
            # The worker is sending the pickup right now (row locked, not yet committed).
            await sender.execute("UPDATE schedule SET sent = true WHERE step = 'picked_up'")

            async def cancel() -> list[str]:
                async with pool.acquire() as conn:
                    return await cancel_pending(
                        conn, "carrier", "bk-1", steps=["picked_up", "in_transit"], guard="picked_up"
                    )

            cancelling = asyncio.create_task(cancel())
            await asyncio.sleep(0.2)
            assert not cancelling.done()
            await tx.commit()
            assert await asyncio.wait_for(cancelling, timeout=5) == []
        pending = await pool.fetch("SELECT step FROM schedule WHERE NOT sent")
        assert [r["step"] for r in pending] == ["in_transit"]

    async def test_a_cancel_with_the_guard_pending_deletes_the_steps(self, pool: asyncpg.Pool[Any]) -> None:
        await plan(pool, "carrier", "bk-1", [("answer", 1), ("picked_up", 2), ("in_transit", 3)], now=past(10))
        async with pool.acquire() as conn:
            dropped = await cancel_pending(
                conn, "carrier", "bk-1", steps=["picked_up", "in_transit"], guard="picked_up"
            )
        assert sorted(dropped) == ["in_transit", "picked_up"]
        assert [r["step"] for r in await pool.fetch("SELECT step FROM schedule")] == ["answer"]
