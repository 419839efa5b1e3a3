"""Helpers for service-level tests: run a handler against a real database without Kafka.

The runtime's own path (inbox, offsets, DLT) is covered by the runtime's tests;
handler tests call the handler in a transaction, exactly as the runtime does,
and look at what it wrote and emitted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from oms_shared.contracts import Contract
from oms_shared.envelope import Envelope, new_message_id
from oms_shared.outbox import OutgoingMessage, UnitOfWork, unit_of_work
from oms_shared.runtime import Handler, MessageContext, Prepare

__all__ = ["envelope_of", "handle", "handle_batch", "payloads", "rolled_back"]


def envelope_of(payload: Contract, *, correlation_id: str | None = None, message_id: str | None = None) -> Envelope:
    """The envelope the runtime would hand a handler for ``payload``."""
    order_id = correlation_id or getattr(payload, "order_id", None)
    return Envelope(
        id=message_id or new_message_id(),
        type=payload.ce_type,
        source="tests",
        data=payload.model_dump_json().encode(),
        correlation_id=order_id,
    )


async def handle(
    pool: asyncpg.Pool[Any], handler: Handler, payload: Contract, *, envelope: Envelope | None = None
) -> list[OutgoingMessage]:
    """Run ``handler`` on ``payload`` in one committed transaction; return the messages it emitted."""
    return await _run(pool, [(handler, payload, envelope or envelope_of(payload))])


async def handle_batch(
    pool: asyncpg.Pool[Any], items: Sequence[tuple[Handler, Contract]], *, prepare: Prepare | None = None
) -> list[OutgoingMessage]:
    """Run several messages in one transaction, as the runtime runs a batch (``prepare`` first)."""
    return await _run(pool, [(handler, payload, envelope_of(payload)) for handler, payload in items], prepare)


async def _run(
    pool: asyncpg.Pool[Any], items: Sequence[tuple[Handler, Contract, Envelope]], prepare: Prepare | None = None
) -> list[OutgoingMessage]:
    async with unit_of_work(pool, "oms/tests") as uow:
        if prepare is not None:
            await prepare(uow, [payload for _, payload, _ in items])
        for handler, payload, envelope in items:
            await handler(payload, MessageContext(envelope, uow))
        await uow.flush_parts()
        emitted = list(uow.pending)
    return emitted


def payloads(messages: list[OutgoingMessage], model: type[Contract]) -> list[Any]:
    """The emitted messages of type ``model``, decoded."""
    return [model.model_validate_json(m.envelope.data) for m in messages if m.envelope.type == model.ce_type]


@asynccontextmanager
async def rolled_back(pool: asyncpg.Pool[Any]) -> AsyncIterator[UnitOfWork]:
    """A unit of work in a transaction that is rolled back at the end, whatever happens in it."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield UnitOfWork(conn, "oms/tests")
        finally:
            await tx.rollback()
