"""The unit of work's batch parts flush in first-use order, including parts used while flushing."""

from __future__ import annotations

from typing import Any

import pytest

from oms_shared.envelope import derived_message_id, new_message_id
from oms_shared.outbox import UnitOfWork
from oms_shared.topics import Topic

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


def test_without_a_database_ids_are_derived_from_each_cause_in_emit_order() -> None:
    """A stateless consumer's batch emits the same ids when handled again (the receivers' inboxes drop repeats)."""
    topic = Topic("oms.tests.events.v1", "order_id", "tests")
    first, second = new_message_id(), new_message_id()

    def emitted(causes: list[str]) -> list[str]:
        work = UnitOfWork(None, "tests")
        assert work.stateless
        return [work.emit_json(topic, "t", b"{}", key="k", causation_id=c).id for c in causes]

    ids = emitted([first, second, first])
    assert ids == [derived_message_id(first, 0), derived_message_id(second, 0), derived_message_id(first, 1)]
    assert emitted([first, second, first]) == ids
    assert len(set(ids)) == 3


def test_without_a_database_the_connection_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no database"):
        _ = UnitOfWork(None, "tests").conn


def test_with_a_database_ids_are_fresh() -> None:
    conn: Any = object()
    work = UnitOfWork(conn, "tests")
    assert not work.stateless
    a = work.emit_json(Topic("oms.tests.events.v1", "order_id", "tests"), "t", b"{}", key="k", causation_id="c").id
    b = work.emit_json(Topic("oms.tests.events.v1", "order_id", "tests"), "t", b"{}", key="k", causation_id="c").id
    assert a != b
