#!/usr/bin/env python3
"""Baseline (a): raw aiokafka, producing and consuming as many messages as the journey sends.

    python bench/raw_kafka.py --orders 6000 --messages-per-order 25

Same broker, same producer settings as the OMS (idempotent, acks=all), 600-byte
messages keyed over 6 partitions, consumed by one consumer committing per batch.
It is the ceiling the Kafka hops alone would allow: orders/s = messages/s divided
by the messages one order causes in the OMS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from oms_shared.kafka import create_producer
from oms_shared.settings import SharedSettings

TOPIC = "oms.bench.raw.v1"


async def run(total: int) -> dict[str, float]:
    bootstrap = SharedSettings().kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    if TOPIC not in await admin.list_topics():
        await admin.create_topics([NewTopic(TOPIC, num_partitions=6, replication_factor=1)])
        await asyncio.sleep(2)  # let the new partitions elect their leader before consumers ask
    await admin.close()
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4()}",
                                auto_offset_reset="latest", enable_auto_commit=False, max_poll_records=2000)  # fmt: skip
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    for tp in consumer.assignment():
        await consumer.position(tp)
    producer = create_producer(bootstrap, client_id="bench-raw")
    await producer.start()
    payload = os.urandom(300).hex().encode()
    received = 0
    started = time.perf_counter()

    async def consume() -> None:
        nonlocal received
        while received < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            received += sum(len(r) for r in batches.values())
            if batches:
                await consumer.commit()

    reader = asyncio.create_task(consume())
    pending = []
    for i in range(total):
        pending.append(await producer.send(TOPIC, value=payload, key=str(i % 997).encode(),
                                           headers=[("ce_id", str(i).encode())]))  # fmt: skip
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    produced = time.perf_counter() - started
    await asyncio.wait_for(reader, timeout=300)
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return {"messages": total, "produce_s": round(produced, 2), "elapsed_s": round(elapsed, 2),
            "messages_per_s": round(total / elapsed, 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--messages-per-order", type=float, required=True)
    args = parser.parse_args()
    import uvloop

    args.messages_per_order = max(1.0, args.messages_per_order)
    total = int(args.orders * args.messages_per_order)
    result = uvloop.run(run(total))
    result["orders_per_s_equivalent"] = round(result["messages_per_s"] / args.messages_per_order, 1)
    result["messages_per_order"] = args.messages_per_order
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
