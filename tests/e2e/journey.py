"""The real OMS for end-to-end tests: five services and the simulators as separate processes.

Tests talk to it like a channel does (the intake topic), watch it like an operator
does (the order database's timeline, the status topic) and, for warehouses listed
as manual, play the warehouse and the carrier themselves through Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates
from oms_shared.contracts.fulfillment import PickConfirmed, PickedLine, PickListIssued
from oms_shared.contracts.inventory import StockMovementRecorded, WarehouseUpserted
from oms_shared.contracts.order import CancelOrder, order_id_for
from oms_shared.contracts.shipping import CarrierBookingAnswered, CarrierBookingRequested, CarrierScan
from oms_shared.envelope import Envelope
from oms_shared.topology import SERVICES
from tests import support

#: (id, lat, lon): Berlin, Hamburg, Munich, Cologne; MANUAL is driven by the tests themselves.
WAREHOUSES = (
    ("WH-BER", 52.52, 13.40),
    ("WH-HAM", 53.55, 9.99),
    ("WH-MUC", 48.14, 11.58),
    ("WH-CGN", 50.94, 6.96),
    ("WH-MANUAL", 51.34, 12.37),
)
MANUAL = "WH-MANUAL"
TERMINAL = ("completed", "cancelled", "rejected")

SERVICE_ENV = {
    "ORDER_REPLY_TIMEOUT_S": "10",
    "ORDER_BOOKING_TIMEOUT_S": "30",
    "ORDER_BACKORDER_RETRY_S": "1",
    "ORDER_BACKORDER_WINDOW_S": "6",
    "WAREHOUSE_SIM_PICK_DELAY_S": "0.05",
    "WAREHOUSE_SIM_MANUAL_WAREHOUSES": MANUAL,
    "CARRIER_SIM_BOOKING_DELAY_S": "0.05",
    "CARRIER_SIM_PICKUP_DELAY_S": "0.1",
    "CARRIER_SIM_SCAN_INTERVAL_S": "0.05",
    "CARRIER_SIM_MANUAL_WAREHOUSES": MANUAL,
}
SIMULATORS = (("warehouse-sim", "oms_simulators.warehouse", "WAREHOUSE_SIM"),
              ("carrier-sim", "oms_simulators.carrier", "CARRIER_SIM"))  # fmt: skip


def tools_invariants() -> Any:
    """tools/invariants.py, the invariant checker."""
    return support.script("tools/invariants.py")


def order_payload(
    external_id: str,
    lines: list[tuple[str, int, int]],
    *,
    channel: str = "web",
    method: str = "standard",
    at: tuple[float, float] = (52.50, 13.35),
) -> dict[str, Any]:
    """A canonical place-order payload; lines are (sku, quantity, unit price)."""
    total = sum(q * p for _, q, p in lines) + 495
    return {
        "channel": channel,
        "external_order_id": external_id,
        "customer": {"id": f"c-{external_id}", "email": "buyer@example.com"},
        "ship_to": {"name": "Buyer", "line1": "Street 1", "city": "Berlin", "postcode": "10115", "country": "DE",
                    "coordinates": {"lat": at[0], "lon": at[1]}},
        "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines],
        "currency": "EUR",
        "shipping_method": method,
        "shipping_fee": 495,
        "payment": {"amount_paid": total, "reference": f"psp-{external_id}"},
    }  # fmt: skip


@dataclass
class Journey:
    """Handles on the running OMS for one test session."""

    producer: AIOKafkaProducer
    dsns: dict[str, str]
    order_db: asyncpg.Pool[Any]
    inventory_db: asyncpg.Pool[Any]
    processes: dict[str, support.ServiceProcess]

    # --- as a channel ---------------------------------------------------------------
    async def place(self, payload: dict[str, Any] | bytes, *, key: str | None = None) -> str:
        """Publish a place-order message; return the order id the OMS will use."""
        import orjson

        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        order_id = (
            order_id_for(payload["channel"], payload["external_order_id"])
            if isinstance(payload, dict)
            else str(uuid.uuid4())
        )
        envelope = Envelope(type="oms.order.place-order.v1", source="tests/channel", data=raw,
                            key=(key or order_id).encode(), correlation_id=order_id)  # fmt: skip
        await support.publish(self.producer, topics.ORDER_INTAKE.name, envelope)
        return order_id

    async def cancel(self, channel: str, external_id: str, reason: str = "customer request") -> None:
        order_id = order_id_for(channel, external_id)
        await self.send(topics.ORDER_INTAKE, CancelOrder(channel=channel, external_order_id=external_id,
                                                          reason=reason), key=order_id)  # fmt: skip

    async def send(self, topic: topics.Topic, payload: Contract, *, key: str) -> None:
        await support.publish(self.producer, topic.name, support.envelope_for(payload, key=key))

    # --- as an operator ---------------------------------------------------------------
    async def phase(self, order_id: str) -> str | None:
        value: str | None = await self.order_db.fetchval("SELECT phase FROM sagas WHERE order_id = $1", order_id)
        return value

    async def wait_phase(self, order_id: str, phases: Iterable[str] = TERMINAL, timeout: float = 60) -> str:
        wanted = set(phases)

        async def reached() -> str | None:
            phase = await self.phase(order_id)
            return phase if phase in wanted else None

        result: str = await support.eventually(reached, timeout=timeout, what=f"{order_id} to reach {wanted}")
        return result

    async def statuses(self, order_id: str) -> list[str]:
        rows = await self.order_db.fetch("SELECT status FROM status_history WHERE order_id = $1 ORDER BY seq",
                                         order_id)  # fmt: skip
        return [r["status"] for r in rows]

    async def wait_status(self, order_id: str, status: str, timeout: float = 60) -> list[str]:
        async def seen() -> list[str] | None:
            found = await self.statuses(order_id)
            return found if status in found else None

        result: list[str] = await support.eventually(seen, timeout=timeout, what=f"{order_id} status {status}")
        return result

    async def history(self, order_id: str) -> list[asyncpg.Record]:
        return list(
            await self.order_db.fetch(
                "SELECT seq, status, reasons, details FROM status_history WHERE order_id = $1 ORDER BY seq", order_id
            )
        )

    async def check_invariants(self, orders: Iterable[str] | None = None, settle_s: float = 0.0) -> Any:
        report = await tools_invariants().check(self.dsns, settle_s=settle_s, orders=orders)
        assert report.ok, report.as_dict()
        return report

    # --- stock ------------------------------------------------------------------------
    async def stock(self, sku: str) -> dict[str, tuple[int, int]]:
        rows = await self.inventory_db.fetch("SELECT warehouse_id, on_hand, reserved FROM stock WHERE sku = $1", sku)
        return {r["warehouse_id"]: (r["on_hand"], r["reserved"]) for r in rows}

    async def receive(self, stock: dict[tuple[str, str], int]) -> None:
        """Record receipts of (sku, warehouse) -> units and wait until inventory shows them."""
        for (sku, warehouse), qty in stock.items():
            await self.send(topics.INVENTORY_MOVEMENTS, StockMovementRecorded(
                movement_id=f"receipt-{uuid.uuid4()}", sku=sku, warehouse_id=warehouse, kind="receipt",
                quantity=qty, reason="test receipt"), key=sku)  # fmt: skip
        expected: dict[str, dict[str, int]] = defaultdict(dict)
        for (sku, warehouse), qty in stock.items():
            expected[sku][warehouse] = qty

        async def visible() -> bool:
            for sku, per_warehouse in expected.items():
                have = await self.stock(sku)
                if any(have.get(w, (0, 0))[0] < q for w, q in per_warehouse.items()):
                    return False
            return True

        await support.eventually(visible, timeout=60, what="stock receipts applied")

    async def register_warehouses(self) -> None:
        for warehouse_id, lat, lon in WAREHOUSES:
            await self.send(topics.INVENTORY_MOVEMENTS, WarehouseUpserted(
                warehouse_id=warehouse_id, name=warehouse_id, location=Coordinates(lat=lat, lon=lon)),
                key=warehouse_id)  # fmt: skip

        async def registered() -> bool:
            count = await self.inventory_db.fetchval("SELECT count(*) FROM warehouses")
            return bool(count >= len(WAREHOUSES))

        await support.eventually(registered, timeout=60, what="warehouses registered")


class OutsideWorld:
    """The tests playing the manual warehouse's pickers and the carriers of its parcels."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self.pick_lists: dict[str, list[PickListIssued]] = defaultdict(list)
        self.bookings: dict[str, list[CarrierBookingRequested]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            topics.WAREHOUSE_TASKS.name, topics.CARRIER_REQUESTS.name,
            bootstrap_servers=support.bootstrap_servers(), group_id=f"tests-world-{uuid.uuid4()}",
            auto_offset_reset="latest", enable_auto_commit=False,
        )  # fmt: skip
        await self._consumer.start()
        await support.eventually(self._assigned, what="outside world consumer assigned")
        self._task = asyncio.create_task(self._run())

    async def _assigned(self) -> bool:
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if not assignment:
            await self._consumer.getmany(timeout_ms=200)
            return False
        for tp in assignment:
            await self._consumer.position(tp)  # fixes "latest" before the test publishes anything
        return True

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    ce_type = headers.get("ce_type", b"").decode()
                    if ce_type == PickListIssued.ce_type:
                        pick = PickListIssued.model_validate_json(record.value)
                        self.pick_lists[pick.order_id].append(pick)
                    elif ce_type == CarrierBookingRequested.ce_type:
                        booking = CarrierBookingRequested.model_validate_json(record.value)
                        self.bookings[booking.order_id].append(booking)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()

    async def pick_list(self, order_id: str, n: int = 1) -> PickListIssued:
        async def arrived() -> PickListIssued | None:
            lists = self.pick_lists.get(order_id, [])
            return lists[n - 1] if len(lists) >= n else None

        result: PickListIssued = await support.eventually(arrived, what=f"pick list {n} of {order_id}")
        return result

    async def booking(self, order_id: str, n: int = 1) -> CarrierBookingRequested:
        async def arrived() -> CarrierBookingRequested | None:
            found = self.bookings.get(order_id, [])
            return found[n - 1] if len(found) >= n else None

        result: CarrierBookingRequested = await support.eventually(arrived, what=f"booking {n} of {order_id}")
        return result

    async def confirm_pick(self, pick: PickListIssued, short: dict[int, int] | None = None) -> None:
        short = short or {}
        totals: dict[tuple[int, str], int] = defaultdict(int)
        for stop in pick.picks:
            totals[(stop.line_no, stop.sku)] += stop.quantity
        lines = tuple(PickedLine(line_no=n, sku=sku, requested=q, picked=q - short.get(n, 0))
                      for (n, sku), q in sorted(totals.items()))  # fmt: skip
        await self.journey.send(topics.WAREHOUSE_EVENTS, PickConfirmed(
            order_id=pick.order_id, fulfillment_id=pick.fulfillment_id, pick_list_id=pick.pick_list_id,
            lines=lines), key=pick.order_id)  # fmt: skip

    async def answer(self, booking: CarrierBookingRequested, *, accept: bool) -> str:
        tracking = f"TST{uuid.uuid4().int % 10**12:012d}"
        await self.journey.send(topics.CARRIER_EVENTS, CarrierBookingAnswered(
            order_id=booking.order_id, shipment_id=booking.shipment_id, booking_id=booking.booking_id,
            carrier=booking.carrier, accepted=accept, tracking_number=tracking if accept else None,
            reason="" if accept else "no capacity"), key=booking.order_id)  # fmt: skip
        return tracking

    async def scan(self, booking: CarrierBookingRequested, tracking: str, scan: str) -> None:
        await self.journey.send(topics.CARRIER_EVENTS, CarrierScan(
            order_id=booking.order_id, shipment_id=booking.shipment_id, carrier=booking.carrier,
            tracking_number=tracking, scan=scan, at=datetime.now(UTC)), key=booking.order_id)  # fmt: skip


async def wipe(dsn: str) -> None:
    """Empty a service's database (the service migrates it again when it starts)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


def start_processes(stack: Any, extra_env: dict[str, str] | None = None) -> dict[str, support.ServiceProcess]:
    """Start the five services and the two simulators, each as its own OS process."""
    env = {**SERVICE_ENV, **(extra_env or {})}
    procs: dict[str, support.ServiceProcess] = {}
    for service in SERVICES:
        service_env = {**env, f"{service.upper()}_DATABASE_URL": stack.service_url(service)}
        procs[service] = support.ServiceProcess(
            f"oms_{service}", service.upper(), env=service_env, name=f"e2e-{service}"
        ).start()
    for name, module, prefix in SIMULATORS:
        procs[name] = support.ServiceProcess(
            module, prefix, env={**env, f"{prefix}_DATABASE_URL": stack.service_url("simulators")}, name=f"e2e-{name}"
        ).start()
    return procs
