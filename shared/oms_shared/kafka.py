"""Kafka clients configured for the OMS's delivery guarantees.

The clients' defaults (acks=1, no idempotence, auto-commit; CRC32 partitioning in
librdkafka) are wrong for us, so every client is built here, with the settings spelled out.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer

from oms_shared.librdkafka import LibrdkafkaConsumer, LibrdkafkaProducer
from oms_shared.settings import ConsumerClient

__all__ = ["create_consumer", "create_producer"]

# The group membership timings both consumer clients use.
_SESSION_TIMEOUT_MS = 10_000
_HEARTBEAT_INTERVAL_MS = 1_000
#: A batch may wait on a database outage; give it time before the group evicts us.
_MAX_POLL_INTERVAL_MS = 300_000
#: How long a published message may wait for the broker's acknowledgement.
_DELIVERY_TIMEOUT_MS = 30_000


def create_producer(bootstrap_servers: str, client_id: str) -> LibrdkafkaProducer:
    """An idempotent producer that waits for all in-sync replicas, partitioning as the Java client."""
    return LibrdkafkaProducer(
        {
            "bootstrap.servers": bootstrap_servers,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            # murmur2 of the key, as the Java client and aiokafka (librdkafka's default is CRC32).
            "partitioner": "murmur2_random",
            # Callers wait for each list's acknowledgements (flush sends at once, linger or not).
            "linger.ms": 0,
            # librdkafka leaves Nagle's algorithm on: a lone message then waited for the
            # previous request's (delayed) ACK.
            "socket.nagle.disable": True,
            # A message not acknowledged by then fails (the caller retries; consumers dedupe).
            "message.timeout.ms": _DELIVERY_TIMEOUT_MS,
            "delivery.report.only.error": True,
        },
        ack_timeout_s=_DELIVERY_TIMEOUT_MS / 1000 + 5,
    )


def create_consumer(
    bootstrap_servers: str,
    group_id: str,
    topics: Sequence[str],
    *,
    client_id: str,
    instance_id: str | None = None,
    max_records: int = 500,
    fetch_wait_ms: int = 50,
    fetch_min_bytes: int = 1,
    client: ConsumerClient = "aiokafka",
) -> AIOKafkaConsumer | LibrdkafkaConsumer:
    """A consumer whose offsets are committed by the runtime, after the database commit."""
    if client == "librdkafka":
        config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": fetch_wait_ms,
            "fetch.min.bytes": fetch_min_bytes,
            "session.timeout.ms": _SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": _HEARTBEAT_INTERVAL_MS,
            "max.poll.interval.ms": _MAX_POLL_INTERVAL_MS,
            # What librdkafka prefetches per partition set (default 64 MB): a backlog must
            # not take a service past its memory budget.
            "queued.max.messages.kbytes": 8_192,
        }
        if instance_id:
            config["group.instance.id"] = instance_id
        return LibrdkafkaConsumer(topics, config)
    extra = {"group_instance_id": instance_id} if instance_id else {}
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_records,
        # aiokafka keeps one fetch in flight per broker and leaves out partitions whose
        # records are still buffered; a partition just consumed is fetched again only when
        # that request returns. A long broker wait therefore adds up to this much latency
        # per hop under load, so keep it short (but every empty fetch costs broker CPU).
        fetch_max_wait_ms=fetch_wait_ms,
        fetch_min_bytes=fetch_min_bytes,
        session_timeout_ms=_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=_HEARTBEAT_INTERVAL_MS,
        max_poll_interval_ms=_MAX_POLL_INTERVAL_MS,
        **extra,
    )
