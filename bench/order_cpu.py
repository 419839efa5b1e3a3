"""The order consumer's cost per message, measured without Kafka: real handlers, real PostgreSQL.

At 300 orders/s the order consumer is the bottleneck (~95% busy, ~0.3 ms per message),
and the full benchmark's steps are too noisy to judge a 5% change. This drives the
order service's real :class:`ConsumerRuntime` batch path (decode, prepare, handlers,
the one-statement write, the hand-over to the relay) with the journey's messages:
new orders and the replies a well-behaved inventory, warehouse and carrier would send
to the commands of the previous batches, in batches of the size seen at 300/s. It
prints the process's CPU and the wall time per message handled, and per phase.

    python bench/order_cpu.py --orders 3000 --per-batch 30 --repeat 5
    python bench/order_cpu.py --profile /tmp/order.prof     # cProfile of the measured part

Needs the order database (``make up``; stop the order service first, ``make stop``,
so its relay does not publish what this writes). Writes rows under a fresh channel
prefix and deletes its outbox rows at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import ConsumerRecord, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue import WAREHOUSES, Catalogue

from oms_order import book
from oms_order.handlers import REPLY_TOPICS, Handlers
from oms_order.settings import OrderSettings
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, LineQuantity, PackageSpec
from oms_shared.contracts.fulfillment import CreateFulfillment, FulfillmentPacked, FulfillmentStarted
from oms_shared.contracts.inventory import Allocation, CommitStock, ReserveStock, StockCommitted, StockReserved
from oms_shared.contracts.order import order_id_for
from oms_shared.contracts.shipping import BookShipment, ShipmentBooked, ShipmentDispatched, ShipmentStatusChanged
from oms_shared.db import create_pool
from oms_shared.envelope import Envelope
from oms_shared.logs import configure_logging
from oms_shared.outbox import WrittenRow
from oms_shared.runtime import ConsumerRuntime, Subscription
from oms_shared.service import tune_gc

#: The message types of the commands this harness answers.
_COMMANDS: dict[str, type[Contract]] = {
    m.ce_type: m for m in (ReserveStock, CreateFulfillment, BookShipment, CommitStock)
}


class _Participants:
    """Collects the order service's committed outbox rows (it is the runtime's publisher)
    and answers its commands the way the journey's participants do, a batch later."""

    def __init__(self) -> None:
        #: Replies due in the next batches: position 0 goes into the next one.
        self.due: deque[list[tuple[str, Contract]]] = deque()
        self.outbox_ids: list[int] = []
        self.statuses = 0
        self._handed: list[WrittenRow] = []

    @property
    def accepting(self) -> bool:
        return True

    def hand_over(self, row: WrittenRow) -> None:
        self._handed.append(row)  # answered after the batch, outside the measured time

    def answer(self) -> None:
        """Queue the replies to the commands handed over since the last call."""
        rows, self._handed = self._handed, []
        self.outbox_ids += [row.id for row in rows]
        for message in (m for row in rows for m in row.messages):
            model = _COMMANDS.get(message.envelope.type)
            if model is None:
                self.statuses += 1
                continue
            command = model.model_validate_json(message.envelope.data)
            for delay, (topic, reply) in _replies(command):
                while len(self.due) <= delay:
                    self.due.append([])
                self.due[delay].append((topic, reply))


def _replies(command: Contract) -> list[tuple[int, tuple[str, Contract]]]:
    """(batches later, (topic, reply)) for one command, as the participants answer it."""
    inv, ful, shp = topics.INVENTORY_REPLIES.name, topics.FULFILLMENT_REPLIES.name, topics.SHIPPING_REPLIES.name
    if isinstance(command, ReserveStock):
        warehouse, lat, lon = WAREHOUSES[hash(command.order_id) % len(WAREHOUSES)]
        allocations = tuple(
            Allocation(warehouse_id=warehouse, line_no=line.line_no, sku=line.sku, quantity=line.quantity,
                       location=Coordinates(lat=lat, lon=lon))
            for line in command.lines
        )  # fmt: skip
        reply = StockReserved(order_id=command.order_id, request_id=command.request_id, allocations=allocations,
                              decision_id=str(uuid.uuid4()))  # fmt: skip
        return [(0, (inv, reply))]
    if isinstance(command, CreateFulfillment):
        items = tuple(LineQuantity(line_no=x.line_no, sku=x.sku, quantity=x.quantity) for x in command.lines)
        started = FulfillmentStarted(order_id=command.order_id, request_id=command.request_id,
                                     fulfillment_id=command.fulfillment_id, warehouse_id=command.warehouse_id,
                                     pick_list_id=f"pl-{command.fulfillment_id}")  # fmt: skip
        packed = FulfillmentPacked(order_id=command.order_id, fulfillment_id=command.fulfillment_id,
                                   warehouse_id=command.warehouse_id,
                                   packages=(PackageSpec(package_id=f"{command.fulfillment_id}-p1",
                                                         weight_grams=1200, items=items),))  # fmt: skip
        return [(0, (ful, started)), (1, (ful, packed))]
    if isinstance(command, BookShipment):
        tracking = f"T-{command.shipment_id}"
        booked = ShipmentBooked(order_id=command.order_id, request_id=command.request_id,
                                shipment_id=command.shipment_id, carrier="parcelco", service_level="standard",
                                tracking_number=tracking, label_format="ZPL", cost_minor=499, currency="EUR")  # fmt: skip
        now = datetime.now(UTC)
        dispatched = ShipmentDispatched(order_id=command.order_id, shipment_id=command.shipment_id,
                                        warehouse_id=command.warehouse_id, carrier="parcelco",
                                        tracking_number=tracking, at=now)  # fmt: skip
        scans = [
            ShipmentStatusChanged(order_id=command.order_id, shipment_id=command.shipment_id, status=status,
                                  carrier="parcelco", tracking_number=tracking, at=now)
            for status in ("in_transit", "out_for_delivery", "delivered")
        ]  # fmt: skip
        return [(0, (shp, booked)), (1, (shp, dispatched)), *((2 + i, (shp, s)) for i, s in enumerate(scans))]
    assert isinstance(command, CommitStock)
    committed = StockCommitted(order_id=command.order_id, request_id=command.request_id,
                               warehouse_id=command.warehouse_id, committed=())  # fmt: skip
    return [(0, (inv, committed))]


