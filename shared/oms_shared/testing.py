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
    pool: asyncpg.Pool[Any],
    items: Sequence[tuple[Handler, Contract]],
    *,
    prepare: Prepare | None = None,
    one_statement: bool = False,
    message_ids: Sequence[str] | None = None,
) -> list[OutgoingMessage]:
    """Run several messages as the runtime runs a batch (``prepare`` first): in one transaction,
    or with ``one_statement`` as a one-statement consumer's first attempt does (reads outside a
    transaction, one write that claims the messages for the consumer ``tests``).

    ``message_ids`` fixes the messages' ids (e.g. to replay a batch).
    """
    ids = list(message_ids) if message_ids is not None else [new_message_id() for _ in items]
    envelopes = [(h, p, envelope_of(p, message_id=i)) for (h, p), i in zip(items, ids, strict=True)]
    if not one_statement:
        return await _run(pool, envelopes, prepare)
    async with pool.acquire() as conn:
        uow = UnitOfWork(conn, "oms/tests", one_statement=True)
        emitted = await _handle(uow, envelopes, prepare)
        await uow.flush(claim=("tests", ids))
    uow.committed()
    return emitted


async def _run(
    pool: asyncpg.Pool[Any], items: Sequence[tuple[Handler, Contract, Envelope]], prepare: Prepare | None = None
) -> list[OutgoingMessage]:
    async with unit_of_work(pool, "oms/tests") as uow:
        emitted = await _handle(uow, items, prepare)
    return emitted


async def _handle(
    uow: UnitOfWork, items: Sequence[tuple[Handler, Contract, Envelope]], prepare: Prepare | None
) -> list[OutgoingMessage]:
    if prepare is not None:
        await prepare(uow, [payload for _, payload, _ in items])
    for handler, payload, envelope in items:
        await handler(payload, MessageContext(envelope, uow))
    await uow.flush_parts()
    return list(uow.pending)


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
