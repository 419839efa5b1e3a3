#!/usr/bin/env python3
"""Place a few orders on a running OMS (`make run`) and print what happened to them.

    python tools/demo.py [--orders N]

Registers three warehouses, receives stock, places N orders through the public
intake topic like a sales channel would, waits for them to finish and prints each
order's timeline from the status topic's source of truth (the order database),
then runs the invariant checker.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from oms_order.settings import OrderSettings
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates
from oms_shared.contracts.inventory import StockMovementRecorded, WarehouseUpserted
from oms_shared.contracts.order import order_id_for
from oms_shared.envelope import Envelope
from oms_shared.kafka import create_producer
from oms_shared.settings import SharedSettings

WAREHOUSES = (("WH-BER", 52.52, 13.40), ("WH-HAM", 53.55, 9.99), ("WH-MUC", 48.14, 11.58))
SKUS = ("TSHIRT-M", "MUG-BLUE", "BOOK-OMS")


def _invariants() -> Any:
    path = Path(__file__).resolve().parent / "invariants.py"
    spec = importlib.util.spec_from_file_location("oms_invariants", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def main(n: int) -> int:
    producer = create_producer(SharedSettings().kafka_bootstrap_servers, client_id="oms-demo")
    await producer.start()

    async def send(topic: topics.Topic, payload: Contract | bytes, key: str, ce_type: str | None = None) -> None:
        data = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        envelope = Envelope(type=ce_type or payload.ce_type, source="demo", data=data, key=key.encode())  # type: ignore[union-attr]
        await producer.send_and_wait(topic.name, value=envelope.data, key=envelope.key, headers=envelope.to_headers())

    run = uuid.uuid4().hex[:6]
    for warehouse_id, lat, lon in WAREHOUSES:
        await send(topics.INVENTORY_MOVEMENTS, WarehouseUpserted(warehouse_id=warehouse_id, name=warehouse_id,
                   location=Coordinates(lat=lat, lon=lon)), warehouse_id)  # fmt: skip
    for sku in SKUS:
        for warehouse_id, _, _ in WAREHOUSES:
            await send(topics.INVENTORY_MOVEMENTS, StockMovementRecorded(
                movement_id=f"demo-{run}-{sku}-{warehouse_id}", sku=sku, warehouse_id=warehouse_id,
                kind="receipt", quantity=20), sku)  # fmt: skip
    order_ids = []
    for i in range(n):
        external = f"DEMO-{run}-{i}"
        lines = [{"sku": SKUS[i % 3], "quantity": 1 + i % 2, "unit_price": 1500}]
        total = sum(x["quantity"] * x["unit_price"] for x in lines) + 495  # type: ignore[operator]
        order = {
            "channel": "web", "external_order_id": external,
            "customer": {"id": f"cust-{i}", "email": f"cust{i}@example.com"},
            "ship_to": {"name": "Customer", "line1": "Main St 1", "city": "Hamburg", "postcode": "20095",
                        "country": "DE"},
            "lines": lines, "currency": "EUR", "shipping_method": "standard", "shipping_fee": 495,
            "payment": {"amount_paid": total, "reference": f"psp-{external}"},
        }  # fmt: skip
        order_id = order_id_for("web", external)
        await send(topics.ORDER_INTAKE, orjson.dumps(order), order_id, "oms.order.place-order.v1")
        order_ids.append(order_id)
    await producer.stop()
    print(f"placed {n} orders; waiting for them to finish...")
    conn = await asyncpg.connect(OrderSettings().database_url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            open_ = await conn.fetchval(
                "SELECT count(*) FROM sagas WHERE order_id = ANY($1::uuid[]) AND phase NOT IN "
                "('completed', 'cancelled', 'rejected')", order_ids)  # fmt: skip
            known = await conn.fetchval("SELECT count(*) FROM sagas WHERE order_id = ANY($1::uuid[])", order_ids)
            if known == n and open_ == 0:
                break
            await asyncio.sleep(0.5)
        for order_id in order_ids:
            rows = await conn.fetch("SELECT status FROM status_history WHERE order_id = $1 ORDER BY seq", order_id)
            print(f"{order_id}: {' -> '.join(r['status'] for r in rows)}")
    finally:
        await conn.close()
    report = await _invariants().check(_invariants().local_dsns(), orders=order_ids)
    print(f"invariants: {'all hold' if report.ok else report.violations}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args().orders)))
