"""All SQL of the order service. Functions take a connection and return domain objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson

from oms_order.saga_state import Policy, Saga, Status, saga_from_json, saga_to_json
from oms_shared.db import Connection
from oms_shared.outbox import CONFLICT_SQLSTATE, OutboxWrite, outbox_ctes, outbox_id, outbox_result

__all__ = [
    "DEFAULT_POLICY",
    "Entry",
    "Loaded",
    "NewOrder",
    "Rejection",
    "TimelineEntry",
    "due_sagas",
    "load",
    "stuck_sagas",
    "text_array",
    "timeline",
    "write_batch",
]


@dataclass(frozen=True, slots=True)
class Entry:
    """A status to append to an order's timeline, numbered by the caller."""

    order_id: str
    seq: int
    status: Status
    previous_status: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused intake message, kept byte for byte with the reasons."""

    message_id: str
    kind: str
    order_id: str
    channel: str | None
    external_order_id: str | None
    reasons: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of an order's timeline."""

    seq: int
    status: str
    previous_status: str | None
    reasons: tuple[str, ...]
    details: dict[str, Any]
    at: datetime


#: A channel without a row in channel_policies: reject partial stock, split in at most 3.
DEFAULT_POLICY: tuple[Policy, int] = ("reject", 3)


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An accepted order's row."""

    order_id: str
    channel: str
    external_order_id: str
    fingerprint: str
    customer_id: str
    currency: str
    total: int
    amount_paid: int
    payload: dict[str, Any]
    message_id: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a batch needs before its handlers run, read in one statement."""

    #: order id -> version, for the sagas that exist (locked for the transaction).
    versions: dict[str, int]
    #: order id -> saga, for those not already held at their current version.
    sagas: dict[str, Saga]
    #: order id -> content fingerprint, for the orders that were accepted.
    fingerprints: dict[str, str]
    #: channel -> (partial-stock policy, maximum split), for the configured channels.
    policies: dict[str, tuple[Policy, int]]
    #: order id -> (seq, status) of its last timeline entry, for the orders asked about that have one.
    tails: dict[str, tuple[int, str]]


# With `lock`, the sagas are locked in id order (FOR UPDATE in a materialised CTE: not
# allowed in a UNION arm), so two instances' batches cannot deadlock; the lock makes
# transitions of one order one at a time across instances. Without it (a one-statement
# batch) the write checks the versions instead. A saga the caller holds at the version
# the row has ($4, $5) comes back without its document.
_LOAD = """
WITH found AS MATERIALIZED (
    SELECT order_id, version, data FROM sagas WHERE order_id = ANY($1::uuid[]) ORDER BY order_id {lock}
)
SELECT 's' AS kind, f.order_id::text AS id, f.version, CASE WHEN f.version = h.version THEN NULL ELSE f.data END
       AS data
