"""Inventory's handlers against the real PostgreSQL: stock rows, ledger, reservations, replies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from oms_inventory import reserving, store
from oms_inventory.domain import Decision, Line, Point, plan_sourcing
from oms_inventory.handlers import (
    COMMAND_HANDLERS,
    MOVEMENT_HANDLERS,
    on_commit_stock,
    on_release_stock,
    on_report_short_pick,
    on_reserve_stock,
    on_safety_stock_set,
    on_stock_movement_recorded,
    on_warehouse_upserted,
)
from oms_inventory.one_statement import NeedsTransaction, takes_one_statement
from oms_inventory.reserving import ReserveBook
from oms_inventory.settings import InventorySettings
from oms_inventory.stock_cache import StockCache
from oms_shared import topics
from oms_shared.contracts.common import Coordinates, LineQuantity
from oms_shared.contracts.inventory import (
    AvailabilityChanged,
    CommitStock,
    ReleaseStock,
    ReportShortPick,
    ReserveStock,
    SafetyStockSet,
    ShortPickRecorded,
    StockCommitted,
    StockMovementRecorded,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    WarehouseUpserted,
)
from oms_shared.db import create_pool
from oms_shared.errors import RetryableError
from oms_shared.outbox import CONFLICT_SQLSTATE, OutgoingMessage
from oms_shared.testing import handle, handle_batch, payloads, rolled_back

BERLIN = Coordinates(lat=52.52, lon=13.405)
HAMBURG = Coordinates(lat=53.55, lon=9.99)
MUNICH = Coordinates(lat=48.14, lon=11.58)
POTSDAM = Coordinates(lat=52.39, lon=13.06)  # ship-to: Berlin is nearest, then Hamburg, then Munich

# The proof of conservation (also in the README): rows where on_hand is not the sum of movements.
CONSERVATION_BREACHES = """
SELECT coalesce(s.sku, m.sku) AS sku, coalesce(s.warehouse_id, m.warehouse_id) AS warehouse_id,
       s.on_hand, m.total
FROM stock s
FULL JOIN (SELECT sku, warehouse_id, sum(quantity) AS total FROM movements GROUP BY sku, warehouse_id) m
  ON m.sku = s.sku AND m.warehouse_id = s.warehouse_id
WHERE coalesce(s.on_hand, 0) <> coalesce(m.total, 0)
"""

# Reserved stock is exactly what active reservations hold.
RESERVATION_BREACHES = """
SELECT s.sku, s.warehouse_id, s.reserved, coalesce(r.total, 0) AS held
FROM stock s
LEFT JOIN (SELECT sku, warehouse_id, sum(quantity) AS total FROM reservations WHERE state = 'active'
           GROUP BY sku, warehouse_id) r ON r.sku = s.sku AND r.warehouse_id = s.warehouse_id
