"""Acceptance 3 and 4: a database outage under load, and two instances sharing partitions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from oms_shared.topics import Topic
from tests import support
from tests.fixtures import new_harness
from tests.harness.app import Increment
from tests.integration.test_exactly_once import effects


async def stream(producer: AIOKafkaProducer, topic: Topic, counters: list[str], total: int, rate: float) -> None:
    """Publish ``total`` increments spread over ``counters`` (so over partitions), paced at ``rate``/s."""
    for i in range(total):
        counter = counters[i % len(counters)]
        envelope = support.envelope_for(Increment(counter=counter, amount=1), key=counter)
        await support.publish(producer, topic.name, envelope)
        await asyncio.sleep(1 / rate)


async def totals(db: asyncpg.Connection[Any], counters: list[str]) -> tuple[int, int]:
    rows, distinct = 0, 0
    for counter in counters:
        n, d = await effects(db, counter)
        rows, distinct = rows + n, distinct + d
    return rows, distinct


@pytest.mark.local_stack
class TestDatabaseOutage:
    """PostgreSQL stopped under a stream: the consumer retries, then goes on, losing and doubling nothing."""

    async def test_postgres_down_for_seconds(
        self,
        stack: Any,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        if stack.pg_is_external():
            pytest.skip("needs the project's own PostgreSQL to stop and start it")
        counters = [f"outage-{i}-{uuid.uuid4()}" for i in range(6)]
        proc = new_harness(harness_dsn, harness, harness_topic).start()
        await proc.wait_ready()
        sender = asyncio.create_task(stream(producer, harness_topic, counters, total=300, rate=40))
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.pg_stop)
        try:
            await asyncio.sleep(4)
            assert proc.proc is not None
            assert proc.proc.poll() is None, "the service must ride out the outage, not exit"
        finally:
            await asyncio.to_thread(stack.pg_start)
        await sender
        db = await asyncpg.connect(harness_dsn)
        try:

            async def all_there() -> bool:
                return (await totals(db, counters))[0] >= 300

            await support.eventually(all_there, timeout=90, what="all 300 effects after the outage")
            await asyncio.sleep(1)
            assert await totals(db, counters) == (300, 300)
        finally:
            await db.close()


class TestPartitionSharing:
    """Two instances share the partitions; killing one hands them over with nothing lost or doubled."""

    @pytest.mark.parametrize("client", ["aiokafka", "librdkafka"])
    async def test_two_instances_then_one_is_killed(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
        client: str,
    ) -> None:
        counters = [f"share-{i}-{uuid.uuid4()}" for i in range(12)]
        first = new_harness(harness_dsn, harness, harness_topic, HARNESS_CONSUMER_CLIENT=client).start()
        second = new_harness(harness_dsn, harness, harness_topic, HARNESS_CONSUMER_CLIENT=client).start()
        await first.wait_ready()
        await second.wait_ready()

        async def balanced() -> bool:
            a, b = first.health(), second.health()
            return bool(a and b and a["assigned_partitions"] + b["assigned_partitions"] == harness_topic.partitions)

        await support.eventually(balanced, what="partitions split between the two instances")
        await stream(producer, harness_topic, counters, total=120, rate=60)
        await wait_effects_all(harness_db, counters, 120)
        workers = await harness_db.fetch(
            "SELECT worker, count(*) FROM effects WHERE counter = ANY($1::text[]) GROUP BY worker", counters
        )
        assert len(workers) == 2, f"both instances should have handled messages: {workers}"

        first.kill()
        await stream(producer, harness_topic, counters, total=120, rate=60)
        await wait_effects_all(harness_db, counters, 240, timeout=90)
        await asyncio.sleep(1)
        assert await totals(harness_db, counters) == (240, 240)
        survivor = second.health()
        assert survivor is not None
        assert survivor["assigned_partitions"] == harness_topic.partitions


async def wait_effects_all(
    db: asyncpg.Connection[Any], counters: list[str], expected: int, timeout: float = 60
) -> None:
    async def enough() -> bool:
        return (await totals(db, counters))[0] >= expected

    await support.eventually(enough, timeout=timeout, what=f"{expected} effects")