def _record(topic: str, offset: int, envelope: Envelope) -> ConsumerRecord[bytes, bytes]:
    headers = envelope.to_headers()
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=envelope.key, value=envelope.data, checksum=None,
                          serialized_key_size=len(envelope.key or b""), serialized_value_size=len(envelope.data),
                          headers=headers)  # fmt: skip


async def measure(
    orders: int, per_batch: int, profile: str | None, pool: asyncpg.Pool[Any] | None = None
) -> dict[str, Any]:
    """Run ``orders`` through the batch path, ``per_batch`` new ones per batch; return the figures.

    On ``pool`` (the test suite's database of its own), else on the order database.
    """
    settings = OrderSettings()
    owned = pool is None
    if pool is None:
        pool = await create_pool(settings.database_url, 4)
    participants = _Participants()
    handlers = Handlers(settings.timing())
    runtime = ConsumerRuntime(
        name="oms-order-cpu-bench",
        source="oms/order",
        pool=pool,
        consumer=None,  # batches are handed in: nothing is fetched
        producer=None,  # nothing is dead-lettered
        subscriptions=[
            Subscription(topics.ORDER_INTAKE, handlers.intake()),
            *(Subscription(topic, handlers.replies(topic)) for topic in REPLY_TOPICS),
        ],
        prepare=book.SagaCache(settings.saga_cache_size).prepare,
        one_statement=True,
        publisher=participants,
    )
    prefix = f"cpu-{uuid.uuid4().hex[:8]}"
    catalogue = Catalogue().orders(prefix)
    offsets = itertools.count()
    placed = handled = batches = 0
    cpu = wall = 0.0
    warmup = max(orders // 10, per_batch * 5)
    profiler = cProfile.Profile() if profile else None
    while placed < orders or participants.due:
        records = []
        for _ in range(min(per_batch, orders - placed)):
            external, payload = next(catalogue)
            order_id = order_id_for("web", external)
            envelope = Envelope(type="oms.order.place-order.v1", source="bench/order-cpu", data=orjson.dumps(payload),
                                key=order_id.encode(), correlation_id=order_id)  # fmt: skip
            records.append(_record(topics.ORDER_INTAKE.name, next(offsets), envelope))
            placed += 1
        for topic, reply in participants.due.popleft() if participants.due else []:
            envelope = Envelope(type=reply.ce_type, source="bench/participant", data=reply.model_dump_json().encode(),
                                key=reply.order_id.encode(), correlation_id=reply.order_id)  # type: ignore[attr-defined]  # fmt: skip
            records.append(_record(topic, next(offsets), envelope))
        measured = placed > warmup
        if measured and profiler is not None:
            profiler.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await runtime._handle_batch({TopicPartition("all", 0): records})  # noqa: SLF001  (the batch path itself)
        if measured:
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            handled += len(records)
            batches += 1
        if measured and profiler is not None:
            profiler.disable()
        participants.answer()
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", participants.outbox_ids)
    if owned:
        await pool.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    timings = runtime.timings.as_dict()
    return {
        "messages": handled,
        "batches": batches,
        "messages_per_batch": round(handled / max(batches, 1), 1),
        "cpu_us_per_message": round(cpu / max(handled, 1) * 1e6, 1),
        "wall_us_per_message": round(wall / max(handled, 1) * 1e6, 1),
        "dead_lettered": runtime.dead_lettered,
        "replayed": timings.get("replayed"),
        "statuses_emitted": participants.statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--per-batch", type=int, default=40, help="new orders per batch (~10 messages each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs in one process; the least CPU is reported too")
    parser.add_argument("--profile", help="write a cProfile of the measured batches here")
    args = parser.parse_args()
    import uvloop

    settings = OrderSettings()
    # As the service runs: JSON lines (here thrown away), the same collector settings.
    configure_logging("order", settings.log_level, "json", open(os.devnull, "w"))  # noqa: SIM115
    tune_gc()

    runs = [uvloop.run(measure(args.orders, args.per_batch, args.profile)) for _ in range(args.repeat)]
    for run in runs:
        print(orjson.dumps(run).decode())
    cpu = sorted(r["cpu_us_per_message"] for r in runs)
    wall = sorted(r["wall_us_per_message"] for r in runs)
    print(
        f"cpu us/message: min {cpu[0]} median {cpu[len(cpu) // 2]}; wall: min {wall[0]} median {wall[len(wall) // 2]}"
    )


if __name__ == "__main__":
    main()
