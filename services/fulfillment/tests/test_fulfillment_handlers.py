"""Fulfillment's handlers against the real PostgreSQL: tables written and messages emitted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import asyncpg
import pytest

from oms_fulfillment import store
from oms_fulfillment.book import FulfillmentBook, prepare
from oms_fulfillment.domain import InvalidPickConfirmation, Item, default_item
from oms_fulfillment.handlers import (
    COMMAND_HANDLERS,
    on_cancel_fulfillment,
    on_create_fulfillment,
    on_pick_confirmed,
    warehouse_handlers,
)
from oms_fulfillment.packing import PackingRules
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import LineQuantity
from oms_shared.contracts.fulfillment import (
    CancelFulfillment,
    CreateFulfillment,
    FulfillmentCancelled,
    FulfillmentCancelRefused,
    FulfillmentPacked,
    FulfillmentStarted,
    PickConfirmed,
    PickedLine,
    PickListCancelled,
    PickListIssued,
)
from oms_shared.errors import RetryableError
from oms_shared.outbox import OutgoingMessage
from oms_shared.runtime import Handler, MessageContext
from oms_shared.testing import envelope_of, handle, handle_batch, payloads, rolled_back

CATALOGUE = {
    "BOOK": Item("B-02-1", 400),
    "LAMP": Item("A-07-2", 1_500),
    "DESK": Item("B-11-3", 24_000),
    "MUG": Item("A-03-1", 300),
}


@pytest.fixture(scope="module")
async def pool(fresh_service_db: Any) -> AsyncIterator[asyncpg.Pool[Any]]:
    db: asyncpg.Pool[Any] = await fresh_service_db("fulfillment", "oms_fulfillment.migrations")
    async with db.acquire() as conn:
        await store.upsert_items(conn, CATALOGUE)
    yield db
    await db.close()


def lines(*spec: tuple[str, int]) -> tuple[LineQuantity, ...]:
    return tuple(LineQuantity(line_no=n, sku=sku, quantity=q) for n, (sku, q) in enumerate(spec, start=1))


def create(*spec: tuple[str, int], fulfillment_id: str | None = None, order_id: str | None = None) -> CreateFulfillment:
    return CreateFulfillment(
        order_id=order_id or f"O-{uuid.uuid4()}",
        request_id=str(uuid.uuid4()),
        fulfillment_id=fulfillment_id or f"F-{uuid.uuid4()}",
        warehouse_id="W1",
        lines=lines(*spec) or lines(("BOOK", 1)),
    )


def cancel(cmd: CreateFulfillment) -> CancelFulfillment:
    return CancelFulfillment(order_id=cmd.order_id, request_id=str(uuid.uuid4()), fulfillment_id=cmd.fulfillment_id)


def confirmation(cmd: CreateFulfillment, pick_list_id: str, *picked: int) -> PickConfirmed:
    return PickConfirmed(
        order_id=cmd.order_id,
        fulfillment_id=cmd.fulfillment_id,
        pick_list_id=pick_list_id,
        lines=tuple(
            PickedLine(line_no=line.line_no, sku=line.sku, requested=line.quantity, picked=p)
            for line, p in zip(cmd.lines, picked, strict=True)
        ),
    )


def only(emitted: list[OutgoingMessage], model: Any) -> Any:
    (payload,) = payloads(emitted, model)
    return payload


def topics_of(emitted: list[OutgoingMessage]) -> list[tuple[str, str, bytes | None]]:
    return [(m.topic, m.envelope.type, m.envelope.key) for m in emitted]


async def handle_retrying(pool: asyncpg.Pool[Any], handler: Handler, payload: Contract) -> list[OutgoingMessage]:
    """Like the runtime: a handler that lost a race asks for a retry, and the retry sees the winner's change."""
    while True:
        try:
            return await handle(pool, handler, payload)
        except RetryableError:
            continue


async def status_of(pool: asyncpg.Pool[Any], fulfillment_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM fulfillment_orders WHERE fulfillment_id = $1", fulfillment_id
    )
    return status


async def count(pool: asyncpg.Pool[Any], table: str, fulfillment_id: str) -> int:
    # table names are the test's own constants
    n: int = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE fulfillment_id = $1", fulfillment_id)  # noqa: S608
    return n


async def started(pool: asyncpg.Pool[Any], cmd: CreateFulfillment) -> str:
    """Create ``cmd``'s fulfillment; return its pick list id."""
    reply: FulfillmentStarted = only(await handle(pool, on_create_fulfillment, cmd), FulfillmentStarted)
    return reply.pick_list_id


