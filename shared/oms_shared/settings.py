"""Settings from the environment (pydantic-settings).

Fields every service shares are unprefixed (``KAFKA_BOOTSTRAP_SERVERS``,
``LOG_FORMAT``, ``LOG_LEVEL``); a service's own fields carry its prefix
(``ORDER_DATABASE_URL``, ``ORDER_HEALTH_PORT``). A service declares::

    class OrderSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="ORDER_")
        database_url: str = local_database_url("order")
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from oms_shared.db import PlanCacheMode
from oms_shared.topology import database_name, role_name

__all__ = [
    "LOCAL_PG_PORT",
    "LOCAL_PG_SOCKET_DIR",
    "PATH_CONSUMER_CLIENT",
    "ConsumerClient",
    "OffPathSettings",
    "ServiceSettings",
    "SharedSettings",
    "local_database_url",
]

LOCAL_PG_PORT = 55432
#: The local cluster also listens on 127.0.0.1, but the services talk to it over its
#: Unix socket: a round trip there costs half a loopback TCP one (measured on this
#: 2-core VM: 53 vs 96 us, client CPU 23 vs 51 us), and a batch makes several.
LOCAL_PG_SOCKET_DIR = "/tmp"  # noqa: S108 - PostgreSQL's own default; SCRAM also authenticates the server


ConsumerClient = Literal["aiokafka", "librdkafka"]

#: The consumer client of the intake->reserved path's services (order, inventory). At 100
#: orders/s their consumers run ~190 and ~100 batches a second, most of one message, and
#: aiokafka spent ~440 us of CPU on each against librdkafka's ~220 (bench/README.md, session
#: 15): in quick runs the order process used 22.8-26.6% of a core against 29.1-31.1, p99
#: intake->reserved 35-48 ms against 52-55.
PATH_CONSUMER_CLIENT: ConsumerClient = "librdkafka"


def local_database_url(service: str) -> str:
    """The DSN of ``service``'s database on the project's local PostgreSQL cluster (Unix socket)."""
    role = role_name(service)
    return f"postgresql://{role}:{role}@/{database_name(service)}?host={LOCAL_PG_SOCKET_DIR}&port={LOCAL_PG_PORT}"


def _shared(name: str) -> AliasChoices:
    # An explicit alias makes pydantic-settings ignore the subclass's env_prefix.
    return AliasChoices(name)


class SharedSettings(BaseSettings):
    """Settings every process of the OMS reads, without prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS"))
    log_format: Literal["auto", "json", "console"] = Field("auto", validation_alias=_shared("LOG_FORMAT"))
    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))


class ServiceSettings(SharedSettings):
    """Fields every service has, read with the service's own prefix."""

    database_url: str
    health_host: str = "127.0.0.1"
    health_port: int = 0
    #: Kafka group instance id for static membership (fewer rebalances on restart).
    instance_id: str | None = None
    #: At most this many records are handled in one database transaction.
    consumer_batch_size: int = 500
    #: How long the broker may hold an empty fetch (ms): latency per hop versus idle polling.
    #: Measured on 2 cores: 10 ms costs half a core at idle across the stack, 50 ms a sixth,
    #: and 50 ms gave the lower latency under load (less CPU stolen from the work).
    consumer_fetch_wait_ms: int = 50
    #: The broker answers a fetch once it has this many bytes for us (or the wait is over).
    #: 1 answers at once: right on the order path. A service off it may wait for fuller
    #: batches: each batch and fetch has a fixed cost, paid per message when batches are small.
    consumer_fetch_min_bytes: int = Field(1, ge=1)
    #: The consumer's Kafka client: aiokafka, or librdkafka (confluent-kafka: fetches and
    #: decoding in C, half the client CPU per batch; see oms_shared.librdkafka). The path's
    #: services (order, inventory), which run hundreds of small batches a second, use
    #: librdkafka (:data:`PATH_CONSUMER_CLIENT`); off the path batches are few and large.
    consumer_client: ConsumerClient = "aiokafka"
    #: Offsets are committed at most this often (s): handled batches are durable in the
    #: database already and a replay after a crash is deduplicated by the inbox.
    consumer_commit_interval_s: float = 0.1
    #: A relay round reads outbox rows (one per unit of work) until this many messages,
    #: the last row whole; published rows are deleted once this many of them wait.
    relay_batch_size: int = 1000
    #: The relay polls this often when no NOTIFY arrives (a safety net, not the main wake-up).
    relay_poll_interval_s: float = 1.0
    #: A relay round starts no sooner than this after the previous one started (s): idle,
    #: a committed row goes out at once; busy, rows gather into fewer, larger rounds.
    relay_pace_s: float = Field(0.002, ge=0)
    db_pool_size: int = 10
    #: PostgreSQL's plan_cache_mode on the pool's connections. "auto": a prepared statement
    #: is planned for its parameters five times, then keeps a generic plan unless that looks
    #: dearer (most of ours keep one; a statement whose plan fits any batch may not).
    db_plan_cache_mode: PlanCacheMode = "auto"
    #: Handled message ids are kept this long for deduplication, then pruned.
    inbox_retention_s: float = 7 * 24 * 3600
    #: How often the host prunes the inbox.
    inbox_prune_interval_s: float = 60.0


class OffPathSettings(ServiceSettings):
    """Settings of a consumer off the intake->reserved path (fulfillment, shipping, returns, simulators).

    The broker may hold its fetches for fuller batches: every batch costs a transaction,
    a relay round, a produce request and a fetch whatever its size, and on two cores the
    path's consumers get the CPU saved. Up to 64 KiB or 200 ms: at 100 orders/s these five
    consumers used ~15-18% of a core against ~31% with a 50 ms wait (the machine 65-80%
    busy against 88%, p99 intake->reserved 57-105 against 95-110 ms; at 300/s p99 517-915
    against 1,206-1,697 ms), while the journey to shipped took ~0.7 s instead of ~0.3 s at
    p50 (bench/README.md, session 14). 64 KiB alone, with the 50 ms wait, had taken them
    from ~53% to ~32%.
    """

    consumer_fetch_min_bytes: int = Field(64 * 1024, ge=1)
    consumer_fetch_wait_ms: int = 200
