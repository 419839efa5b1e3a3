"""Acceptance 1: a message has exactly one effect, whatever crashes and duplicates happen."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from oms_shared.outbox import OutgoingMessage, write_outbox
from oms_shared.topics import Topic
from tests import support
from tests.fixtures import HARNESS_MODES, new_harness
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

    @HARNESS_MODES
    async def test_consumer_killed_after_db_commit_before_offset_commit(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
        mode: dict[str, str],
    ) -> None:
        """SIGKILL between the database commit and the offset commit: the replay is a no-op."""
        counter = f"kill-consumer-{uuid.uuid4()}"
        first = new_harness(
            harness_dsn, harness, harness_topic, OMS_FAILPOINTS="consumer.after_db_commit", **mode
        ).start()
        await first.wait_ready()
        for _ in range(20):
            await support.publish(
                producer, harness_topic.name, support.envelope_for(Increment(counter=counter, amount=1), key=counter)
            )
        assert await first.wait_exit(timeout=60) == -9, "the failpoint should have killed the consumer"
        assert (await effects(harness_db, counter))[0] >= 1, "the crash came after a database commit"

        second = new_harness(harness_dsn, harness, harness_topic, **mode).start()
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
            "SELECT count(*) FROM outbox_messages WHERE payload = ANY($1::bytea[])", [m.envelope.data for m in messages]
        )
        assert pending == 10, "rows published but not deleted must still be in the outbox"

        second = new_harness(harness_dsn, harness, harness_topic).start()
        await second.wait_ready()
        await wait_effects(harness_db, counter, 10)

        async def outbox_drained() -> bool:
            return bool(await harness_db.fetchval("SELECT count(*) FROM outbox") == 0)

        await support.eventually(outbox_drained, what="outbox drained")
        assert await effects(harness_db, counter) == (10, 10)

    @HARNESS_MODES
    async def test_same_message_published_twice(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
        mode: dict[str, str],
    ) -> None:
        """The same ce_id published twice (in one batch and again later) has one effect."""
        counter = f"dup-{uuid.uuid4()}"
        envelope = support.envelope_for(Increment(counter=counter, amount=1), key=counter)
        proc = new_harness(harness_dsn, harness, harness_topic, **mode).start()
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


class TestOffsetsAreCommitted:
    """Offsets are committed in the background, at most every interval: they still reach the end."""

    async def test_the_group_catches_up_to_the_end_of_the_topic(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        counters = [f"offsets-{i}-{uuid.uuid4()}" for i in range(4)]
        proc = new_harness(harness_dsn, harness, harness_topic, HARNESS_CONSUMER_COMMIT_INTERVAL_S="0.5").start()
        await proc.wait_ready()
        for n in range(40):
            counter = counters[n % len(counters)]
            envelope = support.envelope_for(Increment(counter=counter, amount=1), key=counter)
            await support.publish(producer, harness_topic.name, envelope)
        for counter in counters:
            await wait_effects(harness_db, counter, 10)

        admin = AIOKafkaAdminClient(bootstrap_servers=support.bootstrap_servers())
        consumer = AIOKafkaConsumer(bootstrap_servers=support.bootstrap_servers())
        await admin.start()
        await consumer.start()
        try:

            async def caught_up() -> bool:
                committed = await admin.list_consumer_group_offsets(f"group-{harness_topic.name}")
                ends = await consumer.end_offsets(
                    [TopicPartition(harness_topic.name, p) for p in range(harness_topic.partitions)]
                )
                done = {tp: meta.offset for tp, meta in committed.items() if tp.topic == harness_topic.name}
                return sum(ends.values()) == 40 and all(done.get(tp, 0) == end for tp, end in ends.items())

            await support.eventually(caught_up, timeout=30, what="committed offsets at the end of the topic")
        finally:
            await consumer.stop()
            await admin.close()
