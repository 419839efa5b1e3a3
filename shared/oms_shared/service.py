"""The service host: builds every resource inside ``main()`` and runs a service until SIGTERM.

A service's ``app.py`` describes itself with a :class:`ServiceSpec` (name, settings,
subscriptions, migrations, extra background workers) and calls :func:`run`. The
host owns the pool, the producer, the outbox relay, the consumer runtime and the
health endpoint, so no service repeats that wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from oms_shared.db import apply_migrations, create_pool
from oms_shared.errors import is_transient
from oms_shared.health import HealthServer
from oms_shared.inbox import prune
from oms_shared.kafka import create_consumer, create_producer
from oms_shared.logs import configure_logging
from oms_shared.outbox import Publisher
from oms_shared.relay import OutboxRelay
from oms_shared.retry import Backoff
from oms_shared.runtime import ConsumerRuntime, OneStatement, Prepare, Subscription
from oms_shared.settings import ServiceSettings

__all__ = ["Resources", "ServiceSpec", "Worker", "periodic", "run", "serve"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Resources:
    """What background workers of a service may use."""

    pool: asyncpg.Pool[Any]
    producer: AIOKafkaProducer
    settings: ServiceSettings
    stopping: asyncio.Event
    #: Publishes a unit of work's outbox rows right after its commit (``unit_of_work(..., publisher)``).
    publisher: Publisher | None = None


Worker = Callable[[Resources], Coroutine[Any, Any, None]]


def periodic(name: str, step: Callable[[Resources], Awaitable[float]]) -> Worker:
    """A worker running ``step`` until the service stops; ``step`` returns how long to wait before the next run.

    Transient errors (database or broker away) are retried with backoff; any other
    error ends the worker, and the host then stops the service.
    """

    async def run(resources: Resources) -> None:
        backoff = Backoff()
        while not resources.stopping.is_set():
            try:
                delay = await step(resources)
                backoff.reset()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = backoff.next()
                log.warning("worker_retrying", worker=name, error=repr(exc), delay_s=round(delay, 3))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(resources.stopping.wait(), timeout=delay)

    run.__name__ = name
    return run


@dataclass(frozen=True)
class ServiceSpec:
    """Everything that makes one service different from another."""

    name: str
    settings: ServiceSettings
    subscriptions: Sequence[Subscription]
    migrations: Sequence[str] = ()
    workers: Sequence[Worker] = field(default_factory=tuple)
    #: Consumer group; defaults to ``oms-<name>``. Instances of one service share it.
    group_id: str | None = None
    #: Loads what a batch's handlers need in one go (see :data:`oms_shared.runtime.Prepare`).
    prepare: Prepare | None = None
    #: Handlers only read and one writer part writes each batch in a single statement
    #: (see the one-statement mode in :mod:`oms_shared.runtime`); a predicate: the batches it accepts.
    one_statement: OneStatement = False
    #: No database at all: the consumer produces its handlers' messages itself (the stateless
    #: mode in :mod:`oms_shared.runtime`), so there are no migrations, relay, workers or inbox.
    stateless: bool = False

    def __post_init__(self) -> None:
        if self.stateless and (self.migrations or self.workers or self.prepare or self.one_statement):
            raise ValueError(f"{self.name}: a stateless service has no database for migrations, workers or writes")
        if self.stateless and not self.subscriptions:
            raise ValueError(f"{self.name}: a stateless service only answers messages: give it a subscription")


#: Allocations between two young-generation collections (CPython's default: 700).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect garbage cycles less often: a service allocates thousands of objects per batch.

    CPython starts a young-generation collection every 700 allocations and an old one
    every 100 of those; each batch (envelopes, pydantic models, SQL rows) then pays for
    many collections that find no cycles, and the old-generation ones walk every live
    object (pools, caches, the loaded code). The modules loaded at start-up are frozen
    out of the collector's sight, and the young generation is collected every 50,000
    allocations. Memory stays bounded: reference counting frees almost everything at once.
    """
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def run(spec: ServiceSpec) -> None:
    """Entry point: run the service on uvloop until SIGTERM or SIGINT; exit 1 if a part crashed."""
    import uvloop

    configure_logging(spec.name, spec.settings.log_level, spec.settings.log_format)
    tune_gc()
    if not uvloop.run(serve(spec)):
        raise SystemExit(1)


