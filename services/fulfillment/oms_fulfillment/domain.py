"""Fulfillment's rules: where items are, the picker's walk, and what each message may do (packing: packing.py).

Pure: standard library only, no I/O. The handlers load state through the store,
ask these functions what to do, and write the answer back.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from oms_fulfillment.packing import Package, PackingRules, Units, pack

__all__ = [
    "DEFAULT_UNIT_WEIGHT_GRAMS",
    "BinLocation",
    "CancelOutcome",
    "Cancellation",
    "CreateAnswer",
    "Fulfillment",
    "FulfillmentLine",
    "InvalidPickConfirmation",
    "Item",
    "PickResult",
    "Status",
    "answer_repeated_create",
    "cancel",
    "confirm_pick",
    "default_item",
    "item_for",
    "parse_bin",
    "plan_fulfillment",
    "walking_key",
]

#: Weight of a unit whose SKU is not in the catalogue.
DEFAULT_UNIT_WEIGHT_GRAMS = 500
#: Default bins of unknown SKUs are spread over aisles A..T, racks 1..20, shelves 1..5.
_DEFAULT_AISLES = "ABCDEFGHIJKLMNOPQRST"
_DEFAULT_RACKS = 20
_DEFAULT_SHELVES = 5
_BIN = re.compile(r"^([A-Z]+)-(\d+)-(\d+)$")
_IDS = uuid.UUID("0d7f3f0e-3c1b-4b8e-9f0a-6a2f1f5e8c21")


class Status(enum.StrEnum):
    """Where a fulfillment order is in its life."""

    PICKING = "picking"
    PACKED = "packed"
    CANCELLED = "cancelled"
    #: Given to the carrier: past the pivot, a cancel is refused (set by the shipping step, later).
    HANDED_OVER = "handed_over"


class InvalidPickConfirmation(ValueError):
    """A warehouse event that does not match the fulfillment it names (a bug upstream: dead-lettered)."""


# --- locations and the walk -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BinLocation:
    """A bin: aisle letters, rack number along the aisle, shelf number from the floor up."""

    aisle: str
    rack: int
    shelf: int

    def __str__(self) -> str:
        return f"{self.aisle}-{self.rack:02d}-{self.shelf}"

    @property
    def aisle_number(self) -> int:
        """A=1 .. Z=26, AA=27 ..: aisles are walked in this order."""
        number = 0
        for letter in self.aisle:
            number = number * 26 + ord(letter) - ord("A") + 1
        return number


def parse_bin(text: str) -> BinLocation | None:
    """Read ``A-07-3`` (aisle-rack-shelf); None if the text is not a bin we can place."""
    match = _BIN.match(text.strip().upper())
    if match is None:
        return None
    return BinLocation(match[1], int(match[2]), int(match[3]))


def walking_key(bin_text: str) -> tuple[int, int, int, int, str]:
    """Sort key of the serpentine walk.

    Aisles in order; along odd aisles racks ascend, along even aisles they descend
    (the picker walks up one aisle and down the next); then shelf. Bins that cannot
    be parsed come last, by name, so a bad catalogue entry still gets picked.
    """
    location = parse_bin(bin_text)
    if location is None:
        return (1, 0, 0, 0, bin_text)
    aisle = location.aisle_number
    rack = location.rack if aisle % 2 == 1 else -location.rack
    return (0, aisle, rack, location.shelf, "")


# --- the catalogue ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Item:
    """Where a SKU is stored and what one unit weighs."""

    bin: str
    weight_grams: int


def default_item(sku: str) -> Item:
    """A stable place and weight for a SKU missing from the catalogue (same SKU, same bin, always)."""
    h = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:8], "big")
    aisle = _DEFAULT_AISLES[h % len(_DEFAULT_AISLES)]
    h //= len(_DEFAULT_AISLES)
    rack = h % _DEFAULT_RACKS + 1
    h //= _DEFAULT_RACKS
    shelf = h % _DEFAULT_SHELVES + 1
    return Item(str(BinLocation(aisle, rack, shelf)), DEFAULT_UNIT_WEIGHT_GRAMS)


def item_for(sku: str, catalogue: Mapping[str, Item]) -> Item:
    """The catalogue's entry for ``sku``, or its derived default."""
    return catalogue.get(sku) or default_item(sku)


# --- the fulfillment order ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FulfillmentLine:
    """An order line to pick, where it is, what a unit weighs and (once confirmed) how many were picked."""

    line_no: int
    sku: str
    quantity: int
    bin: str
    unit_weight_grams: int
    picked: int | None = None

    @property
    def shortage(self) -> int:
        """Units asked for but not picked (0 before the pick is confirmed)."""
        return 0 if self.picked is None else self.quantity - self.picked


@dataclass(frozen=True, slots=True)
class Fulfillment:
    """One warehouse's share of an order; ``lines`` are in pick order (the walk)."""

    fulfillment_id: str
    order_id: str
    status: Status
    warehouse_id: str | None = None
    pick_list_id: str | None = None
    lines: tuple[FulfillmentLine, ...] = ()

    @property
    def picked_units(self) -> tuple[Units, ...]:
        """What the picker took from the shelves, by line number."""
        return tuple(Units(line.line_no, line.sku, line.picked) for line in _by_line_no(self.lines) if line.picked)

    @property
    def shortages(self) -> tuple[Units, ...]:
        """What was asked for and not found, by line number (empty before the pick is confirmed)."""
        return tuple(Units(line.line_no, line.sku, line.shortage) for line in _by_line_no(self.lines) if line.shortage)

    @property
    def put_away(self) -> tuple[Units, ...]:
        """Units to return to their bins: the packed ones, once a packed fulfillment is cancelled."""
        return self.picked_units if self.status is Status.CANCELLED else ()

    @property
    def can_hand_over(self) -> bool:
        """Only packed parcels go to the carrier."""
        return self.status is Status.PACKED


