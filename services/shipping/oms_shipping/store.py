"""All SQL of the shipping service: functions on the handler's connection, returning domain objects.

One statement per state change (data-modifying CTEs); the carrier events of a batch
are read and written set-based (see :mod:`oms_shipping.book`). Loads lock the shipment
rows (``FOR UPDATE``): decisions are taken on a state no concurrent handler can change
before the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from oms_shared.db import Connection
from oms_shipping.domain import (
    AnswerOutcome,
    Attempt,
    CarrierAnswer,
    Package,
    PackedItem,
    Shipment,
    ShipmentRequest,
    TrackedShipment,
    TrackingScan,
)
from oms_shipping.labels import LABEL_FORMAT
from oms_shipping.rates import GeoPoint

__all__ = [
    "SavedAnswer",
    "SavedScan",
    "insert_shipments",
    "load_shipment",
    "load_shipments",
    "record_scans",
    "save_answers",
    "save_cancel",
    "save_scans",
    "tracking_number_owners",
    "tracking_view",
]

_COLUMNS = """
       s.shipment_id, s.order_id, s.status, s.request_id, s.warehouse_id, s.method,
       s.origin_lat, s.origin_lon, s.dest_lat, s.dest_lon, s.attempt, s.carrier, s.service_level,
       s.cost_minor, s.currency, s.promised_ship_date, s.tracking_number, s.failure_reason, s.reported,
       ARRAY(SELECT a.carrier FROM booking_attempts a WHERE a.shipment_id = s.shipment_id ORDER BY a.attempt)
           AS carriers_tried,
       (SELECT jsonb_agg(jsonb_build_object('id', p.package_id, 'g', p.weight_grams, 'items', p.items) ORDER BY p.seq)
          FROM shipment_packages p WHERE p.shipment_id = s.shipment_id) AS packages"""

# The f-strings below only join constant fragments of this module: no input reaches the SQL text.
_LOAD = f"SELECT {_COLUMNS} FROM shipments s WHERE s.shipment_id = $1 FOR UPDATE OF s"  # noqa: S608

_LOAD_MANY = f"""
SELECT {_COLUMNS} FROM shipments s WHERE s.shipment_id = ANY($1::text[]) ORDER BY s.shipment_id FOR UPDATE OF s
"""  # noqa: S608

_TRACKING_NUMBER_OWNERS = "SELECT tracking_number, shipment_id FROM shipments WHERE tracking_number = ANY($1::text[])"

_RECORD_SCANS = """
INSERT INTO tracking_events (shipment_id, order_id, carrier, tracking_number, scan, at, detail)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[])
ON CONFLICT (shipment_id, scan, at) DO NOTHING
"""

_SAVE_SCANS = """
UPDATE shipments
   SET status = u.status,
       reported = ARRAY(SELECT jsonb_array_elements_text(u.reported::jsonb)),
       dispatched_at = coalesce(u.dispatched_at, shipments.dispatched_at),
       delivered_at = coalesce(shipments.delivered_at, u.delivered_at),
       updated_at = now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
       AS u(shipment_id, status, reported, dispatched_at, delivered_at)
 WHERE shipments.shipment_id = u.shipment_id