async def serve(spec: ServiceSpec) -> bool:
    """Start every part of the service, serve until a stop signal, then shut down in order.

    Returns False when a part of the service crashed (the supervisor should restart it).
    """
    settings = spec.settings
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    started = time.monotonic()
    pool: asyncpg.Pool[Any] | None = None
    relay: OutboxRelay | None = None
    producer = create_producer(settings.kafka_bootstrap_servers, client_id=f"oms-{spec.name}")
    if not spec.stateless:
        pool = await _wait_for(
            lambda: create_pool(
                settings.database_url, settings.db_pool_size, plan_cache_mode=settings.db_plan_cache_mode
            ),
            "postgres",
            stopping,
        )
        await apply_migrations(pool, "oms_shared.migrations", *spec.migrations)
        relay = OutboxRelay(
            producer,
            dsn=settings.database_url,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            pace_s=settings.relay_pace_s,
        )
    await _wait_for(producer.start, "kafka", stopping)
    runtime: ConsumerRuntime | None = None
    consumer = None
    if spec.subscriptions:
        consumer = create_consumer(
            settings.kafka_bootstrap_servers,
            spec.group_id or f"oms-{spec.name}",
            [s.topic.name for s in spec.subscriptions],
            client_id=f"oms-{spec.name}",
            instance_id=settings.instance_id,
            max_records=settings.consumer_batch_size,
            fetch_wait_ms=settings.consumer_fetch_wait_ms,
            fetch_min_bytes=settings.consumer_fetch_min_bytes,
            client=settings.consumer_client,
        )
        await _wait_for(consumer.start, "kafka consumer", stopping)
        runtime = ConsumerRuntime(
            name=spec.group_id or f"oms-{spec.name}",
            source=f"oms/{spec.name}",
            pool=pool,
            consumer=consumer,
            producer=producer,
            subscriptions=spec.subscriptions,
            batch_size=settings.consumer_batch_size,
            prepare=spec.prepare,
            commit_interval_s=settings.consumer_commit_interval_s,
            one_statement=spec.one_statement,
            publisher=relay,
        )
    tasks: list[asyncio.Task[None]] = []
    if relay is not None:
        tasks.append(asyncio.create_task(relay.run(), name="relay"))
    if runtime is not None:
        tasks.append(asyncio.create_task(runtime.run(), name="consumer"))
    if pool is not None:
        resources = Resources(pool, producer, settings, stopping, relay)
        tasks += [asyncio.create_task(w(resources), name=getattr(w, "__name__", "worker")) for w in spec.workers]
        if runtime is not None:
            tasks.append(asyncio.create_task(periodic("inbox_pruner", _prune_inbox)(resources), name="inbox_pruner"))

    async def check() -> dict[str, object]:
        dead = [t.get_name() for t in tasks if t.done()]
        if pool is not None:
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        return {
            "service": spec.name,
            "ready": not dead,
            "dead_tasks": dead,
            "assigned_partitions": len(runtime.assignment) if runtime else 0,
            "handled": runtime.handled if runtime else 0,
            "dead_lettered": runtime.dead_lettered if runtime else 0,
            "consumer": runtime.timings.as_dict() if runtime else {},
            "published": relay.published if relay else (runtime.produced if runtime else 0),
            "published_from_memory": relay.published_from_memory if relay else 0,
            "relay_leading": relay.leading if relay else False,
        }

    health = HealthServer(check, settings.health_host, settings.health_port)
    await health.start()
    log.info("service_started", port=health.port, startup_s=round(time.monotonic() - started, 3))

    stop_wait = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in done if t is not stop_wait and (t.cancelled() or t.exception() is not None)]
    for task in crashed:
        log.error("task_crashed", task=task.get_name(), error=repr(task.exception()))
    stopping.set()
    log.info("service_stopping")
    if runtime is not None:
        runtime.stop()
    if relay is not None:
        relay.stop()
    await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    await health.close()
    if consumer is not None:
        await consumer.stop()
    await producer.stop()
    if pool is not None:
        await pool.close()
    log.info("service_stopped")
    return not crashed


async def _prune_inbox(resources: Resources) -> float:
    """Forget handled message ids past the retention, a chunk at a time; wait an interval."""
    async with resources.pool.acquire() as conn:
        while (pruned := await prune(conn, resources.settings.inbox_retention_s)) > 0:
            log.info("inbox_pruned", rows=pruned)
    return resources.settings.inbox_prune_interval_s


async def _wait_for(start: Callable[[], Awaitable[Any]], what: str, stopping: asyncio.Event) -> Any:
    """Retry a start-up step while the dependency is not reachable yet (e.g. during `make up`)."""
    backoff = Backoff(base_s=0.2, cap_s=5.0)
    while True:
        try:
            return await start()
        except Exception as exc:
            if stopping.is_set() or not is_transient(exc):
                raise
            delay = backoff.next()
            log.warning("dependency_unavailable", dependency=what, error=repr(exc), delay_s=round(delay, 2))
            await asyncio.sleep(delay)