def plan_fulfillment(
    fulfillment_id: str,
    order_id: str,
    warehouse_id: str,
    lines: Iterable[Units],
    catalogue: Mapping[str, Item],
) -> Fulfillment:
    """A new fulfillment in picking, its lines in walking order of their bins (ties by line number)."""
    planned: list[FulfillmentLine] = []
    seen: set[int] = set()
    for line in lines:
        if line.line_no in seen:
            raise ValueError(f"line {line.line_no} appears twice in fulfillment {fulfillment_id}")
        seen.add(line.line_no)
        item = item_for(line.sku, catalogue)
        planned.append(FulfillmentLine(line.line_no, line.sku, line.quantity, item.bin, item.weight_grams))
    planned.sort(key=lambda fl: (walking_key(fl.bin), fl.line_no))
    return Fulfillment(
        fulfillment_id,
        order_id,
        Status.PICKING,
        warehouse_id,
        str(uuid.uuid5(_IDS, f"pick-list/{fulfillment_id}")),
        tuple(planned),
    )


class CreateAnswer(enum.Enum):
    """The reply to a create whose fulfillment id is already known."""

    STARTED = "started"
    CANCELLED = "cancelled"


def answer_repeated_create(existing: Fulfillment) -> CreateAnswer:
    """A repeat creates nothing: it is told the fulfillment started, or that it was cancelled (tombstone)."""
    return CreateAnswer.CANCELLED if existing.status is Status.CANCELLED else CreateAnswer.STARTED


# --- what each message may do -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PickResult:
    """The answer to a pick confirmation: ignored (with why), or the packed fulfillment and its packages."""

    ignored: str | None = None
    fulfillment: Fulfillment | None = None
    packages: tuple[Package, ...] = ()


def confirm_pick(
    fulfillment: Fulfillment, pick_list_id: str, picked: Iterable[Units], rules: PackingRules
) -> PickResult:
    """Record what the picker found and pack it; a confirmation after cancel or packing is ignored.

    Lines the confirmation does not mention were not found (picked 0); a count above
    what was asked for is capped (the extra units go back to the shelf).
    """
    if fulfillment.status is not Status.PICKING:
        return PickResult(ignored=f"fulfillment is {fulfillment.status.value}")
    if pick_list_id != fulfillment.pick_list_id:
        raise InvalidPickConfirmation(f"pick list {pick_list_id} is not {fulfillment.pick_list_id}")
    by_line = {line.line_no: line for line in fulfillment.lines}
    counts: dict[int, int] = {}
    for units in picked:
        line = by_line.get(units.line_no)
        if line is None or line.sku != units.sku:
            raise InvalidPickConfirmation(f"line {units.line_no} ({units.sku}) is not on the pick list")
        if units.line_no in counts:
            raise InvalidPickConfirmation(f"line {units.line_no} is confirmed twice")
        if units.quantity < 0:
            raise InvalidPickConfirmation(f"line {units.line_no}: negative picked count")
        counts[units.line_no] = min(units.quantity, line.quantity)
    lines = tuple(replace(line, picked=counts.get(line.line_no, 0)) for line in fulfillment.lines)
    packed = replace(fulfillment, status=Status.PACKED, lines=lines)
    return PickResult(fulfillment=packed, packages=pack(lines, rules))


class CancelOutcome(enum.Enum):
    """What a cancel request does, by the state it finds."""

    TOMBSTONE = "tombstone"  # unknown id: remember it as cancelled, so a late create creates nothing
    STOP_PICKING = "stop_picking"  # tell the warehouse to drop the pick list
    UNPACK = "unpack"  # packed units go back to their bins
    ALREADY_CANCELLED = "already_cancelled"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Cancellation:
    """The outcome of a cancel request, the fulfillment after it and the units to put away."""

    outcome: CancelOutcome
    fulfillment: Fulfillment
    reason: str = ""

    @property
    def put_away(self) -> tuple[Units, ...]:
        """Units returned to their bins (reported on every cancelled reply, repeats included)."""
        return self.fulfillment.put_away


def cancel(existing: Fulfillment | None, fulfillment_id: str, order_id: str) -> Cancellation:
    """Cancel a fulfillment, whatever state it is in, unless it is already with the carrier."""
    if existing is None:
        return Cancellation(CancelOutcome.TOMBSTONE, Fulfillment(fulfillment_id, order_id, Status.CANCELLED))
    cancelled = replace(existing, status=Status.CANCELLED)
    match existing.status:
        case Status.PICKING:
            return Cancellation(CancelOutcome.STOP_PICKING, cancelled)
        case Status.PACKED:
            return Cancellation(CancelOutcome.UNPACK, cancelled)
        case Status.CANCELLED:
            return Cancellation(CancelOutcome.ALREADY_CANCELLED, existing)
        case Status.HANDED_OVER:
            return Cancellation(CancelOutcome.REFUSED, existing, "already handed over to the carrier")


def _by_line_no(lines: Iterable[FulfillmentLine]) -> list[FulfillmentLine]:
    return sorted(lines, key=lambda line: line.line_no)
