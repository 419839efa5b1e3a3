"""The order service's public API: the intake (channels -> OMS) and the status feed (OMS -> everyone).

Intake messages are validated strictly by the order service itself (not by the
runtime), so an invalid order becomes a rejection with every reason on the status
topic instead of a dead letter. The order id is derived from the channel and the
channel's own order id (:func:`order_id_for`), so a channel can follow its order
on the status topic without waiting for an answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from oms_shared.contracts import Contract
from oms_shared.contracts.common import Coordinates, StrictModel

__all__ = [
    "Address",
    "CancelOrder",
    "Customer",
    "OrderLine",
    "OrderStatus",
    "OrderStatusChanged",
    "Payment",
    "PlaceOrder",
    "order_id_for",
]

_ORDER_NAMESPACE = uuid.UUID("6f1c1a52-6d0e-4c3e-9a53-0b8f4f3c9d11")

OrderStatus = Literal[
    "received",
    "rejected",
    "conflict",
    "accepted",
    "reserved",
    "partially_reserved",
    "backordered",
    "fulfilling",
    "packed",
    "short_picked",
    "shipment_booked",
    "shipment_failed",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "delivery_exception",
    "completed",
    "cancelling",
    "cancelled",
    "cancel_refused",
    "refunded",
    "stuck",
]


def order_id_for(channel: str, external_order_id: str) -> str:
    """The OMS order id of a channel's order: stable, so replays map to the same order."""
    return str(uuid.uuid5(_ORDER_NAMESPACE, f"{channel}\x00{external_order_id}"))


class _Strict(StrictModel):
    # Intake is a trust boundary: no coercion ("5" is not 5, 5.0 is not 5).
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Customer(_Strict):
    """Who ordered."""

    id: str = Field(min_length=1, max_length=128)
    email: str = Field(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class Address(_Strict):
    """Where the parcel goes; coordinates, or a postcode the OMS can place."""

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postcode: str = Field(min_length=1, max_length=16)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    coordinates: Coordinates | None = None


class OrderLine(_Strict):
    """One SKU at one unit price (minor units of the order's currency)."""

    sku: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    quantity: int = Field(ge=1, le=10_000)
    unit_price: int = Field(ge=0, le=100_000_000)


class Payment(_Strict):
    """What the customer paid, in minor units, and the payment provider's reference."""

    amount_paid: int = Field(ge=0)
    reference: str = Field(min_length=1, max_length=128)


class PlaceOrder(Contract):
    """A channel places an order (``oms.order.intake.v1``, key: the channel's order id)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    ce_type = "oms.order.place-order.v1"

    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    external_order_id: str = Field(min_length=1, max_length=128)
    customer: Customer
    ship_to: Address
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=100)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    shipping_method: Literal["standard", "express"]
    shipping_fee: int = Field(default=0, ge=0, le=100_000_000)
    payment: Payment

    @property
    def total(self) -> int:
        """Lines plus shipping, in minor units."""
        return sum(line.quantity * line.unit_price for line in self.lines) + self.shipping_fee

    @model_validator(mode="after")
    def _payment_matches_total(self) -> PlaceOrder:
        if self.payment.amount_paid != self.total:
            raise ValueError(
                f"payment.amount_paid {self.payment.amount_paid} does not equal the order total {self.total}"
            )
        return self


class CancelOrder(Contract):
    """The customer (through a channel) asks to cancel an order."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    ce_type = "oms.order.cancel-order.v1"

    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    external_order_id: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="customer request", max_length=500)


class OrderStatusChanged(Contract):
    """One step of an order's timeline (``oms.order.status.v1``, key: order id).

    ``seq`` increases by one per order, so a consumer can detect gaps and order
    events; ``reasons`` explains rejections, refusals and compensations.
    """

    ce_type = "oms.order.status-changed.v1"
    order_id: str
    channel: str
    external_order_id: str
    seq: int
    status: OrderStatus
    previous_status: str | None = None
    reasons: tuple[str, ...] = ()
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)
