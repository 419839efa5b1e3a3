"""The topic registry: every topic the OMS uses, as data, and the code that creates them.

Names follow ``oms.<owner>.<kind>.v<major>``; every topic about one order is keyed
by ``order_id`` and has :data:`ORDER_PARTITIONS` partitions so per-order ordering
holds end to end. Each topic has a dead-letter twin ``<name>.dlt``. Topics are
created here, never by broker auto-creation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

__all__ = ["ALL_TOPICS", "ORDER_PARTITIONS", "Topic", "by_name", "ensure_topics"]

log = structlog.get_logger(__name__)

ORDER_PARTITIONS = 6
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Topic:
    """One Kafka topic: its name, key, partitioning, retention and audience."""

    name: str
    key: str
    description: str
    partitions: int = ORDER_PARTITIONS
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    public: bool = False

    @property
    def dlt(self) -> Topic:
        """The dead-letter topic for poison messages read from this one."""
        return Topic(
            name=f"{self.name}.dlt",
            key=self.key,
            description=f"Dead letters of {self.name}, with the error in headers",
            partitions=self.partitions,
            retention_ms=30 * DAY_MS,
        )

    def configs(self) -> dict[str, str]:
        """Broker-side topic configuration."""
        if self.compacted:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


# --- order -----------------------------------------------------------------------
ORDER_INTAKE = Topic(
    "oms.order.intake.v1",
    "order_id",
    "Channels place and cancel orders here (public API)",
    retention_ms=30 * DAY_MS,
    public=True,
)
ORDER_STATUS = Topic(
    "oms.order.status.v1",
    "order_id",
    "Every order status transition, with time and reason (public API)",
    retention_ms=-1,
    public=True,
)
# --- inventory ---------------------------------------------------------------------
INVENTORY_COMMANDS = Topic("oms.inventory.commands.v1", "order_id", "Saga commands to inventory")
INVENTORY_REPLIES = Topic("oms.inventory.replies.v1", "order_id", "Inventory's replies to the saga")
INVENTORY_MOVEMENTS = Topic(
    "oms.inventory.movements.v1",
    "sku",
    "Stock receipts and adjustments with idempotency keys",
    retention_ms=30 * DAY_MS,
    public=True,
)
INVENTORY_AVAILABILITY = Topic(
    "oms.inventory.availability.v1",
    "sku",
    "Available-to-promise per SKU (compacted, public API)",
    compacted=True,
    public=True,
)
# --- fulfillment -------------------------------------------------------------------
FULFILLMENT_COMMANDS = Topic("oms.fulfillment.commands.v1", "order_id", "Saga commands to fulfillment")
FULFILLMENT_REPLIES = Topic("oms.fulfillment.replies.v1", "order_id", "Fulfillment's replies to the saga")
WAREHOUSE_EVENTS = Topic(
    "oms.fulfillment.warehouse.v1",
    "order_id",
    "Pick confirmations and short picks from warehouses",
)
WAREHOUSE_TASKS = Topic(
    "oms.fulfillment.tasks.v1",
    "order_id",
    "Pick lists sent to warehouse pickers / WMS",
)
# --- shipping ----------------------------------------------------------------------
SHIPPING_COMMANDS = Topic("oms.shipping.commands.v1", "order_id", "Saga commands to shipping")
SHIPPING_REPLIES = Topic("oms.shipping.replies.v1", "order_id", "Shipping's replies to the saga")
CARRIER_REQUESTS = Topic("oms.shipping.carrier-requests.v1", "order_id", "Bookings sent to carriers")
CARRIER_EVENTS = Topic(
    "oms.shipping.carrier-events.v1",
    "order_id",
    "Carrier booking answers and scan events",
)
# --- returns -----------------------------------------------------------------------
RETURNS_COMMANDS = Topic("oms.returns.commands.v1", "order_id", "Saga commands to returns (refunds)")
RETURNS_REPLIES = Topic("oms.returns.replies.v1", "order_id", "Returns' replies to the saga")
REFUNDS = Topic(
    "oms.returns.refunds.v1",
    "order_id",
    "Refund events for finance and payment systems (public API)",
    retention_ms=-1,
    public=True,
)

ALL_TOPICS: tuple[Topic, ...] = (
    ORDER_INTAKE, ORDER_STATUS,
    INVENTORY_COMMANDS, INVENTORY_REPLIES, INVENTORY_MOVEMENTS, INVENTORY_AVAILABILITY,
    FULFILLMENT_COMMANDS, FULFILLMENT_REPLIES, WAREHOUSE_EVENTS, WAREHOUSE_TASKS,
    SHIPPING_COMMANDS, SHIPPING_REPLIES, CARRIER_REQUESTS, CARRIER_EVENTS,
    RETURNS_COMMANDS, RETURNS_REPLIES, REFUNDS,
)  # fmt: skip


def by_name(name: str) -> Topic:
    """Look a registered topic (or its DLT) up by name."""
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
        if topic.dlt.name == name:
            return topic.dlt
    raise KeyError(name)


def with_dead_letters(topics: Iterable[Topic]) -> list[Topic]:
    """The topics and their DLTs (compacted tables get no DLT: they are never consumed by the runtime)."""
    result: list[Topic] = []
    for topic in topics:
        result.append(topic)
        if not topic.compacted:
            result.append(topic.dlt)
    return result


async def ensure_topics(bootstrap_servers: str, topics: Iterable[Topic] = ALL_TOPICS) -> list[str]:
    """Create missing topics (and their DLTs), grow partition counts; return the names created."""
    wanted = {t.name: t for t in with_dead_letters(topics)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="oms-topics")
    await admin.start()
    try:
        existing = await _partition_counts(admin, list(wanted))
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(name=t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=t.configs())
                    for t in missing
                ]
            )
        grow = {
            name: NewPartitions(total_count=wanted[name].partitions)
            for name, count in existing.items()
            if count < wanted[name].partitions
        }
        if grow:
            await admin.create_partitions(grow)
        for topic in missing:
            log.info("topic_created", topic=topic.name, partitions=topic.partitions)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    present = set(await admin.list_topics())
    asked = [n for n in names if n in present]
    if not asked:
        return {}
    described = await admin.describe_topics(asked)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