class TestCreateFulfillment:
    """Create writes the fulfillment and a pick list in walking order, once per fulfillment id."""

    async def test_issues_a_pick_list_in_walking_order_and_replies_started(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2), ("LAMP", 1), ("DESK", 1), ("MUG", 3), ("UNLISTED", 1))
        emitted = await handle(pool, on_create_fulfillment, cmd)

        issued: PickListIssued = only(emitted, PickListIssued)
        reply: FulfillmentStarted = only(emitted, FulfillmentStarted)
        assert default_item("UNLISTED").bin == "R-01-5"  # not in the catalogue: derived from the SKU
        # Up aisle A, down aisle B (racks descending), then aisle R.
        assert [(p.bin, p.sku) for p in issued.picks] == [
            ("A-03-1", "MUG"),
            ("A-07-2", "LAMP"),
            ("B-11-3", "DESK"),
            ("B-02-1", "BOOK"),
            ("R-01-5", "UNLISTED"),
        ]
        assert [p.seq for p in issued.picks] == [1, 2, 3, 4, 5]
        assert issued.pick_list_id == reply.pick_list_id
        assert (reply.request_id, reply.warehouse_id, reply.fulfillment_id) == (
            cmd.request_id,
            "W1",
            cmd.fulfillment_id,
        )
        key = cmd.order_id.encode()
        assert topics_of(emitted) == [
            (topics.WAREHOUSE_TASKS.name, PickListIssued.ce_type, key),
            (topics.FULFILLMENT_REPLIES.name, FulfillmentStarted.ce_type, key),
        ]

        assert await status_of(pool, cmd.fulfillment_id) == "picking"
        rows = await pool.fetch(
            "SELECT line_no, sku, quantity, unit_weight_grams, picked FROM fulfillment_lines"
            " WHERE fulfillment_id = $1 ORDER BY line_no",
            cmd.fulfillment_id,
        )
        assert [tuple(r) for r in rows] == [
            (1, "BOOK", 2, 400, None),
            (2, "LAMP", 1, 1_500, None),
            (3, "DESK", 1, 24_000, None),
            (4, "MUG", 3, 300, None),
            (5, "UNLISTED", 1, 500, None),
        ]
        stops = await pool.fetch(
            "SELECT s.seq, s.bin, s.line_no, s.quantity FROM pick_list_stops s"
            " JOIN pick_lists p USING (pick_list_id) WHERE p.fulfillment_id = $1 ORDER BY s.seq",
            cmd.fulfillment_id,
        )
        assert [(r["seq"], r["bin"], r["line_no"], r["quantity"]) for r in stops] == [
            (p.seq, p.bin, p.line_no, p.quantity) for p in issued.picks
        ]

    async def test_a_repeat_creates_nothing_and_replies_started_again(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1), ("MUG", 1))
        first = only(await handle(pool, on_create_fulfillment, cmd), FulfillmentStarted)
        again = await handle(pool, on_create_fulfillment, cmd)

        assert topics_of(again) == [
            (topics.FULFILLMENT_REPLIES.name, FulfillmentStarted.ce_type, cmd.order_id.encode())
        ]
        assert only(again, FulfillmentStarted) == first
        assert await count(pool, "fulfillment_lines", cmd.fulfillment_id) == 2
        assert await count(pool, "pick_lists", cmd.fulfillment_id) == 1

    async def test_a_repeat_after_packing_still_replies_started(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 1))
        again = only(await handle(pool, on_create_fulfillment, cmd), FulfillmentStarted)
        assert again.pick_list_id == pick_list_id
        assert await status_of(pool, cmd.fulfillment_id) == "packed"

    async def test_after_a_cancel_of_the_unknown_id_it_creates_nothing(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        await handle(pool, on_cancel_fulfillment, cancel(cmd))
        emitted = await handle(pool, on_create_fulfillment, cmd)

        reply: FulfillmentCancelled = only(emitted, FulfillmentCancelled)
        assert (reply.request_id, reply.put_away) == (cmd.request_id, ())
        assert len(emitted) == 1
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"
        assert await count(pool, "fulfillment_lines", cmd.fulfillment_id) == 0
        assert await count(pool, "pick_lists", cmd.fulfillment_id) == 0

    async def test_a_line_number_twice_is_rejected_and_nothing_is_written(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        cmd = cmd.model_copy(update={"lines": (*cmd.lines, cmd.lines[0])})
        with pytest.raises(ValueError, match="twice"):
            await handle(pool, on_create_fulfillment, cmd)
        assert await status_of(pool, cmd.fulfillment_id) is None


class TestPickConfirmed:
    """A confirmation packs what was picked once; late and repeated ones are ignored."""

    async def test_a_complete_pick_is_packed_and_stored(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 30), ("LAMP", 2), ("DESK", 1))
        pick_list_id = await started(pool, cmd)
        emitted = await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 30, 2, 1))

        reply: FulfillmentPacked = only(emitted, FulfillmentPacked)
        assert topics_of(emitted) == [
            (topics.FULFILLMENT_REPLIES.name, FulfillmentPacked.ce_type, cmd.order_id.encode())
        ]
        assert reply.shortages == ()
        # Walk: LAMP, DESK (B-11), BOOK (B-02); the desk is over 20 kg and travels alone.
        assert [[(i.sku, i.quantity) for i in p.items] for p in reply.packages] == [
            [("LAMP", 2)],
            [("DESK", 1)],
            [("BOOK", 30)],
        ]
        assert [p.weight_grams for p in reply.packages] == [3_200, 24_200, 12_200]
        assert await status_of(pool, cmd.fulfillment_id) == "packed"
        rows = await pool.fetch(
            "SELECT package_id, weight_grams, items FROM packages WHERE fulfillment_id = $1 ORDER BY seq",
            cmd.fulfillment_id,
        )
        assert [(r["package_id"], r["weight_grams"]) for r in rows] == [
            (p.package_id, p.weight_grams) for p in reply.packages
        ]
        assert rows[0]["items"] == [{"line_no": 2, "sku": "LAMP", "quantity": 2}]

    async def test_a_short_pick_reports_shortages_per_line(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 5), ("MUG", 3), ("LAMP", 1))
        pick_list_id = await started(pool, cmd)
        reply: FulfillmentPacked = only(
            await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 2, 3, 0)), FulfillmentPacked
        )
        assert [(s.line_no, s.sku, s.quantity) for s in reply.shortages] == [(1, "BOOK", 3), (3, "LAMP", 1)]
        assert sum(i.quantity for p in reply.packages for i in p.items) == 5
        picked = await pool.fetch(
            "SELECT line_no, picked FROM fulfillment_lines WHERE fulfillment_id = $1 ORDER BY line_no",
            cmd.fulfillment_id,
        )
        assert [tuple(r) for r in picked] == [(1, 2), (2, 3), (3, 0)]

    async def test_nothing_picked_gives_no_packages(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        reply: FulfillmentPacked = only(
            await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 0)), FulfillmentPacked
        )
        assert reply.packages == ()
        assert [(s.sku, s.quantity) for s in reply.shortages] == [("BOOK", 2)]
        assert await count(pool, "packages", cmd.fulfillment_id) == 0
        assert await status_of(pool, cmd.fulfillment_id) == "packed"

    async def test_a_duplicate_confirmation_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 2))
        again = await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 1))
        assert again == []
        assert await count(pool, "packages", cmd.fulfillment_id) == 1
        assert (
            await pool.fetchval("SELECT picked FROM fulfillment_lines WHERE fulfillment_id = $1", cmd.fulfillment_id)
            == 2
        )

    async def test_a_confirmation_after_cancel_is_ignored(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_cancel_fulfillment, cancel(cmd))
        assert await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 2)) == []
        assert await count(pool, "packages", cmd.fulfillment_id) == 0
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"

    async def test_the_package_limit_is_configurable(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("LAMP", 4))
        pick_list_id = await started(pool, cmd)
        handler = warehouse_handlers(PackingRules(limit_grams=3_000, packaging_grams=100))[PickConfirmed]
        reply: FulfillmentPacked = only(
            await handle(pool, handler, confirmation(cmd, pick_list_id, 4)), FulfillmentPacked
        )
        assert [p.weight_grams for p in reply.packages] == [3_100, 3_100]

    async def test_an_unknown_fulfillment_is_invalid(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        with pytest.raises(InvalidPickConfirmation, match="unknown"):
            await handle(pool, on_pick_confirmed, confirmation(cmd, "PL-none", 1))


class TestCancelFulfillment:
    """Cancel stops picking or puts packed units away; once handed over it is refused."""

    async def test_while_picking_the_warehouse_is_told_to_stop(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        pick_list_id = await started(pool, cmd)
        request = cancel(cmd)
        emitted = await handle(pool, on_cancel_fulfillment, request)

        key = cmd.order_id.encode()
        assert topics_of(emitted) == [
            (topics.WAREHOUSE_TASKS.name, PickListCancelled.ce_type, key),
            (topics.FULFILLMENT_REPLIES.name, FulfillmentCancelled.ce_type, key),
        ]
        stop: PickListCancelled = only(emitted, PickListCancelled)
        assert (stop.pick_list_id, stop.warehouse_id) == (pick_list_id, "W1")
        reply: FulfillmentCancelled = only(emitted, FulfillmentCancelled)
        assert (reply.request_id, reply.put_away) == (request.request_id, ())
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"

    async def test_once_packed_the_packed_units_are_put_away(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 3), ("MUG", 2))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 2, 0))
        emitted = await handle(pool, on_cancel_fulfillment, cancel(cmd))

        assert payloads(emitted, PickListCancelled) == []
        reply: FulfillmentCancelled = only(emitted, FulfillmentCancelled)
        assert [(p.line_no, p.sku, p.quantity) for p in reply.put_away] == [(1, "BOOK", 2)]
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"

    async def test_a_repeat_gets_the_same_reply_and_nothing_else(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 3))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 3))
        request = cancel(cmd)
        first = only(await handle(pool, on_cancel_fulfillment, request), FulfillmentCancelled)
        again = await handle(pool, on_cancel_fulfillment, request)
        assert topics_of(again) == [
            (topics.FULFILLMENT_REPLIES.name, FulfillmentCancelled.ce_type, cmd.order_id.encode())
        ]
        assert only(again, FulfillmentCancelled) == first
        assert [(p.sku, p.quantity) for p in first.put_away] == [("BOOK", 3)]

    async def test_an_unknown_fulfillment_leaves_a_tombstone(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        emitted = await handle(pool, on_cancel_fulfillment, cancel(cmd))
        assert topics_of(emitted) == [
            (topics.FULFILLMENT_REPLIES.name, FulfillmentCancelled.ce_type, cmd.order_id.encode())
        ]
        row = await pool.fetchrow(
            "SELECT order_id, warehouse_id, status FROM fulfillment_orders WHERE fulfillment_id = $1",
            cmd.fulfillment_id,
        )
        assert row is not None
        assert tuple(row) == (cmd.order_id, None, "cancelled")

    async def test_once_handed_over_it_is_refused(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        pick_list_id = await started(pool, cmd)
        await handle(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 1))
        async with pool.acquire() as conn:
            assert await store.mark_handed_over(conn, cmd.fulfillment_id)
        emitted = await handle(pool, on_cancel_fulfillment, cancel(cmd))

        refused: FulfillmentCancelRefused = only(emitted, FulfillmentCancelRefused)
        assert len(emitted) == 1
        assert "carrier" in refused.reason
        assert await status_of(pool, cmd.fulfillment_id) == "handed_over"

    async def test_only_a_packed_fulfillment_can_be_handed_over(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1))
        await started(pool, cmd)
        async with pool.acquire() as conn:
            assert not await store.mark_handed_over(conn, cmd.fulfillment_id)
        assert await status_of(pool, cmd.fulfillment_id) == "picking"

    async def test_racing_a_pick_confirmation_never_loses_packed_units(self, pool: asyncpg.Pool[Any]) -> None:
        for _ in range(10):
            cmd = create(("BOOK", 2), ("MUG", 1))
            pick_list_id = await started(pool, cmd)
            packing, cancelling = await asyncio.gather(
                handle_retrying(pool, on_pick_confirmed, confirmation(cmd, pick_list_id, 2, 1)),
                handle_retrying(pool, on_cancel_fulfillment, cancel(cmd)),
            )
            reply: FulfillmentCancelled = only(cancelling, FulfillmentCancelled)
            if payloads(packing, FulfillmentPacked):  # packed first: everything goes back to the bins
                assert [(p.sku, p.quantity) for p in reply.put_away] == [("BOOK", 2), ("MUG", 1)]
                assert payloads(cancelling, PickListCancelled) == []
            else:  # cancelled first: the confirmation was ignored
                assert reply.put_away == ()
                assert await count(pool, "packages", cmd.fulfillment_id) == 0
            assert await status_of(pool, cmd.fulfillment_id) == "cancelled"


