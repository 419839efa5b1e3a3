"""The transactional outbox: write messages with the business change, publish them after.

A handler never talks to Kafka. It calls :meth:`UnitOfWork.emit`; the rows are
inserted in the handler's own transaction (one statement per transaction, however
many messages) and a NOTIFY wakes the :class:`~oms_shared.relay.OutboxRelay`.

The fast lane: when the unit of work has a :class:`Publisher` that is accepting (this
process's relay, while it leads), the write skips the NOTIFY and, once the transaction
has committed, hands the rows (with the ids the insert gave them) straight to it. The
relay publishes them from memory, without waking on a notification and reading them
back: two database wake-ups fewer per hop. The rows stay in the outbox until published,
so a crash between the commit and the hand-over only delays them to the relay's next
read (its poll, or a new leader's first round).

One row per unit of work: a unit of work's messages go into ONE outbox row, as four
arrays in message order (topics, keys, headers, payloads), not a row each. A queue row
costs PostgreSQL a heap tuple, an index entry, a delete and a vacuum however small it
is: measured with 45 messages a unit of work (the order consumer's at 300 orders/s),
one row took ~30% less of PostgreSQL's CPU than 45 and a third of the WAL
(bench/README.md, session 22). The relay publishes a row's messages in array order, and
rows in id order, so the order of every key is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import asyncpg
import orjson
import structlog

from oms_shared.contracts import Contract
from oms_shared.db import Connection
from oms_shared.envelope import Envelope, derived_message_id, new_message_id
from oms_shared.inbox import claim_sql
from oms_shared.topics import Topic

__all__ = [
    "CONFLICT_SQLSTATE",
    "NOTIFY_CHANNEL",
    "REPEAT_SQLSTATE",
    "BatchPart",
    "OutboxWrite",
    "OutgoingMessage",
    "Publisher",
    "UnitOfWork",
    "Writer",
    "WrittenRow",
    "outbox_ctes",
    "outbox_id",
    "outbox_result",
    "unit_of_work",
    "write_outbox",
]

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "oms_outbox"

#: SQLSTATE of the inbox check: a message of the batch was handled before (see oms_check).
REPEAT_SQLSTATE = "OMS01"
#: SQLSTATE of a writer's check that a row it read was not written since (see oms_check).
CONFLICT_SQLSTATE = "OMS02"


def _placeholders(first: int) -> list[str]:
    """The placeholders of :attr:`OutboxWrite.params` from ``$first`` on: topics, keys,
    headers, payloads, notify channel ('' for none), consumer, message ids."""
    return [f"${first + i}" for i in range(7)]


def outbox_ctes(first: int) -> str:
    """The CTEs ``claimed`` (the inbox claim) and ``inserted`` (the outbox row, none without
    messages) of a unit of work, reading :attr:`OutboxWrite.params` from placeholder ``$first`` on."""
    t, k, h, p, _, consumer, ids = _placeholders(first)
    return f"""claimed AS ({claim_sql(consumer, ids)}
    RETURNING 1
), inserted AS (
    INSERT INTO outbox (topics, keys, headers, payloads)
    SELECT {t}::text[], {k}::bytea[], {h}::text[], {p}::bytea[] WHERE cardinality({t}::text[]) > 0
    RETURNING id
)"""


def outbox_result(first: int) -> str:
    """Select-list items for the statement ending in :func:`outbox_ctes`: abort it if a message
    of the claim was handled before (SQLSTATE :data:`REPEAT_SQLSTATE`), wake the relay (unless
    the channel is ''), and return the new row's id (``outbox_id``, null without messages)."""
    t, _, _, _, channel, _, ids = _placeholders(first)
    return f"""oms_check((SELECT count(*) FROM claimed) = cardinality({ids}::text[]), '{REPEAT_SQLSTATE}',
                 'a message of this batch was handled before') AS claimed_all,
       CASE WHEN cardinality({t}::text[]) > 0 AND {channel} <> '' THEN pg_notify({channel}, '') END AS notified,
       (SELECT id FROM inserted) AS outbox_id"""  # noqa: S608


def outbox_id(row: Any) -> int | None:
    """The ``outbox_id`` of a statement's result row selected with :func:`outbox_result`."""
    return row["outbox_id"] if row is not None else None


# A unit of work's outbox rows and inbox claim, in one round trip. An id claimed before
# aborts the statement (the caller's transaction rolls back; see the runtime).
_INSERT = f"""
WITH {outbox_ctes(1)}
SELECT {outbox_result(1)}
"""


