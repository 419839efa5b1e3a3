"""A batch's fulfillments: read once before its handlers run, written once after them.

A consumer batch is one transaction. Before its handlers run (the runtime's
``prepare`` hook) the catalogue entries of every SKU its create commands name and
the fulfillments its creates and pick confirmations name are read, one statement
each. The handlers then work on the book: :meth:`FulfillmentBook.get` gives a
fulfillment as the batch has left it so far, :meth:`FulfillmentBook.create` and
:meth:`FulfillmentBook.pack` change it in the book, and at flush the new
fulfillments go in with one statement and the packed ones with another, instead of
one statement per message.

Both writes are conditional (an id not known yet; a fulfillment still picking), as
the reads take no lock: if a concurrent transaction got there first, the counts fall
short and the whole batch is retried from the database's state. Cancels are rare and
write through the store: they call :meth:`FulfillmentBook.settle` first, which writes
what the book holds and forgets that fulfillment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from oms_fulfillment import store
from oms_fulfillment.domain import Fulfillment, Item
from oms_fulfillment.packing import Package
from oms_shared.contracts.fulfillment import CreateFulfillment, PickConfirmed
from oms_shared.errors import RetryableError
from oms_shared.outbox import UnitOfWork

__all__ = ["FulfillmentBook", "prepare"]


class FulfillmentBook:
    """One unit of work's catalogue entries, fulfillments (as of the batch so far) and writes due."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._items: dict[str, Item | None] = {}
        self._fulfillments: dict[str, Fulfillment | None] = {}
        self._created: dict[str, Fulfillment] = {}
        self._packed: dict[str, tuple[Fulfillment, tuple[Package, ...]]] = {}

    @staticmethod
    def of(uow: UnitOfWork) -> FulfillmentBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(FulfillmentBook)

    async def load(self, skus: Iterable[str], fulfillment_ids: Iterable[str]) -> None:
        """Read the catalogue entries of ``skus`` and the fulfillments of ``fulfillment_ids`` not in the book."""
        wanted = sorted({sku for sku in skus if sku not in self._items})
        if wanted:
            found = await store.catalogue(self._uow.conn, wanted)
            self._items.update({sku: found.get(sku) for sku in wanted})
        ids = sorted({i for i in fulfillment_ids if i not in self._fulfillments})
        if ids:
            loaded = await store.load_fulfillments(self._uow.conn, ids)
            self._fulfillments.update({i: loaded.get(i) for i in ids})

    async def catalogue(self, skus: Iterable[str]) -> dict[str, Item]:
        """The catalogue entries of ``skus`` that exist."""
        skus = list(skus)
        await self.load(skus, ())
        return {sku: item for sku in skus if (item := self._items[sku]) is not None}

    async def get(self, fulfillment_id: str) -> Fulfillment | None:
        """The fulfillment as this batch has left it so far; None if unknown."""
        await self.load((), [fulfillment_id])
        return self._fulfillments[fulfillment_id]

    def create(self, planned: Fulfillment) -> None:
        """A new fulfillment (its id unknown so far): inserted at flush."""
        self._fulfillments[planned.fulfillment_id] = planned
        self._created[planned.fulfillment_id] = planned

    def pack(self, packed: Fulfillment, packages: Sequence[Package]) -> None:
        """A picking fulfillment is packed into ``packages``: saved at flush."""
        self._fulfillments[packed.fulfillment_id] = packed
        self._packed[packed.fulfillment_id] = (packed, tuple(packages))

    async def settle(self, fulfillment_id: str) -> None:
        """Another handler is about to read and change this fulfillment: write first, then forget it.

        A fulfillment the book does not hold has nothing pending (every write due is of a
        fulfillment the book holds), so it costs nothing, as in the shipping book.
        """
        if fulfillment_id in self._fulfillments:
            await self.flush()
            del self._fulfillments[fulfillment_id]

    async def flush(self) -> None:
        """Insert the new fulfillments, then save the packed ones: one statement each."""
        created, self._created = list(self._created.values()), {}
        packed, self._packed = list(self._packed.values()), {}
        if created and await store.insert_fulfillments(self._uow.conn, created) != len(created):
            raise RetryableError("a fulfillment of this batch was created concurrently; the retry replays it")
        if packed and await store.save_packed(self._uow.conn, packed) != len(packed):
            raise RetryableError("a fulfillment of this batch changed while packing; the retry reads it again")


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook: read the batch's catalogue entries and fulfillments."""
    await FulfillmentBook.of(uow).load(
        (line.sku for p in payloads if isinstance(p, CreateFulfillment) for line in p.lines),
        (p.fulfillment_id for p in payloads if isinstance(p, (CreateFulfillment, PickConfirmed))),
    )
