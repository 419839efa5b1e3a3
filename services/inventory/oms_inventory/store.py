"""All SQL of the inventory service: functions of a connection, returning domain objects.

Locking discipline: every statement that changes several stock rows locks them in
(sku, warehouse_id) order under ``COLLATE "C"``, the order the reservation path
takes them in, so concurrent writers queue instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from oms_inventory.domain import Allocation, Candidate, Decision, Line, Point, StockLevel
from oms_inventory.stock import Movement, ReservedLine, StockRow, WarehouseLevel
from oms_shared.db import Connection
from oms_shared.outbox import CONFLICT_SQLSTATE, OutboxWrite, outbox_ctes, outbox_id, outbox_result

__all__ = [
    "ActiveReservation",
    "BatchContext",
    "CommitClose",
    "LocatedLevel",
    "RecordedDecision",
    "StockWrite",
    "apply_movement",
    "batch_context",
    "commit_reservations",
    "lock_stock_row",
    "record_reservations",
    "reject_movement",
    "release_reservations",
    "reserve_context",
    "set_safety_stock",
    "short_pick_context",
    "skus_at",
    "stock_levels",
    "stock_rows",
    "upsert_warehouse",
    "write_batch",
    "write_off_short_pick",
]


def _decision_ctes(first: int) -> str:
    """The CTEs ``d`` (decisions inserted, unless recorded meanwhile: RETURNING order and request)
    and ``r`` (their reservations) reading :func:`_decision_columns` and six reservation
    columns from placeholder ``$first`` on (fifteen arrays)."""
    p = [f"${first + i}" for i in range(15)]
    return f"""d AS (
    INSERT INTO sourcing_decisions
        (decision_id, order_id, request_id, outcome, reason, ship_to, candidates, chosen, unfilled, attempts)
    SELECT u.decision_id, u.order_id, u.request_id, u.outcome, u.reason,
           u.ship_to::jsonb, u.candidates::jsonb, u.chosen::jsonb, u.unfilled::jsonb, 1
    FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[],
                {p[5]}::text[], {p[6]}::text[], {p[7]}::text[], {p[8]}::text[])
         AS u(decision_id, order_id, request_id, outcome, reason, ship_to, candidates, chosen, unfilled)
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING order_id, request_id
), r AS (
    INSERT INTO reservations (order_id, request_id, line_no, warehouse_id, sku, quantity, reserved_quantity)
    SELECT u.order_id, u.request_id, u.line_no, u.warehouse_id, u.sku, u.quantity, u.quantity
    FROM unnest({p[9]}::text[], {p[10]}::text[], {p[11]}::int[], {p[12]}::text[], {p[13]}::text[], {p[14]}::int[])
         AS u(order_id, request_id, line_no, warehouse_id, sku, quantity)
    JOIN d ON d.order_id = u.order_id AND d.request_id = u.request_id"""  # noqa: S608  (placeholders only)


# --- reserving -------------------------------------------------------------------------
# The earlier decisions of a batch's reserve requests, and the candidate stock rows of
# its SKUs, locked in the fixed order (see oms_inventory.reserving), in one round trip.
_RESERVE_CONTEXT = """
WITH locked AS MATERIALIZED (
    SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.lat, w.lon
    FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
    WHERE s.sku = ANY($3::text[]) AND w.active AND s.on_hand - s.reserved - s.safety_stock > 0
    ORDER BY s.sku COLLATE "C", s.warehouse_id COLLATE "C"
    FOR UPDATE OF s
)
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  d.order_id, d.request_id, d.decision_id, d.reason, d.chosen, d.unfilled)), '[]'::jsonb)
        FROM sourcing_decisions d
        JOIN unnest($1::text[], $2::text[]) AS u(order_id, request_id)
          ON d.order_id = u.order_id AND d.request_id = u.request_id) AS priors,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  sku, warehouse_id, on_hand, reserved, safety_stock, lat, lon)), '[]'::jsonb)
        FROM locked) AS stock
