"""The refund handler against the real PostgreSQL: ledger rows, replies and public refund events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from oms_returns import store
from oms_returns.domain import Payment
from oms_returns.handlers import COMMAND_HANDLERS, on_issue_refund
from oms_shared import topics
from oms_shared.contracts.returns import IssueRefund, RefundIssued, RefundRejected
from oms_shared.errors import RetryableError
from oms_shared.outbox import OutgoingMessage
from oms_shared.testing import handle, payloads


@pytest.fixture(scope="module")
async def pool(fresh_service_db: Any) -> AsyncIterator[asyncpg.Pool[Any]]:
    db: asyncpg.Pool[Any] = await fresh_service_db("returns", "oms_returns.migrations")
    yield db
    await db.close()


def new_order() -> str:
    return f"O-{uuid.uuid4()}"


def refund(
    order_id: str, amount: int, *, key: str | None = None, paid: int = 1_000, currency: str = "EUR"
) -> IssueRefund:
    return IssueRefund(
        order_id=order_id,
        request_id=str(uuid.uuid4()),
        refund_key=key or f"RK-{uuid.uuid4()}",
        amount=amount,
        currency=currency,
        amount_paid=paid,
        payment_reference=f"PAY-{order_id}",
        reason="customer cancelled",
    )


async def handle_retrying(pool: asyncpg.Pool[Any], cmd: IssueRefund) -> list[OutgoingMessage]:
    """Like the runtime: a handler that lost a race asks for a retry."""
    while True:
        try:
            return await handle(pool, on_issue_refund, cmd)
        except RetryableError:
            continue


def replies(emitted: list[OutgoingMessage], model: Any) -> list[Any]:
    """The payloads of ``model`` sent to the saga (not the public copies)."""
    return payloads([m for m in emitted if m.topic == topics.RETURNS_REPLIES.name], model)


def routes(emitted: list[OutgoingMessage]) -> list[tuple[str, str, bytes | None]]:
    return [(m.topic, m.envelope.type, m.envelope.key) for m in emitted]


async def ledger(pool: asyncpg.Pool[Any], order_id: str) -> list[tuple[str, int, int]]:
    async with pool.acquire() as conn:
        return [(r.refund_key, r.amount, r.total_refunded) for r in await store.refunds_of(conn, order_id)]


class TestIssueRefund:
    """A refund within what was paid is recorded, answered and published once."""

    async def test_is_recorded_replied_and_published(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        cmd = refund(order, 400)
        emitted = await handle(pool, on_issue_refund, cmd)

        key = order.encode()
        assert routes(emitted) == [
            (topics.RETURNS_REPLIES.name, RefundIssued.ce_type, key),
            (topics.REFUNDS.name, RefundIssued.ce_type, key),
        ]
        reply, public = payloads(emitted, RefundIssued)
        assert reply == public
        assert (reply.request_id, reply.amount, reply.total_refunded, reply.currency) == (
            cmd.request_id,
            400,
            400,
            "EUR",
        )
        assert (reply.payment_reference, reply.reason) == (f"PAY-{order}", "customer cancelled")
        assert await ledger(pool, order) == [(cmd.refund_key, 400, 400)]
        row = await pool.fetchrow(
            "SELECT refund_id, request_id, currency FROM refunds WHERE refund_key = $1", cmd.refund_key
        )
        assert row is not None
        assert tuple(row) == (reply.refund_id, cmd.request_id, "EUR")

    async def test_records_the_payment_on_first_sight_and_keeps_it(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        await handle(pool, on_issue_refund, refund(order, 100, paid=1_000))
        # A later command claiming more was paid does not raise the cap.
        emitted = await handle(pool, on_issue_refund, refund(order, 1_000, paid=5_000))
        assert payloads(emitted, RefundIssued) == []
        assert len(payloads(emitted, RefundRejected)) == 1
        async with pool.acquire() as conn:
            assert await store.payment_of(conn, order) == Payment(order, 1_000, "EUR", f"PAY-{order}")

    async def test_repeated_partials_are_allowed_up_to_what_was_paid(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        results = [await handle(pool, on_issue_refund, refund(order, amount)) for amount in (300, 300, 300, 300, 100)]
        issued = [replies(e, RefundIssued)[0].total_refunded if replies(e, RefundIssued) else None for e in results]
        assert issued == [300, 600, 900, None, 1_000]
        assert sum(amount for _, amount, _ in await ledger(pool, order)) == 1_000


class TestIdempotency:
    """One refund per refund key: a repeat gets the same reply and is not published again."""

    async def test_a_repeat_gets_the_same_reply_and_is_not_republished(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        cmd = refund(order, 250)
        first = payloads(await handle(pool, on_issue_refund, cmd), RefundIssued)[0]
        await handle(pool, on_issue_refund, refund(order, 100))  # the ledger moves on
        again = await handle(pool, on_issue_refund, cmd)

        assert routes(again) == [(topics.RETURNS_REPLIES.name, RefundIssued.ce_type, order.encode())]
        assert payloads(again, RefundIssued) == [first]
        assert first.total_refunded == 250
        assert [k for k, _, _ in await ledger(pool, order)].count(cmd.refund_key) == 1

    async def test_a_key_used_for_another_order_is_rejected(self, pool: asyncpg.Pool[Any]) -> None:
        first, second = new_order(), new_order()
        await handle(pool, on_issue_refund, refund(first, 100, key=f"shared-{first}"))
        emitted = await handle(pool, on_issue_refund, refund(second, 100, key=f"shared-{first}"))
        (rejected,) = payloads(emitted, RefundRejected)
        assert "another order" in rejected.reason
        assert await ledger(pool, second) == []

    async def test_concurrent_repeats_record_one_refund_and_publish_it_once(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        cmd = refund(order, 300)
        results = await asyncio.gather(*(handle_retrying(pool, cmd) for _ in range(6)))
        published = [m for emitted in results for m in emitted if m.topic == topics.REFUNDS.name]
        answers = [p for emitted in results for p in replies(emitted, RefundIssued)]
        assert len(published) == 1
        assert len(answers) == 6
        assert len({(r.refund_id, r.total_refunded) for r in answers}) == 1
        assert await ledger(pool, order) == [(cmd.refund_key, 300, 300)]

    async def test_one_key_raced_by_two_orders_is_recorded_once(self, pool: asyncpg.Pool[Any]) -> None:
        first, second = new_order(), new_order()
        key = f"raced-{first}"
        a, b = await asyncio.gather(
            handle_retrying(pool, refund(first, 100, key=key)), handle_retrying(pool, refund(second, 100, key=key))
        )
        assert sorted([len(replies(a, RefundIssued)), len(replies(b, RefundIssued))]) == [0, 1]
        assert await pool.fetchval("SELECT count(*) FROM refunds WHERE refund_key = $1", key) == 1


class TestRejections:
    """A refund above what is left or in another currency is rejected, and nothing is recorded."""

    async def test_above_what_was_paid(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        earlier = refund(order, 800)
        await handle(pool, on_issue_refund, earlier)
        cmd = refund(order, 201)
        emitted = await handle(pool, on_issue_refund, cmd)

        assert routes(emitted) == [(topics.RETURNS_REPLIES.name, RefundRejected.ce_type, order.encode())]
        (rejected,) = payloads(emitted, RefundRejected)
        assert (rejected.request_id, rejected.refund_key) == (cmd.request_id, cmd.refund_key)
        assert "exceeds what is left to refund (200 of 1000 EUR paid, 800 already refunded)" in rejected.reason
        assert await ledger(pool, order) == [(earlier.refund_key, 800, 800)]

    async def test_in_another_currency(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        await handle(pool, on_issue_refund, refund(order, 100))
        emitted = await handle(pool, on_issue_refund, refund(order, 100, currency="USD"))
        (rejected,) = payloads(emitted, RefundRejected)
        assert rejected.reason == "currency USD differs from the payment's EUR"
        assert len(await ledger(pool, order)) == 1

    async def test_a_rejected_key_can_be_tried_again_within_the_limit(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        key = f"retry-{order}"
        assert payloads(await handle(pool, on_issue_refund, refund(order, 2_000, key=key)), RefundRejected)
        assert payloads(await handle(pool, on_issue_refund, refund(order, 500, key=key)), RefundIssued)
        assert await ledger(pool, order) == [(key, 500, 500)]

    async def test_the_database_refuses_a_non_positive_amount(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        await handle(pool, on_issue_refund, refund(order, 100))
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO refunds (refund_id, refund_key, order_id, request_id, amount, currency, reason,"
                " total_refunded) VALUES ('x', 'x', $1, 'r', 0, 'EUR', 'r', 100)",
                order,
            )


class TestConcurrentRefunds:
    """Refunds of one order racing on separate connections never add up to more than was paid."""

    async def test_the_sum_never_exceeds_what_was_paid(self, pool: asyncpg.Pool[Any]) -> None:
        for _ in range(5):
            order = new_order()
            results = await asyncio.gather(*(handle_retrying(pool, refund(order, 300)) for _ in range(10)))
            issued = [p for emitted in results for p in replies(emitted, RefundIssued)]
            rejected = [p for emitted in results for p in replies(emitted, RefundRejected)]
            assert (len(issued), len(rejected)) == (3, 7)
            assert sorted(p.total_refunded for p in issued) == [300, 600, 900]
            assert await pool.fetchval("SELECT sum(amount) FROM refunds WHERE order_id = $1", order) == 900

    async def test_mixed_amounts_fill_up_to_exactly_what_was_paid_at_most(self, pool: asyncpg.Pool[Any]) -> None:
        order = new_order()
        amounts = [100, 250, 400, 50, 300, 700, 10, 90, 600, 1]
        results = await asyncio.gather(*(handle_retrying(pool, refund(order, a)) for a in amounts))
        total = await pool.fetchval("SELECT coalesce(sum(amount), 0) FROM refunds WHERE order_id = $1", order)
        issued = [p for emitted in results for p in replies(emitted, RefundIssued)]
        assert 0 < total <= 1_000
        assert sum(p.amount for p in issued) == total
        assert max(p.total_refunded for p in issued) == total
        assert sorted(p.total_refunded for p in issued) == sorted({p.total_refunded for p in issued})


class TestRegistration:
    """The service subscribes the one command it handles."""

    def test_issue_refund_is_handled(self) -> None:
        assert {IssueRefund: on_issue_refund} == COMMAND_HANDLERS
