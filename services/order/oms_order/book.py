"""The sagas and timeline entries one unit of work touches, written once per batch.

A consumer batch is one transaction. Handlers read sagas through the batch's
:class:`SagaBook` (the runtime's ``prepare`` hook loads and locks every saga the
batch names, the fingerprints of its new orders and their channels' policies, in one
statement) and hand it what a transition decided; the book emits the commands at once
and keeps the new states and statuses. At flush it writes new orders, new and changed
sagas and the timeline in one statement and emits the statuses with their sequence
numbers. Per message that is no round trip at all, instead of four (load, save,
timeline, outbox); per batch, two besides the outbox.

A :class:`SagaCache` keeps the sagas the consumer committed between its batches: the
load then locks a cached saga and checks its version without reading its document,
and the document is neither sent nor parsed again (a saga is loaded about ten times
per order, ~1.8 KB each).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from oms_order import store
from oms_order.saga_state import Outcome, Saga, Status
from oms_shared import topics
from oms_shared.contracts import RawPayload
from oms_shared.contracts.order import OrderStatusChanged, PlaceOrder, order_id_for
from oms_shared.errors import RetryableError
from oms_shared.outbox import UnitOfWork

__all__ = ["SagaBook", "SagaCache", "prepare"]


@dataclass(frozen=True, slots=True)
class _Pending:
    order_id: str
    channel: str
    external_order_id: str
    status: Status
    at: datetime
    causation_id: str | None


class SagaBook:
    """One unit of work's sagas (locked, latest state) and the statuses still to append."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        #: order id -> its saga as of now (None: known not to exist).
        self._sagas: dict[str, Saga | None] = {}
        self._new: set[str] = set()
        self._changed: set[str] = set()
        self._statuses: list[_Pending] = []
        self._policies: dict[str, tuple[str, int]] = {}
        #: order id -> content fingerprint of the accepted order (None: none accepted).
        self._fingerprints: dict[str, str | None] = {}
        self._new_orders: list[store.NewOrder] = []
        #: Where sagas come from and go back to between batches (the consumer's; None: always read).
        self._cache: SagaCache | None = None
        #: order id -> the version of its row: as loaded, then as this batch wrote it.
        self._versions: dict[str, int] = {}

    @staticmethod
    def of(uow: UnitOfWork) -> SagaBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(SagaBook)

    async def load(self, saga_ids: Iterable[str], order_ids: Iterable[str] = (), channels: Iterable[str] = ()) -> None:
        """Load (and lock) what is not in the book yet, in one statement: the sagas of
        ``saga_ids``, which of ``order_ids`` were accepted, the policies of ``channels``."""
        sagas = sorted({i for i in saga_ids if i not in self._sagas})
        orders = sorted({i for i in order_ids if i not in self._fingerprints})
        wanted_channels = sorted({c for c in channels if c not in self._policies})
        if not (sagas or orders or wanted_channels):
            return
        held = self._cache.take(sagas) if self._cache is not None else {}
        found = await store.load(
            self._uow.conn, sagas, orders, wanted_channels, {i: version for i, (version, _) in held.items()}
        )
        for i in sagas:
            # In the versions but not read: the row is at the version the cache held it at.
            self._sagas[i] = found.sagas[i] if i in found.sagas else held[i][1] if i in found.versions else None
        self._versions.update(found.versions)
        self._fingerprints.update({i: found.fingerprints.get(i) for i in orders})
        self._policies.update({c: found.policies.get(c, store.DEFAULT_POLICY) for c in wanted_channels})

    def keep_in(self, cache: SagaCache) -> None:
        """Take this batch's sagas from ``cache`` when it holds them current; put them back after the commit."""
        self._cache = cache
        self._uow.on_commit(self._put_back)

    async def get(self, order_id: str) -> Saga | None:
        """The order's saga, locked for this transaction; None if there is none."""
        await self.load([order_id])
        return self._sagas[order_id]

    async def accept(self, order: store.NewOrder) -> str | None:
        """Accept a new order (inserted at flush), or return the fingerprint of the one accepted before."""
        await self.load((), [order.order_id])
        existing = self._fingerprints[order.order_id]
        if existing is None:
            self._fingerprints[order.order_id] = order.fingerprint
            self._new_orders.append(order)
        return existing

    async def policy(self, channel: str) -> tuple[str, int]:
        """The channel's partial-stock policy and maximum split, read once per batch."""
        await self.load((), (), [channel])
        return self._policies[channel]

    def started(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        """A new saga: insert it at flush; emit its commands; queue its statuses."""
        order_id = outcome.saga.order_id
        self._sagas[order_id] = outcome.saga
        self._new.add(order_id)
        self._publish(outcome, now, causation_id)

    def transitioned(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        """A saga took an input: keep its new state, emit its commands, queue its statuses.

        The saga is saved even when the input changed nothing (a stale reply): telling
        would take a copy per transition, which costs more than the rare extra row.
        """
        order_id = outcome.saga.order_id
        self._sagas[order_id] = outcome.saga
        if order_id not in self._new:
            self._changed.add(order_id)
        self._publish(outcome, now, causation_id)

    def status(
        self,
        order_id: str,
        channel: str,
        external_order_id: str,
        statuses: Sequence[Status],
        now: datetime,
        causation_id: str | None,
    ) -> None:
        """Queue statuses for an order's timeline (and the status topic) without a saga change."""
        self._statuses += [_Pending(order_id, channel, external_order_id, s, now, causation_id) for s in statuses]

    def _publish(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        saga = outcome.saga
        self.status(saga.order_id, saga.channel, saga.external_order_id, outcome.statuses, now, causation_id)
        for command in outcome.commands:
            self._uow.emit(
                command.topic,
                command.payload,
                key=saga.order_id,
                correlation_id=saga.order_id,
                causation_id=causation_id,
                message_id=command.message_id,
            )

    async def flush(self) -> None:
        """Write new orders, new and changed sagas and the timeline (one statement); emit the statuses."""
        conn = self._uow.conn
        orders, self._new_orders = self._new_orders, []
        new = [s for order_id in self._new if (s := self._sagas[order_id]) is not None]
        changed = [s for order_id in self._changed if (s := self._sagas[order_id]) is not None]
        pending, self._statuses = self._statuses, []
        statuses = [(p.order_id, p.status, p.at) for p in pending]
        inserted, appended = await store.write_batch(conn, orders, new, changed, statuses)
        if inserted < len(orders):
            # Another instance accepted one of them since this batch looked: replay the
            # batch, which will then see it as a duplicate or a conflict.
            raise RetryableError("an order of this batch was accepted concurrently")
        for p, entry in zip(pending, appended, strict=True):
            self._uow.emit(
                topics.ORDER_STATUS,
                OrderStatusChanged(
                    order_id=p.order_id,
                    channel=p.channel,
                    external_order_id=p.external_order_id,
                    seq=entry.seq,
                    status=p.status.status,
                    previous_status=entry.previous_status,
                    reasons=p.status.reasons,
                    at=p.at,
                    details=p.status.details,
                ),
                key=p.order_id,
                subject=p.order_id,
                correlation_id=p.order_id,
                causation_id=p.causation_id,
            )
        for saga in new:
            self._versions[saga.order_id] = 1
        for saga in changed:
            if saga.order_id in self._versions:
                self._versions[saga.order_id] += 1
        self._new.clear()
        self._changed.clear()

    def _put_back(self) -> None:
        """After the commit: hand the sagas whose row version is known to the cache."""
        assert self._cache is not None
        for order_id, saga in self._sagas.items():
            if saga is not None and order_id in self._versions:
                self._cache.put(order_id, self._versions[order_id], saga)


class SagaCache:
    """The sagas a consumer committed, kept for its next batches (at most ``capacity``).

    A batch *takes* the sagas it names out of the cache (its book then owns them and
    changes them in place) and uses one only if its row is still at the version it was
    put back at: another instance, the deadline poller or a replay may have written it
    since. After the batch commits, its book puts back what it holds with the versions
    it wrote; a batch that rolls back puts back nothing, so the cache never holds a
    state the database does not. Closed sagas are not kept (they are rarely woken), and
    beyond ``capacity`` the least recently put back go first.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._held: dict[str, tuple[int, Saga]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def take(self, order_ids: Iterable[str]) -> dict[str, tuple[int, Saga]]:
        """Remove and return the (version, saga) held for each of ``order_ids``."""
        return {i: held for i in order_ids if (held := self._held.pop(i, None)) is not None}

    def put(self, order_id: str, version: int, saga: Saga) -> None:
        """Keep a committed saga at its row's version (a closed one is dropped)."""
        self._held.pop(order_id, None)
        if saga.closed or self.capacity <= 0:
            return
        self._held[order_id] = (version, saga)
        while len(self._held) > self.capacity:
            del self._held[next(iter(self._held))]

    async def prepare(self, uow: UnitOfWork, payloads: Sequence[Any]) -> None:
        """The runtime's per-batch hook (:func:`prepare`), with this cache behind the batch's book."""
        SagaBook.of(uow).keep_in(self)
        await prepare(uow, payloads)


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook, one statement: load and lock every saga the batch's
    replies name, read which of the batch's new orders were accepted before, and their
    channels' policies."""
    peeked = [key for p in payloads if (key := _peek_place_order(p)) is not None]
    await SagaBook.of(uow).load(
        (order_id for p in payloads if isinstance(order_id := getattr(p, "order_id", None), str)),
        (order_id_for(channel, external_id) for channel, external_id in peeked),
        (channel for channel, _ in peeked),
    )


def _peek_place_order(payload: Any) -> tuple[str, str] | None:
    """The channel and external id of a place-order message, if they can be read at all.

    Only a hint for loading in bulk: the intake validates the message in full later,
    and an order the peek misses is looked up on its own.
    """
    if not isinstance(payload, RawPayload) or payload.ce_type != PlaceOrder.ce_type:
        return None
    try:
        data = orjson.loads(payload.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    channel, external_id = data.get("channel"), data.get("external_order_id")
    if not isinstance(channel, str) or not isinstance(external_id, str):
        return None
    return channel, external_id
