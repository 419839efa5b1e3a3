"""The transactional outbox: write messages with the business change, publish them after.

A handler never talks to Kafka. It calls :meth:`UnitOfWork.emit`; the rows are
inserted in the handler's own transaction (one statement per transaction, however
many messages) and a NOTIFY wakes the :class:`~oms_shared.relay.OutboxRelay`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
import orjson

from oms_shared.contracts import Contract
from oms_shared.db import Connection
from oms_shared.envelope import Envelope, new_message_id
from oms_shared.inbox import claim_sql
from oms_shared.topics import Topic

__all__ = ["NOTIFY_CHANNEL", "BatchPart", "OutgoingMessage", "UnitOfWork", "unit_of_work"]

NOTIFY_CHANNEL = "oms_outbox"

_INSERT_ROWS = """
    INSERT INTO outbox (topic, key, headers, payload)
    SELECT t, k, h, p FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[]) AS u(t, k, h, p)"""

_INSERT = f"""
WITH inserted AS ({_INSERT_ROWS}
)
SELECT pg_notify($5, '')
"""

# The same, plus the inbox claim of the batch's messages: one round trip for both.
# Returns how many ids were new; fewer than asked means a repeat, and the caller rolls back.
_INSERT_AND_CLAIM = f"""
WITH claimed AS ({claim_sql("$6", "$7")}
    RETURNING 1
), inserted AS ({_INSERT_ROWS}
)
SELECT (SELECT count(*) FROM claimed) AS claimed,
       CASE WHEN cardinality($1::text[]) > 0 THEN pg_notify($5, '') END AS notified
"""  # noqa: S608  (module constants and placeholders only)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message bound for ``topic``, waiting in the outbox."""

    topic: str
    envelope: Envelope


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
    """

    def __init__(self, conn: Connection, source: str) -> None:
        self.conn = conn
        self.source = source
        self.pending: list[OutgoingMessage] = []
        self._parts: dict[Callable[[UnitOfWork], Any], BatchPart] = {}
        self._on_commit: list[Callable[[], None]] = []

    def part(self, kind: Callable[[UnitOfWork], P]) -> P:
        """The unit of work's ``kind`` part, made by ``kind(self)`` on first use."""
        found = self._parts.get(kind)
        if found is None:
            found = self._parts[kind] = kind(self)
        return found  # type: ignore[return-value]  # keyed by its own factory

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never if it rolls back).

        For state a part keeps beyond its batch (e.g. a cache of what it wrote): only
        what the database holds may outlive the transaction.
        """
        self._on_commit.append(callback)

    def committed(self) -> None:
        """The transaction committed: run the :meth:`on_commit` callbacks (the owner of the transaction calls this)."""
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()

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
        envelope = Envelope(
            type=payload.ce_type,
            source=self.source,
            data=payload.model_dump_json().encode(),
            subject=subject,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            key=key.encode(),
            id=message_id or new_message_id(),
        )
        self.pending.append(OutgoingMessage(topic.name, envelope))
        return envelope

    async def flush_parts(self) -> None:
        """Let each part (in first-use order) write what it gathered and emit its messages.

        A part may use another part while it flushes (a write that changes what a later
        event reports): one not flushed yet gathers more; one already flushed is made
        again and flushed after the rest.
        """
        while self._parts:
            kind = next(iter(self._parts))
            await self._parts.pop(kind).flush()

    async def flush(self, claim: tuple[str, Sequence[str]] | None = None) -> int:
        """Flush the parts, then insert the queued messages into the outbox in one statement.

        With ``claim`` (consumer, message ids) the same statement records the ids in the
        consumer's inbox; returns how many of them were new (0 without a claim).
        """
        await self.flush_parts()
        messages, self.pending = self.pending, []
        if claim is not None:
            consumer, ids = claim
            claimed: int = await self.conn.fetchval(_INSERT_AND_CLAIM, *_columns(messages), consumer, list(ids))
            return claimed
        if messages:
            await write_outbox(self.conn, messages)
        return 0


async def write_outbox(conn: Connection, messages: list[OutgoingMessage]) -> None:
    """Insert messages into the outbox and notify the relay (at commit)."""
    await conn.execute(_INSERT, *_columns(messages))


def _columns(messages: list[OutgoingMessage]) -> tuple[Any, ...]:
    return (
        [m.topic for m in messages],
        [m.envelope.key for m in messages],
        [orjson.dumps(m.envelope.header_items()).decode() for m in messages],
        [m.envelope.data for m in messages],
        NOTIFY_CHANNEL,
    )


@asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool[Any], source: str) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; on success flush the emitted messages and commit, else roll back."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            uow = UnitOfWork(conn, source)
            yield uow
            await uow.flush()
        uow.committed()
