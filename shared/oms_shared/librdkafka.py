"""The runtime's consumer on librdkafka (confluent-kafka), behind the part of aiokafka's API it uses.

aiokafka builds and parses every fetch in Python: on this 2-core machine a consumer
subscribed to 30 partitions and handed one message per batch spent ~440 us of CPU per
batch (commits every 0.1 s included); on librdkafka, whose fetches, decoding and offset
commits run in C threads, with the wait for a message in a worker thread, ~220 us
(bench/README.md, session 15). Selected per service with ``<PREFIX>_CONSUMER_CLIENT``.

Every call on the librdkafka handle runs in ONE worker thread, in order (the Python
binding's Consumer is not meant to be shared between threads): a commit asked for while
that thread waits for messages goes after the wait (at most ``timeout_ms``, or as soon as
a message arrives). Rebalance callbacks run there too, inside the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.structs import TopicPartition

__all__ = ["LibrdkafkaConsumer", "Record"]

#: Commit errors that mean the group moved on (the new owner replays; the inbox dedupes).
_GROUP_MOVED = {
    confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS,
    confluent_kafka.KafkaError.ILLEGAL_GENERATION,
    confluent_kafka.KafkaError.UNKNOWN_MEMBER_ID,
    confluent_kafka.KafkaError.FENCED_INSTANCE_ID,
    confluent_kafka.KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001  (librdkafka's local error codes)
    confluent_kafka.KafkaError._STATE,  # noqa: SLF001
}


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed record, with the attributes the runtime reads from aiokafka's."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


class LibrdkafkaConsumer:
    """start, stop, assignment, getmany and commit, as the runtime calls them on an AIOKafkaConsumer."""

    def __init__(self, topics: Sequence[str], config: dict[str, Any]) -> None:
        self._topics = list(topics)
        #: librdkafka's configuration of the handle (kafka.create_consumer spells it out).
        self.config = config
        self._consumer: confluent_kafka.Consumer | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="librdkafka")
        self._assigned: frozenset[TopicPartition] = frozenset()

    async def start(self) -> None:
        """Create the handle, check the broker answers, and subscribe (the group is joined in the first wait)."""
        await self._run(self._start)

    def _start(self) -> None:
        consumer = confluent_kafka.Consumer(self.config)
        try:
            consumer.list_topics(timeout=5)
        except confluent_kafka.KafkaException as exc:
            consumer.close()
            raise KafkaConnectionError(f"broker not reachable: {exc}") from exc
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self._consumer = consumer

    def _on_assign(self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]) -> None:
        self._assigned = self._assigned | {TopicPartition(p.topic, p.partition) for p in partitions}

    def _on_revoke(self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]) -> None:
        self._assigned = self._assigned - {TopicPartition(p.topic, p.partition) for p in partitions}

    async def stop(self) -> None:
        """Leave the group and close the handle."""
        if self._consumer is not None:
            await self._run(self._consumer.close)
            self._consumer = None
        self._thread.shutdown(wait=True)

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now."""
        return self._assigned

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        """Up to ``max_records`` records, returned as soon as one is there (or empty after ``timeout_ms``)."""
        messages = await self._run(self._take, timeout_ms / 1000, max_records)
        batches: dict[TopicPartition, list[Record]] = {}
        for m in messages:
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            record = Record(topic, partition, offset, m.key(), m.value(), m.headers() or [], m.timestamp()[1])
            batches.setdefault(TopicPartition(topic, partition), []).append(record)
        return batches

    def _take(self, timeout_s: float, max_records: int) -> list[confluent_kafka.Message]:
        assert self._consumer is not None
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        good = []
        for m in messages:
            error = m.error()
            if error is None:
                good.append(m)
            elif error.fatal():
                raise confluent_kafka.KafkaException(error)
            # else: informational (e.g. a broker connection dropped); librdkafka retries itself
        return good

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the next offset to read of each partition, and wait for the broker's answer."""
        await self._run(self._commit, offsets)

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        wanted = [confluent_kafka.TopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
        try:
            self._consumer.commit(offsets=wanted, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            error = exc.args[0]
            if error.code() in _GROUP_MOVED:
                raise CommitFailedError(str(error)) from exc
            if error.retriable():
                raise KafkaConnectionError(str(error)) from exc
            raise

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)
