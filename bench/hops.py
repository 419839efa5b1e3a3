"""Where an order's latency goes: every message's hops, from the topics alone.

Each OMS message carries the time its handler emitted it (``ce_time``) and the id of
the message that caused it (``ce_causationid``); Kafka stamps each record with the
time its producer sent it. So, for a message M caused by C:

- *consume*: M.ce_time - C.sent: C's way through Kafka, the consumer's queue and M's
  handler up to the emit (the consuming service's share);
- *publish*: M.sent - M.ce_time: the rest of that transaction, its commit, the wait
  for the relay and the send (the outbox's share).

Read after a run (``python bench/hops.py --since-s 60``) it prints both, per edge
(cause type -> message type), p50 / p99 in ms, and the same along the intake ->
reserved path of each order.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from measure import percentiles

from oms_shared import topics


@dataclass(frozen=True, slots=True)
class Sent:
    id: str
    type: str
    cause: str | None
    emitted: float
    sent: float


#: The intake -> reserved path: (segment, cause type, message type, which share).
PATH = (
    ("order: intake -> ReserveStock", "order.place-order", "inventory.reserve-stock", "consume"),
    ("order: outbox -> Kafka", "order.place-order", "inventory.reserve-stock", "publish"),
    ("inventory: ReserveStock -> StockReserved", "inventory.reserve-stock", "inventory.stock-reserved", "consume"),
    ("inventory: outbox -> Kafka", "inventory.reserve-stock", "inventory.stock-reserved", "publish"),
    ("order: StockReserved -> status reserved", "inventory.stock-reserved", "order.status-changed", "consume"),
)
_PATH_TOPICS = (topics.ORDER_INTAKE, topics.INVENTORY_COMMANDS, topics.INVENTORY_REPLIES, topics.ORDER_STATUS)


async def path(bootstrap: str, since: float, until: float) -> dict[str, dict[str, float]]:
    """p50 / p99 (ms) of each segment of the intake -> reserved path, for messages sent in the window."""
    found = edges(await read(bootstrap, since, until, _PATH_TOPICS))
    out = {}
    for segment, cause, kind, share in PATH:
        values = found.get((cause, kind), {}).get(share, [])
        summary = percentiles([v / 1000 for v in values])
        out[segment] = {"p50": summary["p50"], "p99": summary["p99"], "n": len(values)}
    return out


async def read(
    bootstrap: str, since: float, until: float, which: tuple[topics.Topic, ...] = topics.ALL_TOPICS
) -> dict[str, Sent]:
    """Every OMS message sent between ``since`` and ``until`` (epoch seconds) on ``which``, by id."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        parts = [TopicPartition(t.name, p) for t in which for p in range(t.partitions)]
        consumer.assign(parts)
        starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in parts})
        ends = await consumer.end_offsets(parts)
        todo = {}
        for tp in parts:
            found = starts.get(tp)
            if found is None:
                continue
            consumer.seek(tp, found.offset)
            todo[tp] = ends[tp]
        out: dict[str, Sent] = {}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    if r.timestamp / 1000 > until:
                        todo.pop(tp, None)
                        break
                    h = {k: v.decode() for k, v in r.headers}
                    if "ce_id" in h and "ce_time" in h:
                        out[h["ce_id"]] = Sent(
                            h["ce_id"], h["ce_type"], h.get("ce_causationid"),
                            datetime.fromisoformat(h["ce_time"]).timestamp(), r.timestamp / 1000,
                        )  # fmt: skip
                    if r.offset + 1 >= todo.get(tp, 0):
                        todo.pop(tp, None)
            if not batch:
                break
        return out
    finally:
        await consumer.stop()


def edges(sent: dict[str, Sent]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Per (cause type, type): consume and publish times in ms."""
    out: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: {"consume": [], "publish": []})
    for m in sent.values():
        cause = sent.get(m.cause or "")
        if cause is None:
            continue
        e = out[(_short(cause.type), _short(m.type))]
        e["consume"].append((m.emitted - cause.sent) * 1000)
        e["publish"].append((m.sent - m.emitted) * 1000)
    return out


def _short(ce_type: str) -> str:
    return ce_type.removeprefix("oms.").removesuffix(".v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--since-s", type=float, default=60.0, help="look at the last N seconds")
    parser.add_argument("--min-count", type=int, default=50)
    args = parser.parse_args()
    now = time.time()
    sent = asyncio.run(read(args.bootstrap, now - args.since_s, now))
    print(f"{len(sent)} messages")
    print(f"{'cause -> message':70} {'n':>7} {'consume p50/p99':>18} {'publish p50/p99':>18}")
    rows = sorted(edges(sent).items(), key=lambda kv: -len(kv[1]["consume"]))
    for (cause, kind), e in rows:
        n = len(e["consume"])
        if n < args.min_count:
            continue
        c, p = (percentiles([v / 1000 for v in e[share]]) for share in ("consume", "publish"))
        print(f"{cause + ' -> ' + kind:70} {n:7} {c['p50']:8.1f}/{c['p99']:8.1f} {p['p50']:8.1f}/{p['p99']:8.1f}")


if __name__ == "__main__":
    main()
