"""The sagas and timeline entries one unit of work touches, written once per batch.

A consumer batch is one unit of work. Handlers read sagas through the batch's
:class:`SagaBook` (the runtime's ``prepare`` hook reads every saga the batch names,
the fingerprints of its new orders, their timelines' last entries and their channels'
policies, in one statement) and hand it what a transition decided; the book emits the
commands and the status events at once (each saga keeps its order's last timeline
number, so the events are numbered before anything is written) and keeps the new
states. At the end it writes new orders, new and changed sagas, the timeline, refused
messages, the outbox and the inbox claim in ONE statement (it is the unit of work's
writer). Per batch that is two round trips, read and write; the order consumer runs
one-statement (see :mod:`oms_shared.runtime`): no BEGIN, no COMMIT, no locks held
while the handlers run, and the write checks that every saga is still at the version
read.

A :class:`SagaCache` keeps the sagas the consumer committed between its batches: the
read is skipped for a cached saga (the write checks its version) and the document is
neither sent nor parsed again (a saga is loaded about ten times per order, ~1.8 KB
each). With it, a one-statement batch does not read its new orders either (taken as
new, checked by the write: :meth:`SagaBook._assume_new`) and takes the channels'
policies from the cache (:data:`POLICY_TTL_S`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, get_args

import orjson

from oms_order import store
from oms_order.saga_state import Outcome, Policy, Saga, Status
from oms_shared import topics
from oms_shared.contracts import RawPayload, payload_json
from oms_shared.contracts.order import OrderStatus, OrderStatusChanged, PlaceOrder, order_id_for
from oms_shared.outbox import OutboxWrite, UnitOfWork

__all__ = ["SagaBook", "SagaCache", "prepare"]

#: How long the consumer uses a channel's policy without reading it again (s): the
#: policies are configuration, changed by hand in ``channel_policies``.
POLICY_TTL_S = 10.0

#: The statuses the status topic's contract allows.
_STATUSES: frozenset[str] = frozenset(get_args(OrderStatus))


class SagaBook:
    """One unit of work's sagas (latest state) and what it will write."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        #: order id -> its saga as of now (None: known not to exist).
        self._sagas: dict[str, Saga | None] = {}
        self._new: set[str] = set()
        self._changed: set[str] = set()
        self._entries: list[store.Entry] = []
        self._rejections: list[store.Rejection] = []
        self._policies: dict[str, tuple[Policy, int]] = {}
        #: order id -> content fingerprint of the accepted order (None: none accepted).
        self._fingerprints: dict[str, str | None] = {}
        #: order id -> (seq, status) of its timeline's last entry, for orders without a saga here.
        self._tails: dict[str, tuple[int, str | None]] = {}
        self._new_orders: list[store.NewOrder] = []
        #: Where sagas come from and go back to between batches (the consumer's; None: always read).
        self._cache: SagaCache | None = None
        #: order id -> the version of its row: as read, then as this batch wrote it.
        self._versions: dict[str, int] = {}
        #: Some new order was taken as never accepted without reading (see :meth:`_assume_new`).
        self._assumed_new = False
        uow.write_with(self)

    @staticmethod
    def of(uow: UnitOfWork) -> SagaBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(SagaBook)

    async def load(
        self,
        saga_ids: Iterable[str],
        order_ids: Iterable[str] = (),
        channels: Iterable[str] = (),
        tails: Iterable[str] = (),
    ) -> None:
        """Read what is not in the book yet, in one statement: the sagas of ``saga_ids``
        (locked, unless the unit of work is one statement), which of ``order_ids`` were
        accepted, the policies of ``channels``, the timelines' last entries of ``tails``
        and ``order_ids`` (a new order's id may have entries of refused attempts)."""
        sagas = sorted({i for i in saga_ids if i not in self._sagas})
        held = self._cache.take(sagas) if self._cache is not None else {}
        if self._uow.one_statement:
            # The write checks the version of a cached saga: no need to read it now.
            for i, (version, cached) in held.items():
                self._sagas[i], self._versions[i] = cached, version
            sagas = [i for i in sagas if i not in held]
            held = {}
        orders = sorted({i for i in order_ids if i not in self._fingerprints})
        if self._uow.one_statement and self._cache is not None:
            orders = self._assume_new(orders, tails)
            self._policies.update(self._cache.policies(channels))
        wanted_channels = sorted({c for c in channels if c not in self._policies})
        wanted_tails = sorted({i for i in (*orders, *tails) if i not in self._tails})
        if not (sagas or orders or wanted_channels or wanted_tails):
            return
        found = await store.load(
            self._uow.conn,
            sagas,
            orders,
            wanted_channels,
            {i: version for i, (version, _) in held.items()},
            tails=wanted_tails,
            lock=not self._uow.one_statement,
        )
        for i in sagas:
            # In the versions but not read: the row is at the version the cache held it at.
            self._sagas[i] = found.sagas[i] if i in found.sagas else held[i][1] if i in found.versions else None
        self._versions.update(found.versions)
        self._fingerprints.update({i: found.fingerprints.get(i) for i in orders})
        self._policies.update({c: found.policies.get(c, store.DEFAULT_POLICY) for c in wanted_channels})
        if self._cache is not None:
            self._cache.keep_policies({c: self._policies[c] for c in wanted_channels})
        self._tails.update({i: found.tails.get(i, (0, None)) for i in wanted_tails})
        await self._complete([saga for i in sagas if (saga := self._sagas[i]) is not None])

    def _assume_new(self, order_ids: Sequence[str], tails: Iterable[str]) -> list[str]:
        """Of ``order_ids``, the ones to read; the others are taken as never accepted, without a timeline.

        An order id the cache holds no saga for is almost always a new order (a channel
        re-sends rarely), so a one-statement batch does not read it: the write inserts
        the order and aborts (OMS02) if it exists, and a timeline entry of a refused
        earlier attempt makes the timeline insert fail; either way the runtime replays the
        batch in a transaction that reads everything (see :func:`store.write_batch`).
        """
        assert self._cache is not None
        asked = set(tails)
        read: list[str] = []
        for order_id in order_ids:
            if order_id in asked or order_id in self._cache or self._sagas.get(order_id) is not None:
                read.append(order_id)
            else:
                self._fingerprints[order_id] = None
                self._tails.setdefault(order_id, (0, None))
                self._assumed_new = True
        return read

    async def _complete(self, sagas: Sequence[Saga]) -> None:
        """Give sagas saved before they kept their timeline's last entry theirs, from the timeline."""
        missing = [saga for saga in sagas if saga.timeline_seq is None]
        if missing:
            found = await store.load(self._uow.conn, (), tails=[saga.order_id for saga in missing], lock=False)
            for saga in missing:
                saga.timeline_seq, saga.timeline_status = found.tails.get(saga.order_id, (0, None))

    def keep_in(self, cache: SagaCache) -> None:
        """Take this batch's sagas from ``cache`` when it holds them current; put them back after the commit."""
        self._cache = cache
        self._uow.on_commit(self._put_back)

    async def get(self, order_id: str) -> Saga | None:
        """The order's saga (locked for this transaction, if it is one); None if there is none."""
        if order_id not in self._sagas:  # almost always loaded by the batch's prepare hook
            await self.load([order_id])
        return self._sagas[order_id]

    async def due(self, now: datetime, limit: int) -> list[Saga]:
        """Up to ``limit`` sagas whose deadline has passed, locked (the deadline poller's, in a transaction)."""
        sagas = await store.due_sagas(self._uow.conn, now, limit)
        await self._complete(sagas)
        self._sagas.update({saga.order_id: saga for saga in sagas})
        return sagas

    async def accept(self, order: store.NewOrder) -> str | None:
        """Accept a new order (inserted at the write), or return the fingerprint of the one accepted before."""
        await self.load((), [order.order_id])
        existing = self._fingerprints[order.order_id]
        if existing is None:
            self._fingerprints[order.order_id] = order.fingerprint
            self._new_orders.append(order)
        return existing

    async def policy(self, channel: str) -> tuple[Policy, int]:
        """The channel's partial-stock policy and maximum split, read once per batch."""
        await self.load((), (), [channel])
        return self._policies[channel]

    def started(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        """A new saga (of an order :meth:`accept` took): insert it; emit its commands and statuses."""
        saga = outcome.saga
        saga.timeline_seq, saga.timeline_status = self._tails[saga.order_id]
        self._sagas[saga.order_id] = saga
        self._new.add(saga.order_id)
        self._publish(outcome, now, causation_id)

    def transitioned(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        """A saga took an input: keep its new state, emit its commands and statuses.

        The saga is saved even when the input changed nothing (a stale reply): telling
        would take a copy per transition, which costs more than the rare extra row.
        """
        order_id = outcome.saga.order_id
        self._sagas[order_id] = outcome.saga
        if order_id not in self._new:
            self._changed.add(order_id)
        self._publish(outcome, now, causation_id)

    async def refuse(self, rejection: store.Rejection, status: Status, now: datetime, causation_id: str) -> None:
        """Keep a refused intake message and append ``status`` to the timeline of the order it names
        (an accepted order's, after its saga's entries, or one that has no saga)."""
        order_id = rejection.order_id
        await self.load([order_id], tails=[order_id])
        self._rejections.append(rejection)
        self._append(order_id, rejection.channel or "", rejection.external_order_id or "", [status], now, causation_id)

    def _publish(self, outcome: Outcome, now: datetime, causation_id: str | None) -> None:
        saga = outcome.saga
        for command in outcome.commands:
            self._uow.emit_json(
                command.topic,
                command.payload.ce_type,
                command.data,
                key=saga.order_id,
                correlation_id=saga.order_id,
                causation_id=causation_id,
                message_id=command.message_id,
            )
        self._append(saga.order_id, saga.channel, saga.external_order_id, outcome.statuses, now, causation_id)

    def _append(
        self,
        order_id: str,
        channel: str,
        external_order_id: str,
        statuses: Sequence[Status],
        now: datetime,
        causation_id: str | None,
    ) -> None:
        """Number ``statuses`` after the order's last timeline entry, queue them for the
        timeline and emit them on the status topic."""
        if not statuses:
            return
        saga = self._sagas.get(order_id)
        seq, last = (saga.timeline_seq or 0, saga.timeline_status) if saga is not None else self._tails[order_id]
        for status in statuses:
            seq += 1
            self._entries.append(store.Entry(order_id, seq, status, last, now))
            if status.status not in _STATUSES:
                raise ValueError(f"{status.status!r} is not an order status of the contract")
            # The event as OrderStatusChanged would dump it (test_order_batches checks that),
            # without building and validating a pydantic model: a tenth of the cost.
            event = {
                "order_id": order_id,
                "channel": channel,
                "external_order_id": external_order_id,
                "seq": seq,
                "status": status.status,
                "previous_status": last,
                "reasons": status.reasons,
                "at": now,
                "details": status.details,
            }
            self._uow.emit_json(
                topics.ORDER_STATUS,
                OrderStatusChanged.ce_type,
                payload_json(event),
                key=order_id,
                subject=order_id,
                correlation_id=order_id,
                causation_id=causation_id,
            )
            last = status.status
        if saga is None:
            self._tails[order_id] = (seq, last)
            return
        saga.timeline_seq, saga.timeline_status = seq, last
        if order_id not in self._new:
            self._changed.add(order_id)

    async def flush(self) -> None:
        """Nothing to do before the outbox is written: the book writes with it (:meth:`write`)."""

    async def write(self, outbox: OutboxWrite) -> int | None:
        """Write new orders, new and changed sagas, the timeline, refused messages and ``outbox``
        in one statement (it aborts whole if a saga changed since it was read)."""
        orders, self._new_orders = self._new_orders, []
        new = [saga for order_id in self._new if (saga := self._sagas[order_id]) is not None]
        changed = [(saga, self._versions.get(i)) for i in self._changed if (saga := self._sagas[i]) is not None]
        entries, self._entries = self._entries, []
        rejections, self._rejections = self._rejections, []
        if self._uow.one_statement and any(version is None for _, version in changed):
            raise RuntimeError("a saga changed in a one-statement batch without the version it was read at")
        outbox_id = None
        if orders or new or changed or entries or rejections or not outbox.empty:
            outbox_id = await store.write_batch(
                self._uow.conn, orders, new, changed, entries, rejections, outbox, assumed_new=self._assumed_new
            )
        for saga in new:
            self._versions[saga.order_id] = 1
        for saga, _ in changed:
            if saga.order_id in self._versions:
                self._versions[saga.order_id] += 1
        self._new.clear()
        self._changed.clear()
        return outbox_id

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

    def __init__(self, capacity: int, policy_ttl_s: float = POLICY_TTL_S) -> None:
        self.capacity = capacity
        self._held: dict[str, tuple[int, Saga]] = {}
        self._policy_ttl_s = policy_ttl_s
        #: channel -> (policy, maximum split), and when it was read (monotonic seconds).
        self._policies: dict[str, tuple[tuple[Policy, int], float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._held

    def policies(self, channels: Iterable[str]) -> dict[str, tuple[Policy, int]]:
        """The policies of ``channels`` read less than the time to live ago (the others: read them)."""
        oldest = time.monotonic() - self._policy_ttl_s
        return {c: kept[0] for c in channels if (kept := self._policies.get(c)) is not None and kept[1] > oldest}

    def keep_policies(self, policies: Mapping[str, tuple[Policy, int]]) -> None:
        """Remember policies just read (a policy row changed by hand applies within the time to live)."""
        now = time.monotonic()
        self._policies.update({c: (policy, now) for c, policy in policies.items()})

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