FROM found f LEFT JOIN unnest($4::uuid[], $5::int[]) AS h(order_id, version) ON h.order_id = f.order_id
UNION ALL
SELECT 'o', order_id::text, NULL, fingerprint FROM orders WHERE order_id = ANY($2::uuid[])
UNION ALL
SELECT 'p', channel, NULL, json_build_array(partial_policy, max_split)::text
FROM channel_policies WHERE channel = ANY($3::text[])
UNION ALL
SELECT 't', t.o::text, h.seq, h.status
FROM unnest($6::uuid[]) AS t(o)
JOIN LATERAL (SELECT seq, status FROM status_history WHERE order_id = t.o ORDER BY seq DESC LIMIT 1) AS h ON true
"""
_LOAD_LOCKING = _LOAD.format(lock="FOR UPDATE")
_LOAD_READING = _LOAD.format(lock="")


async def load(
    conn: Connection,
    saga_ids: Sequence[str],
    order_ids: Sequence[str] = (),
    channels: Sequence[str] = (),
    held: Mapping[str, int] | None = None,
    *,
    tails: Sequence[str] = (),
    lock: bool = True,
) -> Loaded:
    """Read (with ``lock``: and lock) the sagas of ``saga_ids``, the fingerprints of the
    accepted orders among ``order_ids``, the policies of ``channels`` and the last timeline
    entry of the orders in ``tails`` (those that exist), in one round trip.

    ``held`` maps order ids to the version of the saga the caller already holds: a saga
    still at that version is not read (its version is in :attr:`Loaded.versions` only).
    """
    held = held or {}
    loaded = Loaded({}, {}, {}, {}, {})
    rows = await conn.fetch(
        _LOAD_LOCKING if lock else _LOAD_READING,
        list(saga_ids), list(order_ids), list(channels), list(held), list(held.values()), list(tails),
    )  # fmt: skip
    for row in rows:
        kind, key, data = row["kind"], row["id"], row["data"]
        if kind == "s":
            loaded.versions[key] = row["version"]
            if data is not None:
                loaded.sagas[key] = saga_from_json(data)
        elif kind == "o":
            loaded.fingerprints[key] = data
        elif kind == "t":
            loaded.tails[key] = (row["version"], data)
        else:
            policy, max_split = orjson.loads(data)
            loaded.policies[key] = (cast(Policy, policy), max_split)  # the table's CHECK allows no other
    return loaded


def _columns(sagas: Sequence[Saga]) -> tuple[list[Any], ...]:
    """The sagas as column arrays for ``unnest``: id, phase, status, document, deadline, stuck reason."""
    return (
        [s.order_id for s in sagas],
        [s.phase for s in sagas],
        [s.status for s in sagas],
        [saga_to_json(s) for s in sagas],
        [s.next_deadline() for s in sagas],
        [s.stuck_reason for s in sagas],
    )


# A batch's whole write in one statement (one round trip; outside a transaction block
# it is its own transaction): new orders, new and changed sagas, the timeline, refused
# intake messages, the outbox and the inbox claim. It checks what the batch assumed when
# it read without locks, and aborts whole if that no longer holds: every order inserted
# (another instance may have accepted one since: 40001, retried), every new saga
# inserted and every changed saga still at the version read (OMS02: replayed in a
# transaction that locks), and every message of the batch new (the outbox's check).
# The timeline's numbers come from the caller (the saga keeps its order's last one), so
# the status events are built before the write: a number taken twice is a primary key
# violation. Reasons come as text[] literals (asyncpg would read a list of lists as a
# 2-D array; unpacking JSON in the statement cost 18% of it at 300 orders/s).
_WRITE = f"""
WITH new_orders AS (
    INSERT INTO orders (order_id, channel, external_order_id, fingerprint, customer_id, currency,
                        total, amount_paid, payload, message_id)
    SELECT o, c, e, f, cu, cur, t, a, p::jsonb, m
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                $8::bigint[], $9::text[], $10::text[]) AS u(o, c, e, f, cu, cur, t, a, p, m)
    ON CONFLICT DO NOTHING
    RETURNING 1
), new_sagas AS (
    INSERT INTO sagas (order_id, phase, status, data, deadline, stuck_reason)
    SELECT o, p, s, d, dl, r
    FROM unnest($11::uuid[], $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::text[])
         AS u(o, p, s, d, dl, r)
    ON CONFLICT DO NOTHING
    RETURNING 1
), changed_sagas AS (
    UPDATE sagas SET phase = u.p, status = u.s, data = u.d, deadline = u.dl, stuck_reason = u.r,
                     version = version + 1, updated_at = now()
    FROM unnest($17::uuid[], $18::text[], $19::text[], $20::text[], $21::timestamptz[], $22::text[], $23::int[])
         AS u(o, p, s, d, dl, r, v)
    WHERE sagas.order_id = u.o AND (u.v IS NULL OR sagas.version = u.v)
    RETURNING 1
), appended AS (
    INSERT INTO status_history (order_id, seq, status, previous_status, reasons, details, at)
    SELECT o, q, s, ps, r::text[], d::jsonb, at
    FROM unnest($24::uuid[], $25::int[], $26::text[], $27::text[], $28::text[], $29::text[], $30::timestamptz[])
         AS u(o, q, s, ps, r, d, at)
), rejected AS (
    INSERT INTO intake_rejections (message_id, kind, order_id, channel, external_order_id, reasons, raw)
    SELECT m, k, o, c, e, r::text[], raw
    FROM unnest($31::text[], $32::text[], $33::uuid[], $34::text[], $35::text[], $36::text[], $37::bytea[])
         AS u(m, k, o, c, e, r, raw)
), {outbox_ctes(38)}
SELECT CASE WHEN oms_check((SELECT count(*) FROM new_orders) = cardinality($1::uuid[]), '{{order_conflict}}',
                           'an order of this batch was accepted before or concurrently')
            THEN oms_check((SELECT count(*) FROM new_sagas) + (SELECT count(*) FROM changed_sagas)
                           = cardinality($11::uuid[]) + cardinality($17::uuid[]), '{CONFLICT_SQLSTATE}',
                           'a saga of this batch was written concurrently') END AS sagas_current,
       {outbox_result(38)}
