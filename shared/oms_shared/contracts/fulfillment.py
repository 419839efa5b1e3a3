"""Fulfillment's API: commands from the saga, replies, pick lists to warehouses, warehouse events.

One fulfillment order per sourced warehouse; ``fulfillment_id`` is chosen by the
saga and is the idempotency key of its creation.
"""

from __future__ import annotations

from pydantic import Field

from oms_shared.contracts import Contract
from oms_shared.contracts.common import LineQuantity, PackageSpec, StrictModel

__all__ = [
    "CancelFulfillment",
    "CreateFulfillment",
    "FulfillmentCancelRefused",
    "FulfillmentCancelled",
    "FulfillmentPacked",
    "FulfillmentStarted",
    "PickConfirmed",
    "PickInstruction",
    "PickListCancelled",
    "PickListIssued",
    "PickedLine",
]


# --- commands (saga -> fulfillment) ----------------------------------------------------
class CreateFulfillment(Contract):
    """Pick and pack ``lines`` at ``warehouse_id``."""

    ce_type = "oms.fulfillment.create-fulfillment.v1"
    order_id: str
    request_id: str
    fulfillment_id: str
    warehouse_id: str
    lines: tuple[LineQuantity, ...] = Field(min_length=1)


class CancelFulfillment(Contract):
    """Stop picking/packing; whatever was picked is put away. Refused once handed to the carrier."""

    ce_type = "oms.fulfillment.cancel-fulfillment.v1"
    order_id: str
    request_id: str
    fulfillment_id: str


# --- replies (fulfillment -> saga) -------------------------------------------------------
class FulfillmentStarted(Contract):
    """The pick list was issued to the warehouse."""

    ce_type = "oms.fulfillment.fulfillment-started.v1"
    order_id: str
    request_id: str
    fulfillment_id: str
    warehouse_id: str
    pick_list_id: str


class FulfillmentPacked(Contract):
    """Picking finished and what was picked is packed. ``shortages`` lists units not found."""

    ce_type = "oms.fulfillment.fulfillment-packed.v1"
    order_id: str
    fulfillment_id: str
    warehouse_id: str
    packages: tuple[PackageSpec, ...]
    shortages: tuple[LineQuantity, ...] = ()


class FulfillmentCancelled(Contract):
    """The fulfillment is cancelled; ``put_away`` are the units returned to their bins."""

    ce_type = "oms.fulfillment.fulfillment-cancelled.v1"
    order_id: str
    request_id: str
    fulfillment_id: str
    put_away: tuple[LineQuantity, ...] = ()


class FulfillmentCancelRefused(Contract):
    """Too late to cancel (e.g. already handed to the carrier)."""

    ce_type = "oms.fulfillment.fulfillment-cancel-refused.v1"
    order_id: str
    request_id: str
    fulfillment_id: str
    reason: str


# --- to the warehouse (oms.fulfillment.tasks.v1) ---------------------------------------
class PickInstruction(StrictModel):
    """One stop on the picker's walk."""

    seq: int
    bin: str
    line_no: int
    sku: str
    quantity: int


class PickListIssued(Contract):
    """A pick list, in walking order of bin locations."""

    ce_type = "oms.fulfillment.pick-list-issued.v1"
    order_id: str
    fulfillment_id: str
    warehouse_id: str
    pick_list_id: str
    picks: tuple[PickInstruction, ...]


class PickListCancelled(Contract):
    """Stop working on this pick list and put picked items back."""

    ce_type = "oms.fulfillment.pick-list-cancelled.v1"
    order_id: str
    fulfillment_id: str
    warehouse_id: str
    pick_list_id: str


# --- from the warehouse (oms.fulfillment.warehouse.v1) ---------------------------------
class PickedLine(StrictModel):
    """What the picker found for one line: ``picked`` below ``requested`` is a short pick."""

    line_no: int
    sku: str
    requested: int = Field(ge=1)
    picked: int = Field(ge=0)


class PickConfirmed(Contract):
    """The picker finished the pick list."""

    ce_type = "oms.fulfillment.pick-confirmed.v1"
    order_id: str
    fulfillment_id: str
    pick_list_id: str
    lines: tuple[PickedLine, ...] = Field(min_length=1)
