"""All SQL of the inventory service: functions of a connection, returning domain objects.

Locking discipline: every statement that changes several stock rows locks them in
(sku, warehouse_id) order under ``COLLATE "C"``, the order the reservation path
takes them in, so concurrent writers queue instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from oms_inventory.domain import Allocation, Candidate, Decision, Line, Point, StockLevel
from oms_inventory.stock import Movement, ReservedLine, StockRow, WarehouseLevel
from oms_shared.db import Connection

__all__ = [
    "apply_movement",
    "commit_reservations",
    "lock_stock_row",
    "record_decision",
    "reject_movement",
    "release_reservations",
    "reserve_units",
    "set_safety_stock",
    "short_pick_context",
    "skus_at",
    "sourcing_context",
    "sourcing_stock",
    "stock_levels",
    "upsert_warehouse",
    "write_off_short_pick",
]

# --- reserving -------------------------------------------------------------------------
_SOURCING_STOCK = """
SELECT coalesce(jsonb_agg(jsonb_build_array(
           s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.lat, w.lon)), '[]'::jsonb)
FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
WHERE s.sku = ANY($1::text[]) AND w.active AND s.on_hand - s.reserved - s.safety_stock > 0
"""

# The earlier answer to this request (if any) and the candidates' stock, in one round trip.
_SOURCING_CONTEXT = """
SELECT (SELECT jsonb_build_array(decision_id, reason, chosen, unfilled)
        FROM sourcing_decisions WHERE order_id = $1 AND request_id = $2) AS prior,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.lat, w.lon)), '[]'::jsonb)
        FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
        WHERE s.sku = ANY($3::text[]) AND w.active AND s.on_hand - s.reserved - s.safety_stock > 0) AS stock
"""

# Every step of a plan in one statement: lock the rows in the fixed order, then reserve
# each step whose units are still available; the rows reserved come back.
_RESERVE = """
WITH steps AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS u(sku, warehouse_id, quantity)
), locked AS (
    SELECT st.sku, st.warehouse_id FROM stock st
    JOIN steps p ON p.sku = st.sku AND p.warehouse_id = st.warehouse_id
    ORDER BY st.sku COLLATE "C", st.warehouse_id COLLATE "C"
    FOR UPDATE OF st
)
UPDATE stock st SET reserved = st.reserved + p.quantity
FROM steps p JOIN locked l ON l.sku = p.sku AND l.warehouse_id = p.warehouse_id
WHERE st.sku = p.sku AND st.warehouse_id = p.warehouse_id
  AND st.on_hand - st.reserved - st.safety_stock >= p.quantity
