#!/usr/bin/env python3
"""Baseline (b): raw asyncpg running the journey's SQL per order, with no Kafka in between.

    python bench/raw_sql.py --orders 6000 [--workers 8]

Each order goes through the same transactions the services run, statement shapes
included: an inbox claim and an outbox insert in every handler transaction, the
saga row read FOR UPDATE and rewritten, the timeline appended, one conditional
stock UPDATE per line, fulfillment, packages, shipment, stock commit, and the
relay's select-and-delete of outbox rows. Durable commits, on the same PostgreSQL,
in a database of its own. It is the ceiling the database work alone allows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from catalogue import WAREHOUSES, Catalogue  # noqa: E402

SCHEMA = """
DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;
CREATE TABLE stock (sku text, warehouse_id text, on_hand int, reserved int DEFAULT 0, safety_stock int DEFAULT 0,
    PRIMARY KEY (sku, warehouse_id), CHECK (reserved >= 0 AND reserved <= on_hand));
CREATE TABLE inbox (consumer text, message_id text, processed_at timestamptz DEFAULT now(),
    PRIMARY KEY (consumer, message_id));
CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text, key bytea, headers text, payload bytea);
CREATE TABLE orders (order_id uuid PRIMARY KEY, channel text, external_order_id text, payload jsonb,
    UNIQUE (channel, external_order_id));
CREATE TABLE sagas (order_id uuid PRIMARY KEY, phase text, data text, deadline timestamptz);
CREATE TABLE status_history (order_id uuid, seq int, status text, at timestamptz DEFAULT now(),
    PRIMARY KEY (order_id, seq));
CREATE TABLE reservations (order_id uuid, line_no int, warehouse_id text, sku text, quantity int, state text,
    PRIMARY KEY (order_id, line_no, warehouse_id));