@dataclass(frozen=True, slots=True)
class OutboxWrite:
    """A unit of work's outbox rows and inbox claim, for a :class:`Writer` that puts them in
    its own statement: ``WITH <its CTEs>, {outbox_ctes(n)} SELECT ..., {outbox_result(n)}``
    with :attr:`params` passed from placeholder ``$n`` on."""

    params: tuple[Any, ...]
    #: How many messages the outbox rows hold, and how many message ids the claim.
    messages: int
    claims: int

    @property
    def empty(self) -> bool:
        """Nothing to write: no message and no claim."""
        return not (self.messages or self.claims)


class Writer(Protocol):
    """A part that writes everything its unit of work gathered, outbox and claim included,
    in ONE statement (:meth:`UnitOfWork.write_with`)."""

    async def write(self, outbox: OutboxWrite) -> int | None:
        """Write the part's state and ``outbox`` in one statement; return its ``outbox_id``."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message bound for ``topic``, waiting in the outbox."""

    topic: str
    envelope: Envelope


class WrittenRow(NamedTuple):
    """The outbox row a unit of work wrote: its id, the messages and their headers as text."""

    id: int
    messages: list[OutgoingMessage]
    headers: list[list[tuple[str, str]]]


class Publisher(Protocol):
    """Publishes a unit of work's outbox rows as soon as it commits (the fast lane)."""

    @property
    def accepting(self) -> bool:
        """Whether rows handed over now will be published (else the write must NOTIFY)."""

    def hand_over(self, row: WrittenRow) -> None:
        """Publish this committed outbox row's messages, in their order."""


class BatchPart(Protocol):
    """State a service keeps for one unit of work (e.g. the sagas a batch touched).

    Handlers share it through :meth:`UnitOfWork.part`; its :meth:`flush` writes what
    it gathered, in as few statements as it can, before the outbox is written.
    """

    async def flush(self) -> None:
        """Write the gathered state inside the unit of work's transaction (it may emit)."""


P = TypeVar("P", bound=BatchPart)