RETURNING st.sku, st.warehouse_id
"""

# Undo some of this transaction's reservations (their rows are still locked by it).
_UNRESERVE = """
UPDATE stock st SET reserved = st.reserved - p.quantity
FROM unnest($1::text[], $2::text[], $3::int[]) AS p(sku, warehouse_id, quantity)
WHERE st.sku = p.sku AND st.warehouse_id = p.warehouse_id
"""

# The decision and its reservations in one statement; if the request was recorded
# meanwhile (a concurrent duplicate), `d` is empty and nothing is inserted.
_RECORD_DECISION = """
WITH d AS (
    INSERT INTO sourcing_decisions
        (decision_id, order_id, request_id, outcome, reason, ship_to, candidates, chosen, unfilled, attempts)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10)
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING decision_id
), r AS (
    INSERT INTO reservations (order_id, request_id, line_no, warehouse_id, sku, quantity, reserved_quantity)
    SELECT $2, $3, u.line_no, u.warehouse_id, u.sku, u.quantity, u.quantity
    FROM d, unnest($11::int[], $12::text[], $13::text[], $14::int[]) AS u(line_no, warehouse_id, sku, quantity)
)
SELECT count(*) > 0 FROM d
"""


async def sourcing_context(
    conn: Connection, order_id: str, request_id: str, skus: Sequence[str]
) -> tuple[Decision | None, list[StockLevel]]:
    """The recorded answer to this request, if any, and the stock the planner may use."""
    row = await conn.fetchrow(_SOURCING_CONTEXT, order_id, request_id, list(skus))
    assert row is not None
    return (_decision(row["prior"]) if row["prior"] else None), _stock_levels(row["stock"])


async def sourcing_stock(conn: Connection, skus: Sequence[str]) -> list[StockLevel]:
    """The stock the planner may use, read again (after a concurrent reservation won a row)."""
    return _stock_levels(await conn.fetchval(_SOURCING_STOCK, list(skus)))


async def reserve_units(conn: Connection, steps: Sequence[tuple[str, str, int]]) -> bool:
    """Reserve every (sku, warehouse, units) step, or none: False if another order took some units first.

    Steps must name distinct rows (:func:`~oms_inventory.domain.reservation_steps`).
    """
    if not steps:
        return True
    columns = [list(column) for column in zip(*steps, strict=True)]
    done = {(row["sku"], row["warehouse_id"]) for row in await conn.fetch(_RESERVE, *columns)}
    if len(done) == len(steps):
        return True
    undo = [step for step in steps if (step[0], step[1]) in done]
    if undo:
        await conn.execute(_UNRESERVE, *[list(column) for column in zip(*undo, strict=True)])
    return False


async def record_decision(
    conn: Connection,
    *,
    order_id: str,
    request_id: str,
    decision: Decision,
    ship_to: Point,
    candidates: Sequence[Candidate],
    attempts: int,
) -> bool:
    """Store the decision and its reservations; False if a concurrent transaction recorded the request first."""
    allocations = decision.allocations
    recorded: bool = await conn.fetchval(
        _RECORD_DECISION,
        decision.decision_id,
        order_id,
        request_id,
        "failed" if decision.failure else "reserved",
        decision.failure,
        {"lat": ship_to.lat, "lon": ship_to.lon},
        [_candidate_json(c) for c in candidates],
        [_allocation_json(a, decision.locations.get(a.warehouse_id)) for a in allocations],
        [{"line_no": u.line_no, "sku": u.sku, "quantity": u.quantity} for u in decision.unfilled],
        attempts,
        [a.line_no for a in allocations],
        [a.warehouse_id for a in allocations],
        [a.sku for a in allocations],
        [a.quantity for a in allocations],
    )
    return recorded


# --- releasing and committing ----------------------------------------------------------
# `claim` makes a repeat of the request a no-op; the union's second half (read in the
# statement's snapshot, so without this statement's rows) replays what it closed before.
_RELEASE = """
WITH claim AS (
    INSERT INTO requests (order_id, request_id, kind, warehouse_id) VALUES ($1, $2, 'release', $3)
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING 1
), r AS (
    UPDATE reservations SET state = 'released', closed_by = $2, closed_at = now()
    WHERE order_id = $1 AND state = 'active' AND ($3::text IS NULL OR warehouse_id = $3)
      AND EXISTS (SELECT 1 FROM claim)
    RETURNING warehouse_id, line_no, sku, quantity
), per_row AS (
    SELECT sku, warehouse_id, sum(quantity)::int AS quantity FROM r GROUP BY sku, warehouse_id
), locked AS (
    SELECT st.sku, st.warehouse_id FROM stock st
    JOIN per_row p ON p.sku = st.sku AND p.warehouse_id = st.warehouse_id
    ORDER BY st.sku COLLATE "C", st.warehouse_id COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET reserved = st.reserved - p.quantity
    FROM per_row p JOIN locked l ON l.sku = p.sku AND l.warehouse_id = p.warehouse_id
    WHERE st.sku = p.sku AND st.warehouse_id = p.warehouse_id
)
SELECT warehouse_id, line_no, sku, quantity, true AS fresh FROM r
UNION ALL
SELECT warehouse_id, line_no, sku, quantity, false FROM reservations
WHERE order_id = $1 AND state = 'released' AND closed_by = $2
ORDER BY warehouse_id, line_no
"""

# Each committed reservation is one 'shipment' movement, so on_hand = sum(movements) holds.
_COMMIT = """
WITH claim AS (
    INSERT INTO requests (order_id, request_id, kind, warehouse_id) VALUES ($1, $2, 'commit', $3)
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING 1
), r AS (
    UPDATE reservations SET state = 'committed', closed_by = $2, closed_at = now()
    WHERE order_id = $1 AND warehouse_id = $3 AND state = 'active' AND EXISTS (SELECT 1 FROM claim)
    RETURNING request_id, warehouse_id, line_no, sku, quantity
), per_row AS (
    SELECT sku, sum(quantity)::int AS quantity FROM r GROUP BY sku
), locked AS (
    SELECT st.sku FROM stock st JOIN per_row p ON p.sku = st.sku
    WHERE st.warehouse_id = $3
    ORDER BY st.sku COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET on_hand = st.on_hand - p.quantity, reserved = st.reserved - p.quantity
    FROM per_row p JOIN locked l ON l.sku = p.sku
    WHERE st.sku = p.sku AND st.warehouse_id = $3
), moved AS (
    INSERT INTO movements (movement_id, sku, warehouse_id, kind, quantity, order_id)
    SELECT 'commit:' || $1 || ':' || $3 || ':' || r.line_no || ':' || r.request_id,
           r.sku, $3, 'shipment', -r.quantity, $1
    FROM r
)
SELECT warehouse_id, line_no, sku, quantity, true AS fresh FROM r
UNION ALL
SELECT warehouse_id, line_no, sku, quantity, false FROM reservations
WHERE order_id = $1 AND warehouse_id = $3 AND state = 'committed' AND closed_by = $2
ORDER BY warehouse_id, line_no
"""


async def release_reservations(
    conn: Connection, order_id: str, request_id: str, warehouse_id: str | None
) -> tuple[list[Allocation], set[str]]:
    """Release the order's active reservations (at one warehouse, or all).

    Returns what this request released (also when it is a repeat) and the SKUs whose
    stock changed now (empty for a repeat).
    """
    return _closed(await conn.fetch(_RELEASE, order_id, request_id, warehouse_id))


async def commit_reservations(
    conn: Connection, order_id: str, request_id: str, warehouse_id: str
) -> tuple[list[Allocation], set[str]]:
    """Turn the order's active reservations at the warehouse into shipped stock (with movements)."""
    return _closed(await conn.fetch(_COMMIT, order_id, request_id, warehouse_id))