class TestBatches:
    """Several messages in one transaction, with the batch's reads done up front (``prepare``)."""

    async def test_creates_and_picks_of_one_batch_read_once_and_act_like_one_by_one(
        self, pool: asyncpg.Pool[Any]
    ) -> None:
        picked = [create(("BOOK", 1), ("MUG", 2)) for _ in range(3)]
        lists = [await started(pool, cmd) for cmd in picked]
        fresh = [create(("LAMP", 1)), create(("DESK", 1), ("BOOK", 1))]
        emitted = await handle_batch(
            pool,
            [(on_create_fulfillment, cmd) for cmd in fresh]
            + [(on_pick_confirmed, confirmation(cmd, pl, 1, 2)) for cmd, pl in zip(picked, lists, strict=True)],
            prepare=prepare,
        )
        assert {r.fulfillment_id for r in payloads(emitted, FulfillmentStarted)} == {c.fulfillment_id for c in fresh}
        assert {r.fulfillment_id for r in payloads(emitted, FulfillmentPacked)} == {c.fulfillment_id for c in picked}
        for cmd in picked:
            assert await status_of(pool, cmd.fulfillment_id) == "packed"
        for cmd in fresh:
            assert await status_of(pool, cmd.fulfillment_id) == "picking"
        issued = {i.fulfillment_id: i for i in payloads(emitted, PickListIssued)}
        assert sorted(p.bin for p in issued[fresh[1].fulfillment_id].picks) == ["B-02-1", "B-11-3"]  # catalogue read

    async def test_the_same_create_twice_in_a_batch_inserts_once(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 1), ("MUG", 1))
        emitted = await handle_batch(pool, [(on_create_fulfillment, cmd)] * 2, prepare=prepare)
        first, second = payloads(emitted, FulfillmentStarted)
        assert first.pick_list_id == second.pick_list_id
        assert len(payloads(emitted, PickListIssued)) == 1
        assert await count(pool, "fulfillment_lines", cmd.fulfillment_id) == 2

    async def test_a_pack_the_database_no_longer_allows_retries_the_batch(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        async with rolled_back(pool) as uow:
            book = FulfillmentBook.of(uow)
            await book.load((), [cmd.fulfillment_id])
            await uow.conn.execute(  # as a concurrent cancel would, after the book read it
                "UPDATE fulfillment_orders SET status = 'cancelled' WHERE fulfillment_id = $1", cmd.fulfillment_id
            )
            confirmed = confirmation(cmd, pick_list_id, 2)
            await on_pick_confirmed(confirmed, MessageContext(envelope_of(confirmed), uow))
            with pytest.raises(RetryableError, match="changed while packing"):
                await book.flush()
        assert await status_of(pool, cmd.fulfillment_id) == "picking"
        assert await count(pool, "packages", cmd.fulfillment_id) == 0

    async def test_a_cancel_earlier_in_the_batch_is_seen_by_a_later_pick(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        emitted = await handle_batch(
            pool,
            [(on_cancel_fulfillment, cancel(cmd)), (on_pick_confirmed, confirmation(cmd, pick_list_id, 2))],
            prepare=prepare,
        )
        assert payloads(emitted, FulfillmentPacked) == []
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"
        assert await count(pool, "packages", cmd.fulfillment_id) == 0

    async def test_a_pick_then_a_cancel_puts_the_packed_units_away(self, pool: asyncpg.Pool[Any]) -> None:
        cmd = create(("BOOK", 2))
        pick_list_id = await started(pool, cmd)
        emitted = await handle_batch(
            pool,
            [(on_pick_confirmed, confirmation(cmd, pick_list_id, 2)), (on_cancel_fulfillment, cancel(cmd))],
            prepare=prepare,
        )
        (reply,) = payloads(emitted, FulfillmentCancelled)
        assert [(u.sku, u.quantity) for u in reply.put_away] == [("BOOK", 2)]
        assert await status_of(pool, cmd.fulfillment_id) == "cancelled"


class TestRegistration:
    """The service subscribes every message type it handles."""

    def test_handlers_are_registered_by_message_type(self) -> None:
        expected = {CreateFulfillment: on_create_fulfillment, CancelFulfillment: on_cancel_fulfillment}
        assert expected == COMMAND_HANDLERS
        handler = warehouse_handlers(PackingRules(limit_grams=1_000))[PickConfirmed]
        assert isinstance(handler, partial)
        assert handler.keywords == {"packing": PackingRules(limit_grams=1_000)}
