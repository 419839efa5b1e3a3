"""The warehouse simulator's handlers against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest

from oms_shared import topics
from oms_shared.contracts.fulfillment import (
    PickConfirmed,
    PickedLine,
    PickInstruction,
    PickListCancelled,
    PickListIssued,
)
from oms_shared.testing import handle, payloads
from oms_simulators.warehouse.domain import PickerPolicy
from oms_simulators.warehouse.handlers import handlers, on_pick_list_cancelled, on_pick_list_issued

Handler = Callable[..., Any]


@pytest.fixture(scope="module")
async def db(fresh_service_db: Any) -> asyncpg.Pool[Any]:
    pool: asyncpg.Pool[Any] = await fresh_service_db("simulators", "oms_simulators.migrations")
    return pool


@pytest.fixture
async def pool(db: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    await db.execute("TRUNCATE schedule, outbox")
    return db


def issued(warehouse_id: str = "wh-1") -> PickListIssued:
    return PickListIssued(
        order_id=f"ord-{uuid.uuid4().hex[:8]}",
        fulfillment_id="ff-1",
        warehouse_id=warehouse_id,
        pick_list_id=f"pl-{uuid.uuid4().hex[:8]}",
        picks=(
            PickInstruction(seq=1, bin="A-01", line_no=1, sku="SKU-A", quantity=2),
            PickInstruction(seq=2, bin="B-07", line_no=2, sku="SKU-B", quantity=1),
            PickInstruction(seq=3, bin="C-02", line_no=1, sku="SKU-A", quantity=1),
        ),
    )


def cancelled(pick_list: PickListIssued) -> PickListCancelled:
    return PickListCancelled(
        order_id=pick_list.order_id,
        fulfillment_id=pick_list.fulfillment_id,
        warehouse_id=pick_list.warehouse_id,
        pick_list_id=pick_list.pick_list_id,
    )


def issue(policy: PickerPolicy) -> Handler:
    return partial(on_pick_list_issued, policy=policy)


def cancel(policy: PickerPolicy) -> Handler:
    return partial(on_pick_list_cancelled, policy=policy)


async def schedule_rows(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM schedule ORDER BY id"))


FULL = (
    PickedLine(line_no=1, sku="SKU-A", requested=3, picked=3),
    PickedLine(line_no=2, sku="SKU-B", requested=1, picked=1),
)


class TestPickListIssued:
    """A pick list is confirmed in full after the pick delay, through the schedule."""

    async def test_a_delayed_confirmation_is_written_to_the_schedule_not_emitted(self, pool: asyncpg.Pool[Any]) -> None:
        pick_list = issued()
        before = datetime.now(UTC)
        emitted = await handle(pool, issue(PickerPolicy(pick_delay_s=0.2)), pick_list)
        assert emitted == []
        [row] = await schedule_rows(pool)
        assert (row["simulator"], row["tag"], row["step"], row["sent"]) == (
            "warehouse",
            pick_list.pick_list_id,
            "pick_confirmed",
            False,
        )
        assert (row["topic"], row["key"], row["ce_type"]) == (
            topics.WAREHOUSE_EVENTS.name,
            pick_list.order_id,
            PickConfirmed.ce_type,
        )
        assert before + timedelta(seconds=0.2) <= row["due_at"] <= datetime.now(UTC) + timedelta(seconds=0.2)
        assert PickConfirmed.model_validate(row["payload"]) == PickConfirmed(
            order_id=pick_list.order_id, fulfillment_id="ff-1", pick_list_id=pick_list.pick_list_id, lines=FULL
        )
        assert row["correlation_id"] == pick_list.order_id
        assert row["causation_id"]

    async def test_zero_delay_emits_the_confirmation_directly(self, pool: asyncpg.Pool[Any]) -> None:
        pick_list = issued()
        emitted = await handle(pool, issue(PickerPolicy(pick_delay_s=0)), pick_list)
        assert [(m.topic, m.envelope.key) for m in emitted] == [
            (topics.WAREHOUSE_EVENTS.name, pick_list.order_id.encode())
        ]
        [confirmed] = payloads(emitted, PickConfirmed)
        assert confirmed.lines == FULL
        assert await schedule_rows(pool) == []

    async def test_a_short_pick_reports_one_line_short(self, pool: asyncpg.Pool[Any]) -> None:
        emitted = await handle(pool, issue(PickerPolicy(pick_delay_s=0, short_pick_rate=1.0)), issued())
        [confirmed] = payloads(emitted, PickConfirmed)
        short = [line for line in confirmed.lines if line.picked < line.requested]
        assert len(short) == 1
        assert short[0].picked == short[0].requested - 1

    async def test_a_manual_warehouse_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        policy = PickerPolicy(pick_delay_s=0, manual_warehouses=frozenset({"wh-manual"}))
        assert await handle(pool, issue(policy), issued("wh-manual")) == []
        assert (
            await handle(pool, issue(PickerPolicy(manual_warehouses=policy.manual_warehouses)), issued("wh-manual"))
            == []
        )
        assert await schedule_rows(pool) == []

    async def test_the_same_pick_list_twice_is_scheduled_once(self, pool: asyncpg.Pool[Any]) -> None:
        pick_list = issued()
        await handle(pool, issue(PickerPolicy()), pick_list)
        await handle(pool, issue(PickerPolicy()), pick_list)
        assert len(await schedule_rows(pool)) == 1

    async def test_handlers_are_registered_for_both_task_messages(self) -> None:
        assert set(handlers(PickerPolicy())) == {PickListIssued, PickListCancelled}


class TestPickListCancelled:
    """A cancel before the confirmation was sent drops it; after, it changes nothing."""

    async def test_a_cancel_before_the_confirmation_was_sent_drops_it(self, pool: asyncpg.Pool[Any]) -> None:
        pick_list = issued()
        await handle(pool, issue(PickerPolicy()), pick_list)
        assert await handle(pool, cancel(PickerPolicy()), cancelled(pick_list)) == []
        assert await schedule_rows(pool) == []

    async def test_a_cancel_after_the_confirmation_was_sent_changes_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        pick_list = issued()
        await handle(pool, issue(PickerPolicy()), pick_list)
        await pool.execute("UPDATE schedule SET sent = true")
        await handle(pool, cancel(PickerPolicy()), cancelled(pick_list))
        assert [(r["step"], r["sent"]) for r in await schedule_rows(pool)] == [("pick_confirmed", True)]

    async def test_a_cancel_only_touches_its_own_pick_list(self, pool: asyncpg.Pool[Any]) -> None:
        kept, dropped = issued(), issued()
        await handle(pool, issue(PickerPolicy()), kept)
        await handle(pool, issue(PickerPolicy()), dropped)
        await handle(pool, cancel(PickerPolicy()), cancelled(dropped))
        assert [r["tag"] for r in await schedule_rows(pool)] == [kept.pick_list_id]
