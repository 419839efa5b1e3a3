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
import msgspec
import pytest
from order_saga_kit import reserved

from oms_order import book, store
from oms_order.handlers import CancelOrderMessage, Handlers, PlaceOrderMessage
from oms_order.saga import Timing
from oms_order.saga_state import Saga, saga_from_json
from oms_shared.contracts import Contract
from oms_shared.contracts.inventory import ReserveStock
from oms_shared.contracts.order import OrderStatusChanged, order_id_for
from oms_shared.outbox import CONFLICT_SQLSTATE, REPEAT_SQLSTATE
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


@pytest.mark.parametrize("one_statement", [False, True], ids=["transaction", "one-statement-with-cache"])
async def test_duplicate_conflict_and_cancel_in_the_batch_of_the_order(
    pool: asyncpg.Pool[Any], one_statement: bool
) -> None:
    """One statement with the cache, the new order is not read: the batch's own book still
    sees its repeat, its conflicting twin and its cancellation."""
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
        prepare=book.SagaCache(10).prepare if one_statement else book.prepare,
        one_statement=one_statement,
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


async def test_status_events_are_what_the_contract_model_would_write(pool: asyncpg.Pool[Any]) -> None:
    """The book writes status events without pydantic: byte for byte the model's own dump."""
    external_id = f"W-{uuid.uuid4().hex[:8]}"
    emitted = await handle_batch(pool, [place(external_order_id=external_id), cancel(external_id)],
                                 prepare=book.prepare)  # fmt: skip
    events = [m.envelope.data for m in emitted if m.envelope.type == OrderStatusChanged.ce_type]
    assert len(events) == 3  # received, accepted, cancelling (with details and reasons)
    for data in events:
        assert OrderStatusChanged.model_validate_json(data).model_dump_json().encode() == data


async def test_a_replay_in_a_later_batch_is_a_duplicate(pool: asyncpg.Pool[Any]) -> None:
    external_id = f"W-{uuid.uuid4().hex[:8]}"
    await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
    again = await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
    assert again == []