CREATE TABLE fulfillments (fulfillment_id text PRIMARY KEY, order_id uuid, status text, lines jsonb);
CREATE TABLE packages (package_id text PRIMARY KEY, fulfillment_id text, weight int, items jsonb);
CREATE TABLE shipments (shipment_id text PRIMARY KEY, order_id uuid, status text, tracking text);
CREATE TABLE movements (movement_id text PRIMARY KEY, sku text, warehouse_id text, quantity int);
"""


async def prepare(dsn: str, catalogue: Catalogue) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.execute(
            "INSERT INTO stock (sku, warehouse_id, on_hand) SELECT s, w, 1000000 FROM unnest($1::text[]) s, "
            "unnest($2::text[]) w",
            [catalogue.sku(r) for r in range(1, catalogue.skus + 1)], [w for w, _, _ in WAREHOUSES],
        )  # fmt: skip
    finally:
        await conn.close()


async def handler_tx(conn: asyncpg.Connection, consumer: str, body: Any) -> None:
    """One handler transaction as the runtime runs it: inbox claim, the effect, one outbox insert."""
    async with conn.transaction():
        await conn.fetch("INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[]) "
                         "ON CONFLICT DO NOTHING RETURNING message_id", consumer, [str(uuid.uuid4())])  # fmt: skip
        await body()
        await conn.execute("INSERT INTO outbox (topic, key, headers, payload) SELECT 't', $1, '[]', $2",
                           b"k", b"x" * 400)  # fmt: skip


async def saga_step(conn: asyncpg.Connection, order_id: uuid.UUID, seq: int, status: str) -> None:
    data = await conn.fetchval("SELECT data FROM sagas WHERE order_id = $1 FOR UPDATE", order_id)
    await conn.execute("UPDATE sagas SET data = $2, phase = $3 WHERE order_id = $1", order_id, data, status)
    await conn.execute("INSERT INTO status_history (order_id, seq, status) VALUES ($1, $2, $3)", order_id, seq, status)


async def one_order(conn: asyncpg.Connection, external: str, payload: dict[str, Any]) -> None:
    order_id = uuid.uuid4()
    lines = [(i, line["sku"], line["quantity"]) for i, line in enumerate(payload["lines"], start=1)]
    warehouse = WAREHOUSES[hash(external) % len(WAREHOUSES)][0]
    blob = orjson.dumps(payload).decode()
    fid = f"{order_id}:{warehouse}"

    async def intake() -> None:
        await conn.execute("INSERT INTO orders VALUES ($1, 'web', $2, $3::jsonb) ON CONFLICT DO NOTHING",
                           order_id, external, blob)  # fmt: skip
        await conn.execute("INSERT INTO sagas VALUES ($1, 'reserving', $2, now())", order_id, blob)
        await conn.execute("INSERT INTO status_history (order_id, seq, status) VALUES ($1, 1, 'received'), "
                           "($1, 2, 'accepted')", order_id)  # fmt: skip

    async def reserve() -> None:
        await conn.fetch("SELECT sku, warehouse_id, on_hand, reserved FROM stock WHERE sku = ANY($1::text[])",
                         [sku for _, sku, _ in lines])  # fmt: skip
        for _, sku, q in sorted(lines, key=lambda x: x[1]):
            await conn.execute("UPDATE stock SET reserved = reserved + $3 WHERE sku = $1 AND warehouse_id = $2 "
                               "AND on_hand - reserved - safety_stock >= $3", sku, warehouse, q)  # fmt: skip
        await conn.executemany("INSERT INTO reservations VALUES ($1, $2, $3, $4, $5, 'active')",
                               [(order_id, n, warehouse, sku, q) for n, sku, q in lines])  # fmt: skip

    async def create_fulfillment() -> None:
        await conn.execute("INSERT INTO fulfillments VALUES ($1, $2, 'picking', '[]'::jsonb)", fid, order_id)

    async def pack() -> None:
        await conn.fetchrow("SELECT status FROM fulfillments WHERE fulfillment_id = $1 FOR UPDATE", fid)
        await conn.execute("UPDATE fulfillments SET status = 'packed' WHERE fulfillment_id = $1", fid)
        await conn.execute("INSERT INTO packages VALUES ($1, $2, 1200, '[]'::jsonb)", f"{fid}-P1", fid)

    async def book() -> None:
        await conn.execute("INSERT INTO shipments VALUES ($1, $2, 'booking', NULL)", fid, order_id)

    async def booked() -> None:
        await conn.execute("UPDATE shipments SET status = 'booked', tracking = $2 WHERE shipment_id = $1",
                           fid, f"T{order_id.hex[:12]}")  # fmt: skip

    async def dispatched() -> None:
        await conn.execute("UPDATE shipments SET status = 'dispatched' WHERE shipment_id = $1", fid)

    async def commit() -> None:
        for _, sku, q in sorted(lines, key=lambda x: x[1]):
            await conn.execute("UPDATE stock SET on_hand = on_hand - $3, reserved = reserved - $3 "
                               "WHERE sku = $1 AND warehouse_id = $2", sku, warehouse, q)  # fmt: skip
        await conn.executemany("INSERT INTO movements VALUES ($1, $2, $3, $4)",
                               [(f"commit:{order_id}:{n}", sku, warehouse, -q) for n, sku, q in lines])  # fmt: skip
        await conn.execute("UPDATE reservations SET state = 'committed' WHERE order_id = $1", order_id)

    async def nothing() -> None:
        return None

    seq = 3

    async def saga(status: str) -> None:
        nonlocal seq
        await saga_step(conn, order_id, seq, status)
        seq += 1

    steps: list[tuple[str, Any]] = [
        ("order", intake), ("inventory", reserve), ("order", lambda: saga("reserved")),
        ("fulfillment", create_fulfillment), ("order", lambda: saga("fulfilling")), ("warehouse-sim", nothing),
        ("fulfillment", pack), ("order", lambda: saga("packed")), ("shipping", book), ("carrier-sim", nothing),
        ("shipping", booked), ("order", lambda: saga("shipment_booked")), ("shipping", dispatched),
        ("order", lambda: saga("shipped")), ("inventory", commit), ("order", lambda: saga("committed")),
    ]  # fmt: skip
    for consumer, body in steps:
        await handler_tx(conn, consumer, body)
    # The relay's share: one select-for-update and one delete per message, batched by 16 here.
    async with conn.transaction():
        ids = await conn.fetch("SELECT id FROM outbox ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED")
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in ids])


async def run(dsn: str, orders: int, workers: int, catalogue: Catalogue) -> dict[str, float]:
    await prepare(dsn, catalogue)
    stream = catalogue.orders(f"raw{uuid.uuid4().hex[:6]}")
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for _ in range(orders):
        queue.put_nowait(next(stream))

    async def worker() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while not queue.empty():
                external, payload = queue.get_nowait()
                await one_order(conn, external, payload)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    return {"orders": orders, "workers": workers, "elapsed_s": round(elapsed, 2),
            "orders_per_s": round(orders / elapsed, 1), "transactions_per_order": 17}  # fmt: skip


async def database(admin_url: str) -> str:
    """Create the baseline's own database (and role) next to the services'."""
    from run import stack

    dsn: str = await stack().provision_service(admin_url or stack().admin_url(), "bench_rawsql")
    return dsn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--admin-url", default="")
    args = parser.parse_args()
    import uvloop

    async def go() -> dict[str, float]:
        dsn = await database(args.admin_url)
        return await run(dsn, args.orders, args.workers, Catalogue(skus=args.skus))

    print(json.dumps(uvloop.run(go())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