class UnitOfWork:
    """One database transaction plus the messages it will emit when it commits.

    A consumer batch is one unit of work, so a service that gathers per-batch state
    in a :class:`BatchPart` turns one statement per message into one per batch.

    With ``one_statement`` the unit of work has no transaction block: its connection
    is for reads only (they see committed data and lock nothing), and a :class:`Writer`
    registered with :meth:`write_with` writes everything, outbox and inbox claim
    included, in one statement that checks its own preconditions (see the runtime).

    With no connection (``conn=None``) it is a stateless consumer's batch: the runtime
    produces :attr:`pending` itself after the handlers, and each message's id is derived
    from its cause (:func:`~oms_shared.envelope.derived_message_id`).
    """

    def __init__(
        self,
        conn: Connection | None,
        source: str,
        *,
        one_statement: bool = False,
        publisher: Publisher | None = None,
    ) -> None:
        self._conn = conn
        self.source = source
        self.one_statement = one_statement
        self.pending: list[OutgoingMessage] = []
        self._publisher = publisher
        #: The written row for the publisher, handed over at commit.
        self._written: WrittenRow | None = None
        self._parts: dict[Callable[[UnitOfWork], Any], BatchPart] = {}
        self._on_commit: list[Callable[[], None]] = []
        self._writer: Writer | None = None
        #: Without a database: how many messages each cause has emitted (for their ids).
        self._emitted: dict[str, int] = {}

    @property
    def stateless(self) -> bool:
        """Whether this unit of work has no database (the runtime's stateless mode): its
        messages are produced straight to Kafka, with ids derived from their causes."""
        return self._conn is None

    @property
    def conn(self) -> Connection:
        """The connection of the unit of work (none in the stateless mode: asking is a bug)."""
        if self._conn is None:
            raise RuntimeError("this unit of work has no database (a stateless consumer's)")
        return self._conn

    def part(self, kind: Callable[[UnitOfWork], P]) -> P:
        """The unit of work's ``kind`` part, made by ``kind(self)`` on first use."""
        found = self._parts.get(kind)
        if found is None:
            found = self._parts[kind] = kind(self)
        return found  # type: ignore[return-value]  # keyed by its own factory

    def write_with(self, writer: Writer) -> None:
        """Let ``writer`` write the outbox rows and the inbox claim in its own statement at
        :meth:`flush` (after the parts have flushed), instead of a statement of their own."""
        self._writer = writer

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never if it rolls back).

        For state a part keeps beyond its batch (e.g. a cache of what it wrote): only
        what the database holds may outlive the transaction.
        """
        self._on_commit.append(callback)

    def committed(self) -> None:
        """The transaction committed: run the :meth:`on_commit` callbacks and hand the outbox
        rows to the publisher (the owner of the transaction calls this)."""
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()
        written, self._written = self._written, None
        if written is not None and self._publisher is not None:
            self._publisher.hand_over(written)

    def emit(
        self,
        topic: Topic,
        payload: Contract,
        *,
        key: str,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        message_id: str | None = None,
    ) -> Envelope:
        """Queue ``payload`` for ``topic``; it is written to the outbox at commit time."""
        return self.emit_json(
            topic,
            payload.ce_type,
            payload.model_dump_json().encode(),
            key=key,
            subject=subject,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            message_id=message_id,
        )

    def emit_json(
        self,
        topic: Topic,
        ce_type: str,
        data: bytes,
        *,
        key: str,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        message_id: str | None = None,
    ) -> Envelope:
        """:meth:`emit` for a payload already serialised (:func:`oms_shared.contracts.payload_json`):
        the caller answers for its matching the contract of ``ce_type`` (a hot path that skips
        pydantic)."""
        envelope = Envelope(
            type=ce_type,
            source=self.source,
            data=data,
            subject=subject,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            key=key.encode(),
            id=message_id or self._new_id(causation_id),
        )
        self.pending.append(OutgoingMessage(topic.name, envelope))
        return envelope

    def _new_id(self, causation_id: str | None) -> str:
        """A fresh id; without a database, the next id derived from the cause (the same on a replay)."""
        if self._conn is not None or causation_id is None:
            return new_message_id()
        index = self._emitted.get(causation_id, 0)
        self._emitted[causation_id] = index + 1
        return derived_message_id(causation_id, index)

    async def flush_parts(self) -> None:
        """Let each part (in first-use order) write what it gathered and emit its messages.

        A part may use another part while it flushes (a write that changes what a later
        event reports): one not flushed yet gathers more; one already flushed is made
        again and flushed after the rest.
        """
        while self._parts:
            kind = next(iter(self._parts))
            await self._parts.pop(kind).flush()

    async def flush(self, claim: tuple[str, Sequence[str]] | None = None) -> None:
        """Flush the parts, then write the queued messages to the outbox in one statement
        (the writer's, if one was registered).

        With ``claim`` (consumer, distinct message ids) the same statement records the ids
        in the consumer's inbox, and aborts (SQLSTATE :data:`REPEAT_SQLSTATE`) if one of
        them was recorded before.
        """
        await self.flush_parts()
        messages, self.pending = self.pending, []
        consumer, ids = claim if claim is not None else ("", ())
        handing = bool(messages) and self._publisher is not None and self._publisher.accepting
        channel = "" if handing else NOTIFY_CHANNEL
        headers = [m.envelope.header_items() for m in messages]
        outbox = OutboxWrite((*_columns(messages, headers), channel, consumer, list(ids)), len(messages), len(ids))
        writer, self._writer = self._writer, None
        row_id: int | None = None
        if writer is not None:
            row_id = await writer.write(outbox)
        elif not outbox.empty:
            row_id = outbox_id(await self.conn.fetchrow(_INSERT, *outbox.params))
        if handing:
            if row_id is not None:
                self._written = WrittenRow(row_id, messages, headers)
            else:  # cannot happen; if it did, the relay's poll publishes the row
                log.error("outbox_id_missing", messages=len(messages))


async def write_outbox(conn: Connection, messages: list[OutgoingMessage]) -> None:
    """Insert messages into the outbox and notify the relay (at commit)."""
    headers = [m.envelope.header_items() for m in messages]
    await conn.execute(_INSERT, *_columns(messages, headers), NOTIFY_CHANNEL, "", [])


def _columns(messages: list[OutgoingMessage], headers: list[list[tuple[str, str]]]) -> tuple[Any, ...]:
    return (
        [m.topic for m in messages],
        [m.envelope.key for m in messages],
        [orjson.dumps(h).decode() for h in headers],
        [m.envelope.data for m in messages],
    )


@asynccontextmanager
async def unit_of_work(
    pool: asyncpg.Pool[Any], source: str, publisher: Publisher | None = None
) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; on success flush the emitted messages and commit, else roll back."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            uow = UnitOfWork(conn, source, publisher=publisher)
            yield uow
            await uow.flush()
        uow.committed()