"""

# New shipments of a batch with their parcels and first attempts; an id already known
# (a repeat, a tombstone) is left out of `s` by ON CONFLICT and nothing of it is inserted.
_INSERT_SHIPMENTS = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[],
                         $13::int[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[],
                         $19::date[], $20::text[], $21::text[], $22::timestamptz[])
        AS u(shipment_id, order_id, status, request_id, warehouse_id, method,
             origin_lat, origin_lon, dest_lat, dest_lon, distance_km, zone,
             attempt, booking_id, carrier, service_level, cost_minor, currency,
             promised_ship_date, failure_reason, packages, requested_at)
), s AS (
    INSERT INTO shipments (shipment_id, order_id, status, request_id, warehouse_id, method,
                           origin_lat, origin_lon, dest_lat, dest_lon, distance_km, zone,
                           attempt, booking_id, carrier, service_level, cost_minor, currency,
                           promised_ship_date, failure_reason)
    SELECT shipment_id, order_id, status, request_id, warehouse_id, method,
           origin_lat, origin_lon, dest_lat, dest_lon, distance_km, zone,
           attempt, booking_id, carrier, service_level, cost_minor, currency,
           promised_ship_date, failure_reason
      FROM u
    ON CONFLICT (shipment_id) DO NOTHING
    RETURNING shipment_id
), packages AS (
    INSERT INTO shipment_packages (shipment_id, package_id, seq, weight_grams, items)
    SELECT u.shipment_id, e.p ->> 'id', e.seq, (e.p ->> 'g')::integer, e.p -> 'items'
      FROM u JOIN s USING (shipment_id)
      CROSS JOIN LATERAL jsonb_array_elements(u.packages::jsonb) WITH ORDINALITY AS e(p, seq)
), attempt AS (
    INSERT INTO booking_attempts (booking_id, shipment_id, attempt, carrier, service_level, cost_minor,
                                  currency, promised_ship_date, requested_at)
    SELECT u.booking_id, u.shipment_id, u.attempt, u.carrier, u.service_level, u.cost_minor,
           u.currency, u.promised_ship_date, u.requested_at
      FROM u JOIN s USING (shipment_id)
     WHERE u.booking_id IS NOT NULL
)
SELECT count(*) FROM s
"""

# The answers of a batch (one per shipment): each answered attempt's result, the next
# attempt (retrying), the label (booked) and the shipment's new state.
_SAVE_ANSWERS = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::text[],
                         $13::text[], $14::bigint[], $15::text[], $16::date[], $17::text[])
        AS u(booking_id, result, reason, answered_number, at, shipment_id,
             status, failure_reason, tracking_number, next_booking_id, next_attempt, carrier,
             service_level, cost_minor, currency, promised_ship_date, label)
), answered AS (
    UPDATE booking_attempts a
       SET status = u.result, reason = u.reason, tracking_number = u.answered_number, answered_at = u.at
      FROM u WHERE a.booking_id = u.booking_id
), next_attempt AS (
    INSERT INTO booking_attempts (booking_id, shipment_id, attempt, carrier, service_level, cost_minor,
                                  currency, promised_ship_date, requested_at)
    SELECT u.next_booking_id, u.shipment_id, u.next_attempt, u.carrier, u.service_level, u.cost_minor,
           u.currency, u.promised_ship_date, u.at
      FROM u WHERE u.next_booking_id IS NOT NULL
), label AS (
    INSERT INTO labels (shipment_id, tracking_number, carrier, format, content)
    SELECT u.shipment_id, u.tracking_number, u.carrier, $18, u.label FROM u WHERE u.label IS NOT NULL
)
UPDATE shipments s
   SET status = u.status, failure_reason = u.failure_reason, tracking_number = u.tracking_number,
       booked_at = CASE WHEN u.status = 'booked' THEN u.at ELSE s.booked_at END,
       attempt = coalesce(u.next_attempt, s.attempt), booking_id = coalesce(u.next_booking_id, s.booking_id),
       carrier = u.carrier, service_level = u.service_level, cost_minor = u.cost_minor, currency = u.currency,
       promised_ship_date = u.promised_ship_date, updated_at = now()
  FROM u
 WHERE s.shipment_id = u.shipment_id
"""

_SAVE_CANCEL = """
WITH s AS (
    INSERT INTO shipments (shipment_id, order_id, status, cancelled_at) VALUES ($1, $2, 'cancelled', $3)
    ON CONFLICT (shipment_id) DO UPDATE
       SET status = 'cancelled', cancelled_at = excluded.cancelled_at, updated_at = now()
), attempt AS (
    UPDATE booking_attempts SET status = 'cancelled'
     WHERE booking_id = $4 AND status IN ('requested', 'accepted')
)
UPDATE labels SET voided_at = $3 WHERE shipment_id = $1 AND voided_at IS NULL
"""

_TRACKING_VIEW = """
SELECT s.shipment_id, s.warehouse_id, s.status, s.carrier, s.service_level, s.tracking_number,
       s.promised_ship_date, e.scan, e.at, e.detail
  FROM shipments s
  LEFT JOIN tracking_events e ON e.shipment_id = s.shipment_id AND e.tracking_number = s.tracking_number
 WHERE s.order_id = $1 AND s.request_id IS NOT NULL
 ORDER BY s.created_at, s.shipment_id, e.at, e.id
