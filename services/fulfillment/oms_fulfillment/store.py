"""All SQL of the fulfillment service: functions of a connection, returning domain objects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from oms_fulfillment.domain import Fulfillment, FulfillmentLine, Item, Status
from oms_fulfillment.packing import Package, Units
from oms_shared.db import Connection

__all__ = [
    "catalogue",
    "insert_fulfillments",
    "load_fulfillment",
    "load_fulfillments",
    "mark_handed_over",
    "packages_of",
    "save_cancelled",
    "save_packed",
    "upsert_items",
]

_CATALOGUE = "SELECT sku, bin, weight_grams FROM items WHERE sku = ANY($1::text[])"

# Parents and children of many fulfillments in one statement: an id already known
# (a repeat, a tombstone) is left out of `fo` by ON CONFLICT and nothing of it is inserted.
_INSERT = """
WITH fo AS (
    INSERT INTO fulfillment_orders (fulfillment_id, order_id, warehouse_id, status)
    SELECT u.fulfillment_id, u.order_id, u.warehouse_id, 'picking'
    FROM unnest($1::text[], $2::text[], $3::text[]) AS u(fulfillment_id, order_id, warehouse_id)
    ON CONFLICT (fulfillment_id) DO NOTHING
    RETURNING fulfillment_id
), lines AS (
    INSERT INTO fulfillment_lines (fulfillment_id, line_no, sku, quantity, unit_weight_grams)
    SELECT u.fulfillment_id, u.line_no, u.sku, u.quantity, u.weight
    FROM unnest($5::text[], $6::int[], $7::text[], $8::int[], $9::int[])
         AS u(fulfillment_id, line_no, sku, quantity, weight)
    JOIN fo USING (fulfillment_id)
), pick_list AS (
    INSERT INTO pick_lists (pick_list_id, fulfillment_id)
    SELECT u.pick_list_id, u.fulfillment_id
    FROM unnest($4::text[], $1::text[]) AS u(pick_list_id, fulfillment_id)
    JOIN fo USING (fulfillment_id)
), stops AS (
    INSERT INTO pick_list_stops (pick_list_id, seq, bin, line_no, sku, quantity)
    SELECT u.pick_list_id, u.seq, u.bin, u.line_no, u.sku, u.quantity
    FROM unnest($5::text[], $10::text[], $11::int[], $12::text[], $6::int[], $7::text[], $8::int[])
         AS u(fulfillment_id, pick_list_id, seq, bin, line_no, sku, quantity)
    JOIN fo USING (fulfillment_id)
)
SELECT count(*) FROM fo
"""

# Lines come back in pick order, all from one snapshot. No lock: every write below is
# conditional on the status read here, so a concurrent change (a cancel racing a pick
# confirmation) makes the write miss and the handler asks the runtime to retry.
# (FOR UPDATE would not do: after waiting it re-reads the locked row, not the joined lines.)
_LOAD = """
SELECT fo.fulfillment_id, fo.order_id, fo.status, fo.warehouse_id, pl.pick_list_id,
       l.line_no, l.sku, l.quantity, s.bin, l.unit_weight_grams, l.picked
