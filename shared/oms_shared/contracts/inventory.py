"""Inventory's API: the commands it accepts, its replies, stock movements and availability.

Commands and replies travel keyed by ``order_id`` on ``oms.inventory.commands.v1`` /
``oms.inventory.replies.v1``. Every command carries ``request_id``, the saga's
idempotency key for that step: the same request applied twice has one effect and
gets the same reply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, LineQuantity, StrictModel

__all__ = [
    "Allocation",
    "AvailabilityChanged",
    "CommitStock",
    "ReleaseStock",
    "ReportShortPick",
    "ReserveStock",
    "SafetyStockSet",
    "ShortPickRecorded",
    "StockCommitted",
    "StockMovementRecorded",
    "StockReleased",
    "StockReservationFailed",
    "StockReserved",
    "WarehouseAvailability",
    "WarehouseUpserted",
]


# --- commands (saga -> inventory) ----------------------------------------------------
class ReserveStock(Contract):
    """Source and reserve ``lines`` for an order, nearest warehouses first.

    With ``allow_partial`` false it is all or nothing; with true, whatever can be
    reserved is, and the rest is reported as ``unfilled``.
    """

    ce_type = "oms.inventory.reserve-stock.v1"
    order_id: str
    request_id: str
    channel: str
    ship_to: Coordinates
    lines: tuple[LineQuantity, ...] = Field(min_length=1)
    allow_partial: bool = False
    max_split: int = Field(default=3, ge=1)
    exclude_warehouses: tuple[str, ...] = ()


class ReleaseStock(Contract):
    """Release the order's active reservations (all, or only those of ``warehouse_id``).

    Idempotent, and safe when nothing was reserved: it covers "maybe reserved" after a timeout.
    """

    ce_type = "oms.inventory.release-stock.v1"
    order_id: str
    request_id: str
    warehouse_id: str | None = None


class CommitStock(Contract):
    """The parcel left the warehouse: turn the reservations at ``warehouse_id`` into shipped stock."""

    ce_type = "oms.inventory.commit-stock.v1"
    order_id: str
    request_id: str
    warehouse_id: str


class ReportShortPick(Contract):
    """The picker found fewer units than recorded: write the missing units off and shrink the reservation."""

    ce_type = "oms.inventory.report-short-pick.v1"
    order_id: str
    request_id: str
    warehouse_id: str
    shortages: tuple[LineQuantity, ...] = Field(min_length=1)


# --- replies (inventory -> saga) -------------------------------------------------------
class Allocation(StrictModel):
    """Units of one order line reserved at one warehouse."""

    warehouse_id: str
    line_no: int
    sku: str
    quantity: int = Field(ge=1)
    #: Where the warehouse is, so the saga can book the carrier from the right origin.
    location: Coordinates | None = None


class StockReserved(Contract):
    """Some or all lines are reserved. ``unfilled`` lists what could not be (only if partial was allowed)."""

    ce_type = "oms.inventory.stock-reserved.v1"
    order_id: str
    request_id: str
    allocations: tuple[Allocation, ...]
    unfilled: tuple[LineQuantity, ...] = ()
    decision_id: str


class StockReservationFailed(Contract):
    """Nothing was reserved (no stock, or not all stock with allow_partial false)."""

    ce_type = "oms.inventory.stock-reservation-failed.v1"
    order_id: str
    request_id: str
    reason: str
    unfilled: tuple[LineQuantity, ...]
    decision_id: str


class StockReleased(Contract):
    """The reservations named by the request are released (possibly none were left)."""

    ce_type = "oms.inventory.stock-released.v1"
    order_id: str
    request_id: str
    released: tuple[Allocation, ...]


class StockCommitted(Contract):
    """The reservations at the warehouse became shipped stock (on hand and reserved both went down)."""

    ce_type = "oms.inventory.stock-committed.v1"
    order_id: str
    request_id: str
    warehouse_id: str
    committed: tuple[Allocation, ...]


class ShortPickRecorded(Contract):
    """The missing units were written off; the reservation now matches what was picked."""

    ce_type = "oms.inventory.short-pick-recorded.v1"
    order_id: str
    request_id: str
    warehouse_id: str
    written_off: tuple[LineQuantity, ...]


# --- stock movements (public, keyed by sku or warehouse id) ----------------------------
class WarehouseUpserted(Contract):
    """Register a warehouse or move it (coordinates) / change its default safety stock."""

    ce_type = "oms.inventory.warehouse-upserted.v1"
    warehouse_id: str = Field(min_length=1, max_length=64)
    name: str
    location: Coordinates
    default_safety_stock: int = Field(default=0, ge=0)
    active: bool = True


class StockMovementRecorded(Contract):
    """A receipt or adjustment: ``quantity`` is the signed change of on-hand stock.

    ``movement_id`` is the idempotency key (UNIQUE): the same movement twice counts once.
    """

    ce_type = "oms.inventory.stock-movement.v1"
    movement_id: str = Field(min_length=1, max_length=128)
    sku: str = Field(min_length=1, max_length=64)
    warehouse_id: str
    kind: Literal["receipt", "adjustment", "return_restock", "write_off"]
    quantity: int
    reason: str = ""


class SafetyStockSet(Contract):
    """Units of ``sku`` at ``warehouse_id`` kept back from sale."""

    ce_type = "oms.inventory.safety-stock-set.v1"
    sku: str
    warehouse_id: str
    safety_stock: int = Field(ge=0)


# --- availability (public, compacted, keyed by sku) ------------------------------------
class WarehouseAvailability(StrictModel):
    """Stock of one SKU at one warehouse."""

    warehouse_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int


class AvailabilityChanged(Contract):
    """Available to promise for one SKU: on hand - reserved - safety stock, summed over warehouses."""

    ce_type = "oms.inventory.availability-changed.v1"
    sku: str
    available: int
    warehouses: tuple[WarehouseAvailability, ...]
    at: datetime