"""

# A batch's reserved units (one delta per stock row, every row already locked by this
# transaction), its decisions and their reservations. The units are still reserved only
# where available; a decision recorded meanwhile (a concurrent duplicate) is not inserted
# again, nor are its reservations. The counts tell the caller whether all of it went in.
# `levels` is every stock row of the reserved SKUs as it stands after the update (the
# statement's snapshot plus its deltas; they only count if every delta went in) for the
# availability events, which would otherwise read them again in a round trip of their own.
_RECORD_RESERVATIONS = f"""
WITH reserved AS (
    UPDATE stock st SET reserved = st.reserved + p.quantity
    FROM unnest($1::text[], $2::text[], $3::int[]) AS p(sku, warehouse_id, quantity)
    WHERE st.sku = p.sku AND st.warehouse_id = p.warehouse_id
      AND st.on_hand - st.reserved - st.safety_stock >= p.quantity
    RETURNING 1
), {_decision_ctes(4)}
)
SELECT (SELECT count(*) FROM reserved) AS reserved, (SELECT count(*) FROM d) AS recorded,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  s.sku, s.warehouse_id, s.on_hand, s.reserved + coalesce(p.quantity, 0), s.safety_stock,
                  w.active)), '[]'::jsonb)
        FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
        LEFT JOIN unnest($1::text[], $2::text[], $3::int[]) AS p(sku, warehouse_id, quantity)
               ON p.sku = s.sku AND p.warehouse_id = s.warehouse_id
        WHERE s.sku = ANY($1::text[])) AS levels
"""  # noqa: S608  (module constants and placeholders only)


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A reserve request's decision as it is stored: with the ship-to and the candidates weighed."""

    order_id: str
    request_id: str
    decision: Decision
    ship_to: Point
    candidates: tuple[Candidate, ...]


async def reserve_context(
    conn: Connection, requests: Sequence[tuple[str, str]], skus: Sequence[str]
) -> tuple[dict[tuple[str, str], Decision], list[StockLevel]]:
    """The recorded decisions of these (order, request) pairs, and the candidate rows of ``skus``, locked."""
    row = await conn.fetchrow(_RESERVE_CONTEXT, [o for o, _ in requests], [r for _, r in requests], list(skus))
    assert row is not None
    priors = {(order_id, request_id): _decision(rest) for order_id, request_id, *rest in row["priors"]}
    return priors, _stock_levels(row["stock"])


async def record_reservations(
    conn: Connection, steps: Sequence[tuple[str, str, int]], recorded: Sequence[RecordedDecision]
) -> tuple[int, int, list[WarehouseLevel]]:
    """Reserve the (sku, warehouse, units) steps and store the decisions.

    Returns the rows reserved, the decisions stored and, valid when every step went in,
    every stock row of the steps' SKUs after the reserve.
    """
    row = await conn.fetchrow(
        _RECORD_RESERVATIONS,
        [sku for sku, _, _ in steps],
        [warehouse_id for _, warehouse_id, _ in steps],
        [quantity for _, _, quantity in steps],
        *_decision_columns(recorded),
    )
    assert row is not None
    levels = [WarehouseLevel(*level) for level in row["levels"]]
    return int(row["reserved"]), int(row["recorded"]), levels


def _decision_columns(recorded: Sequence[RecordedDecision]) -> tuple[list[Any], ...]:
    """The decisions and their reservations as :func:`_decision_ctes` takes them (fifteen arrays)."""
    allocations = [(r, a) for r in recorded for a in r.decision.allocations]
    return (
        [r.decision.decision_id for r in recorded],
        [r.order_id for r in recorded],
        [r.request_id for r in recorded],
        ["failed" if r.decision.failure else "reserved" for r in recorded],
        [r.decision.failure for r in recorded],
        # JSON documents go as text (cast in SQL): a list in a list would be a 2-D array to asyncpg.
        [_json({"lat": r.ship_to.lat, "lon": r.ship_to.lon}) for r in recorded],
        [_json([_candidate_json(c) for c in r.candidates]) for r in recorded],
        [
            _json([_allocation_json(a, r.decision.locations.get(a.warehouse_id)) for a in r.decision.allocations])
            for r in recorded
        ],
        [
            _json([{"line_no": u.line_no, "sku": u.sku, "quantity": u.quantity} for u in r.decision.unfilled])
            for r in recorded
        ],
        [r.order_id for r, _ in allocations],
        [r.request_id for r, _ in allocations],
        [a.line_no for _, a in allocations],
        [a.warehouse_id for _, a in allocations],
        [a.sku for _, a in allocations],
        [a.quantity for _, a in allocations],
    )