class TestSagaCache:
    """The consumer keeps committed sagas between batches; the database's version decides if one is current."""

    async def _placed(self, pool: asyncpg.Pool[Any], cache: book.SagaCache) -> tuple[str, ReserveStock]:
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        emitted = await handle_batch(pool, [place(external_order_id=external_id)], prepare=cache.prepare)
        (cmd,) = payloads(emitted, ReserveStock)
        return order_id_for("web", external_id), cmd

    async def _row(self, pool: asyncpg.Pool[Any], order_id: str) -> tuple[int, Saga]:
        row = await pool.fetchrow("SELECT version, data FROM sagas WHERE order_id = $1", order_id)
        assert row is not None
        return row["version"], saga_from_json(row["data"])

    async def test_a_committed_saga_is_served_from_the_cache(self, pool: asyncpg.Pool[Any]) -> None:
        """Placed, then reserved in a later batch: the cache holds each committed state at its row's version."""
        cache = book.SagaCache(10)
        order_id, cmd = await self._placed(pool, cache)
        ((version, saga),) = cache.take([order_id]).values()
        assert (version, saga) == await self._row(pool, order_id)
        cache.put(order_id, version, saga)
        async with pool.acquire() as conn, conn.transaction():
            current = await store.load(conn, [order_id], held={order_id: version})
            stale = await store.load(conn, [order_id], held={order_id: version - 1})
        assert (current.versions, current.sagas) == ({order_id: version}, {})  # the document is not read
        assert stale.sagas == {order_id: saga}
        emitted = await handle_batch(pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=cache.prepare)
        assert [e.status for e in payloads(emitted, OrderStatusChanged)] == ["reserved"]
        ((version, saga),) = cache.take([order_id]).values()
        assert version == 2
        assert (version, saga) == await self._row(pool, order_id)
        assert saga.phase == "fulfilling"

    async def test_a_saga_written_elsewhere_is_read_again(self, pool: asyncpg.Pool[Any]) -> None:
        """Another writer moved the row on (the poller, another instance): the batch uses the row, not the cache."""
        cache = book.SagaCache(10)
        order_id, cmd = await self._placed(pool, cache)
        await pool.execute(
            """UPDATE sagas SET data = jsonb_set(data::jsonb, '{payment_reference}', '"psp-elsewhere"')::text,
                                version = version + 1 WHERE order_id = $1""",
            order_id,
        )
        await handle_batch(pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=cache.prepare)
        version, saga = await self._row(pool, order_id)
        assert (version, saga.phase, saga.payment_reference) == (3, "fulfilling", "psp-elsewhere")
        assert cache.take([order_id]) == {order_id: (version, saga)}

    async def test_a_rolled_back_batch_puts_nothing_back(self, pool: asyncpg.Pool[Any]) -> None:
        """A batch fails after its transition: the cache drops the saga it changed, the next batch reads the row."""
        cache = book.SagaCache(10)
        order_id, cmd = await self._placed(pool, cache)

        async def fails_after(payload: Any, ctx: Any) -> None:
            await HANDLERS.on_reply(payload, ctx)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await handle_batch(pool, [(fails_after, reserved(cmd))], prepare=cache.prepare)
        assert len(cache) == 0
        assert (await self._row(pool, order_id))[1].phase == "reserving"
        emitted = await handle_batch(pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=cache.prepare)
        assert [e.status for e in payloads(emitted, OrderStatusChanged)] == ["reserved"]

    def test_closed_sagas_and_the_oldest_beyond_capacity_are_not_kept(self) -> None:
        """Capacity two: the least recently put back goes first; a closed saga is dropped."""
        cache = book.SagaCache(2)
        sagas = [msgspec.convert(valid_saga_fields(i), Saga) for i in range(3)]
        for saga in sagas:
            cache.put(saga.order_id, 1, saga)
        assert len(cache) == 2
        assert cache.take([sagas[0].order_id]) == {}
        closed = msgspec.structs.replace(sagas[1], phase="completed", pending={})
        cache.put(closed.order_id, 2, closed)
        assert cache.take([sagas[1].order_id, sagas[2].order_id]) == {sagas[2].order_id: (1, sagas[2])}


def valid_saga_fields(n: int) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()), "channel": "web", "external_order_id": f"W-{n}",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": 1, "unit_price": 100}],
        "lat": 52.5, "lon": 13.4, "shipping_method": "standard", "currency": "EUR",
        "amount_paid": 100, "payment_reference": "psp",
    }  # fmt: skip