# --- short picks ----------------------------------------------------------------------
_SHORT_PICK_CONTEXT = """
SELECT (SELECT reply FROM requests WHERE order_id = $1 AND request_id = $2) AS prior,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(request_id, line_no, sku, quantity)
                                  ORDER BY created_at, request_id, line_no), '[]'::jsonb)
        FROM reservations WHERE order_id = $1 AND warehouse_id = $3 AND state = 'active') AS active
"""

# The reply is kept with the request; the stock change and the write-off movements
# are derived from the reservation rows actually cut, so they always agree.
_WRITE_OFF = """
WITH claim AS (
    INSERT INTO requests (order_id, request_id, kind, warehouse_id, reply)
    VALUES ($1, $2, 'short_pick', $3, $4::jsonb)
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING 1
), cut AS (
    SELECT u.* FROM unnest($5::text[], $6::int[], $7::int[]) AS u(request_id, line_no, units)
    WHERE EXISTS (SELECT 1 FROM claim)
), r AS (
    UPDATE reservations rs SET
        quantity = rs.quantity - c.units,
        state = CASE WHEN rs.quantity = c.units THEN 'written_off' ELSE rs.state END,
        closed_by = CASE WHEN rs.quantity = c.units THEN $2 ELSE rs.closed_by END,
        closed_at = CASE WHEN rs.quantity = c.units THEN now() ELSE rs.closed_at END
    FROM cut c
    WHERE rs.order_id = $1 AND rs.warehouse_id = $3 AND rs.request_id = c.request_id
      AND rs.line_no = c.line_no AND rs.state = 'active' AND rs.quantity >= c.units
    RETURNING rs.line_no, rs.sku, c.units
), per_row AS (
    SELECT sku, sum(units)::int AS quantity FROM r GROUP BY sku
), locked AS (
    SELECT st.sku FROM stock st JOIN per_row p ON p.sku = st.sku
    WHERE st.warehouse_id = $3
    ORDER BY st.sku COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET on_hand = st.on_hand - p.quantity, reserved = st.reserved - p.quantity
    FROM per_row p JOIN locked l ON l.sku = p.sku
    WHERE st.sku = p.sku AND st.warehouse_id = $3
), moved AS (
    INSERT INTO movements (movement_id, sku, warehouse_id, kind, quantity, order_id, reason)
    SELECT 'shortpick:' || $1 || ':' || $2 || ':' || line_no, sku, $3, 'write_off', -sum(units)::int, $1, 'short pick'
    FROM r GROUP BY line_no, sku
)
SELECT (SELECT count(*) FROM claim) AS claimed, (SELECT array_agg(DISTINCT sku) FROM r) AS skus
"""