# --- releasing and committing ----------------------------------------------------------
# `locked` takes the stock rows' locks in one fixed order (no deadlock between batches)
# and carries each row's delta, so the update joins it to stock by key: joined to
# per_row as well, the prepared (generic) plan compared every row with every row (182
# rows: 8 of the statement's 15 ms at 250 orders/s).
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
), locked AS MATERIALIZED (
    SELECT st.sku, st.warehouse_id, p.quantity FROM stock st
    JOIN per_row p ON p.sku = st.sku AND p.warehouse_id = st.warehouse_id
    ORDER BY st.sku COLLATE "C", st.warehouse_id COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET reserved = st.reserved - l.quantity
    FROM locked l
    WHERE st.sku = l.sku AND st.warehouse_id = l.warehouse_id
)
SELECT warehouse_id, line_no, sku, quantity, true AS fresh FROM r
UNION ALL
SELECT warehouse_id, line_no, sku, quantity, false FROM reservations
WHERE order_id = $1 AND state = 'released' AND closed_by = $2
ORDER BY warehouse_id, line_no
"""

# A batch's commits in one statement. Each committed reservation is one 'shipment'
# movement, so on_hand = sum(movements) holds. `claim` makes a repeat of a request a
# no-op; the union's second half (the statement's snapshot: without this statement's
# rows) replays what a repeat closed before. `levels` is every stock row of the SKUs
# this statement changed as it leaves them, for the availability events: the changed
# rows from their locked (latest) versions, the others as the snapshot has them (what a
# read of its own would see). The planner guesses one row for `per_row` and `locked`
# (the estimate of an UPDATE's RETURNING): joined to them, stock was looped over once per
# locked row (7.8 of a 16 ms statement at 300 orders/s); the array and the NOT IN (a
# hashed subplan) keep each part one pass.
_COMMIT = """
WITH c AS (
    SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(order_id, request_id, warehouse_id)
), claim AS (
    INSERT INTO requests (order_id, request_id, kind, warehouse_id)
    SELECT order_id, request_id, 'commit', warehouse_id FROM c
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING order_id, request_id, warehouse_id
), r AS (
    UPDATE reservations rs SET state = 'committed', closed_by = claim.request_id, closed_at = now()
    FROM claim
    WHERE rs.order_id = claim.order_id AND rs.warehouse_id = claim.warehouse_id AND rs.state = 'active'
    RETURNING claim.request_id AS closed_by, rs.order_id, rs.request_id, rs.warehouse_id, rs.line_no, rs.sku,
              rs.quantity
), per_row AS (
    SELECT sku, warehouse_id, sum(quantity)::int AS quantity FROM r GROUP BY sku, warehouse_id
), locked AS MATERIALIZED (
    SELECT st.sku, st.warehouse_id, p.quantity, st.on_hand, st.reserved, st.safety_stock FROM stock st
    JOIN per_row p ON p.sku = st.sku AND p.warehouse_id = st.warehouse_id
    ORDER BY st.sku COLLATE "C", st.warehouse_id COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET on_hand = st.on_hand - l.quantity, reserved = st.reserved - l.quantity
    FROM locked l
    WHERE st.sku = l.sku AND st.warehouse_id = l.warehouse_id
), moved AS (
    INSERT INTO movements (movement_id, sku, warehouse_id, kind, quantity, order_id)
    SELECT 'commit:' || r.order_id || ':' || r.warehouse_id || ':' || r.line_no || ':' || r.request_id,
           r.sku, r.warehouse_id, 'shipment', -r.quantity, r.order_id
    FROM r
), closed AS (
    SELECT order_id, closed_by AS request_id, warehouse_id, line_no, sku, quantity, true AS fresh FROM r
    UNION ALL
    SELECT rs.order_id, rs.closed_by, rs.warehouse_id, rs.line_no, rs.sku, rs.quantity, false
    FROM reservations rs JOIN c ON rs.order_id = c.order_id AND rs.warehouse_id = c.warehouse_id
    WHERE rs.state = 'committed' AND rs.closed_by = c.request_id
)
SELECT (SELECT coalesce(jsonb_agg(to_jsonb(closed) ORDER BY order_id, request_id, warehouse_id, line_no),
                        '[]'::jsonb)
        FROM closed) AS closed,
       (SELECT coalesce(jsonb_agg(level), '[]'::jsonb) FROM (
            SELECT jsonb_build_array(l.sku, l.warehouse_id, l.on_hand - l.quantity, l.reserved - l.quantity,
                                     l.safety_stock, w.active) AS level
            FROM locked l JOIN warehouses w ON w.id = l.warehouse_id
            UNION ALL
            SELECT jsonb_build_array(s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.active)
            FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
            WHERE s.sku = ANY(ARRAY(SELECT DISTINCT sku FROM per_row))
              AND (s.sku, s.warehouse_id) NOT IN (SELECT sku, warehouse_id FROM locked)
        ) AS levels) AS levels
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
    conn: Connection, requests: Sequence[tuple[str, str, str]]
) -> tuple[dict[tuple[str, str, str], tuple[list[Allocation], set[str]]], list[WarehouseLevel]]:
    """Commit each (order, request, warehouse)'s active reservations: shipped stock, with movements.

    Per request: the reservations it closed (now, or by an earlier delivery of it) and
    the SKUs whose levels this call changed; and every stock row of those SKUs after it.
    """
    row = await conn.fetchrow(
        _COMMIT, [o for o, _, _ in requests], [r for _, r, _ in requests], [w for _, _, w in requests]
    )
    assert row is not None  # aggregates: one row
    grouped: dict[tuple[str, str, str], list[Any]] = {}
    for closed in row["closed"]:
        grouped.setdefault((closed["order_id"], closed["request_id"], closed["warehouse_id"]), []).append(closed)
    levels = [WarehouseLevel(*level) for level in row["levels"]]
    return {key: _closed(group) for key, group in grouped.items()}, levels


