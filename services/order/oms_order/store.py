"""All SQL of the order service. Functions take a connection and return domain objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from oms_order.saga_state import Saga, Status
from oms_shared.db import Connection

__all__ = [
    "Appended",
    "TimelineEntry",
    "append_statuses",
    "due_sagas",
    "find_order_id",
    "insert_order",
    "insert_saga",
    "load_policy",
    "load_saga",
    "record_rejection",
    "save_saga",
    "stuck_sagas",
    "timeline",
]


@dataclass(frozen=True, slots=True)
class Appended:
    """A status written to the timeline, with its per-order sequence number."""

    seq: int
    status: Status
    previous_status: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of an order's timeline."""

    seq: int
    status: str
    previous_status: str | None
    reasons: tuple[str, ...]
    details: dict[str, Any]
    at: datetime


async def load_policy(conn: Connection, channel: str) -> tuple[str, int]:
    """The channel's partial-stock policy and maximum split; 'reject' and 3 when not configured."""
    row = await conn.fetchrow("SELECT partial_policy, max_split FROM channel_policies WHERE channel = $1", channel)
    return (row["partial_policy"], row["max_split"]) if row else ("reject", 3)


async def insert_order(
    conn: Connection,
    *,
    order_id: str,
    channel: str,
    external_order_id: str,
    fingerprint: str,
    customer_id: str,
    currency: str,
    total: int,
    amount_paid: int,
    payload: dict[str, Any],
    message_id: str,
) -> str | None:
    """Insert a new order; if (channel, external id) exists, return the existing fingerprint instead."""
    inserted = await conn.fetchval(
        """
        INSERT INTO orders (order_id, channel, external_order_id, fingerprint, customer_id, currency,
                            total, amount_paid, payload, message_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT DO NOTHING  -- order_id derives from (channel, external_order_id): either index may report a race
        RETURNING order_id
        """,
        order_id, channel, external_order_id, fingerprint, customer_id, currency, total, amount_paid, payload,
        message_id,
    )  # fmt: skip
    if inserted is not None:
        return None
    existing: str = await conn.fetchval(
        "SELECT fingerprint FROM orders WHERE channel = $1 AND external_order_id = $2", channel, external_order_id
    )
    return existing


async def find_order_id(conn: Connection, channel: str, external_order_id: str) -> str | None:
    """The order id of a channel's order, if the OMS accepted it."""
    value = await conn.fetchval(
        "SELECT order_id FROM orders WHERE channel = $1 AND external_order_id = $2", channel, external_order_id
    )
    return str(value) if value is not None else None


def _row(saga: Saga) -> tuple[Any, ...]:
    return (saga.order_id, saga.phase, saga.status, saga.model_dump(mode="json"), saga.next_deadline(),
            saga.stuck_reason)  # fmt: skip


async def insert_saga(conn: Connection, saga: Saga) -> None:
    """Persist a new saga."""
    await conn.execute(
        "INSERT INTO sagas (order_id, phase, status, data, deadline, stuck_reason) VALUES ($1, $2, $3, $4, $5, $6)",
        *_row(saga),
    )


async def load_saga(conn: Connection, order_id: str) -> Saga | None:
    """The saga of an order, locked for this transaction (one transition at a time per order)."""
    data = await conn.fetchval("SELECT data FROM sagas WHERE order_id = $1 FOR UPDATE", order_id)
    return Saga.model_validate(data) if data is not None else None


async def save_saga(conn: Connection, saga: Saga) -> None:
    """Write the saga's new state."""
    await conn.execute(
        """
        UPDATE sagas SET phase = $2, status = $3, data = $4, deadline = $5, stuck_reason = $6,
                         version = version + 1, updated_at = now()
        WHERE order_id = $1
        """,
        *_row(saga),
    )


async def due_sagas(conn: Connection, now: datetime, limit: int) -> list[Saga]:
    """Sagas whose deadline has passed, locked; other pollers skip them."""
    rows = await conn.fetch(
        "SELECT data FROM sagas WHERE deadline <= $1 ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit
    )
    return [Saga.model_validate(row["data"]) for row in rows]


async def append_statuses(conn: Connection, order_id: str, statuses: list[Status], at: datetime) -> list[Appended]:
    """Append statuses to the order's timeline in one statement; return them with their seq numbers."""
    if not statuses:
        return []
    rows = await conn.fetch(
        """
        WITH base AS (
            SELECT coalesce(max(seq), 0) AS seq FROM status_history WHERE order_id = $1
        ), last AS (
            SELECT status FROM status_history WHERE order_id = $1 ORDER BY seq DESC LIMIT 1
        ), new AS (
            SELECT base.seq + u.n AS seq, u.s, u.r, u.d
            FROM base, unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(s, r, d, n)
        )
        INSERT INTO status_history (order_id, seq, status, previous_status, reasons, details, at)
        SELECT $1, seq, s, coalesce(lag(s) OVER (ORDER BY seq), (SELECT status FROM last)),
               ARRAY(SELECT jsonb_array_elements_text(r::jsonb)), d::jsonb, $5
        FROM new
        RETURNING seq, previous_status
        """,
        order_id,
        [s.status for s in statuses],
        # JSON text, not lists: asyncpg would read a list of lists as a 2-D array.
        [orjson.dumps(list(s.reasons)).decode() for s in statuses],
        [orjson.dumps(s.details).decode() for s in statuses],
        at,
    )
    by_seq = sorted((row["seq"], row["previous_status"]) for row in rows)
    return [Appended(seq, status, previous) for (seq, previous), status in zip(by_seq, statuses, strict=True)]


async def record_rejection(
    conn: Connection,
    *,
    message_id: str,
    kind: str,
    order_id: str | None,
    channel: str | None,
    external_order_id: str | None,
    reasons: tuple[str, ...],
    raw: bytes,
) -> None:
    """Keep a refused intake message, byte for byte, with the reasons."""
    await conn.execute(
        """
        INSERT INTO intake_rejections (message_id, kind, order_id, channel, external_order_id, reasons, raw)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        message_id, kind, order_id, channel, external_order_id, list(reasons), raw,
    )  # fmt: skip


async def timeline(conn: Connection, order_id: str) -> list[TimelineEntry]:
    """An order's full timeline, oldest first."""
    rows = await conn.fetch(
        "SELECT seq, status, previous_status, reasons, details, at FROM status_history WHERE order_id = $1 "
        "ORDER BY seq",
        order_id,
    )
    return [
        TimelineEntry(r["seq"], r["status"], r["previous_status"], tuple(r["reasons"]), r["details"], r["at"])
        for r in rows
    ]


async def stuck_sagas(conn: Connection) -> list[tuple[str, str, str, datetime]]:
    """Parked sagas for operators: (order id, phase, reason, since)."""
    rows = await conn.fetch(
        "SELECT order_id, phase, stuck_reason, updated_at FROM sagas WHERE stuck_reason IS NOT NULL ORDER BY updated_at"
    )
    return [(str(r["order_id"]), r["phase"], r["stuck_reason"], r["updated_at"]) for r in rows]
