"""The consumer runtime: the ONLY consume loop in the OMS.

A service gives it subscriptions (topic -> {payload model: handler}); the runtime:

1. fetches a batch of records (all assigned partitions, up to ``batch_size``);
2. decodes each one into a CloudEvent and its payload model; a record that cannot
   be decoded, fails its schema or has an unknown type is poison;
3. in ONE database transaction claims the messages in the inbox and calls the
   handler of each new message, in partition order; handlers write their effect
   and emit messages into the outbox through the same transaction;
4. sends poison records to ``<topic>.dlt`` with the error in headers;
5. commits the Kafka offsets, after the database commit (at most every
   ``commit_interval_s``, in the background: a replay is a no-op, see below).

A consumer may run **one-statement** (``one_statement=True``): its first attempt at a
batch opens no transaction block. The prepare hook and the handlers only read (seeing
committed rows, locking nothing) and one writer part writes the whole batch, outbox
and inbox claim included, in ONE statement that is its own transaction. The statement
checks its preconditions itself (``oms_check``: e.g. each saga still at the version
read, each message new) and aborts whole if one fails: two round trips per batch
(read, write) instead of five (BEGIN, read, write, outbox, COMMIT). A repeat or a row
written concurrently since it was read aborts the statement, and the batch takes the
claim-first path below, in a transaction whose reads lock, as before.

``one_statement`` may also be a predicate over a batch's payloads: a consumer whose
handlers can write some messages through one statement and others only in a
transaction runs one-statement only the batches that hold nothing else.

A consumer may run **stateless** (``pool=None``): for a process that keeps nothing
between messages and only answers them (the simulated warehouse and carrier at zero
delay). No database, inbox or outbox: after the handlers the runtime produces the
batch's messages itself and waits for every acknowledgement, and only then may the
offsets be committed. Each emitted id is derived from its cause and its rank
(:func:`~oms_shared.envelope.derived_message_id`), so a batch handled again after a
crash emits the same ids and the receivers' inboxes drop the repeats: at least once
to the broker, exactly once in effect, as with the outbox.

Transient errors (database or broker down, serialization failure) are retried in
place with backoff, so the partition's order is kept. If a handler raises
anything else, the batch is rolled back and replayed one message per transaction
so that only the culprit is dead-lettered. A crash anywhere replays at most the
batches handled since the last offset commit, and the inbox turns replays into no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError

from oms_shared import failpoints, logs
from oms_shared.contracts import Contract, RawPayload
from oms_shared.db import Connection
from oms_shared.envelope import Envelope, Position
from oms_shared.errors import (
    HandlerFailed,
    PoisonMessage,
    SchemaViolation,
    UndecodableMessage,
    UnknownMessageType,
    is_transient,
)
from oms_shared.inbox import claim
from oms_shared.kafka import KeyHashPartitioner, send_in_batches
from oms_shared.librdkafka import LibrdkafkaConsumer
from oms_shared.outbox import Publisher, UnitOfWork
from oms_shared.retry import Backoff
from oms_shared.topics import Topic

__all__ = ["ConsumerRuntime", "Handler", "MessageContext", "OneStatement", "Prepare", "Subscription", "Timings"]

log = structlog.get_logger(__name__)

Handler = Callable[[Any, "MessageContext"], Awaitable[None]]
#: Called once per batch transaction, before the handlers, with the payloads about to be
#: handled: a service loads what they need in one statement (e.g. every saga of the batch).
Prepare = Callable[[UnitOfWork, Sequence[Any]], Awaitable[None]]
#: Whether a consumer's first attempt at a batch is one statement: always, or per batch (its payloads).
OneStatement: TypeAlias = bool | Callable[[Sequence[Any]], bool]
#: aiokafka ships no type information: a received record.
Record: TypeAlias = ConsumerRecord


@dataclass(frozen=True, slots=True)
class Subscription:
    """A topic and the handler of each message type read from it."""

    topic: Topic
    handlers: Mapping[type[Contract], Handler]


@dataclass(slots=True)
class MessageContext:
    """What a handler gets beside its payload: the envelope and the unit of work."""

    envelope: Envelope
    uow: UnitOfWork

    @property
    def conn(self) -> Connection:
        """The connection of the transaction this message is handled in.

        Not for a one-statement consumer's handlers: their unit of work has no
        transaction, so they write through its writer part only.
        """
        if self.uow.one_statement:
            raise RuntimeError("a one-statement consumer's handlers write through the unit of work's writer")
        return self.uow.conn

    def emit(
        self,
        topic: Topic,
        payload: Contract,
        *,
        key: str,
        subject: str | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
    ) -> Envelope:
        """Emit a message caused by this one (causation, correlation and trace carried over).

        ``message_id`` fixes the CloudEvents id, for senders (the saga) that re-send a
        command after a timeout and need the receiver's inbox to recognise it.
        """
        return self.uow.emit(
            topic,
            payload,
            key=key,
            subject=subject,
            correlation_id=correlation_id or self.envelope.correlation_id,
            causation_id=self.envelope.id,
            traceparent=self.envelope.traceparent,
            message_id=message_id,
        )


@dataclass(frozen=True, slots=True)
class _Decoded:
    record: Record
    envelope: Envelope
    payload: Contract
    handler: Handler


class _Stopped(Exception):
    """The runtime was asked to stop while waiting to retry: leave offsets uncommitted."""


@dataclass
class _Routes:
    by_topic: dict[str, dict[str, tuple[type[Contract], Handler]]] = field(default_factory=dict)

    @classmethod
    def of(cls, subscriptions: Sequence[Subscription]) -> _Routes:
        routes = cls()
        for sub in subscriptions:
            routes.by_topic[sub.topic.name] = {model.ce_type: (model, fn) for model, fn in sub.handlers.items()}
        return routes


class ConsumerRuntime:
    """Consumes subscriptions for one consumer group, with inbox, DLT and ordered retries."""

    def __init__(
        self,
        *,
        name: str,
        source: str,
        pool: asyncpg.Pool[Any] | None,
        consumer: AIOKafkaConsumer | LibrdkafkaConsumer,
        producer: AIOKafkaProducer,
        subscriptions: Sequence[Subscription],
        batch_size: int = 500,
        prepare: Prepare | None = None,
        commit_interval_s: float = 0.1,
        one_statement: OneStatement = False,
        publisher: Publisher | None = None,
    ) -> None:
        self.name = name
        self._source = source
        self._pool = pool
        self._consumer = consumer
        self._producer = producer
        self._routes = _Routes.of(subscriptions)
        self._batch_size = batch_size
        self._prepare = prepare
        self._commit_interval_s = commit_interval_s
        self._one_statement = one_statement
        self._publisher = publisher
        self._committing: asyncio.Task[None] | None = None
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        self._stopping = asyncio.Event()
        self._partitioner = KeyHashPartitioner()
        self.handled = 0
        self.dead_lettered = 0
        #: Messages produced by the stateless mode (a consumer with a database publishes through its relay).
        self.produced = 0
        #: Where the consumer's time goes (reported by the health endpoint): see :class:`Timings`.
        self.timings = Timings()

    def stop(self) -> None:
        """Finish the batch in hand (or abandon a retry wait) and return from :meth:`run`."""
        self._stopping.set()

    @property
    def assignment(self) -> set[TopicPartition]:
        """The partitions this instance currently owns."""
        return set(self._consumer.assignment())

    async def run(self) -> None:
        """Consume until :meth:`stop` is called."""
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                if batches:
                    started = time.monotonic()
                    try:
                        await self._handle_batch(batches)
                    except _Stopped:
                        return
                    self.timings.batches += 1
                    self.timings.busy_s += time.monotonic() - started
                    self._uncommitted.update({tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs})
                self._commit_in_background()
        finally:
            if self._committing is not None:
                await asyncio.shield(self._committing)
            if self._uncommitted:
                await asyncio.shield(self._commit(self._uncommitted))

    def _commit_in_background(self) -> None:
        """Commit the handled batches' offsets, at most once per interval and one commit at a time.

        The database commit already made each batch durable and the inbox turns a
        replay into no-ops, so offsets may lag a little: under light load, when every
        batch holds a message or two, one offset commit per batch cost the broker and
        every consumer more than the batches themselves.
        """
        if not self._uncommitted or (self._committing is not None and not self._committing.done()):
            return
        if time.monotonic() - self._last_commit < self._commit_interval_s:
            return
        offsets, self._uncommitted = self._uncommitted, {}
        self._last_commit = time.monotonic()
        self._committing = asyncio.create_task(self._commit(offsets))

    async def _handle_batch(self, batches: Mapping[TopicPartition, list[Record]]) -> None:
        good: list[_Decoded] = []
        dead: list[tuple[Record, PoisonMessage]] = []
        for records in batches.values():
            for record in records:
                try:
                    good.append(self._decode(record))
                except PoisonMessage as exc:
                    dead.append((record, exc))
        if good:
            dead.extend(await self._apply_isolating(good))
        for record, error in dead:
            await self._retrying(lambda r=record, e=error: self._dead_letter(r, e))  # type: ignore[misc]

    def _decode(self, record: Record) -> _Decoded:
        position = Position(record.topic, record.partition, record.offset)
        envelope = Envelope.from_record(list(record.headers), record.value, record.key, position)
        route = self._routes.by_topic.get(record.topic, {}).get(envelope.type)
        if route is None:
            raise UnknownMessageType(f"no handler for ce_type {envelope.type!r} on {record.topic}")
        model, handler = route
        if issubclass(model, RawPayload):
            return _Decoded(record, envelope, model(data=envelope.data), handler)
        try:
            payload = model.model_validate_json(envelope.data)
        except ValidationError as exc:
            if any(err["type"] == "json_invalid" for err in exc.errors()):
                raise UndecodableMessage(f"payload is not valid JSON: {exc.errors()[0]['msg']}") from exc
            raise SchemaViolation(_summarise(exc)) from exc
        return _Decoded(record, envelope, payload, handler)

    async def _apply_isolating(self, items: list[_Decoded]) -> list[tuple[Record, PoisonMessage]]:
        """Apply the batch in one transaction; if a handler fails, replay one by one to find it.

        The first attempt claims the messages in the inbox with the outbox write, after
        the handlers (one round trip fewer per batch). If that finds a repeat, or anything
        fails, the batch is rolled back and replayed claiming first, which skips repeats
        before their handlers run: only then is a failure the handler's.
        """
        try:
            await self._retrying(lambda: self._apply(items, claim_first=False))
            return []
        except (_Stopped, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001  (a repeat, a conflict or a failure: the claim-first replay tells)
            self.timings.replayed += 1
            log.info("batch_replayed_claiming_first", error=repr(exc)[:300], messages=len(items))
        try:
            await self._retrying(lambda: self._apply(items))
            return []
        except (_Stopped, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001  (non-transient: isolate the culprit below)
            if len(items) == 1:
                return [(items[0].record, _handler_failed(items[0], exc))]
        dead: list[tuple[Record, PoisonMessage]] = []
        for item in items:
            try:
                await self._retrying(lambda i=item: self._apply([i]))  # type: ignore[misc]
            except (_Stopped, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001  (dead-lettered with its error, never dropped)
                dead.append((item.record, _handler_failed(item, exc)))
        return dead

    async def _apply(self, items: list[_Decoded], *, claim_first: bool = True) -> None:
        clock = _Clock(self.timings.phases_s)
        if self._pool is None:  # stateless: the handlers' messages are produced before this returns
            uow = UnitOfWork(None, self._source)
            await self._run_handlers(uow, items, claim_first=False, clock=clock)
        else:
            async with self._pool.acquire() as conn:
                if not claim_first and self._takes_one_statement(items):
                    uow = UnitOfWork(conn, self._source, one_statement=True, publisher=self._publisher)
                    await self._run_handlers(uow, items, claim_first=False, clock=clock)
                else:
                    async with conn.transaction():
                        uow = UnitOfWork(conn, self._source, publisher=self._publisher)
                        await self._run_handlers(uow, items, claim_first=claim_first, clock=clock)
        clock.lap("commit")
        uow.committed()
        failpoints.hit("consumer.after_db_commit")
        self.handled += len(items)

    def _takes_one_statement(self, items: list[_Decoded]) -> bool:
        if callable(self._one_statement):
            return self._one_statement([item.payload for item in items])
        return self._one_statement

    async def _run_handlers(self, uow: UnitOfWork, items: list[_Decoded], *, claim_first: bool, clock: _Clock) -> None:
        clock.lap("begin")
        ids = [item.envelope.id for item in items]
        fresh = await claim(uow.conn, self.name, ids) if claim_first else set(ids)
        if self._prepare is not None and fresh:
            await self._prepare(uow, [item.payload for item in items if item.envelope.id in fresh])
        clock.lap("prepare")
        for item in items:
            if item.envelope.id not in fresh:
                log.debug("duplicate_skipped", message_id=item.envelope.id, **_where(item.record))
                continue
            fresh.discard(item.envelope.id)  # the same id twice in one batch: once only
            record = item.record
            token = logs.handling({
                "order_id": item.envelope.correlation_id,
                "message_id": item.envelope.id,
                "ce_type": item.envelope.type,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            })  # fmt: skip
            try:
                await item.handler(item.payload, MessageContext(item.envelope, uow))
            finally:
                logs.handled(token)
        clock.lap("handlers")
        if uow.stateless:
            await self._produce(uow)
        else:
            # Claiming with the outbox write: a message handled before aborts the statement
            # (REPEAT_SQLSTATE), and the caller replays the batch claiming first.
            await uow.flush(claim=None if claim_first else (self.name, list(set(ids))))
        clock.lap("writes")

    async def _produce(self, uow: UnitOfWork) -> None:
        """The stateless mode's writes: produce the batch's messages, in order, and wait for every ack."""
        await uow.flush_parts()
        messages, uow.pending = uow.pending, []
        records = [(m.topic, m.envelope.key, m.envelope.to_headers(), m.envelope.data) for m in messages]
        await asyncio.gather(*await send_in_batches(self._producer, records, self._partitioner))
        self.produced += len(records)

    async def _retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until it succeeds, retrying transient errors in place with backoff."""
        backoff = Backoff()
        while True:
            try:
                await step()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._stopping.is_set():
                    raise _Stopped from exc
                delay = backoff.next()
                log.warning("transient_error_retrying", error=repr(exc), attempt=backoff.attempts, delay_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _dead_letter(self, record: Record, error: PoisonMessage) -> None:
        headers = [h for h in record.headers if not h[0].startswith("dlt_")]
        headers += [
            ("dlt_reason", error.reason.encode()),
            ("dlt_error", str(error)[:4000].encode()),
            ("dlt_consumer", self.name.encode()),
            ("dlt_topic", record.topic.encode()),
            ("dlt_partition", str(record.partition).encode()),
            ("dlt_offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(f"{record.topic}.dlt", value=record.value, key=record.key, headers=headers)
        self.dead_lettered += 1
        log.error("message_dead_lettered", reason=error.reason, error=str(error)[:500], **_where(record))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._retrying(lambda: self._consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us; the new owner replays and the inbox dedupes.
            log.warning("offset_commit_skipped", error=repr(exc))
        except _Stopped:
            return


@dataclass(slots=True)
class Timings:
    """Cumulative counters of a consumer, for operators and the benchmark (two readings make a rate).

    ``busy_s`` is the wall time spent handling batches (the rest is waiting for records);
    ``phases_s`` splits the batches' database transactions into BEGIN, the prepare hook
    (and claim), the handlers, the writes (parts, outbox, inbox) and COMMIT. On a loaded
    machine a batch is mostly round trips: these show how many and how long.
    """

    batches: int = 0
    #: Batches whose first attempt failed (a repeat, a concurrent writer, a handler) and were replayed claiming first.
    replayed: int = 0
    busy_s: float = 0.0
    phases_s: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("begin", "prepare", "handlers", "writes", "commit"), 0.0)
    )

    def as_dict(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "replayed": self.replayed,
            "busy_s": round(self.busy_s, 6),
            "phases_s": {k: round(v, 6) for k, v in self.phases_s.items()},
        }


class _Clock:
    """Adds the time since the previous lap to a named phase."""

    __slots__ = ("_last", "_phases")

    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases
        self._last = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self._phases[phase] += now - self._last
        self._last = now


def _where(record: Record) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _handler_failed(item: _Decoded, exc: BaseException) -> HandlerFailed:
    log.exception("handler_failed", message_id=item.envelope.id, **_where(item.record), exc_info=exc)
    return HandlerFailed(f"{type(exc).__name__}: {exc}")


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:20]]
    return "; ".join(parts)
