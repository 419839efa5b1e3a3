"""Acceptance 2: poison messages land on the DLT with the reason; the next message is processed."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from oms_shared.envelope import Envelope
from oms_shared.topics import Topic
from tests import support
from tests.fixtures import HARNESS_MODES, new_harness
from tests.harness.app import Increment


async def read_dead_letters(topic: Topic, key: bytes, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        topic.dlt.name,
        bootstrap_servers=support.bootstrap_servers(),
        group_id=f"dlt-reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:

        async def collected() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key == key:
                        headers = {name: value.decode() for name, value in record.headers}
                        headers["value"] = (record.value or b"").decode(errors="replace")
                        found.append(headers)
            return len(found) >= expected

        await support.eventually(collected, timeout=60, what=f"{expected} dead letters")
    finally:
        await consumer.stop()
    return found


class TestPoisonMessages:
    """Undecodable, schema-invalid and unknown messages are dead-lettered, never block the partition."""

    @HARNESS_MODES
    async def test_poison_goes_to_dlt_and_next_message_is_processed(
        self,
        producer: AIOKafkaProducer,
        harness_dsn: str,
        harness_db: asyncpg.Connection[Any],
        harness: list[Any],
        harness_topic: Topic,
        mode: dict[str, str],
    ) -> None:
        key = f"poison-{uuid.uuid4()}"
        good = Increment(counter=key, amount=1)

        def raw(data: bytes, ce_type: str = Increment.ce_type) -> Envelope:
            return Envelope(type=ce_type, source="tests", data=data, key=key.encode())

        poison = [
            ("invalid_json", raw(b'{"counter": "x", "amount": ')),
            ("schema", raw(b'{"counter": "x", "amount": "many"}')),
            ("unknown_type", raw(good.model_dump_json().encode(), ce_type="oms.harness.unheard-of.v1")),
            ("handler", raw(Increment(counter=f"explode-{key}", amount=1).model_dump_json().encode())),
        ]
        proc = new_harness(harness_dsn, harness, harness_topic, **mode).start()
        await proc.wait_ready()
        for _, envelope in poison:
            await support.publish(producer, harness_topic.name, envelope)
        # A record without CloudEvents headers at all.
        await producer.send_and_wait(harness_topic.name, value=b"hello", key=key.encode())
        await support.publish(producer, harness_topic.name, support.envelope_for(good, key=key))

        async def good_done() -> bool:
            return bool(await harness_db.fetchval("SELECT count(*) FROM effects WHERE counter = $1", key))

        await support.eventually(good_done, what="the good message after the poison ones")
        letters = await read_dead_letters(harness_topic, key.encode(), expected=5)
        reasons = sorted(letter["dlt_reason"] for letter in letters)
        assert reasons == sorted(["undecodable", "schema_violation", "unknown_type", "handler_error", "undecodable"])
        by_reason = {letter["dlt_reason"]: letter for letter in letters}
        assert "amount" in by_reason["schema_violation"]["dlt_error"]
        assert "unheard-of" in by_reason["unknown_type"]["dlt_error"]
        assert "RuntimeError" in by_reason["handler_error"]["dlt_error"]
        for letter in letters:
            assert letter["dlt_topic"] == harness_topic.name
            assert letter["dlt_consumer"] == f"group-{harness_topic.name}"
            assert int(letter["dlt_offset"]) >= 0
        # The raw message is kept byte for byte.
        assert any(letter["value"] == '{"counter": "x", "amount": ' for letter in letters)
        assert await harness_db.fetchval("SELECT count(*) FROM effects WHERE counter = $1", key) == 1
        health = proc.health()
        assert health is not None
        assert health["ready"] is True
        assert health["consumer"]["replayed"] >= 1  # the exploding handler's batch ran again claiming first