# --- one-statement batches (reserve and commit commands only: oms_inventory.one_statement) ---
# What such a batch reads, locking nothing: the active reservations of the committing
# orders at their warehouses, and every stock row of the SKUs involved (the reserves' and
# those reservations'), with its warehouse; one array of SKUs, so stock is read by its key
# (`= ANY(..) OR IN (..)` scanned it all). Earlier decisions and commit claims are not
# read: a repeat of a request from an earlier batch is rare, and the write's inserts find
# it (the batch is then replayed in a transaction, which answers it as recorded).
def _active_at(orders: str, warehouses: str) -> str:
    """FROM and WHERE of the active reservations (``rs``) of the (order, warehouse) pairs in
    the text-array placeholders ``orders`` and ``warehouses``: what a commit closes."""
    return f"""FROM reservations rs
    JOIN (SELECT DISTINCT * FROM unnest({orders}::text[], {warehouses}::text[]) AS u(order_id, warehouse_id)) w
      ON rs.order_id = w.order_id AND rs.warehouse_id = w.warehouse_id
    WHERE rs.state = 'active'"""  # noqa: S608  (placeholders only)


_BATCH_CONTEXT = f"""
WITH active AS (
    SELECT rs.order_id, rs.request_id, rs.line_no, rs.warehouse_id, rs.sku, rs.quantity
    {_active_at("$2", "$3")}
)
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_array(order_id, request_id, line_no, warehouse_id, sku, quantity)
                                  ORDER BY line_no, request_id), '[]'::jsonb)
        FROM active) AS active,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.active, w.lat, w.lon)), '[]'::jsonb)
        FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
        WHERE s.sku = ANY(ARRAY(SELECT unnest($1::text[]) UNION SELECT sku FROM active))) AS stock
"""  # noqa: S608  (module constants and placeholders only)

