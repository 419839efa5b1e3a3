"""The order service's handlers against the real PostgreSQL, several messages in one batch.

The runtime handles a batch in one transaction with the SagaBook (loads in bulk, writes
at the end): duplicates, conflicts and cancellations inside one batch must come out
exactly as they would one message at a time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from oms_order import book
from oms_order.handlers import CancelOrderMessage, Handlers, PlaceOrderMessage
from oms_order.saga import Timing
from oms_shared.contracts import Contract
from oms_shared.contracts.inventory import ReserveStock
from oms_shared.contracts.order import OrderStatusChanged, order_id_for
from oms_shared.runtime import Handler
from oms_shared.testing import handle_batch, payloads
from tests.intake_samples import valid_order


@pytest.fixture(scope="module")
async def pool(fresh_service_db: Any) -> AsyncIterator[asyncpg.Pool[Any]]:
    db: asyncpg.Pool[Any] = await fresh_service_db("order", "oms_order.migrations")
    yield db
    await db.close()


HANDLERS = Handlers(Timing())


def place(**overrides: Any) -> tuple[Handler, Contract]:
    return HANDLERS.on_place_order, PlaceOrderMessage(data=json.dumps(valid_order(**overrides)).encode())


def cancel(external_id: str) -> tuple[Handler, Contract]:
    body = {"channel": "web", "external_order_id": external_id, "reason": "changed my mind"}
    return HANDLERS.on_cancel_order, CancelOrderMessage(data=json.dumps(body).encode())


def timeline(emitted: list[Any], order_id: str) -> list[tuple[int, str, str | None]]:
    events = [e for e in payloads(emitted, OrderStatusChanged) if e.order_id == order_id]
    return [(e.seq, e.status, e.previous_status) for e in events]


async def test_duplicate_conflict_and_cancel_in_the_batch_of_the_order(pool: asyncpg.Pool[Any]) -> None:
    external_id = f"W-{uuid.uuid4().hex[:8]}"
    order_id = order_id_for("web", external_id)
    other = f"W-{uuid.uuid4().hex[:8]}"
    emitted = await handle_batch(
        pool,
        [
            place(external_order_id=external_id),
            place(external_order_id=other),
            place(external_order_id=external_id),  # a replay: nothing new
            place(external_order_id=external_id, shipping_method="express", shipping_fee=995,
                  payment={"amount_paid": 3995, "reference": "psp-1"}),  # same key, other content
            cancel(external_id),
        ],
        prepare=book.prepare,
    )  # fmt: skip
    assert timeline(emitted, order_id) == [
        (1, "received", None),
        (2, "accepted", "received"),
        (3, "conflict", "accepted"),
        (4, "cancelling", "conflict"),
    ]
    assert [(s, st) for s, st, _ in timeline(emitted, order_id_for("web", other))] == [(1, "received"),
                                                                                         (2, "accepted")]  # fmt: skip
    assert len([c for c in payloads(emitted, ReserveStock) if c.order_id == order_id]) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order_id) == 1
        assert await conn.fetchval("SELECT phase FROM sagas WHERE order_id = $1", order_id) != "reserving"
        kinds = await conn.fetch("SELECT kind FROM intake_rejections WHERE order_id = $1", order_id)
        assert [r["kind"] for r in kinds] == ["conflict"]
        seqs = await conn.fetch("SELECT seq FROM status_history WHERE order_id = $1 ORDER BY seq", order_id)
        assert [r["seq"] for r in seqs] == [1, 2, 3, 4]


async def test_a_replay_in_a_later_batch_is_a_duplicate(pool: asyncpg.Pool[Any]) -> None:
    external_id = f"W-{uuid.uuid4().hex[:8]}"
    await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
    again = await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
    assert again == []
