"""Delayed messages: the ``schedule`` table's SQL and the worker that sends what is due.

A handler plans messages with a delay (:class:`Planned`). Those with no delay are
emitted at once through the handler's context (the outbox, same transaction);
the others become ``schedule`` rows. Each simulator process runs a worker that,
every few milliseconds, moves its due rows into the outbox and marks them sent,
in one transaction, so a row is sent exactly once even if the process dies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from oms_shared.contracts import Contract
from oms_shared.db import Connection
from oms_shared.envelope import Envelope
from oms_shared.outbox import OutgoingMessage, unit_of_work
from oms_shared.runtime import MessageContext
from oms_shared.service import Resources, Worker, periodic
from oms_shared.topics import Topic

__all__ = [
    "Planned",
    "cancel_pending",
    "cancel_unsent",
    "emit_or_schedule",
    "move_due",
    "pending_steps",
    "purge_sent",
    "schedule_worker",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    """A message to send ``after_s`` seconds from now; ``step`` names it within its tag."""

    step: str
    after_s: float
    topic: Topic
    key: str
    payload: Contract


_INSERT = """
INSERT INTO schedule (simulator, tag, step, due_at, topic, key, ce_type, payload,
                      correlation_id, causation_id, traceparent)
SELECT $1, $2, u.step, u.due_at, u.topic, u.key, u.ce_type, u.payload::jsonb, $3, $4, $5
FROM unnest($6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[])
     AS u(step, due_at, topic, key, ce_type, payload)
ON CONFLICT (simulator, tag, step) DO NOTHING
"""

# Lock the guard row first: if the worker is sending it right now, wait for its commit and
# then see it sent (so a pickup that happened is never followed by a half-cancelled plan).
_CANCEL = """
WITH guard AS (
    SELECT id FROM schedule
    WHERE simulator = $1 AND tag = $2 AND step = $3 AND NOT sent
    FOR UPDATE
)
DELETE FROM schedule
WHERE simulator = $1 AND tag = $2 AND step = ANY($4::text[]) AND NOT sent
  AND EXISTS (SELECT 1 FROM guard)
RETURNING step
"""

_TAKE_DUE = """
WITH due AS (
    SELECT id FROM schedule
    WHERE simulator = $1 AND NOT sent AND due_at <= now()
    ORDER BY due_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE schedule s SET sent = true
FROM due WHERE s.id = due.id
RETURNING s.id, s.due_at, s.topic, s.key, s.ce_type, s.payload::text AS payload,
          s.correlation_id, s.causation_id, s.traceparent
"""

_PURGE = "DELETE FROM schedule WHERE sent AND due_at < now() - make_interval(secs => $1)"


async def emit_or_schedule(
    ctx: MessageContext, simulator: str, tag: str, plan: Sequence[Planned], now: datetime
) -> None:
    """Emit the undelayed messages of ``plan`` now; write the others to the schedule.

    A stateless simulator (no database) has no schedule: every delay must be 0 (its settings check).
    """
    later: list[Planned] = []
    for item in plan:
        if item.after_s <= 0:
            ctx.emit(item.topic, item.payload, key=item.key)
        else:
            later.append(item)
    if not later:
        return
    if ctx.uow.stateless:
        raise RuntimeError(f"a stateless simulator cannot delay {[p.step for p in later]}: set its delays to 0")
    envelope = ctx.envelope
    await ctx.conn.execute(
        _INSERT,
        simulator,
        tag,
        envelope.correlation_id,
        envelope.id,
        envelope.traceparent,
        [p.step for p in later],
        [now + timedelta(seconds=p.after_s) for p in later],
        [p.topic.name for p in later],
        [p.key for p in later],
        [p.payload.ce_type for p in later],
        [p.payload.model_dump_json() for p in later],
    )


async def cancel_unsent(
    ctx: MessageContext, simulator: str, tag: str, *, steps: Sequence[str], guard: str
) -> list[str]:
    """:func:`cancel_pending` in the handler's transaction; a stateless simulator sent everything at once: nothing."""
    if ctx.uow.stateless:
        return []
    return await cancel_pending(ctx.conn, simulator, tag, steps=steps, guard=guard)


async def cancel_pending(conn: Connection, simulator: str, tag: str, *, steps: Sequence[str], guard: str) -> list[str]:
    """Delete the unsent ``steps`` of ``tag``, only while its ``guard`` step is unsent; return those deleted."""
    rows = await conn.fetch(_CANCEL, simulator, tag, guard, list(steps))
    return [row["step"] for row in rows]


async def pending_steps(conn: Connection, simulator: str, tag: str) -> list[str]:
    """The unsent steps of ``tag``, in due order (for logs and tests)."""
    rows = await conn.fetch(
        "SELECT step FROM schedule WHERE simulator = $1 AND tag = $2 AND NOT sent ORDER BY due_at, id",
        simulator,
        tag,
    )
    return [row["step"] for row in rows]


async def move_due(pool: asyncpg.Pool[Any], simulator: str, source: str, limit: int) -> int:
    """Move up to ``limit`` due rows of ``simulator`` into the outbox, in due order; return how many."""
    async with unit_of_work(pool, source) as uow:
        rows = await uow.conn.fetch(_TAKE_DUE, simulator, limit)
        # RETURNING has no order of its own: the outbox id order is the publishing order.
        for row in sorted(rows, key=lambda r: (r["due_at"], r["id"])):
            envelope = Envelope(
                type=row["ce_type"],
                source=source,
                data=row["payload"].encode(),
                correlation_id=row["correlation_id"],
                causation_id=row["causation_id"],
                traceparent=row["traceparent"],
                key=row["key"].encode(),
            )
            uow.pending.append(OutgoingMessage(row["topic"], envelope))
    return len(rows)


async def purge_sent(conn: Connection, older_than_s: float) -> int:
    """Delete rows sent more than ``older_than_s`` seconds ago; return how many."""
    status = await conn.execute(_PURGE, float(older_than_s))
    return int(status.split()[-1])


_PURGE_EVERY_S = 10.0


def schedule_worker(simulator: str, source: str, *, interval_s: float, batch_size: int, retention_s: float) -> Worker:
    """A background worker sending ``simulator``'s due rows every ``interval_s`` seconds."""
    next_purge = time.monotonic() + _PURGE_EVERY_S

    async def step(res: Resources) -> float:
        nonlocal next_purge
        moved = await move_due(res.pool, simulator, source, batch_size)
        if time.monotonic() >= next_purge:
            async with res.pool.acquire() as conn:
                purged = await purge_sent(conn, retention_s)
            next_purge = time.monotonic() + _PURGE_EVERY_S
            log.debug("schedule_purged", simulator=simulator, rows=purged)
        return 0.0 if moved >= batch_size else interval_s  # a full batch means more may be due already

    return periodic(f"{simulator}_schedule", step)
