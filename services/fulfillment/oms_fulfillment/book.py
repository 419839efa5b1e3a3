"""What a batch's handlers read, loaded once per batch (the runtime's ``prepare`` hook).

A consumer batch is one transaction. Before its handlers run, the catalogue entries of
every SKU its create commands name and every fulfillment its pick confirmations name
are read with one statement each, instead of one per message.

A preloaded fulfillment is handed out once (:meth:`FulfillmentBook.take`) and dropped
when another handler of the batch is about to change it (:meth:`forget`), so no handler
works from a state the batch itself has made stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from oms_fulfillment import store
from oms_fulfillment.domain import Fulfillment, Item
from oms_shared.contracts.fulfillment import CreateFulfillment, PickConfirmed
from oms_shared.outbox import UnitOfWork

__all__ = ["FulfillmentBook", "prepare"]


class FulfillmentBook:
    """One unit of work's preloaded catalogue entries and fulfillments."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._items: dict[str, Item | None] = {}
        self._fulfillments: dict[str, Fulfillment | None] = {}

    @staticmethod
    def of(uow: UnitOfWork) -> FulfillmentBook:
        """The book of ``uow`` (one per unit of work)."""
        return uow.part(FulfillmentBook)

    async def flush(self) -> None:
        """Nothing to write: the handlers write through the store."""

    async def load(self, skus: Iterable[str], fulfillment_ids: Iterable[str]) -> None:
        """Read the catalogue entries of ``skus`` and the fulfillments of ``fulfillment_ids``."""
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

    async def take(self, fulfillment_id: str) -> Fulfillment | None:
        """The fulfillment as preloaded (once), else as it is now; None if unknown."""
        if fulfillment_id in self._fulfillments:
            return self._fulfillments.pop(fulfillment_id)
        return await store.load_fulfillment(self._uow.conn, fulfillment_id)

    def forget(self, fulfillment_id: str) -> None:
        """A handler is about to change this fulfillment: later handlers must read it afresh."""
        self._fulfillments.pop(fulfillment_id, None)


async def prepare(uow: UnitOfWork, payloads: Sequence[Any]) -> None:
    """The runtime's per-batch hook: load the batch's catalogue entries and picked fulfillments."""
    await FulfillmentBook.of(uow).load(
        (line.sku for p in payloads if isinstance(p, CreateFulfillment) for line in p.lines),
        (p.fulfillment_id for p in payloads if isinstance(p, PickConfirmed)),
    )