class TestOneStatementBatches:
    """The consumer's first attempt at a batch reads without locks and writes everything in one
    statement (its own transaction) that checks what the batch read: it aborts whole, or it
    writes the orders, sagas, timeline, outbox and inbox claim together."""

    async def _written(self, pool: asyncpg.Pool[Any], order_id: str) -> tuple[int, int, int]:
        """(timeline entries, outbox rows, saga version) of the order."""
        row = await pool.fetchrow(
            """SELECT (SELECT count(*) FROM status_history WHERE order_id = $1) AS entries,
                      (SELECT count(*) FROM outbox_messages WHERE key = $2) AS messages,
                      (SELECT version FROM sagas WHERE order_id = $1) AS version""",
            order_id,
            order_id.encode(),
        )
        assert row is not None
        return row["entries"], row["messages"], row["version"]

    async def _claimed(self, pool: asyncpg.Pool[Any], message_id: str) -> bool:
        found = await pool.fetchval("SELECT 1 FROM inbox WHERE consumer = 'tests' AND message_id = $1", message_id)
        return bool(found == 1)

    async def test_a_repeated_batch_writes_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        """The claim is in the write: a message claimed before aborts it, the batch's effects included."""
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id, message_id = order_id_for("web", external_id), str(uuid.uuid4())
        cache = book.SagaCache(10)
        emitted = await handle_batch(
            pool, [place(external_order_id=external_id)], prepare=cache.prepare, one_statement=True,
            message_ids=[message_id],
        )  # fmt: skip
        assert timeline(emitted, order_id) == [(1, "received", None), (2, "accepted", "received")]
        assert await self._claimed(pool, message_id)
        written = await self._written(pool, order_id)
        assert written[0] == 2
        assert written[1] == len(emitted)
        saga = saga_from_json(await pool.fetchval("SELECT data FROM sagas WHERE order_id = $1", order_id))
        assert (saga.timeline_seq, saga.timeline_status) == (2, "accepted")
        with pytest.raises(asyncpg.PostgresError) as raised:
            await handle_batch(
                pool, [place(external_order_id=f"W-{uuid.uuid4().hex[:8]}")], prepare=book.prepare,
                one_statement=True, message_ids=[message_id],
            )  # fmt: skip
        assert raised.value.sqlstate == REPEAT_SQLSTATE
        assert await self._written(pool, order_id) == written

    async def test_a_saga_written_since_it_was_read_aborts_the_batch(self, pool: asyncpg.Pool[Any]) -> None:
        """The cached saga's row moved on (the poller, another instance): nothing of the batch is written,
        and the transactional replay (reads that lock) applies it after the other writer's change."""
        cache = book.SagaCache(10)
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        emitted = await handle_batch(
            pool, [place(external_order_id=external_id)], prepare=cache.prepare, one_statement=True
        )
        (cmd,) = payloads(emitted, ReserveStock)
        await pool.execute("UPDATE sagas SET version = version + 1 WHERE order_id = $1", order_id)
        before = await self._written(pool, order_id)
        message_id = str(uuid.uuid4())
        with pytest.raises(asyncpg.PostgresError) as raised:
            await handle_batch(
                pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=cache.prepare, one_statement=True,
                message_ids=[message_id],
            )  # fmt: skip
        assert raised.value.sqlstate == CONFLICT_SQLSTATE
        assert await self._written(pool, order_id) == before
        assert not await self._claimed(pool, message_id)
        replayed = await handle_batch(pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=cache.prepare)
        assert timeline(replayed, order_id) == [(3, "reserved", "accepted")]
        assert (await self._written(pool, order_id))[2] == before[2] + 1

    async def test_a_saga_saved_without_its_timeline_tail_continues_the_timeline(self, pool: asyncpg.Pool[Any]) -> None:
        """A document from before the saga kept its last timeline entry: the book reads it from the timeline."""
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        emitted = await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
        (cmd,) = payloads(emitted, ReserveStock)
        await pool.execute(
            "UPDATE sagas SET data = (data::jsonb - 'timeline_seq' - 'timeline_status')::text WHERE order_id = $1",
            order_id,
        )
        replayed = await handle_batch(
            pool, [(HANDLERS.on_reply, reserved(cmd))], prepare=book.prepare, one_statement=True
        )
        assert timeline(replayed, order_id) == [(3, "reserved", "accepted")]

    async def test_a_refused_attempt_then_the_order_share_one_timeline(self, pool: asyncpg.Pool[Any]) -> None:
        """Refused (no lines), then placed again correctly: the accepted order's entries follow the refusal."""
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        refused = await handle_batch(
            pool, [place(external_order_id=external_id, lines=[])], prepare=book.prepare, one_statement=True
        )
        assert timeline(refused, order_id) == [(1, "rejected", None)]
        placed = await handle_batch(
            pool, [place(external_order_id=external_id)], prepare=book.prepare, one_statement=True
        )
        assert timeline(placed, order_id) == [(2, "received", "rejected"), (3, "accepted", "received")]
        kinds = await pool.fetch("SELECT kind, reasons FROM intake_rejections WHERE order_id = $1", order_id)
        assert [r["kind"] for r in kinds] == ["invalid"]
        assert kinds[0]["reasons"]