FROM fulfillment_orders fo
LEFT JOIN pick_lists pl ON pl.fulfillment_id = fo.fulfillment_id
LEFT JOIN fulfillment_lines l ON l.fulfillment_id = fo.fulfillment_id
LEFT JOIN pick_list_stops s ON s.pick_list_id = pl.pick_list_id AND s.line_no = l.line_no
WHERE fo.fulfillment_id = ANY($1::text[])
ORDER BY fo.fulfillment_id, s.seq
"""

# Packed fulfillments of a batch in one statement, each only if still picking: one that
# changed since it was read is left out of `fo`, and nothing of it is written.
_SAVE_PACKED = """
WITH fo AS (
    UPDATE fulfillment_orders f SET status = 'packed', updated_at = now()
    FROM unnest($1::text[]) AS u(fulfillment_id)
    WHERE f.fulfillment_id = u.fulfillment_id AND f.status = 'picking'
    RETURNING f.fulfillment_id
), picked AS (
    UPDATE fulfillment_lines l SET picked = u.picked
    FROM unnest($2::text[], $3::int[], $4::int[]) AS u(fulfillment_id, line_no, picked)
    JOIN fo USING (fulfillment_id)
    WHERE l.fulfillment_id = u.fulfillment_id AND l.line_no = u.line_no
), packed AS (
    INSERT INTO packages (package_id, fulfillment_id, seq, weight_grams, items)
    SELECT u.package_id, u.fulfillment_id, u.seq, u.weight, u.items::jsonb
    FROM unnest($5::text[], $6::text[], $7::int[], $8::int[], $9::text[])
         AS u(fulfillment_id, package_id, seq, weight, items)
    JOIN fo USING (fulfillment_id)
)
SELECT count(*) FROM fo
"""

_CANCEL = """
UPDATE fulfillment_orders SET status = 'cancelled', updated_at = now()
WHERE fulfillment_id = $1 AND status = $2
"""

_TOMBSTONE = """
INSERT INTO fulfillment_orders (fulfillment_id, order_id, status) VALUES ($1, $2, 'cancelled')
ON CONFLICT (fulfillment_id) DO NOTHING
"""


async def catalogue(conn: Connection, skus: Iterable[str]) -> dict[str, Item]:
    """The catalogue entries of ``skus`` that exist."""
    rows = await conn.fetch(_CATALOGUE, sorted(set(skus)))
    return {r["sku"]: Item(r["bin"], r["weight_grams"]) for r in rows}


async def upsert_items(conn: Connection, items: dict[str, Item]) -> None:
    """Load or correct catalogue entries (by operators and tests; no message feeds the catalogue yet)."""
    skus = sorted(items)
    await conn.execute(
        "INSERT INTO items (sku, bin, weight_grams)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[])"
        " ON CONFLICT (sku) DO UPDATE SET bin = EXCLUDED.bin, weight_grams = EXCLUDED.weight_grams",
        skus,
        [items[s].bin for s in skus],
        [items[s].weight_grams for s in skus],
    )


async def insert_fulfillments(conn: Connection, fulfillments: Sequence[Fulfillment]) -> int:
    """Insert new fulfillments with their lines, pick lists and stops; how many went in (known ids do not)."""
    lines = [(f, seq, line) for f in fulfillments for seq, line in enumerate(f.lines, start=1)]
    inserted: int = await conn.fetchval(
        _INSERT,
        [f.fulfillment_id for f in fulfillments],
        [f.order_id for f in fulfillments],
        [f.warehouse_id for f in fulfillments],
        [f.pick_list_id for f in fulfillments],
        [f.fulfillment_id for f, _, _ in lines],
        [line.line_no for _, _, line in lines],
        [line.sku for _, _, line in lines],
        [line.quantity for _, _, line in lines],
        [line.unit_weight_grams for _, _, line in lines],
        [f.pick_list_id for f, _, _ in lines],
        [seq for _, seq, _ in lines],
        [line.bin for _, _, line in lines],
    )
    return inserted


async def load_fulfillment(conn: Connection, fulfillment_id: str) -> Fulfillment | None:
    """The fulfillment with its lines in pick order (None if the id is unknown)."""
    return (await load_fulfillments(conn, [fulfillment_id])).get(fulfillment_id)


async def load_fulfillments(conn: Connection, fulfillment_ids: Sequence[str]) -> dict[str, Fulfillment]:
    """The fulfillments of ``fulfillment_ids`` that exist, with their lines in pick order."""
    rows_of: dict[str, list[Any]] = {}
    for row in await conn.fetch(_LOAD, list(fulfillment_ids)):
        rows_of.setdefault(row["fulfillment_id"], []).append(row)
    return {fid: _fulfillment(fid, rows) for fid, rows in rows_of.items()}


def _fulfillment(fulfillment_id: str, rows: Sequence[Any]) -> Fulfillment:
    head = rows[0]
    lines = tuple(
        FulfillmentLine(r["line_no"], r["sku"], r["quantity"], r["bin"], r["unit_weight_grams"], r["picked"])
        for r in rows
        if r["line_no"] is not None
    )
    return Fulfillment(
        fulfillment_id, head["order_id"], Status(head["status"]), head["warehouse_id"], head["pick_list_id"], lines
    )


async def save_packed(conn: Connection, packed: Sequence[tuple[Fulfillment, Sequence[Package]]]) -> int:
    """Record the picked counts and packages of fulfillments, moving each from picking to packed.

    Returns how many were saved: one no longer picking (changed since it was read) is not.
    """
    lines = [(f, line) for f, _ in packed for line in f.lines]
    parcels = [(f, p) for f, packages in packed for p in packages]
    saved: int = await conn.fetchval(
        _SAVE_PACKED,
        [f.fulfillment_id for f, _ in packed],
        [f.fulfillment_id for f, _ in lines],
        [line.line_no for _, line in lines],
        [line.picked or 0 for _, line in lines],
        [f.fulfillment_id for f, _ in parcels],
        [p.package_id(f.fulfillment_id) for f, p in parcels],
        [p.seq for _, p in parcels],
        [p.weight_grams for _, p in parcels],
        [orjson.dumps([_units_json(u.line_no, u.sku, u.quantity) for u in p.items]).decode() for _, p in parcels],
    )
    return saved


async def save_cancelled(conn: Connection, previous: Fulfillment | None, f: Fulfillment) -> bool:
    """Cancel a fulfillment still in state ``previous``, or leave a tombstone for an unknown id.

    False if the fulfillment changed (or appeared) since it was loaded: nothing is written.
    """
    if previous is None:
        status = await conn.execute(_TOMBSTONE, f.fulfillment_id, f.order_id)
    else:
        status = await conn.execute(_CANCEL, f.fulfillment_id, previous.status.value)
    return status.endswith(" 1")


async def mark_handed_over(conn: Connection, fulfillment_id: str) -> bool:
    """A packed fulfillment was given to the carrier; False if it was not packed."""
    status = await conn.execute(
        "UPDATE fulfillment_orders SET status = 'handed_over', updated_at = now()"
        " WHERE fulfillment_id = $1 AND status = 'packed'",
        fulfillment_id,
    )
    return status == "UPDATE 1"


async def packages_of(conn: Connection, fulfillment_id: str) -> list[Package]:
    """The stored packages of a fulfillment, in order."""
    rows = await conn.fetch(
        "SELECT seq, weight_grams, items FROM packages WHERE fulfillment_id = $1 ORDER BY seq", fulfillment_id
    )
    return [
        Package(r["seq"], r["weight_grams"], tuple(Units(i["line_no"], i["sku"], i["quantity"]) for i in r["items"]))
        for r in rows
    ]


def _units_json(line_no: int, sku: str, quantity: int) -> dict[str, object]:
    return {"line_no": line_no, "sku": sku, "quantity": quantity}
