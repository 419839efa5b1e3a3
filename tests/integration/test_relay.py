"""The outbox relay: one leader per database publishes every row once, in order; a follower takes over."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from oms_shared.outbox import OutgoingMessage, UnitOfWork, unit_of_work, write_outbox
from oms_shared.relay import OutboxRelay
from oms_shared.topics import Topic, ensure_topics
from tests import support
from tests.harness.app import Increment


async def _write(pool: asyncpg.Pool[Any], topic: Topic, counters: list[str], *, per_row: int = 4) -> None:
    """Write ``counters`` as outbox rows of ``per_row`` messages (a row per unit of work), in one transaction."""
    messages = [
        OutgoingMessage(topic.name, support.envelope_for(Increment(counter=c, amount=1), key="k")) for c in counters
    ]
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, len(messages), per_row):
            await write_outbox(conn, messages[start : start + per_row])


@contextlib.asynccontextmanager
async def _relays(
    dsn: str, count: int, *, batch_size: int, poll_interval_s: float
) -> AsyncIterator[tuple[Topic, list[OutboxRelay], list[asyncio.Task[None]]]]:
    """A fresh topic and ``count`` running relays of one database (sharing a producer); stopped after."""
    topic = Topic(f"oms.relaytest.t{uuid.uuid4().hex[:12]}.v1", "k", "relay test", retention_ms=3600_000)
    await ensure_topics(support.bootstrap_servers(), [topic])
    producer = await support.started_producer()
    relays = [
        OutboxRelay(producer, dsn=dsn, batch_size=batch_size, poll_interval_s=poll_interval_s) for _ in range(count)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        yield topic, relays, tasks
    finally:
        for relay in relays:
            relay.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        await producer.stop()


async def _received(topic: Topic, expected: int, timeout: float = 30) -> list[str]:
    """The counters of the records on ``topic``, in partition order (one key: one partition)."""
    consumer = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=support.bootstrap_servers(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [Increment.model_validate_json(r.value).counter for r in records]
        # Anything published twice would show up within another moment.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            seen += [Increment.model_validate_json(r.value).counter for r in records]
    finally:
        await consumer.stop()
    return seen


class TestRelayLeadership:
    async def test_one_leader_publishes_each_row_once_in_order_and_a_follower_takes_over(
        self, fresh_service_db: Any, stack: Any
    ) -> None:
        pool = await fresh_service_db("relay")
        async with _relays(stack.service_url("relay_test"), 2, batch_size=3, poll_interval_s=0.2) as (
            topic,
            relays,
            tasks,
        ):
            first = [f"a{n}" for n in range(30)]
            await _write(pool, topic, first)
            assert await _received(topic, len(first)) == first, "each row once, in id order"

            async def one_leader() -> bool:
                return sum(relay.leading for relay in relays) == 1

            await support.eventually(one_leader, timeout=10, what="exactly one relay leading")
            leader = next(i for i, relay in enumerate(relays) if relay.leading)
            relays[leader].stop()
            await asyncio.wait_for(tasks[leader], timeout=10)

            second = [f"b{n}" for n in range(10)]
            await _write(pool, topic, second)
            assert await _received(topic, len(first) + len(second)) == first + second
            assert relays[1 - leader].leading, "the follower took over when the leader stopped"

            async def drained() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM outbox") == 0)

            await support.eventually(drained, timeout=10, what="published rows deleted")


class TestRelayBatches:
    async def test_rows_of_many_keys_and_two_topics_arrive_once_in_key_order_on_the_default_partition(
        self, fresh_service_db: Any, stack: Any
    ) -> None:
        """A round goes out as one batch per partition: each key keeps its row order, on murmur2's partition."""
        pool = await fresh_service_db("relay")
        dsn = stack.service_url("relay_test")
        names = [f"oms.relaytest.m{uuid.uuid4().hex[:12]}.v1" for _ in range(2)]
        created = [Topic(name, "k", "relay batches", partitions=6, retention_ms=3600_000) for name in names]
        await ensure_topics(support.bootstrap_servers(), created)
        keys = [f"order-{n}" for n in range(9)]
        messages = [
            OutgoingMessage(
                names[n % 2],
                support.envelope_for(Increment(counter=f"{keys[n % 9]}:{n}", amount=1), key=keys[n % 9]),
            )
            for n in range(240)
        ]
        async with pool.acquire() as conn, conn.transaction():
            await write_outbox(conn, messages)
        # One unit of work, one row: its messages are arrays in the row, in their order.
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        listed = await pool.fetch("SELECT payload FROM outbox_messages ORDER BY id, position")
        assert [r["payload"] for r in listed] == [m.envelope.data for m in messages]
        producer = await support.started_producer()
        relay = OutboxRelay(producer, dsn=dsn, batch_size=100, poll_interval_s=0.2)
        task = asyncio.create_task(relay.run())
        consumer = AIOKafkaConsumer(
            *names,
            bootstrap_servers=support.bootstrap_servers(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: dict[tuple[str, bytes], list[tuple[int, str]]] = {}
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while sum(map(len, got.values())) < len(messages) and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        counter = Increment.model_validate_json(r.value).counter
                        got.setdefault((r.topic, r.key), []).append((r.partition, counter))
        finally:
            await consumer.stop()
            relay.stop()
            await asyncio.wait_for(task, timeout=10)
            await producer.stop()
        default = DefaultPartitioner()
        for (topic, key), seen in got.items():
            wanted = [Increment.model_validate_json(m.envelope.data).counter for m in messages
                      if m.topic == topic and m.envelope.key == key]  # fmt: skip
            assert [counter for _, counter in seen] == wanted, "once each, in row order per key"
            assert {p for p, _ in seen} == {default(key, list(range(6)), list(range(6)))}
        assert sum(map(len, got.values())) == len(messages)
        assert len({p for seen in got.values() for p, _ in seen}) > 1, "the round spread over several partitions"

    async def test_a_round_reads_whole_rows_until_a_batch_of_messages(self, fresh_service_db: Any, stack: Any) -> None:
        """A row is a unit of work: a round takes rows until ``batch_size`` messages, the last one
        whole (never split), so a backlog of large units is read a bounded amount at a time."""
        pool = await fresh_service_db("relay")
        topic = Topic(f"oms.relaytest.w{uuid.uuid4().hex[:12]}.v1", "k", "relay rounds", retention_ms=3600_000)
        await ensure_topics(support.bootstrap_servers(), [topic])
        sizes = [60, 60, 60, 250, 1, 1]
        rows = [[f"r{n}.{i}" for i in range(size)] for n, size in enumerate(sizes)]
        for row in rows:
            await _write(pool, topic, row, per_row=len(row))
        producer = await support.started_producer()
        relay = OutboxRelay(producer, dsn=stack.service_url("relay_test"), batch_size=100, poll_interval_s=60)
        try:
            rounds = [await relay.publish_once() for _ in range(5)]
        finally:
            relay.stop()
            await relay.run()  # stopped: deletes what it published and closes its connection
            await producer.stop()
        assert rounds == [120, 310, 2, 0, 0], "rows 1-2, 3-4 (the 250 whole), 5-6, then nothing"
        assert await _received(topic, sum(sizes)) == [c for row in rows for c in row], "each once, in order"
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


class TestRelayFastLane:
    """Units of work of the relay's own process hand their rows over after commit: published from memory."""

    async def test_handed_over_rows_go_out_from_memory_once_in_order_beside_notified_rows(
        self, fresh_service_db: Any, stack: Any
    ) -> None:
        pool = await fresh_service_db("relay")
        async with _relays(stack.service_url("relay_test"), 1, batch_size=1000, poll_interval_s=1.0) as (
            topic,
            (relay,),
            _,
        ):
            await support.eventually(_async(lambda: relay.accepting), timeout=10, what="the relay leading")
            expected: list[str] = []

            async def units(n: int) -> None:
                fast = [f"f{n}.{i}" for i in range(7)]
                async with unit_of_work(pool, "oms/tests", relay) as uow:
                    for counter in fast:
                        uow.emit(topic, Increment(counter=counter, amount=1), key="k")
                expected.extend(fast)

            for n in range(20):
                await units(n)
            assert await _received(topic, len(expected)) == expected, "each row once, in commit order"
            # A round (every second) may read a unit's rows in the instant between its commit and hand-over.
            assert relay.published_from_memory >= 119, "the units of work's rows went out from memory"
            for n in range(20, 40):
                await units(n)
                if n % 5 == 0:  # another writer's row (a NOTIFY, read by a round) in between
                    notified = [f"n{n}"]
                    heard = relay.notifications
                    await _write(pool, topic, notified)
                    expected.extend(notified)
                    # The order holds once the NOTIFY is in, which PostgreSQL delivers to the
                    # relay's connection asynchronously: for one key, a second writer is another
                    # instance after a rebalance, seconds later. Here the next unit follows at once.
                    await support.eventually(_heard_after(relay, heard), timeout=10, what="the NOTIFY heard")
            assert await _received(topic, len(expected)) == expected, "each row once, in commit order"

            async def drained() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM outbox") == 0)

            await support.eventually(drained, timeout=10, what="rows published from memory deleted")

    async def test_rows_never_handed_over_go_out_with_the_next_poll_and_a_follower_does_not_accept(
        self, fresh_service_db: Any, stack: Any
    ) -> None:
        """A crash between commit and hand-over delays the rows to a poll; a follower's units NOTIFY the leader."""
        pool = await fresh_service_db("relay")
        async with _relays(stack.service_url("relay_test"), 2, batch_size=50, poll_interval_s=0.2) as (
            topic,
            relays,
            _,
        ):
            await support.eventually(_async(lambda: any(r.accepting for r in relays)), timeout=10, what="a leader")
            leader = next(r for r in relays if r.accepting)
            follower = next(r for r in relays if r is not leader)
            assert not follower.accepting
            async with pool.acquire() as conn, conn.transaction():
                lost = UnitOfWork(conn, "oms/tests", publisher=leader)
                lost.emit(topic, Increment(counter="lost", amount=1), key="k")
                await lost.flush()
            # committed() is never called: the hand-over is lost, as in a crash right after the commit
            async with unit_of_work(pool, "oms/tests", follower) as uow:
                uow.emit(topic, Increment(counter="follower", amount=1), key="k")
            assert await _received(topic, 2) == ["lost", "follower"]
            assert leader.published_from_memory == 0
            assert follower.published == 0


def _heard_after(relay: OutboxRelay, count: int) -> Callable[[], Awaitable[bool]]:
    """Whether ``relay`` has heard more than ``count`` NOTIFYs."""
    return _async(lambda: relay.notifications > count)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run