WHERE s.reserved <> coalesce(r.total, 0)
"""


#: The statements run as the service plans them (its pool's plan_cache_mode).
PLANS = InventorySettings().db_plan_cache_mode


@pytest.fixture(scope="module")
async def pool(fresh_service_db: Any) -> AsyncIterator[asyncpg.Pool[Any]]:
    db: asyncpg.Pool[Any] = await fresh_service_db("inventory", "oms_inventory.migrations", plan_cache_mode=PLANS)
    yield db
    await db.close()


async def test_the_pool_plans_as_the_service_does(pool: asyncpg.Pool[Any]) -> None:
    assert PLANS == "force_generic_plan"
    assert await pool.fetchval("SHOW plan_cache_mode") == PLANS


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class World:
    """Warehouses and SKUs of one test (unique names, so tests share the database safely)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool
        self.tag = uuid.uuid4().hex[:8]

    def wh(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def sku(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def warehouse(self, name: str, where: Coordinates, *, safety: int = 0, active: bool = True) -> str:
        event = WarehouseUpserted(
            warehouse_id=self.wh(name), name=name, location=where, default_safety_stock=safety, active=active
        )
        await handle(self.pool, on_warehouse_upserted, event)
        return self.wh(name)

    async def receive(self, sku: str, warehouse_id: str, quantity: int) -> list[OutgoingMessage]:
        movement = StockMovementRecorded(
            movement_id=uid("mv"), sku=sku, warehouse_id=warehouse_id, kind="receipt", quantity=quantity
        )
        return await handle(self.pool, on_stock_movement_recorded, movement)

    async def stocked(self, units: int) -> tuple[str, str]:
        """A new SKU with ``units`` on hand at the Berlin warehouse: (sku, warehouse id)."""
        sku, warehouse_id = self.sku("A"), await self.warehouse("BER", BERLIN)
        await self.receive(sku, warehouse_id, units)
        return sku, warehouse_id

    async def level(self, sku: str, warehouse_id: str) -> tuple[int, int, int]:
        row = await self.pool.fetchrow(
            "SELECT on_hand, reserved, safety_stock FROM stock WHERE sku = $1 AND warehouse_id = $2", sku, warehouse_id
        )
        assert row is not None
        return row["on_hand"], row["reserved"], row["safety_stock"]

    async def reservations(self, order_id: str) -> list[tuple[int, str, int, str]]:
        rows = await self.pool.fetch(
            "SELECT line_no, warehouse_id, quantity, state FROM reservations WHERE order_id = $1"
            " ORDER BY line_no, warehouse_id",
            order_id,
        )
        return [(r["line_no"], r["warehouse_id"], r["quantity"], r["state"]) for r in rows]

    async def three_warehouses(self, sku: str, berlin: int, hamburg: int, munich: int) -> tuple[str, str, str]:
        ids = (
            await self.warehouse("BER", BERLIN),
            await self.warehouse("HAM", HAMBURG),
            await self.warehouse("MUC", MUNICH),
        )
        for warehouse_id, units in zip(ids, (berlin, hamburg, munich), strict=True):
            if units:
                await self.receive(sku, warehouse_id, units)
        return ids


@pytest.fixture
def world(pool: asyncpg.Pool[Any]) -> World:
    return World(pool)


def reserve(*lines: tuple[str, int], allow_partial: bool = False, **kw: Any) -> ReserveStock:
    return ReserveStock(
        order_id=uid("O"),
        request_id=uid("R"),
        channel="web",
        ship_to=POTSDAM,
        lines=tuple(LineQuantity(line_no=n, sku=sku, quantity=q) for n, (sku, q) in enumerate(lines, start=1)),
        allow_partial=allow_partial,
        **kw,
    )


def replies(emitted: list[OutgoingMessage]) -> list[OutgoingMessage]:
    return [m for m in emitted if m.topic == topics.INVENTORY_REPLIES.name]


def availability(emitted: list[OutgoingMessage]) -> dict[str, AvailabilityChanged]:
    events = [m for m in emitted if m.topic == topics.INVENTORY_AVAILABILITY.name]
    assert all(m.envelope.key == AvailabilityChanged.model_validate_json(m.envelope.data).sku.encode() for m in events)
    # Written without pydantic: byte for byte what the contract model would write.
    assert all(
        AvailabilityChanged.model_validate_json(m.envelope.data).model_dump_json().encode() == m.envelope.data
        for m in events
    )
    return {a.sku: a for a in payloads(events, AvailabilityChanged)}


async def assert_books_balance(pool: asyncpg.Pool[Any]) -> None:
    assert await pool.fetch(CONSERVATION_BREACHES) == []
    assert await pool.fetch(RESERVATION_BREACHES) == []


class TestRegistration:
    """The handlers are registered for every message type of both subscriptions."""

    def test_every_type_has_a_handler(self) -> None:
        """Four saga commands and three movement events."""
        assert {t.__name__ for t in COMMAND_HANDLERS} == {
            "ReserveStock",
            "ReleaseStock",
            "CommitStock",
            "ReportShortPick",
        }
        assert {t.__name__ for t in MOVEMENT_HANDLERS} == {
            "WarehouseUpserted",
            "StockMovementRecorded",
            "SafetyStockSet",
        }


class TestReserve:
    """ReserveStock sources, reserves with conditional updates and records the decision."""

    async def test_nearest_warehouse_is_reserved(self, world: World) -> None:
        """The whole order goes to the nearest warehouse holding it; the reply names it with its location."""
        sku = world.sku("A")
        ber, ham, _ = await world.three_warehouses(sku, 5, 5, 5)
        cmd = reserve((sku, 2))
        emitted = await handle(world.pool, on_reserve_stock, cmd)
        (reply,) = payloads(replies(emitted), StockReserved)
        assert [(a.warehouse_id, a.line_no, a.quantity) for a in reply.allocations] == [(ber, 1, 2)]
        assert reply.allocations[0].location == BERLIN
        assert reply.unfilled == ()
        assert replies(emitted)[0].envelope.key == cmd.order_id.encode()
        assert await world.level(sku, ber) == (5, 2, 0)
        assert await world.level(sku, ham) == (5, 0, 0)
        assert await world.reservations(cmd.order_id) == [(1, ber, 2, "active")]
        assert availability(emitted)[sku].available == 13
        await assert_books_balance(world.pool)

    async def test_decision_is_recorded_with_candidates(self, world: World) -> None:
        """The operator can see every candidate, its distance, units and score, and what was chosen."""
        sku = world.sku("A")
        ber, ham, muc = await world.three_warehouses(sku, 1, 3, 0)
        cmd = reserve((sku, 3))
        (reply,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReserved)
        row = await world.pool.fetchrow(
            "SELECT * FROM sourcing_decisions WHERE order_id = $1 AND request_id = $2", cmd.order_id, cmd.request_id
        )
        assert row is not None
        assert row["decision_id"] == reply.decision_id
        assert row["outcome"] == "reserved"
        assert [(c["warehouse_id"], c["fillable_units"], c["pick"]) for c in row["candidates"]] == [
            (ber, 1, None),
            (ham, 3, 1),
        ]
        assert row["candidates"][0]["distance_km"] < row["candidates"][1]["distance_km"]
        assert [(a["warehouse_id"], a["quantity"]) for a in row["chosen"]] == [(ham, 3)]
        assert muc not in str(row["candidates"])

    async def test_split_over_warehouses(self, world: World) -> None:
        """No single warehouse holds the order: the fewest warehouses that do are reserved."""
        a, b = world.sku("A"), world.sku("B")
        ber = await world.warehouse("BER", BERLIN)
        muc = await world.warehouse("MUC", MUNICH)
        await world.receive(a, ber, 2)
        await world.receive(b, muc, 4)
        cmd = reserve((a, 2), (b, 4))
        emitted = await handle(world.pool, on_reserve_stock, cmd)
        (reply,) = payloads(replies(emitted), StockReserved)
        assert sorted((x.line_no, x.warehouse_id, x.quantity) for x in reply.allocations) == [(1, ber, 2), (2, muc, 4)]
        assert await world.reservations(cmd.order_id) == [(1, ber, 2, "active"), (2, muc, 4, "active")]
        assert set(availability(emitted)) == {a, b}
        await assert_books_balance(world.pool)

    async def test_all_or_nothing_changes_nothing(self, world: World) -> None:
        """Not enough stock and no partial: a failure reply, no reservation, no availability change."""
        a, b = world.sku("A"), world.sku("B")
        ber, _, _ = await world.three_warehouses(a, 2, 0, 0)
        cmd = reserve((a, 1), (b, 1))
        emitted = await handle(world.pool, on_reserve_stock, cmd)
        (reply,) = payloads(replies(emitted), StockReservationFailed)
        assert reply.reason == "insufficient_stock"
        assert [(u.line_no, u.quantity) for u in reply.unfilled] == [(2, 1)]
        assert await world.level(a, ber) == (2, 0, 0)
        assert await world.reservations(cmd.order_id) == []
        assert availability(emitted) == {}
        outcome = await world.pool.fetchval(
            "SELECT outcome FROM sourcing_decisions WHERE decision_id = $1", reply.decision_id
        )
        assert outcome == "failed"

    async def test_out_of_stock(self, world: World) -> None:
        """No unit anywhere: out_of_stock."""
        cmd = reserve((world.sku("NONE"), 1), allow_partial=True)
        (reply,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReservationFailed)
        assert reply.reason == "out_of_stock"

    async def test_partial_reserves_what_it_can(self, world: World) -> None:
        """With partial allowed the available units are reserved and the rest reported."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 2, 0, 0)
        cmd = reserve((a, 5), allow_partial=True)
        (reply,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReserved)
        assert [(x.warehouse_id, x.quantity) for x in reply.allocations] == [(ber, 2)]
        assert [(u.line_no, u.quantity) for u in reply.unfilled] == [(1, 3)]
        assert await world.level(a, ber) == (2, 2, 0)

    async def test_safety_stock_from_warehouse_default_is_kept(self, world: World) -> None:
        """A warehouse's default safety stock applies to its new stock rows and is never reserved."""
        a = world.sku("A")
        ber = await world.warehouse("BER", BERLIN, safety=2)
        ham = await world.warehouse("HAM", HAMBURG)
        await world.receive(a, ber, 3)
        await world.receive(a, ham, 3)
        assert await world.level(a, ber) == (3, 0, 2)
        cmd = reserve((a, 2))
        (reply,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReserved)
        assert [(x.warehouse_id, x.quantity) for x in reply.allocations] == [(ham, 2)]

    async def test_inactive_and_excluded_warehouses_are_not_used(self, world: World) -> None:
        """A closed warehouse and an excluded one are skipped."""
        a = world.sku("A")
        ber, ham, muc = await world.three_warehouses(a, 5, 5, 5)
        await world.warehouse("BER", BERLIN, active=False)
        cmd = reserve((a, 1), exclude_warehouses=(ham,))
        emitted = await handle(world.pool, on_reserve_stock, cmd)
        (reply,) = payloads(emitted, StockReserved)
        assert [x.warehouse_id for x in reply.allocations] == [muc]
        assert await world.level(a, ber) == (5, 0, 0)
        # The levels the reserve statement returns: every row of the SKU, the closed one promising nothing.
        event = availability(emitted)[a]
        assert event.available == 9
        assert [(w.warehouse_id, w.reserved, w.available) for w in event.warehouses] == sorted(
            [(ber, 0, 0), (ham, 0, 5), (muc, 1, 4)]
        )

    async def test_same_request_twice_has_one_effect(self, world: World) -> None:
        """A repeated request gets the same reply from the stored decision and reserves nothing more."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        cmd = reserve((a, 2))
        first = await handle(world.pool, on_reserve_stock, cmd)
        second = await handle(world.pool, on_reserve_stock, cmd)
        assert payloads(replies(second), StockReserved) == payloads(replies(first), StockReserved)
        assert availability(second) == {}
        assert await world.level(a, ber) == (5, 2, 0)
        assert await world.reservations(cmd.order_id) == [(1, ber, 2, "active")]

    async def test_failed_request_twice_gets_the_same_failure(self, world: World) -> None:
        """A refused request is remembered: the repeat is refused the same way even if stock arrived."""
        a = world.sku("A")
        ber = await world.warehouse("BER", BERLIN)
        cmd = reserve((a, 2))
        (first,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReservationFailed)
        await world.receive(a, ber, 10)
        (second,) = payloads(await handle(world.pool, on_reserve_stock, cmd), StockReservationFailed)
        assert second == first
        assert await world.level(a, ber) == (10, 0, 0)


class TestRelease:
    """ReleaseStock gives the order's active reservations back; idempotent; fine with none."""

    async def reserved_split(self, world: World) -> tuple[ReserveStock, str, str, str]:
        a = world.sku("A")
        ber, ham, _ = await world.three_warehouses(a, 2, 3, 0)
        cmd = reserve((a, 5))
        await handle(world.pool, on_reserve_stock, cmd)
        return cmd, a, ber, ham

    async def test_release_all(self, world: World) -> None:
        """Every active reservation is released and its units become available again."""
        cmd, a, ber, ham = await self.reserved_split(world)
        release = ReleaseStock(order_id=cmd.order_id, request_id=uid("R"))
        emitted = await handle(world.pool, on_release_stock, release)
        (reply,) = payloads(replies(emitted), StockReleased)
        assert sorted((x.warehouse_id, x.quantity) for x in reply.released) == sorted([(ber, 2), (ham, 3)])
        assert await world.level(a, ber) == (2, 0, 0)
        assert await world.level(a, ham) == (3, 0, 0)
        assert {state for *_, state in await world.reservations(cmd.order_id)} == {"released"}
        assert availability(emitted)[a].available == 5
        await assert_books_balance(world.pool)

    async def test_release_one_warehouse(self, world: World) -> None:
        """With a warehouse id only that warehouse's reservations are released."""
        cmd, a, ber, ham = await self.reserved_split(world)
        release = ReleaseStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ham)
        (reply,) = payloads(await handle(world.pool, on_release_stock, release), StockReleased)
        assert [(x.warehouse_id, x.quantity) for x in reply.released] == [(ham, 3)]
        assert await world.level(a, ber) == (2, 2, 0)
        assert await world.level(a, ham) == (3, 0, 0)

    async def test_release_twice_has_one_effect(self, world: World) -> None:
        """The repeat gets the same reply and releases nothing again, even a newer reservation."""
        cmd, a, ber, _ = await self.reserved_split(world)
        release = ReleaseStock(order_id=cmd.order_id, request_id=uid("R"))
        (first,) = payloads(await handle(world.pool, on_release_stock, release), StockReleased)
        again = ReserveStock(
            **{**cmd.model_dump(), "request_id": uid("R"), "lines": (LineQuantity(line_no=1, sku=a, quantity=1),)}
        )
        await handle(world.pool, on_reserve_stock, again)
        emitted = await handle(world.pool, on_release_stock, release)
        assert payloads(replies(emitted), StockReleased) == [first]
        assert availability(emitted) == {}
        assert await world.level(a, ber) == (2, 1, 0)
        await assert_books_balance(world.pool)

    async def test_release_without_reservations(self, world: World) -> None:
        """Nothing was ever reserved: an empty release, no error."""
        release = ReleaseStock(order_id=uid("O"), request_id=uid("R"))
        emitted = await handle(world.pool, on_release_stock, release)
        (reply,) = payloads(replies(emitted), StockReleased)
        assert reply.released == ()
        assert availability(emitted) == {}


class TestCommit:
    """CommitStock ships the reservations at one warehouse: on hand and reserved go down, with movements."""

    async def test_commit_ships_and_records_movements(self, world: World) -> None:
        """One 'shipment' movement per reservation; conservation holds."""
        a, b = world.sku("A"), world.sku("B")
        ber = await world.warehouse("BER", BERLIN)
        await world.receive(a, ber, 5)
        await world.receive(b, ber, 5)
        cmd = reserve((a, 2), (b, 1))
        await handle(world.pool, on_reserve_stock, cmd)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        emitted = await handle(world.pool, on_commit_stock, commit)
        (reply,) = payloads(replies(emitted), StockCommitted)
        assert [(x.line_no, x.sku, x.quantity) for x in reply.committed] == [(1, a, 2), (2, b, 1)]
        assert await world.level(a, ber) == (3, 0, 0)
        assert await world.level(b, ber) == (4, 0, 0)
        movements = await world.pool.fetch(
            "SELECT movement_id, kind, quantity FROM movements WHERE order_id = $1 ORDER BY movement_id", cmd.order_id
        )
        assert [(m["movement_id"], m["kind"], m["quantity"]) for m in movements] == [
            (f"commit:{cmd.order_id}:{ber}:1:{cmd.request_id}", "shipment", -2),
            (f"commit:{cmd.order_id}:{ber}:2:{cmd.request_id}", "shipment", -1),
        ]
        assert {state for *_, state in await world.reservations(cmd.order_id)} == {"committed"}
        assert availability(emitted)[a].warehouses[0].on_hand == 3
        await assert_books_balance(world.pool)

    async def test_commit_only_that_warehouse(self, world: World) -> None:
        """Reservations at other warehouses stay active."""
        a = world.sku("A")
        ber, ham, _ = await world.three_warehouses(a, 2, 3, 0)
        cmd = reserve((a, 5))
        await handle(world.pool, on_reserve_stock, cmd)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ham)
        emitted = await handle(world.pool, on_commit_stock, commit)
        (reply,) = payloads(emitted, StockCommitted)
        assert [(x.warehouse_id, x.quantity) for x in reply.committed] == [(ham, 3)]
        assert await world.level(a, ham) == (0, 0, 0)
        assert await world.level(a, ber) == (2, 2, 0)
        # The commit statement's levels: every warehouse of the SKU, the committed one after it.
        levels = {w.warehouse_id: (w.on_hand, w.reserved) for w in availability(emitted)[a].warehouses}
        assert (levels[ber], levels[ham]) == ((2, 2), (0, 0))
        assert set(levels) == {ber, ham}  # the third warehouse has no stock row of it

    async def test_commit_twice_has_one_effect(self, world: World) -> None:
        """The repeat gets the same reply; stock and movements change once."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 4, 0, 0)
        cmd = reserve((a, 3))
        await handle(world.pool, on_reserve_stock, cmd)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        (first,) = payloads(await handle(world.pool, on_commit_stock, commit), StockCommitted)
        emitted = await handle(world.pool, on_commit_stock, commit)
        assert payloads(replies(emitted), StockCommitted) == [first]
        assert availability(emitted) == {}
        assert await world.level(a, ber) == (1, 0, 0)
        assert await world.pool.fetchval("SELECT count(*) FROM movements WHERE order_id = $1", cmd.order_id) == 1


class TestShortPick:
    """ReportShortPick writes the missing units off and shrinks the reservation."""

    async def test_write_off_shrinks_reservation(self, world: World) -> None:
        """Missing units leave on hand and reserved, as a keyed write_off movement."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        cmd = reserve((a, 3))
        await handle(world.pool, on_reserve_stock, cmd)
        short = ReportShortPick(
            order_id=cmd.order_id,
            request_id=uid("R"),
            warehouse_id=ber,
            shortages=(LineQuantity(line_no=1, sku=a, quantity=2),),
        )
        emitted = await handle(world.pool, on_report_short_pick, short)
        (reply,) = payloads(replies(emitted), ShortPickRecorded)
        assert [(w.line_no, w.quantity) for w in reply.written_off] == [(1, 2)]
        assert await world.level(a, ber) == (3, 1, 0)
        assert await world.reservations(cmd.order_id) == [(1, ber, 1, "active")]
        movement = await world.pool.fetchrow(
            "SELECT kind, quantity FROM movements WHERE movement_id = $1",
            f"shortpick:{short.order_id}:{short.request_id}:1",
        )
        assert movement is not None
        assert (movement["kind"], movement["quantity"]) == ("write_off", -2)
        assert availability(emitted)[a].available == 2
        await assert_books_balance(world.pool)

    async def test_short_pick_twice_has_one_effect(self, world: World) -> None:
        """The repeat gets the same reply and writes nothing off again."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        cmd = reserve((a, 3))
        await handle(world.pool, on_reserve_stock, cmd)
        short = ReportShortPick(
            order_id=cmd.order_id,
            request_id=uid("R"),
            warehouse_id=ber,
            shortages=(LineQuantity(line_no=1, sku=a, quantity=1),),
        )
        (first,) = payloads(await handle(world.pool, on_report_short_pick, short), ShortPickRecorded)
        emitted = await handle(world.pool, on_report_short_pick, short)
        assert payloads(replies(emitted), ShortPickRecorded) == [first]
        assert await world.level(a, ber) == (4, 2, 0)

    async def test_whole_line_missing_closes_the_reservation(self, world: World) -> None:
        """All units missing: the reservation is written off and a later commit ships nothing of it."""
        a, b = world.sku("A"), world.sku("B")
        ber = await world.warehouse("BER", BERLIN)
        await world.receive(a, ber, 2)
        await world.receive(b, ber, 2)
        cmd = reserve((a, 2), (b, 1))
        await handle(world.pool, on_reserve_stock, cmd)
        short = ReportShortPick(
            order_id=cmd.order_id,
            request_id=uid("R"),
            warehouse_id=ber,
            shortages=(LineQuantity(line_no=1, sku=a, quantity=5),),
        )
        (reply,) = payloads(await handle(world.pool, on_report_short_pick, short), ShortPickRecorded)
        assert [(w.line_no, w.quantity) for w in reply.written_off] == [(1, 2)]
        assert await world.reservations(cmd.order_id) == [(1, ber, 0, "written_off"), (2, ber, 1, "active")]
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        (committed,) = payloads(await handle(world.pool, on_commit_stock, commit), StockCommitted)
        assert [(x.line_no, x.quantity) for x in committed.committed] == [(2, 1)]
        assert await world.level(a, ber) == (0, 0, 0)
        await assert_books_balance(world.pool)


class TestMovements:
    """Receipts and adjustments apply once; impossible ones are kept as rejected."""

    async def test_receipt_creates_stock_and_publishes_availability(self, world: World) -> None:
        """The first receipt creates the row (warehouse default safety stock) and announces the SKU."""
        a = world.sku("A")
        ber = await world.warehouse("BER", BERLIN, safety=1)
        emitted = await world.receive(a, ber, 7)
        assert await world.level(a, ber) == (7, 0, 1)
        event = availability(emitted)[a]
        assert event.available == 6
        assert [(w.warehouse_id, w.on_hand, w.safety_stock) for w in event.warehouses] == [(ber, 7, 1)]

    async def test_same_movement_twice_counts_once(self, world: World) -> None:
        """The movement id is the idempotency key."""
        a = world.sku("A")
        ber = await world.warehouse("BER", BERLIN)
        movement = StockMovementRecorded(movement_id=uid("mv"), sku=a, warehouse_id=ber, kind="receipt", quantity=4)
        await handle(world.pool, on_stock_movement_recorded, movement)
        emitted = await handle(world.pool, on_stock_movement_recorded, movement)
        assert await world.level(a, ber) == (4, 0, 0)
        assert availability(emitted) == {}
        await assert_books_balance(world.pool)

    @pytest.mark.parametrize(("quantity", "reason"), [(-3, "below_reserved"), (-6, "negative_on_hand")])
    async def test_impossible_adjustment_is_rejected(self, world: World, quantity: int, reason: str) -> None:
        """An adjustment below reserved or below zero changes nothing and is kept with its reason."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        await handle(world.pool, on_reserve_stock, reserve((a, 3)))
        movement = StockMovementRecorded(
            movement_id=uid("mv"), sku=a, warehouse_id=ber, kind="adjustment", quantity=quantity
        )
        emitted = await handle(world.pool, on_stock_movement_recorded, movement)
        assert emitted == []
        assert await world.level(a, ber) == (5, 3, 0)
        stored = await world.pool.fetchval(
            "SELECT reason FROM rejected_movements WHERE movement_id = $1", movement.movement_id
        )
        assert stored == reason
        assert (
            await world.pool.fetchval("SELECT count(*) FROM movements WHERE movement_id = $1", movement.movement_id)
            == 0
        )

    async def test_adjustment_down_to_reserved_applies(self, world: World) -> None:
        """A stock count may take on hand down to exactly what is reserved."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        await handle(world.pool, on_reserve_stock, reserve((a, 3)))
        movement = StockMovementRecorded(movement_id=uid("mv"), sku=a, warehouse_id=ber, kind="adjustment", quantity=-2)
        await handle(world.pool, on_stock_movement_recorded, movement)
        assert await world.level(a, ber) == (3, 3, 0)
        await assert_books_balance(world.pool)

    async def test_unknown_warehouse_is_rejected(self, world: World) -> None:
        """A movement for a warehouse never registered is kept as rejected and creates no stock."""
        a = world.sku("A")
        movement = StockMovementRecorded(
            movement_id=uid("mv"), sku=a, warehouse_id=world.wh("NOWHERE"), kind="receipt", quantity=3
        )
        assert await handle(world.pool, on_stock_movement_recorded, movement) == []
        assert await world.pool.fetchval("SELECT count(*) FROM stock WHERE sku = $1", a) == 0
        stored = await world.pool.fetchval(
            "SELECT reason FROM rejected_movements WHERE movement_id = $1", movement.movement_id
        )
        assert stored == "unknown_warehouse"

    async def test_safety_stock_set(self, world: World) -> None:
        """Safety stock is set on the row and availability drops by it."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        event = SafetyStockSet(sku=a, warehouse_id=ber, safety_stock=4)
        emitted = await handle(world.pool, on_safety_stock_set, event)
        assert await world.level(a, ber) == (5, 0, 4)
        assert availability(emitted)[a].available == 1

    async def test_safety_stock_for_unknown_warehouse_is_ignored(self, world: World) -> None:
        """No warehouse, no row, no availability event."""
        a = world.sku("A")
        event = SafetyStockSet(sku=a, warehouse_id=world.wh("NOWHERE"), safety_stock=4)
        assert await handle(world.pool, on_safety_stock_set, event) == []
        assert await world.pool.fetchval("SELECT count(*) FROM stock WHERE sku = $1", a) == 0

    async def test_closing_a_warehouse_publishes_its_skus(self, world: World) -> None:
        """Deactivating a warehouse announces the lower availability of every SKU it holds."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 2, 0)
        emitted = await handle(
            world.pool,
            on_warehouse_upserted,
            WarehouseUpserted(warehouse_id=ber, name="BER", location=BERLIN, active=False),
        )
        assert availability(emitted)[a].available == 2
        moved = await handle(
            world.pool,
            on_warehouse_upserted,
            WarehouseUpserted(warehouse_id=ber, name="BER", location=POTSDAM, active=False),
        )
        assert moved == []
        assert await world.pool.fetchval("SELECT lat FROM warehouses WHERE id = $1", ber) == POTSDAM.lat


class TestDatabaseRefusesOversell:
    """The CHECK constraint stops an oversell whatever code runs."""

    async def test_reserved_above_on_hand_is_refused(self, world: World) -> None:
        """A direct UPDATE reserving more than on hand raises CheckViolation."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 3, 0, 0)
        with pytest.raises(asyncpg.CheckViolationError):
            await world.pool.execute(
                "UPDATE stock SET reserved = on_hand + 1 WHERE sku = $1 AND warehouse_id = $2", a, ber
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await world.pool.execute("UPDATE stock SET on_hand = -1 WHERE sku = $1 AND warehouse_id = $2", a, ber)
        assert await world.level(a, ber) == (3, 0, 0)


ONE_STATEMENT_OR_NOT = pytest.mark.parametrize("one_statement", [False, True], ids=["transaction", "one-statement"])


async def batch(pool: asyncpg.Pool[Any], items: list[tuple[Any, Any]], one_statement: bool) -> list[OutgoingMessage]:
    """The batch as the consumer's first attempt runs it: one statement when the runtime would."""
    assert takes_one_statement([payload for _, payload in items])
    return await handle_batch(pool, items, prepare=reserving.prepare, one_statement=one_statement)


class TestReserveBatches:
    """A batch's reserve commands are planned against one locked read and written in one statement."""

    @ONE_STATEMENT_OR_NOT
    async def test_orders_of_one_batch_share_the_units(self, world: World, one_statement: bool) -> None:
        """Five orders for 3 units of one row in one batch: three reserved, two refused, books balance."""
        a, ber = await world.stocked(3)
        commands = [reserve((a, 1)) for _ in range(5)]
        emitted = await batch(world.pool, [(on_reserve_stock, c) for c in commands], one_statement)
        reserved = payloads(replies(emitted), StockReserved)
        failed = payloads(replies(emitted), StockReservationFailed)
        assert [r.order_id for r in reserved] == [c.order_id for c in commands[:3]]
        assert [f.order_id for f in failed] == [c.order_id for c in commands[3:]]
        assert await world.level(a, ber) == (3, 3, 0)
        assert availability(emitted)[a].available == 0  # read after the book wrote its units
        await assert_books_balance(world.pool)

    @ONE_STATEMENT_OR_NOT
    async def test_a_repeat_in_the_same_batch_gets_the_same_answer(self, world: World, one_statement: bool) -> None:
        """The same request twice in one batch (two deliveries): one decision, one reservation."""
        a = world.sku("A")
        ber, _, _ = await world.three_warehouses(a, 5, 0, 0)
        cmd = reserve((a, 2))
        emitted = await batch(world.pool, [(on_reserve_stock, cmd)] * 2, one_statement)
        first, second = payloads(replies(emitted), StockReserved)
        assert first == second
        assert await world.level(a, ber) == (5, 2, 0)
        assert await world.reservations(cmd.order_id) == [(1, ber, 2, "active")]

    async def test_a_refusal_stays_final_after_a_release_in_the_batch(self, world: World) -> None:
        """Refused, then units released in the same batch: the repeat still gets the recorded refusal."""
        a, ber = await world.stocked(2)
        first = reserve((a, 2))
        await handle(world.pool, on_reserve_stock, first)
        later = reserve((a, 2))
        release = ReleaseStock(order_id=first.order_id, request_id=uid("R"))
        items: list[tuple[Any, Any]] = [(on_reserve_stock, later), (on_release_stock, release)]
        emitted = await handle_batch(world.pool, [*items, (on_reserve_stock, later)], prepare=reserving.prepare)
        refused, again = payloads(replies(emitted), StockReservationFailed)
        assert refused == again
        assert await world.level(a, ber) == (2, 0, 0)
        assert availability(emitted)[a].available == 2
        await assert_books_balance(world.pool)

    async def test_release_then_new_order_in_one_batch(self, world: World) -> None:
        """Units released earlier in the batch are reserved by a later order of the same batch."""
        a, ber = await world.stocked(2)
        first = reserve((a, 2))
        await handle(world.pool, on_reserve_stock, first)
        release = ReleaseStock(order_id=first.order_id, request_id=uid("R"))
        second = reserve((a, 2))
        emitted = await handle_batch(
            world.pool,
            [(on_reserve_stock, reserve((a, 1))), (on_release_stock, release), (on_reserve_stock, second)],
            prepare=reserving.prepare,
        )
        assert [r.order_id for r in payloads(replies(emitted), StockReserved)] == [second.order_id]
        assert await world.level(a, ber) == (2, 2, 0)
        await assert_books_balance(world.pool)

    @ONE_STATEMENT_OR_NOT
    async def test_commit_in_the_batch_keeps_the_plan_valid(self, world: World, one_statement: bool) -> None:
        """A commit between reserves of the same row needs no re-read: availability is unchanged."""
        a, ber = await world.stocked(4)
        first = reserve((a, 1))
        await handle(world.pool, on_reserve_stock, first)
        commit = CommitStock(order_id=first.order_id, request_id=uid("R"), warehouse_id=ber)
        items: list[tuple[Any, Any]] = [
            (on_reserve_stock, reserve((a, 1))),
            (on_commit_stock, commit),
            (on_reserve_stock, reserve((a, 2))),
            (on_reserve_stock, reserve((a, 1))),
        ]
        emitted = await batch(world.pool, items, one_statement)
        assert len(payloads(replies(emitted), StockReserved)) == 2
        assert len(payloads(replies(emitted), StockReservationFailed)) == 1
        assert await world.level(a, ber) == (3, 3, 0)
        # The commit wrote after the reserves returned their levels: the event has the commit's on hand.
        (level,) = availability(emitted)[a].warehouses
        assert (level.on_hand, level.reserved) == (3, 3)
        await assert_books_balance(world.pool)

    @ONE_STATEMENT_OR_NOT
    async def test_commits_of_one_batch_are_written_together_and_answered_each(
        self, world: World, one_statement: bool
    ) -> None:
        """Two orders' commits (one delivered twice) in one batch: each answered with its lines, once in stock."""
        a, ber = await world.stocked(5)
        first, second = reserve((a, 2)), reserve((a, 1))
        for cmd in (first, second):
            await handle(world.pool, on_reserve_stock, cmd)
        commits = [CommitStock(order_id=c.order_id, request_id=uid("R"), warehouse_id=ber) for c in (first, second)]
        items: list[tuple[Any, Any]] = [(on_commit_stock, commits[0]), (on_commit_stock, commits[1])]
        emitted = await batch(world.pool, [*items, (on_commit_stock, commits[0])], one_statement)
        answered = payloads(replies(emitted), StockCommitted)
        assert [(r.order_id, [x.quantity for x in r.committed]) for r in answered] == [
            (first.order_id, [2]),
            (second.order_id, [1]),
            (first.order_id, [2]),
        ]
        assert await world.level(a, ber) == (2, 0, 0)
        assert availability(emitted)[a].warehouses[0].on_hand == 2
        if one_statement:  # a repeat from an earlier batch: the write finds its claim and aborts
            with pytest.raises(asyncpg.PostgresError) as raised:
                await batch(world.pool, [(on_commit_stock, commits[1])], one_statement=True)
            assert raised.value.sqlstate == CONFLICT_SQLSTATE
        again = await handle(world.pool, on_commit_stock, commits[1])  # a later repeat replays
        assert [x.quantity for x in payloads(replies(again), StockCommitted)[0].committed] == [1]
        await assert_books_balance(world.pool)

    async def test_a_release_after_a_commit_in_the_batch_sees_it(self, world: World) -> None:
        """The release finds the committed reservations closed: it releases nothing at that warehouse."""
        a, ber = await world.stocked(5)
        cmd = reserve((a, 2))
        await handle(world.pool, on_reserve_stock, cmd)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        release = ReleaseStock(order_id=cmd.order_id, request_id=uid("R"))
        items: list[tuple[Any, Any]] = [(on_commit_stock, commit), (on_release_stock, release)]
        emitted = await handle_batch(world.pool, items, prepare=reserving.prepare)
        assert [m.envelope.type for m in replies(emitted)] == [StockCommitted.ce_type, StockReleased.ce_type]
        assert payloads(replies(emitted), StockReleased)[0].released == ()
        assert await world.level(a, ber) == (3, 0, 0)
        await assert_books_balance(world.pool)

    async def test_the_database_still_refuses_what_the_book_got_wrong(self, world: World) -> None:
        """Stock changed behind the book's back: its write reserves nothing and the batch is retried."""
        a, ber = await world.stocked(2)
        async with rolled_back(world.pool) as uow:
            book = ReserveBook.of(uow)
            cmd = reserve((a, 2))
            await book.load([(cmd.order_id, cmd.request_id)], [a])
            await uow.conn.execute("UPDATE stock SET reserved = 1 WHERE sku = $1 AND warehouse_id = $2", a, ber)
            plan = plan_sourcing([Line(1, a, 2)], Point(0, 0), book.stock([a]), max_split=3, allow_partial=False)
            book.record(cmd, Decision.of("d-" + uid("x"), plan), Point(0, 0), plan.candidates)
            with pytest.raises(RetryableError, match="reserved 0 of 1 stock rows"):
                await book.flush()
        assert await world.level(a, ber) == (2, 0, 0)


class TestOneStatementBatches:
    """A batch of reserves and commits only is read once without locks and written in one
    statement that aborts whole (OMS02) if anything it read has changed; the runtime then
    replays it in a transaction (the locking path above)."""

    @staticmethod
    def changing_after_the_read(sql: str, *args: Any) -> Any:
        async def prepare(uow: Any, batch_payloads: Any) -> None:
            await reserving.prepare(uow, batch_payloads)
            await uow.conn.execute(sql, *args)  # another writer, between the read and the write

        return prepare

    @pytest.mark.parametrize("change", ["the reserved row", "another row of the SKU", "a new row of the SKU"])
    async def test_stock_changed_since_the_read_aborts_the_batch(self, world: World, change: str) -> None:
        a = world.sku("A")
        ber, ham, _ = await world.three_warehouses(a, 5, 2, 0)
        sql, args = {
            "the reserved row": ("UPDATE stock SET safety_stock = 1 WHERE sku = $1 AND warehouse_id = $2", (a, ber)),
            "another row of the SKU": (
                "UPDATE stock SET safety_stock = 1 WHERE sku = $1 AND warehouse_id = $2",
                (a, ham),
            ),
            "a new row of the SKU": ("INSERT INTO stock (sku, warehouse_id) VALUES ($1, $2)", (a, world.wh("MUC"))),
        }[change]
        cmd, message_id = reserve((a, 2)), uid("M")
        with pytest.raises(asyncpg.PostgresError) as raised:
            await handle_batch(
                world.pool, [(on_reserve_stock, cmd)], prepare=self.changing_after_the_read(sql, *args),
                one_statement=True, message_ids=[message_id],
            )  # fmt: skip
        assert raised.value.sqlstate == CONFLICT_SQLSTATE
        assert await world.reservations(cmd.order_id) == []
        assert (
            await world.pool.fetchval("SELECT count(*) FROM sourcing_decisions WHERE order_id = $1", cmd.order_id) == 0
        )
        emitted = await handle_batch(world.pool, [(on_reserve_stock, cmd)], prepare=reserving.prepare)
        assert [r.order_id for r in payloads(replies(emitted), StockReserved)] == [cmd.order_id]
        await assert_books_balance(world.pool)

    async def test_a_repeat_from_an_earlier_batch_aborts_then_gets_the_recorded_answer(self, world: World) -> None:
        a, ber = await world.stocked(5)
        cmd = reserve((a, 2))
        (first,) = payloads(
            replies(await batch(world.pool, [(on_reserve_stock, cmd)], one_statement=True)), StockReserved
        )
        with pytest.raises(asyncpg.PostgresError) as raised:
            await batch(world.pool, [(on_reserve_stock, cmd)], one_statement=True)
        assert raised.value.sqlstate == CONFLICT_SQLSTATE
        (again,) = payloads(
            replies(await batch(world.pool, [(on_reserve_stock, cmd)], one_statement=False)), StockReserved
        )
        assert again == first
        assert await world.level(a, ber) == (5, 2, 0)

    async def test_a_reservation_closed_since_the_read_aborts_the_commit(self, world: World) -> None:
        a, ber = await world.stocked(5)
        cmd = reserve((a, 2))
        await handle(world.pool, on_reserve_stock, cmd)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        released = """WITH r AS (UPDATE reservations SET state = 'released' WHERE order_id = $1
                                 RETURNING sku, warehouse_id, quantity)
                      UPDATE stock s SET reserved = s.reserved - r.quantity FROM r
                      WHERE s.sku = r.sku AND s.warehouse_id = r.warehouse_id"""  # a release meanwhile
        with pytest.raises(asyncpg.PostgresError) as raised:
            await handle_batch(
                world.pool, [(on_commit_stock, commit)], prepare=self.changing_after_the_read(released, cmd.order_id),
                one_statement=True,
            )  # fmt: skip
        assert raised.value.sqlstate == CONFLICT_SQLSTATE
        assert await world.level(a, ber) == (5, 0, 0)  # released, nothing committed, no movement
        await assert_books_balance(world.pool)

    async def test_an_order_reserving_and_committing_in_one_batch_takes_a_transaction(self, world: World) -> None:
        a, ber = await world.stocked(5)
        cmd = reserve((a, 2))
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        with pytest.raises(NeedsTransaction):
            await batch(world.pool, [(on_reserve_stock, cmd), (on_commit_stock, commit)], one_statement=True)
        assert not takes_one_statement([cmd, ReleaseStock(order_id=cmd.order_id, request_id=uid("R"))])

    async def test_fifty_racing_batches_for_twenty_units(self, world: World, stack: Any) -> None:
        """50 one-order batches at once, each first as one statement and replayed in a transaction
        when that aborts, as the runtime does: exactly 20 units reserved, never more."""
        a = world.sku("HOT")
        ids = await world.three_warehouses(a, 7, 7, 6)
        dsn = await stack.provision_service(stack.admin_url(), "inventory_test")
        racing = await create_pool(dsn, size=50, plan_cache_mode=PLANS)

        async def as_the_runtime(cmd: ReserveStock) -> list[OutgoingMessage]:
            try:
                return await batch(racing, [(on_reserve_stock, cmd)], one_statement=True)
            except (asyncpg.PostgresError, NeedsTransaction):
                return await batch(racing, [(on_reserve_stock, cmd)], one_statement=False)

        try:
            results = await asyncio.gather(*(as_the_runtime(reserve((a, 1))) for _ in range(50)))
        finally:
            await racing.close()
        reserved = [r for emitted in results for r in payloads(replies(emitted), StockReserved)]
        failed = [r for emitted in results for r in payloads(replies(emitted), StockReservationFailed)]
        assert (len(reserved), len(failed)) == (20, 30)
        levels = [await world.level(a, wh) for wh in ids]
        assert sum(reserved_units for _, reserved_units, _ in levels) == 20
        await assert_books_balance(world.pool)


class TestStockCache:
    """One-statement batches keep the rows they left (oms_inventory.stock_cache): a batch
    that only reserves SKUs held there plans without reading them, and its write's checks
    stand between a stale row and the database."""

    @staticmethod
    def no_read(monkeypatch: pytest.MonkeyPatch) -> None:
        async def refuse(*_: Any) -> None:
            raise AssertionError("the batch read the stock")

        monkeypatch.setattr(store, "batch_context", refuse)

    async def test_a_batch_plans_from_the_rows_the_last_batch_left(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a = world.sku("A")
        ber, ham, _ = await world.three_warehouses(a, 2, 3, 0)
        cache = StockCache(100_000)
        first = await handle_batch(world.pool, [(on_reserve_stock, reserve((a, 2)))], prepare=cache.prepare,
                                   one_statement=True)  # fmt: skip
        assert len(payloads(replies(first), StockReserved)) == 1
        assert len(cache) >= 1  # the first batch filled it with the catalogue
        self.no_read(monkeypatch)
        commands = [reserve((a, 2)), reserve((a, 2))]
        emitted = await handle_batch(world.pool, [(on_reserve_stock, c) for c in commands], prepare=cache.prepare,
                                     one_statement=True)  # fmt: skip
        (reserved,) = payloads(replies(emitted), StockReserved)
        assert [(x.warehouse_id, x.quantity) for x in reserved.allocations] == [(ham, 2)]  # Berlin's 2 were taken
        assert [f.order_id for f in payloads(replies(emitted), StockReservationFailed)] == [commands[1].order_id]
        assert (await world.level(a, ber), await world.level(a, ham)) == ((2, 2, 0), (3, 2, 0))
        assert availability(emitted)[a].available == 1
        await assert_books_balance(world.pool)

    async def test_a_commit_leaves_its_rows_for_the_next_batch(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a, ber = await world.stocked(5)
        cache = StockCache(100_000)
        cmd = reserve((a, 2))
        await handle_batch(world.pool, [(on_reserve_stock, cmd)], prepare=cache.prepare, one_statement=True)
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=ber)
        await handle_batch(world.pool, [(on_commit_stock, commit)], prepare=cache.prepare, one_statement=True)
        self.no_read(monkeypatch)
        emitted = await handle_batch(world.pool, [(on_reserve_stock, reserve((a, 3)))], prepare=cache.prepare,
                                     one_statement=True)  # fmt: skip
        assert len(payloads(replies(emitted), StockReserved)) == 1
        assert await world.level(a, ber) == (3, 3, 0)
        await assert_books_balance(world.pool)

    @staticmethod
    async def cached(world: World, cache: StockCache, cmd: ReserveStock, message_id: str | None = None) -> Any:
        ids = [message_id] if message_id else None
        return await handle_batch(world.pool, [(on_reserve_stock, cmd)], prepare=cache.prepare, one_statement=True,
                                  message_ids=ids)  # fmt: skip

    @staticmethod
    async def take_the_rest_behind(world: World, sku: str, warehouse_id: str) -> None:
        """Another instance reserves what the first order left at the warehouse (4 of 5)."""
        await world.pool.execute(
            "UPDATE stock SET reserved = 5 WHERE sku = $1 AND warehouse_id = $2", sku, warehouse_id
        )
        await world.pool.execute(
            "INSERT INTO reservations (order_id, request_id, line_no, warehouse_id, sku, quantity, state"
            ", reserved_quantity) VALUES ($1, 'R', 1, $2, $3, 4, 'active', 4)", uid("O"), warehouse_id, sku,
        )  # fmt: skip

    @pytest.mark.parametrize(
        "change", ["the row", "a new row of the SKU", "the warehouse moved", "the warehouse closed"]
    )
    async def test_rows_gone_stale_abort_the_batch_and_are_read_again(self, world: World, change: str) -> None:
        a = world.sku("A")
        ber, ham, _ = await world.three_warehouses(a, 5, 5, 0)
        cache = StockCache(100_000)
        await self.cached(world, cache, reserve((a, 1)))
        expected = ham  # Berlin (the nearest) cannot serve the next order any more
        if change == "the row":
            await self.take_the_rest_behind(world, a, ber)
        elif change == "a new row of the SKU":
            new = await world.warehouse("NEW", POTSDAM)
            await world.pool.execute(
                "INSERT INTO stock (sku, warehouse_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", a, new
            )
            expected = ber  # the new row holds nothing: Berlin still serves
        elif change == "the warehouse moved":
            await world.pool.execute("UPDATE warehouses SET lat = 48.14, lon = 11.58 WHERE id = $1", ber)
        else:
            await world.pool.execute("UPDATE warehouses SET active = false WHERE id = $1", ber)
        cmd, message_id = reserve((a, 2)), uid("M")
        with pytest.raises(asyncpg.PostgresError) as raised:
            await self.cached(world, cache, cmd, message_id)
        assert raised.value.sqlstate == CONFLICT_SQLSTATE
        assert await world.reservations(cmd.order_id) == []
        # The next attempt (the runtime replays it) reads the rows as they are now.
        (reserved,) = payloads(replies(await self.cached(world, cache, cmd, message_id)), StockReserved)
        assert [(x.warehouse_id, x.quantity) for x in reserved.allocations] == [(expected, 2)]
        await assert_books_balance(world.pool)

    async def test_a_batch_that_rolls_back_puts_nothing_back(self, world: World) -> None:
        a, ber = await world.stocked(5)
        cache = StockCache(100_000)
        cmd = reserve((a, 1))
        await self.cached(world, cache, cmd)
        with pytest.raises(asyncpg.PostgresError):  # a repeat from an earlier batch: its write aborts
            await self.cached(world, cache, cmd)
        await self.take_the_rest_behind(world, a, ber)
        # Planned from rows kept by the batch that rolled back, this would abort; it reads instead.
        emitted = await self.cached(world, cache, later := reserve((a, 1)))
        assert [f.order_id for f in payloads(replies(emitted), StockReservationFailed)] == [later.order_id]
        await assert_books_balance(world.pool)

    async def test_two_instances_racing_with_their_own_caches_never_oversell(self, world: World, stack: Any) -> None:
        """50 one-order batches from two consumers, each with its own cache, first as one statement
        and replayed in a transaction when that aborts: exactly 20 units reserved."""
        a = world.sku("HOT")
        ids = await world.three_warehouses(a, 7, 7, 6)
        dsn = await stack.provision_service(stack.admin_url(), "inventory_test")
        racing = await create_pool(dsn, size=50, plan_cache_mode=PLANS)
        caches = [StockCache(100_000), StockCache(100_000)]

        async def as_the_runtime(cmd: ReserveStock, cache: StockCache) -> list[OutgoingMessage]:
            try:
                return await handle_batch(racing, [(on_reserve_stock, cmd)], prepare=cache.prepare, one_statement=True)
            except (asyncpg.PostgresError, NeedsTransaction):
                return await batch(racing, [(on_reserve_stock, cmd)], one_statement=False)

        try:
            for _ in range(2):  # the caches hold the SKU's rows before the race
                for cache in caches:
                    await handle_batch(racing, [(on_reserve_stock, reserve((world.sku("OTHER"), 1)))],
                                       prepare=cache.prepare, one_statement=True)  # fmt: skip
            results = await asyncio.gather(*(as_the_runtime(reserve((a, 1)), caches[i % 2]) for i in range(50)))
        finally:
            await racing.close()
        reserved = [r for emitted in results for r in payloads(replies(emitted), StockReserved)]
        assert len(reserved) == 20
        levels = [await world.level(a, wh) for wh in ids]
        assert sum(reserved_units for _, reserved_units, _ in levels) == 20
        await assert_books_balance(world.pool)

    @staticmethod
    async def commit_of(world: World, cache: StockCache, cmd: ReserveStock, warehouse_id: str) -> Any:
        commit = CommitStock(order_id=cmd.order_id, request_id=uid("R"), warehouse_id=warehouse_id)
        return await handle_batch(world.pool, [(on_commit_stock, commit)], prepare=cache.prepare, one_statement=True,
                                  message_ids=[uid("M")])  # fmt: skip

    async def reserved_in_cache(
        self, world: World, *, units_of_b: int = 0
    ) -> tuple[str, str, str, StockCache, ReserveStock]:
        """SKUs A and B with 5 units each at Berlin, and an order for 2 A (and ``units_of_b`` B)
        reserved through a cache that keeps reservations: (a, b, Berlin, the cache, the order's command)."""
        a, ber = await world.stocked(5)
        b = world.sku("B")
        await world.receive(b, ber, 5)
        cache = StockCache(100_000, orders=1_000)
        cmd = reserve((a, 2), (b, units_of_b)) if units_of_b else reserve((a, 2))
        await self.cached(world, cache, cmd)
        return a, b, ber, cache, cmd

    async def assert_commit_aborts(self, world: World, cache: StockCache, cmd: ReserveStock, warehouse_id: str) -> None:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await self.commit_of(world, cache, cmd, warehouse_id)
        assert raised.value.sqlstate == CONFLICT_SQLSTATE

    async def test_a_commit_closes_the_reservations_its_order_left_without_a_read(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a, b, ber, cache, cmd = await self.reserved_in_cache(world, units_of_b=1)
        self.no_read(monkeypatch)
        (committed,) = payloads(replies(await self.commit_of(world, cache, cmd, ber)), StockCommitted)
        assert [(x.line_no, x.sku, x.quantity) for x in committed.committed] == [(1, a, 2), (2, b, 1)]
        assert await world.reservations(cmd.order_id) == [(1, ber, 2, "committed"), (2, ber, 1, "committed")]
        assert (await world.level(a, ber), await world.level(b, ber)) == ((3, 0, 0), (4, 0, 0))
        await assert_books_balance(world.pool)

    async def test_a_reservation_the_cache_does_not_hold_aborts_the_commit(self, world: World) -> None:
        """Another reservation of the order at that warehouse (made by a transaction, or by another
        instance while the order's partition was elsewhere): committing only the cached ones would
        leave it reserved for ever."""
        a, b, ber, cache, cmd = await self.reserved_in_cache(world)
        await world.pool.execute(
            "UPDATE stock SET reserved = reserved + 1 WHERE sku = $1 AND warehouse_id = $2", b, ber
        )
        await world.pool.execute(
            "INSERT INTO reservations (order_id, request_id, line_no, warehouse_id, sku, quantity, reserved_quantity)"
            " VALUES ($1, 'EARLIER', 2, $2, $3, 1, 1)", cmd.order_id, ber, b,
        )  # fmt: skip
        await self.assert_commit_aborts(world, cache, cmd, ber)
        # The runtime's replay reads the order's reservations: both are committed.
        (committed,) = payloads(replies(await self.commit_of(world, cache, cmd, ber)), StockCommitted)
        assert sorted((x.sku, x.quantity) for x in committed.committed) == [(a, 2), (b, 1)]
        assert (await world.level(a, ber), await world.level(b, ber)) == ((3, 0, 0), (4, 0, 0))
        await assert_books_balance(world.pool)

    async def test_a_reservation_changed_behind_the_cache_aborts_the_commit(self, world: World) -> None:
        a, _, ber, cache, cmd = await self.reserved_in_cache(world)
        # Units the cache does not know (the stock row is left alone, so only the reservation's check can tell).
        await world.pool.execute("UPDATE reservations SET quantity = 1 WHERE order_id = $1", cmd.order_id)
        await self.assert_commit_aborts(world, cache, cmd, ber)
        assert await world.reservations(cmd.order_id) == [(1, ber, 1, "active")]
        assert await world.level(a, ber) == (5, 2, 0)
        await world.pool.execute("UPDATE reservations SET quantity = 2 WHERE order_id = $1", cmd.order_id)
        await assert_books_balance(world.pool)

    async def test_a_released_order_is_not_committed_from_the_cache(self, world: World) -> None:
        a, _, ber, cache, cmd = await self.reserved_in_cache(world)
        await handle(world.pool, on_release_stock, ReleaseStock(order_id=cmd.order_id, request_id=uid("R")))
        await self.assert_commit_aborts(world, cache, cmd, ber)
        (committed,) = payloads(replies(await self.commit_of(world, cache, cmd, ber)), StockCommitted)
        assert committed.committed == ()
        assert await world.level(a, ber) == (5, 0, 0)
        await assert_books_balance(world.pool)


class TestConcurrentReservations:
    """Many orders racing for the last units never oversell."""

    async def test_fifty_orders_for_twenty_units(self, world: World, stack: Any) -> None:
        """50 concurrent one-unit orders on 20 units over 3 warehouses: exactly 20 reserved, 30 refused."""
        a = world.sku("HOT")
        ids = await world.three_warehouses(a, 7, 7, 6)
        dsn = await stack.provision_service(stack.admin_url(), "inventory_test")
        racing = await create_pool(dsn, size=50, plan_cache_mode=PLANS)
        try:
            commands = [reserve((a, 1)) for _ in range(50)]
            results = await asyncio.gather(*(handle(racing, on_reserve_stock, cmd) for cmd in commands))
        finally:
            await racing.close()
        reserved = [r for emitted in results for r in payloads(replies(emitted), StockReserved)]
        failed = [r for emitted in results for r in payloads(replies(emitted), StockReservationFailed)]
        assert (len(reserved), len(failed)) == (20, 30)
        assert {f.reason for f in failed} == {"out_of_stock"}
        levels = [await world.level(a, wh) for wh in ids]
        assert sum(reserved_units for _, reserved_units, _ in levels) == 20
        assert all(r <= on_hand for on_hand, r, _ in levels)
        assert await world.pool.fetchval("SELECT sum(quantity) FROM reservations WHERE sku = $1", a) == 20
        await assert_books_balance(world.pool)