async def short_pick_context(
    conn: Connection, order_id: str, request_id: str, warehouse_id: str
) -> tuple[list[Line] | None, list[ReservedLine]]:
    """The recorded reply to this short-pick request, if any, and the order's active reservations there."""
    row = await conn.fetchrow(_SHORT_PICK_CONTEXT, order_id, request_id, warehouse_id)
    assert row is not None
    prior = None if row["prior"] is None else [_line(item) for item in row["prior"]]
    return prior, [ReservedLine(r, int(n), s, int(q)) for r, n, s, q in row["active"]]


async def write_off_short_pick(
    conn: Connection,
    order_id: str,
    request_id: str,
    warehouse_id: str,
    cuts: Sequence[ReservedLine],
    written_off: Sequence[Line],
) -> set[str] | None:
    """Shrink the reservations by ``cuts`` and write the units off; None if the request was already recorded."""
    row = await conn.fetchrow(
        _WRITE_OFF,
        order_id,
        request_id,
        warehouse_id,
        [{"line_no": w.line_no, "sku": w.sku, "quantity": w.quantity} for w in written_off],
        [c.request_id for c in cuts],
        [c.line_no for c in cuts],
        [c.quantity for c in cuts],
    )
    assert row is not None
    if not row["claimed"]:
        return None
    return set(row["skus"] or ())


# --- movements, warehouses, safety stock -------------------------------------------------
# Creates the stock row on first sight (safety stock from the warehouse's default,
# on hand 0, which is the sum of its no movements) and locks it either way. No row
# comes back for an unknown warehouse.
_LOCK_STOCK_ROW = """
INSERT INTO stock AS st (sku, warehouse_id, safety_stock)
SELECT $1, w.id, w.default_safety_stock FROM warehouses w WHERE w.id = $2
ON CONFLICT (sku, warehouse_id) DO UPDATE SET on_hand = st.on_hand
RETURNING st.on_hand, st.reserved, EXISTS (SELECT 1 FROM movements WHERE movement_id = $3) AS seen
"""

# Stock changes only if the movement is new (its key is the UNIQUE movement_id).
_APPLY_MOVEMENT = """
WITH m AS (
    INSERT INTO movements (movement_id, sku, warehouse_id, kind, quantity, reason)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (movement_id) DO NOTHING
    RETURNING quantity
)
UPDATE stock st SET on_hand = st.on_hand + m.quantity
FROM m WHERE st.sku = $2 AND st.warehouse_id = $3
"""

_REJECT_MOVEMENT = """
INSERT INTO rejected_movements (movement_id, sku, warehouse_id, kind, quantity, reason)
VALUES ($1, $2, $3, $4, $5, $6)
"""

# The subquery reads the statement's snapshot: the row as it was before this upsert.
_UPSERT_WAREHOUSE = """
INSERT INTO warehouses AS w (id, name, lat, lon, default_safety_stock, active)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
    default_safety_stock = EXCLUDED.default_safety_stock, active = EXCLUDED.active, updated_at = now()
RETURNING (SELECT active FROM warehouses WHERE id = $1) AS was_active
"""

_SET_SAFETY_STOCK = """
INSERT INTO stock AS st (sku, warehouse_id, safety_stock)
SELECT $1, w.id, $3 FROM warehouses w WHERE w.id = $2
ON CONFLICT (sku, warehouse_id) DO UPDATE SET safety_stock = EXCLUDED.safety_stock
"""

_STOCK_LEVELS = """
SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.active
FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
WHERE s.sku = ANY($1::text[])
"""


