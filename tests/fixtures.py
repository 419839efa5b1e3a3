"""Fixtures shared by the integration tests: the real Kafka and the real PostgreSQL.

The tests use, in this order of preference: servers named by environment variables
(``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` as a superuser URL); containers from
testcontainers when ``OMS_TESTCONTAINERS=1`` and a Docker engine answers; otherwise
the project's local stack, started by ``make up`` (``make test`` does that first).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from oms_shared.db import PlanCacheMode, apply_migrations, create_pool
from oms_shared.topics import ALL_TOPICS, Topic, ensure_topics
from tests import support
from tests.harness.app import EVENTS as HARNESS_EVENTS
from tests.harness.app import commands_topic


@pytest.fixture(scope="session")
def _containers() -> Iterator[None]:
    """With OMS_TESTCONTAINERS=1, run Kafka and PostgreSQL in containers and point the env at them."""
    if os.environ.get("OMS_TESTCONTAINERS") != "1":
        yield
        return
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:15") as pg:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.get_bootstrap_server()
        os.environ["DATABASE_URL"] = pg.get_connection_url(driver=None)
        yield


@pytest.fixture(scope="session")
def stack(_containers: None) -> Any:
    """The deploy/stack.py module: addresses and provisioning of the stack under test."""
    return support.stack()


@pytest.fixture(scope="session")
async def topics(stack: Any) -> None:
    """Every registered topic plus the harness's, created from the registry."""
    await ensure_topics(support.bootstrap_servers(), [*ALL_TOPICS, HARNESS_EVENTS])


@pytest.fixture(scope="session")
async def harness_dsn(stack: Any, topics: None) -> str:
    """A database and role for the harness service, provisioned like a real service's."""
    dsn: str = await stack.provision_service(stack.admin_url(), "harness")
    return dsn


@pytest.fixture
async def harness_db(harness_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(harness_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def producer(topics: None) -> AsyncIterator[AIOKafkaProducer]:
    p = await support.started_producer()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def harness_topic(topics: None) -> Topic:
    """A command topic (and consumer group) of this test's own."""
    topic = commands_topic(f"oms.harness.t{uuid.uuid4().hex[:12]}.v1")
    await ensure_topics(support.bootstrap_servers(), [topic])
    return topic


@pytest.fixture
def harness(harness_dsn: str) -> Iterator[list[support.ServiceProcess]]:
    """Harness processes a test starts; all are killed at the end of the test."""
    started: list[support.ServiceProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture(scope="session")
def fresh_service_db(stack: Any) -> Any:
    """A factory: a migrated, empty database of its own for a service's tests.

    ``await fresh_service_db("inventory", "oms_inventory.migrations")`` provisions the
    database ``oms_inventory_test`` (role ``oms_inventory_test``) next to the real one,
    wipes it, applies the shared and the service's migrations and returns a pool (planning
    as ``plan_cache_mode`` says: pass the service's own). Running services are never touched.
    """
    pools: list[asyncpg.Pool[Any]] = []

    async def make(service: str, *migrations: str, plan_cache_mode: PlanCacheMode = "auto") -> asyncpg.Pool[Any]:
        dsn = await stack.provision_service(stack.admin_url(), f"{service}_test")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
        pool = await create_pool(dsn, size=4, plan_cache_mode=plan_cache_mode)
        await apply_migrations(pool, "oms_shared.migrations", *migrations)
        pools.append(pool)
        return pool

    return make


#: The harness's two ways of writing a batch: in a transaction, and one-statement (see
#: oms_shared.runtime); and its consumer on librdkafka instead of aiokafka (oms_shared.librdkafka).
HARNESS_MODES = pytest.mark.parametrize(
    "mode",
    [{}, {"HARNESS_ONE_STATEMENT": "true"}, {"HARNESS_ONE_STATEMENT": "true", "HARNESS_CONSUMER_CLIENT": "librdkafka"}],
    ids=["transaction", "one-statement", "one-statement-librdkafka"],
)


def new_harness(
    harness_dsn: str, started: list[support.ServiceProcess], topic: Topic, **env: str
) -> support.ServiceProcess:
    """A harness process consuming ``topic`` in a consumer group named after it."""
    proc = support.ServiceProcess(
        "tests.harness",
        "HARNESS",
        env={
            "HARNESS_DATABASE_URL": harness_dsn,
            "HARNESS_COMMANDS_TOPIC": topic.name,
            "HARNESS_GROUP_ID": f"group-{topic.name}",
            **env,
        },
        name=f"{topic.name}-{len(started)}",
    )
    started.append(proc)
    return proc