class TestNewOrdersTakenAsNew:
    """With the consumer's cache, a one-statement batch does not read a new order's id (almost
    always new): the write inserts it and aborts if it was accepted before, or if a refused
    attempt started its timeline; the transactional replay reads everything."""

    async def test_a_new_order_is_written_without_a_read(
        self, pool: asyncpg.Pool[Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = book.SagaCache(10)
        await handle_batch(pool, [place(external_order_id=f"W-{uuid.uuid4().hex[:8]}")], prepare=cache.prepare)
        reads: list[Any] = []
        real_load = store.load

        async def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(args[1:])
            return await real_load(*args, **kwargs)

        monkeypatch.setattr(store, "load", counted)
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        emitted = await handle_batch(
            pool, [place(external_order_id=external_id)], prepare=cache.prepare, one_statement=True
        )
        assert reads == []  # the web channel's policy came from the cache too
        assert timeline(emitted, order_id) == [(1, "received", None), (2, "accepted", "received")]
        assert await pool.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order_id) == 1

    async def test_an_order_accepted_before_aborts_then_the_replay_finds_it(self, pool: asyncpg.Pool[Any]) -> None:
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        await handle_batch(pool, [place(external_order_id=external_id)], prepare=book.prepare)
        entries = await pool.fetchval("SELECT count(*) FROM status_history WHERE order_id = $1", order_id)
        cache = book.SagaCache(10)  # another instance's, or its saga long evicted
        message_id = str(uuid.uuid4())
        with pytest.raises(asyncpg.PostgresError) as raised:
            await handle_batch(
                pool, [place(external_order_id=external_id)], prepare=cache.prepare, one_statement=True,
                message_ids=[message_id],
            )  # fmt: skip
        assert raised.value.sqlstate == CONFLICT_SQLSTATE  # replayed in a transaction, not retried in place
        assert await pool.fetchval("SELECT count(*) FROM status_history WHERE order_id = $1", order_id) == entries
        again = await handle_batch(
            pool, [place(external_order_id=external_id)], prepare=cache.prepare, message_ids=[message_id]
        )
        assert again == []  # the same order again: a duplicate, nothing emitted
        assert await pool.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order_id) == 1

    async def test_a_refused_attempt_aborts_then_the_replay_continues_its_timeline(
        self, pool: asyncpg.Pool[Any]
    ) -> None:
        external_id = f"W-{uuid.uuid4().hex[:8]}"
        order_id = order_id_for("web", external_id)
        cache = book.SagaCache(10)
        refused = await handle_batch(
            pool, [place(external_order_id=external_id, lines=[])], prepare=cache.prepare, one_statement=True
        )
        assert timeline(refused, order_id) == [(1, "rejected", None)]
        with pytest.raises(asyncpg.UniqueViolationError):
            await handle_batch(pool, [place(external_order_id=external_id)], prepare=cache.prepare, one_statement=True)
        assert await pool.fetchval("SELECT count(*) FROM orders WHERE order_id = $1", order_id) == 0
        placed = await handle_batch(pool, [place(external_order_id=external_id)], prepare=cache.prepare)
        assert timeline(placed, order_id) == [(2, "received", "rejected"), (3, "accepted", "received")]

    async def test_policies_are_kept_for_their_time_to_live(self) -> None:
        cache = book.SagaCache(10, policy_ttl_s=60)
        cache.keep_policies({"web": ("ship_available", 3)})
        assert cache.policies(["web", "pos"]) == {"web": ("ship_available", 3)}
        expired = book.SagaCache(10, policy_ttl_s=0)
        expired.keep_policies({"web": ("ship_available", 3)})
        assert expired.policies(["web"]) == {}


@pytest.mark.parametrize(
    "values", [(), ("plain",), ('with "quotes"', "back\\slash", "comma, {braces}", "", "NULL", "ünïcode")]
)
async def test_text_array_literals_survive_the_round_trip(pool: asyncpg.Pool[Any], values: tuple[str, ...]) -> None:
    assert tuple(await pool.fetchval("SELECT $1::text::text[]", store.text_array(values))) == values