"""


async def insert_shipments(conn: Connection, opened: Sequence[tuple[Shipment, datetime]]) -> int:
    """Create new shipments (opened at the times given) with parcels and first attempts; how many went in."""
    if not opened:
        return 0
    rows: list[tuple[Any, ...]] = []
    for shipment, at in opened:
        request = shipment.request
        assert request is not None
        packages = [
            {
                "id": p.package_id,
                "g": p.weight_grams,
                "items": [{"line_no": i.line_no, "sku": i.sku, "quantity": i.quantity} for i in p.items],
            }
            for p in request.packages
        ]
        rows.append(
            (
                shipment.shipment_id,
                shipment.order_id,
                shipment.status,
                request.request_id,
                request.warehouse_id,
                request.method,
                request.origin.lat,
                request.origin.lon,
                request.destination.lat,
                request.destination.lon,
                request.distance_km,
                request.zone,
                *_attempt_columns(shipment.attempt),
                shipment.failure_reason,
                orjson.dumps(packages).decode(),
                at,
            )
        )
    created: int = await conn.fetchval(_INSERT_SHIPMENTS, *(list(column) for column in zip(*rows, strict=True)))
    return created


async def load_shipment(conn: Connection, shipment_id: str) -> Shipment | None:
    """The shipment, its parcels and the carriers tried, locked for this transaction; None if unknown."""
    row = await conn.fetchrow(_LOAD, shipment_id)
    return _shipment(row) if row else None


async def load_shipments(conn: Connection, shipment_ids: Sequence[str]) -> dict[str, Shipment]:
    """The known shipments among ``shipment_ids``, locked in id order (no deadlock between instances)."""
    return {row["shipment_id"]: _shipment(row) for row in await conn.fetch(_LOAD_MANY, list(shipment_ids))}


async def tracking_number_owners(conn: Connection, tracking_numbers: Sequence[str]) -> dict[str, str]:
    """The shipment each of these tracking numbers belongs to (numbers nobody holds are left out)."""
    rows = await conn.fetch(_TRACKING_NUMBER_OWNERS, list(tracking_numbers))
    return {row["tracking_number"]: row["shipment_id"] for row in rows}


@dataclass(frozen=True, slots=True)
class SavedScan:
    """A shipment's state after a batch's scans: when it was dispatched, when a scan said delivered."""

    shipment: Shipment
    dispatched_at: datetime | None
    delivered_at: datetime | None


async def record_scans(conn: Connection, scans: Sequence[tuple[str, str, str, str, str, datetime, str]]) -> None:
    """Store scans (shipment, order, carrier, tracking number, scan, at, detail), an identical one once."""
    if scans:
        await conn.execute(_RECORD_SCANS, *(list(column) for column in zip(*scans, strict=True)))


async def save_scans(conn: Connection, saved: Sequence[SavedScan]) -> None:
    """Store the shipments' statuses after scans (one statement); dispatch and delivery times once."""
    if saved:
        await conn.execute(
            _SAVE_SCANS,
            [s.shipment.shipment_id for s in saved],
            [s.shipment.status for s in saved],
            [orjson.dumps(sorted(s.shipment.reported)).decode() for s in saved],
            [s.dispatched_at for s in saved],
            [s.delivered_at for s in saved],
        )


@dataclass(frozen=True, slots=True)
class SavedAnswer:
    """A carrier's answer to save: what it did, to which attempt, and the label if it booked."""

    outcome: AnswerOutcome
    answered: Attempt
    answer: CarrierAnswer
    at: datetime
    label: str | None


