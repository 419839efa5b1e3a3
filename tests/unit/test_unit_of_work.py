"""The unit of work's batch parts flush in first-use order, including parts used while flushing."""

from __future__ import annotations

from typing import Any

from oms_shared.outbox import UnitOfWork

flushed: list[str] = []


class Events:
    def __init__(self, uow: UnitOfWork) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> None:
        self.items.append(item)

    async def flush(self) -> None:
        flushed.append("events:" + ",".join(self.items))


class Writes:
    """Like a book whose write changes what a later event reports: it adds to Events while flushing."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def flush(self) -> None:
        flushed.append("writes")
        self.uow.part(Events).add("from-writes")


def uow() -> UnitOfWork:
    conn: Any = None  # flush_parts touches no database
    return UnitOfWork(conn, "tests")


async def test_a_part_used_while_flushing_gathers_before_its_own_flush() -> None:
    flushed.clear()
    work = uow()
    work.part(Writes)
    work.part(Events).add("handler")
    await work.flush_parts()
    assert flushed == ["writes", "events:handler,from-writes"]


async def test_a_part_already_flushed_is_made_again_and_flushed_last() -> None:
    flushed.clear()
    work = uow()
    work.part(Events).add("handler")
    work.part(Writes)
    await work.flush_parts()
    assert flushed == ["events:handler", "writes", "events:from-writes"]
    await work.flush_parts()
    assert flushed == ["events:handler", "writes", "events:from-writes"]  # nothing left over
