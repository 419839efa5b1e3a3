"""The order saga's persisted state and the outputs of a transition (pure data, no I/O).

The whole state is one JSON document in ``sagas.data``. Its shape is msgspec
structs, not pydantic models: the document is written after every transition (about
eight times per order) and its parts are built by the saga's own code, which needs no
validation; a pydantic dump took ~7 us and each part's construction ~1.5 us, msgspec
takes a tenth of both. A document read back (:func:`saga_from_json`) is still checked
field by field, unknown fields refused. The messages the saga exchanges stay pydantic
contracts (:mod:`oms_shared.contracts`): they cross the service's boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec

from oms_shared.contracts import Contract
from oms_shared.topics import Topic

__all__ = [
    "Alloc",
    "Command",
    "FulfillmentState",
    "Line",
    "Outcome",
    "Pending",
    "Phase",
    "Policy",
    "Saga",
    "Status",
    "Units",
    "copy_saga",
    "saga_from_json",
    "saga_to_json",
]

Phase = Literal["reserving", "backordered", "fulfilling", "cancelling", "completed", "cancelled", "rejected"]
Policy = Literal["reject", "backorder", "ship_available"]
TERMINAL: frozenset[str] = frozenset({"completed", "cancelled", "rejected"})

FStatus = Literal[
    "requested",  # CreateFulfillment sent
    "started",  # pick list issued
    "booking",  # packed, BookShipment sent
    "booked",  # carrier accepted
    "dispatched",  # picked up by the carrier: past the pivot
    "delivered",
    "lost",  # carrier exception after dispatch: parked for an operator
    "empty",  # nothing could be picked
    "compensating",  # CancelShipment / CancelFulfillment / ReleaseStock in progress
    "released",  # cancelled, put away and its stock released
]
FINAL_FULFILLMENT: frozenset[str] = frozenset({"delivered", "empty", "released", "lost"})


class _Model(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A part of the saga's document: fields at their default are left out of it (empty
    mutable defaults are copied per instance)."""


class Line(_Model, kw_only=True):
    """An order line as the saga needs it."""

    line_no: int
    sku: str
    quantity: int
    unit_price: int


class Units(_Model, kw_only=True):
    """A quantity of one line."""

    line_no: int
    sku: str
    quantity: int


class Alloc(_Model, kw_only=True):
    """Units of a line reserved at a warehouse."""

    warehouse_id: str
    line_no: int
    sku: str
    quantity: int
    location: tuple[float, float] | None = None


class FulfillmentState(_Model, kw_only=True):
    """One warehouse's part of the order, from pick list to delivery."""

    fulfillment_id: str
    warehouse_id: str
    origin: tuple[float, float] | None = None
    lines: list[Units]
    status: FStatus = "requested"
    packed: list[Units] = []
    packages: list[dict[str, Any]] = []
    carrier: str | None = None
    tracking_number: str | None = None
    committed: bool = False
    #: Why this fulfillment is being compensated ("cancel" or "no_carrier").
    compensation: str | None = None


class Pending(_Model, kw_only=True):
    """A command waiting for its reply, or a timer; re-sent with the same message id on timeout."""

    request_id: str
    kind: str
    message_id: str | None = None
    topic: str | None = None
    ce_type: str | None = None
    payload: dict[str, Any] | None = None
    attempts: int = 1
    deadline: datetime
    fulfillment_id: str | None = None
    units: list[Units] = []


class Saga(_Model, kw_only=True):
    """Everything the saga knows about one order."""

    order_id: str
    channel: str
    external_order_id: str
    phase: Phase = "reserving"
    status: str = "accepted"
    lines: list[Line]
    lat: float
    lon: float
    shipping_method: Literal["standard", "express"]
    currency: str
    amount_paid: int
    payment_reference: str
    policy: Policy = "reject"
    max_split: int = 3
    reserved: list[Alloc] = []
    fulfillments: dict[str, FulfillmentState] = {}
    #: Value (minor units) of units that will not be shipped and must be refunded.
    refund_due: int = 0
    refunded: int = 0
    pending: dict[str, Pending] = {}
    counter: int = 0
    #: Warehouses that short-picked: re-sourcing avoids them.
    excluded: list[str] = []
    #: The final "release everything" of a cancellation was sent.
    released_all: bool = False
    cancel_reason: str | None = None
    stuck_reason: str | None = None
    backorder_until: datetime | None = None
    #: The number and status of the order's last timeline entry (the next ones follow it);
    #: None in a document written before the saga kept them: read from the timeline.
    timeline_seq: int | None = None
    timeline_status: str | None = None

    @property
    def closed(self) -> bool:
        """Terminal and nothing left in flight: the saga will never act again."""
        return self.phase in TERMINAL and not self.pending

    def next_deadline(self) -> datetime | None:
        """When the poller must wake this saga (the earliest pending deadline)."""
        return min((p.deadline for p in self.pending.values()), default=None)

    def price(self, line_no: int) -> int:
        """Unit price of a line."""
        return next(line.unit_price for line in self.lines if line.line_no == line_no)


@dataclass(frozen=True, slots=True)
class Command:
    """A message the saga sends, with the message id that makes retries idempotent."""

    topic: Topic
    payload: Contract
    message_id: str
    #: ``payload`` as JSON: dumped once, from the document its pending request keeps.
    data: bytes


@dataclass(frozen=True, slots=True)
class Status:
    """One entry of the order's public timeline."""

    status: str
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What a transition decided: the new state, commands to send, statuses to publish."""

    saga: Saga
    commands: list[Command] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Saga)


def saga_to_json(saga: Saga) -> str:
    """The saga's document (``sagas.data``)."""
    return _ENCODER.encode(saga).decode()


def saga_from_json(data: str | bytes) -> Saga:
    """A saga from its document; msgspec.ValidationError if it does not have the saga's shape."""
    return _DECODER.decode(data)


def copy_saga(saga: Saga) -> Saga:
    """A deep copy (through the document: faster than copying each part)."""
    return _DECODER.decode(_ENCODER.encode(saga))