# Such a batch's whole write, its own transaction. `changed` moves each stock row once by
# its merged delta, only if it still holds the values read (an UPDATE re-checks its WHERE
# on the latest version of a row written meanwhile) and, when it takes units, only if they
# are still there. `seen`: every row of the SKUs whose availability the batch publishes
# is as read, its warehouse as active and where it was (the batch planned with them,
# perhaps from rows an earlier batch left: oms_inventory.stock_cache), and there is no
# other (the events carry all of them). Then the decisions
# and their reservations, the commit requests' claims, the committed reservations (each
# still active with the SKU and units the batch moved stock by, and `held`: no other active
# one of those orders at those warehouses, as the batch may know them from the cache) and
# their shipment movements (keyed as `_COMMIT` keys them), the outbox and the inbox claim. A count
# short aborts it all (OMS02): the runtime replays the batch in a transaction that locks.
_BATCH_WRITE = f"""
WITH d0 AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::bool[], $7::int[], $8::int[],
                         $40::float8[], $41::float8[])
         AS u(sku, warehouse_id, on_hand, reserved, safety_stock, active, d_on_hand, d_reserved, lat, lon)
), changed AS (
    UPDATE stock st SET on_hand = st.on_hand + d.d_on_hand, reserved = st.reserved + d.d_reserved
    FROM d0 d
    WHERE (d.d_on_hand <> 0 OR d.d_reserved <> 0)
      AND st.sku = d.sku AND st.warehouse_id = d.warehouse_id
      AND st.on_hand = d.on_hand AND st.reserved = d.reserved AND st.safety_stock = d.safety_stock
      AND (d.d_reserved - d.d_on_hand <= 0
           OR st.on_hand - st.reserved - st.safety_stock >= d.d_reserved - d.d_on_hand)
    RETURNING 1
), seen AS (
    SELECT count(*) FILTER (WHERE d.sku IS NOT NULL AND s.on_hand = d.on_hand AND s.reserved = d.reserved
                            AND s.safety_stock = d.safety_stock AND w.active = d.active
                            AND w.lat = d.lat AND w.lon = d.lon) AS same,
           count(*) AS rows
    FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
    LEFT JOIN d0 d ON d.sku = s.sku AND d.warehouse_id = s.warehouse_id
    WHERE s.sku = ANY(ARRAY(SELECT DISTINCT sku FROM d0))
), {_decision_ctes(9)}
), claim AS (
    INSERT INTO requests (order_id, request_id, kind, warehouse_id)
    SELECT * FROM unnest($24::text[], $25::text[], $26::text[], $27::text[])
    ON CONFLICT (order_id, request_id) DO NOTHING
    RETURNING 1
), closed AS (
    UPDATE reservations rs SET state = 'committed', closed_by = u.closed_by, closed_at = now()
    FROM unnest($28::text[], $29::text[], $30::int[], $31::text[], $32::text[], $42::text[], $43::int[])
         AS u(order_id, request_id, line_no, warehouse_id, closed_by, sku, quantity)
    WHERE rs.order_id = u.order_id AND rs.request_id = u.request_id AND rs.line_no = u.line_no
      AND rs.warehouse_id = u.warehouse_id AND rs.state = 'active' AND rs.sku = u.sku AND rs.quantity = u.quantity
    RETURNING rs.order_id, rs.request_id, rs.line_no, rs.warehouse_id, rs.sku, rs.quantity
), held AS (
    SELECT count(*) AS active
    {_active_at("$28", "$31")}
), moved AS (
    INSERT INTO movements (movement_id, sku, warehouse_id, kind, quantity, order_id)
    SELECT 'commit:' || order_id || ':' || warehouse_id || ':' || line_no || ':' || request_id,
           sku, warehouse_id, 'shipment', -quantity, order_id
    FROM closed
), {outbox_ctes(33)}
SELECT oms_check((SELECT count(*) FROM changed) = (SELECT count(*) FROM d0 WHERE d_on_hand <> 0 OR d_reserved <> 0)
                 AND (SELECT same = cardinality($1::text[]) AND rows = cardinality($1::text[]) FROM seen)
                 AND (SELECT count(*) FROM d) = cardinality($9::text[])
                 AND (SELECT count(*) FROM claim) = cardinality($24::text[])
                 AND (SELECT count(*) FROM closed) = cardinality($28::text[])
                 AND (SELECT active FROM held) = cardinality($28::text[]),
                 '{CONFLICT_SQLSTATE}', 'stock, a request or a reservation of this batch changed since it was read')
           AS current,
       {outbox_result(33)}
"""  # noqa: S608  (module constants and placeholders only)


#: A stock row and where its warehouse is.
LocatedLevel = tuple[WarehouseLevel, Point]


