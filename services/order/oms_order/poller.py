"""The deadline poller: turns passed saga deadlines into Timeout inputs.

A timed-out command is re-sent with its original message id (the participant's
inbox drops it if it was handled after all), a few times with growing delays;
then the saga compensates (a reservation) or parks itself as stuck, visible to
operators, and keeps retrying slowly.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from oms_order.book import SagaBook
from oms_order.saga import Timeout, Timing, decide
from oms_shared.outbox import unit_of_work
from oms_shared.service import Resources, Worker, periodic

__all__ = ["deadline_poller"]

log = structlog.get_logger(__name__)


async def poll_once(resources: Resources, timing: Timing, limit: int = 200) -> int:
    """Handle up to ``limit`` due sagas in one transaction; return how many."""
    now = datetime.now(UTC)
    async with unit_of_work(resources.pool, "oms/order", resources.publisher) as uow:
        book = SagaBook.of(uow)
        sagas = await book.due(now, limit)
        for saga in sagas:
            outcome = decide(saga, Timeout(), now, timing, in_place=True)
            book.transitioned(outcome, now, None)
            if outcome.commands:
                log.info("saga_timeout_handled", order_id=saga.order_id, resent=len(outcome.commands))
    return len(sagas)


def deadline_poller(timing: Timing, interval_s: float = 0.25) -> Worker:
    """A host worker running :func:`poll_once` until the service stops (at once again after a full round)."""

    async def step(resources: Resources) -> float:
        return 0.0 if await poll_once(resources, timing) >= 200 else interval_s

    return periodic("deadline_poller", step)
