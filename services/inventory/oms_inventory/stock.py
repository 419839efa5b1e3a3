"""The rules of stock rows, pure: availability to promise, movements, short-pick write-offs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from oms_inventory.domain import Line

__all__ = [
    "Movement",
    "MovementVerdict",
    "ReservedLine",
    "SkuAvailability",
    "StockRow",
    "WarehouseLevel",
    "availability",
    "judge_movement",
    "plan_write_offs",
    "written_off",
]


# --- availability ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WarehouseLevel:
    """The stock row of one SKU at one warehouse, and whether that warehouse is in service."""

    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    active: bool = True

    @property
    def available(self) -> int:
        """What can be promised from here: never negative, nothing from an inactive warehouse."""
        if not self.active:
            return 0
        return max(0, self.on_hand - self.reserved - self.safety_stock)


@dataclass(frozen=True, slots=True)
class SkuAvailability:
    """Available to promise of one SKU, summed over warehouses, with the breakdown."""

    sku: str
    available: int
    warehouses: tuple[WarehouseLevel, ...]


def availability(levels: Iterable[WarehouseLevel]) -> list[SkuAvailability]:
    """Group stock rows by SKU (sorted) and sum what each warehouse can promise."""
    by_sku: dict[str, list[WarehouseLevel]] = defaultdict(list)
    for level in levels:
        by_sku[level.sku].append(level)
    return [
        SkuAvailability(
            sku,
            sum(level.available for level in rows),
            tuple(sorted(rows, key=lambda level: level.warehouse_id)),
        )
        for sku, rows in sorted(by_sku.items())
    ]


# --- movements -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Movement:
    """A signed change of on-hand stock with its idempotency key."""

    movement_id: str
    sku: str
    warehouse_id: str
    kind: str
    quantity: int
    reason: str = ""


class MovementVerdict(Enum):
    """What to do with a recorded stock movement."""

    APPLY = "apply"
    DUPLICATE = "duplicate"
    UNKNOWN_WAREHOUSE = "unknown_warehouse"
    NEGATIVE_ON_HAND = "negative_on_hand"
    BELOW_RESERVED = "below_reserved"

    @property
    def rejected(self) -> bool:
        """The movement is refused and recorded as such (no state change)."""
        return self not in (MovementVerdict.APPLY, MovementVerdict.DUPLICATE)


@dataclass(frozen=True, slots=True)
class StockRow:
    """The (locked) stock row a movement is for, and whether that movement's key was seen."""

    on_hand: int
    reserved: int
    movement_seen: bool


def judge_movement(row: StockRow | None, quantity: int) -> MovementVerdict:
    """A movement applies once, to a known warehouse (``row`` None: unknown), never below 0 or reserved."""
    if row is None:
        return MovementVerdict.UNKNOWN_WAREHOUSE
    if row.movement_seen:
        return MovementVerdict.DUPLICATE
    after = row.on_hand + quantity
    if after < 0:
        return MovementVerdict.NEGATIVE_ON_HAND
    if after < row.reserved:
        return MovementVerdict.BELOW_RESERVED
    return MovementVerdict.APPLY


# --- short picks -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReservedLine:
    """An active reservation of one order line at one warehouse (from one reserve request)."""

    request_id: str
    line_no: int
    sku: str
    quantity: int


def plan_write_offs(active: Sequence[ReservedLine], shortages: Iterable[Line]) -> list[ReservedLine]:
    """How much to take off each active reservation for the missing units.

    Missing units are matched by line number and SKU, never more than is reserved
    for the line (oldest request first). The result names each reservation and
    the units to write off from it.
    """
    missing: dict[tuple[int, str], int] = defaultdict(int)
    for shortage in shortages:
        missing[(shortage.line_no, shortage.sku)] += shortage.quantity
    cuts: list[ReservedLine] = []
    for row in active:
        key = (row.line_no, row.sku)
        units = min(missing.get(key, 0), row.quantity)
        if units > 0:
            missing[key] -= units
            cuts.append(ReservedLine(row.request_id, row.line_no, row.sku, units))
    return cuts


def written_off(cuts: Iterable[ReservedLine]) -> list[Line]:
    """The units written off per order line (the reply to a short pick), by line number."""
    units: dict[tuple[int, str], int] = defaultdict(int)
    for cut in cuts:
        units[(cut.line_no, cut.sku)] += cut.quantity
    return [Line(line_no, sku, quantity) for (line_no, sku), quantity in sorted(units.items())]
