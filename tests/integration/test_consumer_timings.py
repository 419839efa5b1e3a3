"""The consumer's timings on the health endpoint: where a batch's time goes, for operators."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from oms_shared.topics import Topic
from tests import support
from tests.fixtures import new_harness
from tests.harness.app import Increment


class TestConsumerTimings:
    """Batches, busy time and the transaction's phases are counted while messages are handled."""

    async def test_health_reports_batches_and_phases(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
    ) -> None:
        key = f"timings-{uuid.uuid4()}"
        proc = new_harness(harness_dsn, harness, harness_topic).start()
        await proc.wait_ready()
        before = proc.health()
        assert before is not None
        assert before["consumer"]["batches"] == 0
        for _ in range(20):
            await support.publish(
                producer, harness_topic.name, support.envelope_for(Increment(counter=key, amount=1), key=key)
            )

        async def all_done() -> bool:
            return bool(await harness_db.fetchval("SELECT count(*) FROM effects WHERE counter = $1", key) == 20)

        await support.eventually(all_done, what="20 increments")
        after = proc.health()
        assert after is not None
        timings = after["consumer"]
        assert 1 <= timings["batches"] <= 20
        assert timings["busy_s"] > 0
        assert timings["replayed"] == 0  # fresh messages, no failure: every batch's first attempt stood
        phases = timings["phases_s"]
        assert set(phases) == {"begin", "prepare", "handlers", "writes", "commit"}
        # Each batch waits on the database for BEGIN, its handlers' inserts, the outbox and COMMIT.
        assert all(phases[name] > 0 for name in ("begin", "handlers", "writes", "commit")), phases
        # The phases are inside the batches' busy time.
        assert sum(phases.values()) <= timings["busy_s"] + 1e-5