def _located(values: Sequence[Any]) -> LocatedLevel:
    """A stock row as _STOCK_ROWS and _BATCH_CONTEXT list it (sku, warehouse, on hand, reserved,
    safety stock, warehouse active, lat, lon; the latter through JSON)."""
    sku, wh, on_hand, reserved, safety, active, lat, lon = values
    return WarehouseLevel(sku, wh, int(on_hand), int(reserved), int(safety), bool(active)), Point(lat, lon)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a one-statement batch read (see ``_BATCH_CONTEXT``)."""

    #: The active reservations of the committing orders at their warehouses, by line.
    active: list[ActiveReservation]
    #: Every stock row of the SKUs involved, and where its warehouse is.
    stock: list[LocatedLevel]


@dataclass(frozen=True, slots=True)
class ActiveReservation:
    """One active reservation row: its key and units."""

    order_id: str
    request_id: str
    line_no: int
    warehouse_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class StockWrite:
    """One stock row as a one-statement batch read it, and how the batch moves it."""

    level: WarehouseLevel
    d_on_hand: int
    d_reserved: int
    #: Where the row's warehouse was when read (the write checks it still is).
    location: Point


@dataclass(frozen=True, slots=True)
class CommitClose:
    """A reservation a commit request closes (its shipment movement is written from it)."""

    reservation: ActiveReservation
    closed_by: str


# Every stock row of the first `$1` SKUs (in code point order), with its warehouse: what
# a stock cache starts from (oms_inventory.stock_cache).
_STOCK_ROWS = """
SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, w.active, w.lat, w.lon
FROM stock s JOIN warehouses w ON w.id = s.warehouse_id
WHERE s.sku IN (SELECT DISTINCT sku FROM stock ORDER BY sku LIMIT $1)
"""


async def stock_rows(conn: Connection, skus: int) -> list[LocatedLevel]:
    """Every stock row of the first ``skus`` SKUs, and where its warehouse is."""
    return [_located(row) for row in await conn.fetch(_STOCK_ROWS, skus)]


async def batch_context(conn: Connection, skus: Sequence[str], commits: Sequence[tuple[str, str]]) -> BatchContext:
    """Read what a batch reserving ``skus`` and committing (order, warehouse) pairs needs, locking nothing."""
    row = await conn.fetchrow(_BATCH_CONTEXT, list(skus), [o for o, _ in commits], [w for _, w in commits])
    assert row is not None
    return BatchContext(
        active=[ActiveReservation(o, r, int(n), w, s, int(q)) for o, r, n, w, s, q in row["active"]],
        stock=[_located(values) for values in row["stock"]],
    )


async def write_batch(
    conn: Connection,
    stock: Sequence[StockWrite],
    recorded: Sequence[RecordedDecision],
    claims: Sequence[tuple[str, str, str]],
    closes: Sequence[CommitClose],
    outbox: OutboxWrite,
) -> int | None:
    """Write a one-statement batch (see ``_BATCH_WRITE``); returns the outbox row's id."""
    row = await conn.fetchrow(
        _BATCH_WRITE,
        [w.level.sku for w in stock],
        [w.level.warehouse_id for w in stock],
        [w.level.on_hand for w in stock],
        [w.level.reserved for w in stock],
        [w.level.safety_stock for w in stock],
        [w.level.active for w in stock],
        [w.d_on_hand for w in stock],
        [w.d_reserved for w in stock],
        *_decision_columns(recorded),
        [o for o, _, _ in claims],
        [r for _, r, _ in claims],
        ["commit"] * len(claims),
        [w for _, _, w in claims],
        [c.reservation.order_id for c in closes],
        [c.reservation.request_id for c in closes],
        [c.reservation.line_no for c in closes],
        [c.reservation.warehouse_id for c in closes],
        [c.closed_by for c in closes],
        *outbox.params,
        [w.location.lat for w in stock],
        [w.location.lon for w in stock],
        [c.reservation.sku for c in closes],
        [c.reservation.quantity for c in closes],
    )
    return outbox_id(row)


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
), locked AS MATERIALIZED (
    SELECT st.sku, p.quantity FROM stock st JOIN per_row p ON p.sku = st.sku
    WHERE st.warehouse_id = $3
    ORDER BY st.sku COLLATE "C"
    FOR UPDATE OF st
), changed AS (
    UPDATE stock st SET on_hand = st.on_hand - l.quantity, reserved = st.reserved - l.quantity
    FROM locked l
    WHERE st.sku = l.sku AND st.warehouse_id = $3
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
def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


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
