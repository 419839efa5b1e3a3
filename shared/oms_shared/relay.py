"""The outbox relay: publishes committed outbox rows to Kafka, in order, then deletes them.

One relay per database publishes: the one holding a session-level advisory lock on
its own connection (the leader). The others wait and try again every poll interval;
when the leader's connection ends, PostgreSQL releases the lock and one of them takes
over. Because only the leader touches the queue, a round needs no transaction and no
row locks, and ONE statement: delete the rows the previous round published and read
more in id order, whole rows until N messages (a row holds one unit of work's
messages, :mod:`oms_shared.outbox`); hand all their messages to the idempotent producer
(as one batch per partition, in row order and, within a row, in the unit of work's
order) and wait for every acknowledgement. (A round trip costs more
than the SQL it carries here: the relay used to take four per round.) Published rows
are therefore deleted by the next round, at most one poll interval later, or when the
relay stops.

The fast lane (:mod:`oms_shared.outbox`): while it leads, the relay is the
:class:`~oms_shared.outbox.Publisher` of its own process's units of work. They write
without a NOTIFY and hand their rows over after the commit; the relay publishes those
from memory at once and deletes them with a later round's statement, which it runs
when a NOTIFY comes (another process wrote), every poll interval, or once a batch of
published rows waits to be deleted. A round reads every committed row not published
yet in id order, handed over or not, and drops what it read from the hand-over queue;
a due round (a NOTIFY came) and any backlog go before the rows handed over. So one
process's rows go out in commit order, and a row another process committed before a
handed-over one goes first once its NOTIFY has arrived: for one key, two writers are
two instances around a rebalance, and the later one reads the earlier one's commit
before it writes (the saga's version check), by which time the NOTIFY is in.

Pacing: a round's batches are closed before they reach the producer, so they go out at
once instead of waiting out the producer's linger (nothing more is added to them), and
the relay paces itself: a round starts no sooner than ``pace_s`` after the previous one
started, rows gathering meanwhile. Idle, a row goes out as soon as it is committed; busy,
rounds are at most one per ``pace_s`` and each waits for its acknowledgements, as the
linger made them before (then it also held every round, idle or not, for 2 ms).

A crash (or a lost connection) after publishing and before that delete republishes
the rows: consumers' inboxes make that harmless, which is also why the delete does not
wait for the WAL flush (``synchronous_commit = off`` on the relay's connection):
losing it in a crash means a republish, never a lost message. The leader sleeps on
LISTEN/NOTIFY (on the same connection) with a poll as fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer

from oms_shared import failpoints
from oms_shared.errors import is_transient
from oms_shared.kafka import KeyHashPartitioner, send_in_batches
from oms_shared.outbox import NOTIFY_CHANNEL, WrittenRow
from oms_shared.retry import Backoff

__all__ = ["OutboxRelay"]

log = structlog.get_logger(__name__)

_RELAY_LOCK = 0x0F15_0002

# For the relay's own connection. The outbox is a queue: after a vacuum the planner
# believes it empty and sequentially scans the whole (mostly empty) heap; measured at
# 150 orders/s that was 25 ms per round. The primary key index reads only the rows at
# the head of the queue.
_SETTINGS = "SET synchronous_commit = off; SET enable_seqscan = off"

_LEAD = "SELECT pg_try_advisory_lock($1)"
# The DELETE's effect is invisible to the SELECT (one snapshot): exclude those rows by id,
# through a hashed subplan: `id <> ALL($2)` compared every row read with every id (a
# parameter array is not hashed), 5.0 against 1.7 ms with 1,000 published and 1,000 new
# rows, and the fast lane lets ~1,000 published rows gather between rounds.
# A row holds a unit of work's messages, from one to thousands (a warehouse closing
# republishes its SKUs' availability): a round takes rows until $1 messages, the last row
# whole, so what it holds is bounded by messages, not rows. Every row has a message, so
# $1 rows always reach $1 messages; the running sum streams over the index's order and
# stops with the LIMIT.
_TAKE = """
WITH published AS (DELETE FROM outbox WHERE id = ANY($2::bigint[]) RETURNING id),
head AS (
    SELECT id, topics, keys, headers, payloads,
           sum(cardinality(topics)) OVER (ORDER BY id) - cardinality(topics) AS before
    FROM outbox WHERE id NOT IN (SELECT id FROM published) ORDER BY id LIMIT $1
)
SELECT id, topics, keys, headers, payloads FROM head WHERE before < $1 ORDER BY id
"""
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

#: A message to publish: its outbox row's id, topic, key, headers, payload.
_Row = tuple[int, str, bytes | None, list[tuple[str, bytes]], bytes]


class OutboxRelay:
    """Moves messages from one service database's outbox to Kafka."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        dsn: str,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        pace_s: float = 0.002,
    ) -> None:
        self._dsn = dsn
        self._producer = producer
        self._partitioner = KeyHashPartitioner()
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._pace_s = pace_s
        #: When the last round started (monotonic seconds).
        self._round_started = 0.0
        self._conn: asyncpg.Connection[Any] | None = None
        self._leading = False
        #: The rows published since the last round, deleted by the next one.
        self._published: set[int] = set()
        #: The messages of rows handed over by this process's units of work, not published yet.
        self._handed: list[_Row] = []
        #: Ids the last two rounds read (and published): their hand-over, if it comes after, is a repeat.
        self._taken: tuple[set[int], set[int]] = (set(), set())
        #: A NOTIFY came: another process wrote rows only a round reads.
        self._notified = False
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        #: Messages published.
        self.published = 0
        #: Of those, messages published from memory (handed over by the fast lane).
        self.published_from_memory = 0
        #: NOTIFYs received while leading (another process committed rows).
        self.notifications = 0

    @property
    def leading(self) -> bool:
        """Whether this relay holds the database's relay lock (publishes)."""
        return self._leading

    @property
    def accepting(self) -> bool:
        """Whether rows handed over now will be published from memory (while leading)."""
        return self._leading and not self._stopping.is_set()

    def hand_over(self, row: WrittenRow) -> None:
        """Publish this committed row's messages (written without a NOTIFY) from memory, soon."""
        last, before = self._taken
        if row.id in last or row.id in before:
            return
        self._handed.extend(
            (row.id, m.topic, m.envelope.key, _encoded(headers), m.envelope.data)
            for m, headers in zip(row.messages, row.headers, strict=True)
        )
        self._wakeup.set()

    def stop(self) -> None:
        """Ask the relay to finish its current round and return."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Publish until stopped; survive database and broker outages by retrying."""
        backoff = Backoff()
        next_round = 0.0
        backlog = False
        try:
            while not self._stopping.is_set():
                try:
                    self._wakeup.clear()
                    # Rows another process wrote before (a NOTIFY came) or a backlog are read
                    # by a round first, in id order, handed-over rows included.
                    if self._handed and not self._notified and not backlog:
                        await self._publish_handed()
                    if self._notified or backlog or time.monotonic() >= next_round or self._deletable:
                        self._notified = False
                        backlog = await self.publish_once() >= self._batch_size
                        next_round = time.monotonic() + self._poll_interval_s
                    backoff.reset()
                    if not (backlog or self._handed or self._notified):
                        await self._sleep(next_round - time.monotonic())
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("relay_retrying", error=repr(exc), delay_s=backoff.peek())
                    self._drop_connection()
                    await self._sleep(backoff.next())
        finally:
            with contextlib.suppress(Exception):
                await self._delete_published()
            self._drop_connection()

    @property
    def _deletable(self) -> bool:
        """A batch of published rows waits for a round to delete them."""
        return len(self._published) >= self._batch_size

    async def publish_once(self) -> int:
        """One round: publish a batch of messages (whole rows) if leading; return how many."""
        conn = await self._leader_connection()
        if conn is None:
            return 0
        await self._pace()
        records = await conn.fetch(_TAKE, self._batch_size, list(self._published))
        self._published = set()
        if not records:
            return 0
        taken = {record["id"] for record in records}
        self._taken = (taken, self._taken[0])
        self._handed = [row for row in self._handed if row[0] not in taken]
        messages = list(_messages(records))
        await self._publish(messages)
        return len(messages)

    async def _publish_handed(self) -> None:
        """Publish the rows handed over, if still leading (else the leader's rounds read them)."""
        await self._pace()
        if self._notified:  # meanwhile another process committed a row: a round reads it first
            return
        rows, self._handed = self._handed, []
        if self._leading:
            await self._publish(rows)
            self.published_from_memory += len(rows)

    async def _pace(self) -> None:
        """Start a round no sooner than ``pace_s`` after the last one started (rows gather meanwhile)."""
        wait = self._round_started + self._pace_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._round_started = time.monotonic()

    async def _publish(self, rows: list[_Row]) -> None:
        await asyncio.gather(*await self._send(rows))
        failpoints.hit("relay.after_publish")
        self._published.update(row[0] for row in rows)
        self.published += len(rows)

    async def _send(self, rows: Iterable[_Row]) -> list[asyncio.Future[Any]]:
        """Hand a round to the producer as batches, one per partition at a time, in row order."""
        return await send_in_batches(self._producer, (row[1:] for row in rows), self._partitioner)

    async def _delete_published(self) -> None:
        if self._published and self._conn is not None and not self._conn.is_closed() and self._leading:
            await self._conn.execute(_DELETE, list(self._published))
        self._published = set()

    async def _leader_connection(self) -> asyncpg.Connection[Any] | None:
        """The relay's connection if it holds the relay lock (taking it if free), else None."""
        if self._conn is None or self._conn.is_closed():
            self._leading = False
            self._conn = await asyncpg.connect(self._dsn)
            await self._conn.execute(_SETTINGS)
            await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        if not self._leading:
            self._leading = bool(await self._conn.fetchval(_LEAD, _RELAY_LOCK))
            if self._leading:
                log.info("relay_leading")
        return self._conn if self._leading else None

    def _on_notify(self, *_: object) -> None:
        if self._leading:  # a follower only retries the lock on its poll interval
            self.notifications += 1
            self._notified = True
            self._wakeup.set()

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()  # no round trip: the connection may already be dead
        self._conn = None
        self._leading = False
        self._published = set()  # the next leader republishes them
        self._handed = []  # and publishes these


def _messages(records: Sequence[asyncpg.Record]) -> Iterable[_Row]:
    """The messages of outbox rows read by a round, in row order and each row's own order."""
    for r in records:
        row_id = r["id"]
        for topic, key, headers, payload in zip(r["topics"], r["keys"], r["headers"], r["payloads"], strict=True):
            yield row_id, topic, key, _encoded(orjson.loads(headers)), payload


def _encoded(headers: Iterable[Sequence[str]]) -> list[tuple[str, bytes]]:
    """A message's headers as the producer takes them, from their (name, text) pairs."""
    return [(name, text.encode()) for name, text in headers]