async def save_answers(conn: Connection, answers: Sequence[SavedAnswer]) -> None:
    """Store the effect of carriers' answers (one per shipment): results, next attempts, labels."""
    if not answers:
        return
    columns: list[tuple[Any, ...]] = []
    for a in answers:
        shipment = a.outcome.shipment
        result = "accepted" if a.outcome.kind == "booked" else ("cancelled" if a.outcome.void else "rejected")
        new = shipment.attempt if a.outcome.kind == "retrying" else None
        current = shipment.attempt
        assert current is not None
        columns.append(
            (
                a.answered.booking_id,
                result,
                a.outcome.refusal or None,
                a.answer.tracking_number,
                a.at,
                shipment.shipment_id,
                shipment.status,
                shipment.failure_reason,
                shipment.tracking_number,
                new.booking_id if new else None,
                new.attempt if new else None,
                current.carrier,
                current.service_level,
                current.cost_minor,
                current.currency,
                current.promised_ship_date,
                a.label,
            )
        )
    await conn.execute(_SAVE_ANSWERS, *(list(column) for column in zip(*columns, strict=True)), LABEL_FORMAT)


async def save_cancel(conn: Connection, shipment: Shipment, at: datetime, void: Attempt | None) -> None:
    """Mark the shipment (or a tombstone for an unknown id) cancelled; void the booking and label."""
    await conn.execute(_SAVE_CANCEL, shipment.shipment_id, shipment.order_id, at, void.booking_id if void else None)


async def tracking_view(conn: Connection, order_id: str) -> list[TrackedShipment]:
    """The order's shipments with carrier, tracking number and their scans in time order."""
    rows = await conn.fetch(_TRACKING_VIEW, order_id)
    views: dict[str, TrackedShipment] = {}
    scans: dict[str, list[TrackingScan]] = {}
    for row in rows:
        sid = row["shipment_id"]
        if sid not in views:
            views[sid] = TrackedShipment(
                shipment_id=sid,
                warehouse_id=row["warehouse_id"],
                status=row["status"],
                carrier=row["carrier"],
                service_level=row["service_level"],
                tracking_number=row["tracking_number"],
                promised_ship_date=row["promised_ship_date"],
            )
            scans[sid] = []
        if row["scan"] is not None:
            scans[sid].append(TrackingScan(row["scan"], row["at"], row["detail"]))
    return [_with_scans(view, tuple(scans[sid])) for sid, view in views.items()]


def _with_scans(view: TrackedShipment, scans: tuple[TrackingScan, ...]) -> TrackedShipment:
    return TrackedShipment(
        view.shipment_id,
        view.warehouse_id,
        view.status,
        view.carrier,
        view.service_level,
        view.tracking_number,
        view.promised_ship_date,
        scans,
    )


def _attempt_columns(attempt: Attempt | None) -> tuple[Any, ...]:
    """$13..$19 of the insert: attempt, booking id, carrier, level, cost, currency, ship date."""
    if attempt is None:
        return (0, None, None, None, None, None, None)
    return (
        attempt.attempt,
        attempt.booking_id,
        attempt.carrier,
        attempt.service_level,
        attempt.cost_minor,
        attempt.currency,
        attempt.promised_ship_date,
    )


def _shipment(row: asyncpg.Record) -> Shipment:
    request = None
    if row["request_id"] is not None:
        request = ShipmentRequest(
            request_id=row["request_id"],
            warehouse_id=row["warehouse_id"],
            method=row["method"],
            origin=GeoPoint(row["origin_lat"], row["origin_lon"]),
            destination=GeoPoint(row["dest_lat"], row["dest_lon"]),
            packages=tuple(
                Package(p["id"], p["g"], tuple(PackedItem(i["line_no"], i["sku"], i["quantity"]) for i in p["items"]))
                for p in row["packages"] or ()
            ),
        )
    attempt = None
    if row["attempt"] and row["carrier"] is not None:
        attempt = Attempt(
            row["shipment_id"],
            row["attempt"],
            row["carrier"],
            row["service_level"],
            row["cost_minor"],
            row["currency"],
            row["promised_ship_date"],
        )
    return Shipment(
        shipment_id=row["shipment_id"],
        order_id=row["order_id"],
        status=row["status"],
        request=request,
        attempt=attempt,
        carriers_tried=tuple(row["carriers_tried"]),
        tracking_number=row["tracking_number"],
        failure_reason=row["failure_reason"],
        reported=frozenset(row["reported"]),
    )