async def lock_stock_row(conn: Connection, sku: str, warehouse_id: str, movement_id: str) -> StockRow | None:
    """Lock (creating it on first sight) the stock row a movement is for; None if the warehouse is unknown."""
    row = await conn.fetchrow(_LOCK_STOCK_ROW, sku, warehouse_id, movement_id)
    if row is None:
        return None
    return StockRow(on_hand=row["on_hand"], reserved=row["reserved"], movement_seen=row["seen"])


async def apply_movement(conn: Connection, m: Movement) -> bool:
    """Record the movement and change on hand by it; False if its key was recorded meanwhile."""
    status: str = await conn.execute(
        _APPLY_MOVEMENT, m.movement_id, m.sku, m.warehouse_id, m.kind, m.quantity, m.reason
    )
    return status == "UPDATE 1"


async def reject_movement(conn: Connection, m: Movement, reason: str) -> None:
    """Keep a refused movement for operators (it changes nothing)."""
    await conn.execute(_REJECT_MOVEMENT, m.movement_id, m.sku, m.warehouse_id, m.kind, m.quantity, reason)


async def upsert_warehouse(
    conn: Connection, *, warehouse_id: str, name: str, location: Point, default_safety_stock: int, active: bool
) -> bool:
    """Register or update a warehouse; True if it went in or out of service (availability changed)."""
    was_active = await conn.fetchval(
        _UPSERT_WAREHOUSE, warehouse_id, name, location.lat, location.lon, default_safety_stock, active
    )
    return was_active is not None and was_active != active


async def set_safety_stock(conn: Connection, sku: str, warehouse_id: str, safety_stock: int) -> bool:
    """Set the units kept back from sale; False if the warehouse is unknown."""
    status: str = await conn.execute(_SET_SAFETY_STOCK, sku, warehouse_id, safety_stock)
    return status == "INSERT 0 1"


async def skus_at(conn: Connection, warehouse_id: str) -> list[str]:
    """Every SKU with a stock row at the warehouse."""
    return [r["sku"] for r in await conn.fetch("SELECT sku FROM stock WHERE warehouse_id = $1", warehouse_id)]


async def stock_levels(conn: Connection, skus: Iterable[str]) -> list[WarehouseLevel]:
    """Every stock row of these SKUs, with whether its warehouse is in service."""
    rows = await conn.fetch(_STOCK_LEVELS, sorted(skus))
    return [WarehouseLevel(*row.values()) for row in rows]


# --- mapping -------------------------------------------------------------------------
def _stock_levels(items: Any) -> list[StockLevel]:
    return [StockLevel(sku, wh, int(o), int(r), int(s), Point(lat, lon)) for sku, wh, o, r, s, lat, lon in items]


def _closed(rows: Iterable[Any]) -> tuple[list[Allocation], set[str]]:
    allocations = [Allocation(r["line_no"], r["sku"], r["warehouse_id"], r["quantity"]) for r in rows]
    changed = {r["sku"] for r in rows if r["fresh"]}
    return allocations, changed


def _line(item: Any) -> Line:
    return Line(int(item["line_no"]), item["sku"], int(item["quantity"]))


def _allocation_json(a: Allocation, location: Point | None) -> dict[str, Any]:
    item: dict[str, Any] = {"line_no": a.line_no, "sku": a.sku, "warehouse_id": a.warehouse_id, "quantity": a.quantity}
    if location is not None:
        item["lat"], item["lon"] = location.lat, location.lon
    return item


def _candidate_json(c: Candidate) -> dict[str, Any]:
    return {
        "warehouse_id": c.warehouse_id,
        "distance_km": c.distance_km,
        "fillable_units": c.fillable_units,
        "score": c.score,
        "pick": c.pick,
    }


def _decision(prior: Any) -> Decision:
    decision_id, reason, chosen, unfilled = prior
    allocations = tuple(Allocation(int(a["line_no"]), a["sku"], a["warehouse_id"], int(a["quantity"])) for a in chosen)
    locations = {a["warehouse_id"]: Point(a["lat"], a["lon"]) for a in chosen if "lat" in a}
    return Decision(decision_id, allocations, tuple(_line(u) for u in unfilled), reason, locations)
