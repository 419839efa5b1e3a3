"""Acceptance 1: a message has exactly one effect, whatever crashes and duplicates happen."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from oms_shared.outbox import OutgoingMessage, write_outbox
from oms_shared.topics import Topic
from tests import support
from tests.fixtures import new_harness
from tests.harness.app import Increment


async def effects(db: asyncpg.Connection[Any], counter: str) -> tuple[int, int]:
    """(rows, distinct message ids) recorded for ``counter``."""
    row = await db.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM effects WHERE counter = $1", counter
    )
    assert row is not None
    return int(row["n"]), int(row["d"])


async def wait_effects(db: asyncpg.Connection[Any], counter: str, expected: int, timeout: float = 60) -> None:
    async def enough() -> bool:
        return (await effects(db, counter))[0] >= expected

    await support.eventually(enough, timeout=timeout, what=f"{expected} effects for {counter}")


class TestExactlyOneEffect:
    """Crashes between two steps and duplicate publication never double or lose an effect."""

    async def test_consumer_killed_after_db_commit_before_offset_commit(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        """SIGKILL between the database commit and the offset commit: the replay is a no-op."""
        counter = f"kill-consumer-{uuid.uuid4()}"
        first = new_harness(harness_dsn, harness, harness_topic, OMS_FAILPOINTS="consumer.after_db_commit").start()
        await first.wait_ready()
        for _ in range(20):
            await support.publish(
                producer, harness_topic.name, support.envelope_for(Increment(counter=counter, amount=1), key=counter)
            )
        assert await first.wait_exit(timeout=60) == -9, "the failpoint should have killed the consumer"
        assert (await effects(harness_db, counter))[0] >= 1, "the crash came after a database commit"

        second = new_harness(harness_dsn, harness, harness_topic).start()
        await second.wait_ready()
        await wait_effects(harness_db, counter, 20)
        await second.wait_ready()  # one more round trip: nothing else may arrive late
        assert await effects(harness_db, counter) == (20, 20)

    async def test_relay_killed_after_publish_before_delete(
        self,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        """SIGKILL after Kafka acknowledged the outbox rows, before they were deleted: republished, applied once."""
        counter = f"kill-relay-{uuid.uuid4()}"
        messages = [
            OutgoingMessage(harness_topic.name, support.envelope_for(Increment(counter=counter, amount=1), key=counter))
            for _ in range(10)
        ]
        async with harness_db.transaction():
            await write_outbox(harness_db, messages)

        first = new_harness(harness_dsn, harness, harness_topic, OMS_FAILPOINTS="relay.after_publish").start()
        assert await first.wait_exit(timeout=60) == -9, "the failpoint should have killed the relay"
        pending = await harness_db.fetchval(
            "SELECT count(*) FROM outbox WHERE payload = ANY($1::bytea[])", [m.envelope.data for m in messages]
        )
        assert pending == 10, "rows published but not deleted must still be in the outbox"

        second = new_harness(harness_dsn, harness, harness_topic).start()
        await second.wait_ready()
        await wait_effects(harness_db, counter, 10)

        async def outbox_drained() -> bool:
            return bool(await harness_db.fetchval("SELECT count(*) FROM outbox") == 0)

        await support.eventually(outbox_drained, what="outbox drained")
        assert await effects(harness_db, counter) == (10, 10)

    async def test_same_message_published_twice(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        """The same ce_id published twice (in one batch and again later) has one effect."""
        counter = f"dup-{uuid.uuid4()}"
        envelope = support.envelope_for(Increment(counter=counter, amount=1), key=counter)
        proc = new_harness(harness_dsn, harness, harness_topic).start()
        await proc.wait_ready()
        await support.publish(producer, harness_topic.name, envelope)
        await support.publish(producer, harness_topic.name, envelope)
        await wait_effects(harness_db, counter, 1)
        await support.publish(producer, harness_topic.name, envelope)
        marker = f"{counter}-marker"
        await support.publish(
            producer, harness_topic.name, support.envelope_for(Increment(counter=marker, amount=1), key=counter)
        )
        await wait_effects(harness_db, marker, 1)  # same partition, published after: the duplicate was seen
        assert await effects(harness_db, counter) == (1, 1)
