"""The runtime's stateless mode, through the warehouse simulator run without a database.

The real simulator process (``durable=false``, zero delay) on the real broker: it
answers at once, straight to Kafka; killed after producing and before committing its
offsets, it answers again after the restart with the SAME message id, so the
receiver's inbox drops the repeat. Nothing is lost, and the repeat is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from oms_shared import topics
from oms_shared.contracts.fulfillment import PickConfirmed, PickInstruction, PickListCancelled, PickListIssued
from oms_shared.envelope import derived_message_id, new_message_id
from tests import support
from tests.e2e.journey import MANUAL

SIM = ("oms_simulators.warehouse", "WAREHOUSE_SIM")


@pytest.fixture
def sims() -> Iterator[list[support.ServiceProcess]]:
    started: list[support.ServiceProcess] = []
    yield started
    for proc in started:
        proc.kill()


def stateless_sim(group: str, started: list[support.ServiceProcess], **env: str) -> support.ServiceProcess:
    proc = support.ServiceProcess(
        *SIM,
        env={
            "WAREHOUSE_SIM_DURABLE": "false",
            "WAREHOUSE_SIM_PICK_DELAY_S": "0",
            "WAREHOUSE_SIM_GROUP_ID": group,
            "WAREHOUSE_SIM_CONSUMER_FETCH_WAIT_MS": "20",
            # Other simulators may run on the broker: the end-to-end session's leave the
            # warehouse this test uses to tests, and its answers are told apart from those of
            # any other (a benchmark's): every pick list comes back one unit short.
            "WAREHOUSE_SIM_MANUAL_WAREHOUSES": "",
            "WAREHOUSE_SIM_SHORT_PICK_RATE": "1",
            **env,
        },
        name=f"warehouse-sim-stateless-{group[-8:]}",
    )
    started.append(proc)
    return proc.start()


async def end_offsets(producer: AIOKafkaProducer, topic: str) -> dict[TopicPartition, int]:
    parts = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    consumer = AIOKafkaConsumer(bootstrap_servers=support.bootstrap_servers(), enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts)
        return ends
    finally:
        await consumer.stop()


async def start_group_at_end(producer: AIOKafkaProducer, group: str, topic: str) -> None:
    """Commit ``group``'s offsets at ``topic``'s end: the simulator skips what other tests sent."""
    ends = await end_offsets(producer, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=support.bootstrap_servers(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


def short(record: Any) -> bool:
    """Whether a pick confirmation has a line picked short (this test's simulator's answers)."""
    return any(line["picked"] < line["requested"] for line in orjson.loads(record.value)["lines"])


async def records_keyed(start: dict[TopicPartition, int], key: str, expected: int) -> list[Any]:
    """This test's simulator's records of ``key`` after ``start`` (per partition), once at
    least ``expected`` arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=support.bootstrap_servers(), enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)

        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(r for r in records if r.key == key.encode() and short(r))
            return len(found) >= expected

        await support.eventually(enough, timeout=60, what=f"{expected} records keyed {key}")
        # Anything more that was on its way: one more read.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            found.extend(r for r in records if r.key == key.encode() and short(r))
    finally:
        await consumer.stop()
    return found


def pick_list(order_id: str) -> PickListIssued:
    return PickListIssued(
        order_id=order_id,
        fulfillment_id=f"ff-{order_id}",
        warehouse_id=MANUAL,
        pick_list_id=f"pl-{order_id}",
        picks=(
            PickInstruction(seq=1, bin="A-01", line_no=1, sku="SKU-A", quantity=2),
            PickInstruction(seq=2, bin="B-07", line_no=2, sku="SKU-B", quantity=1),
        ),
    )


class TestStatelessSimulator:
    async def test_killed_before_its_offset_commit_it_answers_again_with_the_same_id(
        self, producer: AIOKafkaProducer, sims: list[support.ServiceProcess]
    ) -> None:
        group = f"wh-sim-stateless-{uuid.uuid4().hex[:8]}"
        await start_group_at_end(producer, group, topics.WAREHOUSE_TASKS.name)
        order_id = f"ord-{uuid.uuid4().hex[:10]}"
        issued = pick_list(order_id)
        cause = new_message_id()
        start = await end_offsets(producer, topics.WAREHOUSE_EVENTS.name)

        first = stateless_sim(group, sims, OMS_FAILPOINTS="consumer.after_db_commit")
        await first.wait_ready()
        await support.publish(
            producer, topics.WAREHOUSE_TASKS.name, support.envelope_for(issued, key=order_id, message_id=cause)
        )
        assert await first.wait_exit() == -9, "the failpoint kills it after producing, before the offset commit"
        answered = await records_keyed(start, order_id, expected=1)
        assert len(answered) == 1, "the answer was acknowledged before the crash"

        second = stateless_sim(group, sims)
        health = await second.wait_ready()
        assert health["relay_leading"] is False, "no database, no relay"
        answered = await records_keyed(start, order_id, expected=2)
        assert len(answered) == 2, "the batch was handled again after the crash"
        headers = [{k: v.decode() for k, v in r.headers} for r in answered]
        assert {h["ce_id"] for h in headers} == {derived_message_id(cause, 0)}, "both answers carry one id"
        assert all(h["ce_type"] == PickConfirmed.ce_type for h in headers)
        assert all(h["ce_causationid"] == cause for h in headers)
        confirmed = orjson.loads(answered[1].value)
        assert confirmed["pick_list_id"] == issued.pick_list_id
        assert sorted(x["requested"] - x["picked"] for x in confirmed["lines"]) == [0, 1], "one line one short"

        # A cancel after the answer changes nothing (nothing is pending), and is no error.
        cancel = PickListCancelled(
            order_id=order_id,
            fulfillment_id=issued.fulfillment_id,
            warehouse_id=issued.warehouse_id,
            pick_list_id=issued.pick_list_id,
        )
        await support.publish(producer, topics.WAREHOUSE_TASKS.name, support.envelope_for(cancel, key=order_id))

        async def handled_both() -> bool:
            return int(health_of(second).get("handled", 0)) >= 2

        await support.eventually(handled_both, what="the cancel handled")
        body = health_of(second)
        assert body["dead_lettered"] == 0
        assert body["published"] == 1, "the restarted simulator produced the replayed answer only"
        assert len(await records_keyed(start, order_id, expected=2)) == 2, "the cancel sent nothing"


def health_of(proc: support.ServiceProcess) -> dict[str, Any]:
    body = proc.health()
    assert body is not None, f"{proc.name} does not answer its health endpoint"
    return body
