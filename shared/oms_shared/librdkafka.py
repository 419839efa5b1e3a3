"""Kafka clients on librdkafka (confluent-kafka): the runtime's consumer and the services' producer.

The consumer stands behind the part of aiokafka's consumer API the runtime uses.

aiokafka builds and parses every fetch in Python: on this 2-core machine a consumer
subscribed to 30 partitions and handed one message per batch spent ~440 us of CPU per
batch (commits every 0.1 s included); on librdkafka, whose fetches, decoding and offset
commits run in C threads, with the wait for a message in a worker thread, ~220 us
(bench/README.md, session 15). Selected per service with ``<PREFIX>_CONSUMER_CLIENT``.

Every call on the librdkafka handle runs in ONE worker thread, in order (the Python
binding's Consumer is not meant to be shared between threads): a commit asked for while
that thread waits for messages goes after the wait (at most ``timeout_ms``, or as soon as
a message arrives). Rebalance callbacks run there too, inside the wait.

The producer publishes a list of messages and waits for every acknowledgement (what the
outbox relay does each round, and the dead-letter path with one message). aiokafka built
each batch and request in Python: publishing rounds of 20 messages of ~1 KB with 12
headers cost ~29 us of CPU per message, one-message rounds ~320 us; on librdkafka ~15 and
~95 (bench/README.md, session 16). Its calls run in one worker thread as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import confluent_kafka
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError
from aiokafka.structs import TopicPartition

__all__ = ["LibrdkafkaConsumer", "LibrdkafkaProducer", "Message", "Record"]

#: Commit errors that mean the group moved on (the new owner replays; the inbox dedupes).
_GROUP_MOVED = {
    confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS,
    confluent_kafka.KafkaError.ILLEGAL_GENERATION,
    confluent_kafka.KafkaError.UNKNOWN_MEMBER_ID,
    confluent_kafka.KafkaError.FENCED_INSTANCE_ID,
    confluent_kafka.KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001  (librdkafka's local error codes)
    confluent_kafka.KafkaError._STATE,  # noqa: SLF001
}

#: Delivery errors that mean the broker could not be reached or answer in time (retry).
_UNREACHABLE = {
    confluent_kafka.KafkaError._MSG_TIMED_OUT,  # noqa: SLF001
    confluent_kafka.KafkaError._TIMED_OUT,  # noqa: SLF001
    confluent_kafka.KafkaError._TRANSPORT,  # noqa: SLF001
    confluent_kafka.KafkaError._ALL_BROKERS_DOWN,  # noqa: SLF001
}

_Headers = list[tuple[str, bytes]]
#: A message to publish: topic, key, headers, value.
Message = tuple[str, bytes | None, _Headers, bytes | None]


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


class LibrdkafkaProducer:
    """Publishes lists of messages and waits until the broker acknowledged all of them.

    Messages of one partition go out in the order given (idempotent producer: a retry
    neither reorders nor doubles them). Only failed deliveries call back into Python
    (``delivery.report.only.error``); ``flush`` waits for the acknowledgements and sends
    what is queued at once, without waiting out a linger.
    """

    def __init__(self, config: dict[str, Any], *, ack_timeout_s: float) -> None:
        #: librdkafka's configuration of the handle (kafka.create_producer spells it out).
        self.config = config
        self._ack_timeout_s = ack_timeout_s
        self._producer: confluent_kafka.Producer | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="librdkafka-producer")
        self._failed: list[confluent_kafka.KafkaError] = []

    async def start(self) -> None:
        """Create the handle and check the broker answers."""
        await self._run(self._start)

    def _start(self) -> None:
        producer = confluent_kafka.Producer({**self.config, "on_delivery": self._on_delivery})
        try:
            producer.list_topics(timeout=5)
        except confluent_kafka.KafkaException as exc:
            raise KafkaConnectionError(f"broker not reachable: {exc}") from exc
        self._producer = producer

    def _on_delivery(self, error: confluent_kafka.KafkaError | None, _message: object) -> None:
        if error is not None:
            self._failed.append(error)

    async def stop(self) -> None:
        """Deliver what is still queued (for up to the acknowledgement timeout) and close."""
        if self._producer is not None:
            await self._run(self._producer.flush, self._ack_timeout_s)
            self._producer = None
        self._thread.shutdown(wait=True)

    async def send_all(self, messages: Iterable[Message]) -> None:
        """Publish ``messages`` and return once every one is acknowledged by all in-sync replicas.

        Raises KafkaConnectionError or KafkaTimeoutError (retry: some may have been
        published, consumers dedupe), or KafkaException for an error retrying cannot mend.
        """
        await self._run(self._send_all, messages)

    async def send_and_wait(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Publish one message and wait for its acknowledgement."""
        await self.send_all([(topic, key, headers or [], value)])

    def _send_all(self, messages: Iterable[Message]) -> None:
        producer = self._producer
        assert producer is not None
        producer.poll(0)  # reports of a previous failed call's messages, if any, are not this call's
        self._failed = []
        for topic, key, headers, value in messages:
            producer.produce(topic, value, key, headers=cast("list[tuple[str, str | bytes | None]]", headers))
        left = producer.flush(self._ack_timeout_s)
        if self._failed:
            error = self._failed[0]
            if error.code() in _UNREACHABLE or error.retriable():
                raise KafkaConnectionError(f"{len(self._failed)} messages not delivered: {error}")
            raise confluent_kafka.KafkaException(error)
        if left:
            raise KafkaTimeoutError(f"{left} messages not acknowledged within {self._ack_timeout_s} s")

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)