"""  # noqa: S608  (module constants and placeholders only)
# An order the batch read as not accepted and finds accepted now was accepted by another
# instance meanwhile: retried in place (40001), the batch reads it. One it did not read
# (taken as new: see SagaBook._assume_new) may have been accepted long before: the batch
# is replayed in a transaction that reads every order (OMS02).
_WRITE_READ = _WRITE.replace("{order_conflict}", "40001")
_WRITE_ASSUMING = _WRITE.replace("{order_conflict}", CONFLICT_SQLSTATE)


async def write_batch(
    conn: Connection,
    orders: Sequence[NewOrder],
    new_sagas: Sequence[Saga],
    changed_sagas: Sequence[tuple[Saga, int | None]],
    entries: Sequence[Entry],
    rejections: Sequence[Rejection],
    outbox: OutboxWrite,
    *,
    assumed_new: bool = False,
) -> int | None:
    """Insert new orders and sagas, save changed sagas (each with the version it was read
    at, None: locked, any), append timeline entries, keep refused messages and write the
    outbox (and inbox claim), in one statement that aborts whole if the batch's reads no
    longer hold (see ``_WRITE``); ``assumed_new``: some of ``orders`` were not read.
    Returns the outbox row's id (None without messages)."""
    sagas = [saga for saga, _ in changed_sagas]
    row = await conn.fetchrow(
        _WRITE_ASSUMING if assumed_new else _WRITE_READ,
        [o.order_id for o in orders],
        [o.channel for o in orders],
        [o.external_order_id for o in orders],
        [o.fingerprint for o in orders],
        [o.customer_id for o in orders],
        [o.currency for o in orders],
        [o.total for o in orders],
        [o.amount_paid for o in orders],
        [orjson.dumps(o.payload).decode() for o in orders],
        [o.message_id for o in orders],
        *_columns(new_sagas),
        *_columns(sagas),
        [version for _, version in changed_sagas],
        [e.order_id for e in entries],
        [e.seq for e in entries],
        [e.status.status for e in entries],
        [e.previous_status for e in entries],
        [text_array(e.status.reasons) for e in entries],
        [orjson.dumps(e.status.details).decode() for e in entries],
        [e.at for e in entries],
        [r.message_id for r in rejections],
        [r.kind for r in rejections],
        [r.order_id for r in rejections],
        [r.channel for r in rejections],
        [r.external_order_id for r in rejections],
        [text_array(r.reasons) for r in rejections],
        [r.raw for r in rejections],
        *outbox.params,
    )
    return outbox_id(row)


def text_array(values: Sequence[str]) -> str:
    """``values`` as a PostgreSQL text[] literal (every element quoted, so any text survives)."""
    if not values:
        return "{}"
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


async def due_sagas(conn: Connection, now: datetime, limit: int) -> list[Saga]:
    """Sagas whose deadline has passed, locked; other pollers skip them."""
    rows = await conn.fetch(
        "SELECT data FROM sagas WHERE deadline <= $1 ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit
    )
    return [saga_from_json(row["data"]) for row in rows]


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
