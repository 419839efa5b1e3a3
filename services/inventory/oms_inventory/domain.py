"""Sourcing, pure: which warehouses reserve which units of an order, and why.

Nothing here does I/O; the store loads the facts, these functions decide, the
handlers write the decision back. The rules of stock rows themselves
(availability, movements, short picks) are in :mod:`oms_inventory.stock`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "EARTH_RADIUS_KM",
    "Allocation",
    "Candidate",
    "Decision",
    "Line",
    "Point",
    "SourcingPlan",
    "StockLevel",
    "haversine_km",
    "plan_sourcing",
    "reservation_steps",
]

#: Mean Earth radius (IUGG), the usual constant for great-circle distances.
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Point:
    """A point on Earth in decimal degrees."""

    lat: float
    lon: float


def haversine_km(a: Point, b: Point) -> float:
    """Great-circle distance between two points, in kilometres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


# --- sourcing ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    """Units of one SKU an order line asks for (or, in a reply, still misses)."""

    line_no: int
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class StockLevel:
    """Stock of one SKU at one warehouse in service, and where that warehouse is."""

    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    location: Point

    @property
    def available(self) -> int:
        """Available to promise: on hand less what is reserved and what is kept back."""
        return self.on_hand - self.reserved - self.safety_stock


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units of one order line to reserve at one warehouse."""

    line_no: int
    sku: str
    warehouse_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Candidate:
    """A warehouse that was considered, and why it was (not) chosen.

    ``fillable_units`` is what it could ship of the order on its own; ``score`` is
    that as a share of the order's units; ``pick`` is its place in the chosen
    shipments (1 = first chosen), None when it was not used.
    """

    warehouse_id: str
    distance_km: float
    fillable_units: int
    score: float
    pick: int | None


@dataclass(frozen=True, slots=True)
class SourcingPlan:
    """Where to reserve what; ``unfilled`` lists the units no allowed warehouse could give."""

    allocations: tuple[Allocation, ...]
    unfilled: tuple[Line, ...]
    candidates: tuple[Candidate, ...]
    #: None when the plan is to be reserved; else ``out_of_stock`` or ``insufficient_stock``.
    failure: str | None
    locations: Mapping[str, Point] = field(default_factory=dict)

    @property
    def warehouses(self) -> tuple[str, ...]:
        """The warehouses the plan ships from, in pick order."""
        return tuple(dict.fromkeys(a.warehouse_id for a in self.allocations))


def plan_sourcing(
    lines: Sequence[Line],
    ship_to: Point,
    stock: Iterable[StockLevel],
    *,
    max_split: int,
    allow_partial: bool,
    exclude: Collection[str] = (),
) -> SourcingPlan:
    """Choose warehouses for ``lines``: nearest single one that fills all, else fewest shipments.

    Candidates are the warehouses not in ``exclude`` with positive availability of
    one of the SKUs. A line is split over warehouses only if no single candidate
    holds all of it. With ``allow_partial`` false the plan fails unless every unit
    is found; with true it fails only when nothing at all can be reserved.
    """
    if len({line.line_no for line in lines}) != len(lines):
        raise ValueError("line numbers of an order must be unique")
    if max_split < 1:
        raise ValueError("max_split must be at least 1")
    skus = {line.sku for line in lines}
    avail: dict[str, dict[str, int]] = defaultdict(dict)
    locations: dict[str, Point] = {}
    for level in stock:
        if level.warehouse_id in exclude or level.sku not in skus or level.available <= 0:
            continue
        avail[level.warehouse_id][level.sku] = avail[level.warehouse_id].get(level.sku, 0) + level.available
        locations[level.warehouse_id] = level.location
    distance = {wh: haversine_km(ship_to, loc) for wh, loc in locations.items()}
    ranked = sorted(avail, key=lambda wh: (distance[wh], wh))
    total = sum(line.quantity for line in lines)

    picks = _single_warehouse(lines, ranked, avail)
    allocations = picks if picks is not None else _greedy_cover(lines, ranked, avail, max_split)
    taken: dict[int, int] = defaultdict(int)
    for allocation in allocations:
        taken[allocation.line_no] += allocation.quantity
    unfilled = tuple(
        Line(line.line_no, line.sku, line.quantity - taken[line.line_no])
        for line in lines
        if taken[line.line_no] < line.quantity
    )
    order = {wh: i + 1 for i, wh in enumerate(dict.fromkeys(a.warehouse_id for a in allocations))}
    candidates = tuple(
        Candidate(
            warehouse_id=wh,
            distance_km=round(distance[wh], 3),
            fillable_units=(units := _fillable(lines, avail[wh])),
            score=round(units / total, 4),
            pick=order.get(wh),
        )
        for wh in ranked
    )
    failure = None
    if not allocations:
        failure = "out_of_stock"
    elif unfilled and not allow_partial:
        failure = "insufficient_stock"
    return SourcingPlan(
        allocations=tuple(allocations) if failure is None else (),
        unfilled=unfilled,
        candidates=candidates,
        failure=failure,
        locations={wh: locations[wh] for wh in order},
    )


def _fillable(lines: Sequence[Line], stock: Mapping[str, int]) -> int:
    """Units of the order one warehouse could ship on its own."""
    wanted: dict[str, int] = defaultdict(int)
    for line in lines:
        wanted[line.sku] += line.quantity
    return sum(min(units, stock.get(sku, 0)) for sku, units in wanted.items())


def _single_warehouse(
    lines: Sequence[Line], ranked: Sequence[str], avail: Mapping[str, Mapping[str, int]]
) -> list[Allocation] | None:
    """The whole order from the nearest warehouse that holds all of it, if any does."""
    wanted: dict[str, int] = defaultdict(int)
    for line in lines:
        wanted[line.sku] += line.quantity
    for wh in ranked:
        if all(avail[wh].get(sku, 0) >= units for sku, units in wanted.items()):
            return [Allocation(line.line_no, line.sku, wh, line.quantity) for line in lines]
    return None


def _greedy_cover(
    lines: Sequence[Line], ranked: Sequence[str], avail: Mapping[str, Mapping[str, int]], max_split: int
) -> list[Allocation]:
    """Fewest shipments: repeatedly add the warehouse that covers most remaining units.

    Ties go to the nearer warehouse. While some warehouse still holds all of a
    line's remaining units, the line is only taken whole. When the shipment cap
    (or a lack of stock) stops the cover, the leftovers of the warehouses already
    chosen top up what is missing: better a split line than a missing one.
    """
    remaining = {line.line_no: line.quantity for line in lines}
    left = {wh: dict(avail[wh]) for wh in ranked}
    chosen: list[str] = []
    allocations: list[Allocation] = []
    while any(remaining.values()) and len(chosen) < max_split:
        whole = {
            line.line_no for line in lines if any(left[wh].get(line.sku, 0) >= remaining[line.line_no] for wh in ranked)
        }
        best: list[Allocation] = []
        for wh in ranked:
            if wh not in chosen:
                take = _take(lines, remaining, left[wh], wh, whole=whole)
                if sum(a.quantity for a in take) > sum(a.quantity for a in best):
                    best = take
        if not best:
            break
        chosen.append(best[0].warehouse_id)
        _apply(best, remaining, left[best[0].warehouse_id], allocations)
    for wh in chosen:
        _apply(_take(lines, remaining, left[wh], wh, whole=()), remaining, left[wh], allocations)
    return _merged(allocations)


def _take(
    lines: Sequence[Line], remaining: Mapping[int, int], stock: Mapping[str, int], wh: str, *, whole: Collection[int]
) -> list[Allocation]:
    """What ``wh`` would give of the remaining lines; lines in ``whole`` only if it has all of them."""
    left = dict(stock)
    take: list[Allocation] = []
    for line in lines:
        need, have = remaining[line.line_no], left.get(line.sku, 0)
        if need == 0 or have == 0:
            continue
        units = need if have >= need else (0 if line.line_no in whole else have)
        if units:
            left[line.sku] = have - units
            take.append(Allocation(line.line_no, line.sku, wh, units))
    return take


def _apply(
    take: Iterable[Allocation], remaining: dict[int, int], stock: dict[str, int], allocations: list[Allocation]
) -> None:
    for allocation in take:
        remaining[allocation.line_no] -= allocation.quantity
        stock[allocation.sku] -= allocation.quantity
        allocations.append(allocation)


def _merged(allocations: Iterable[Allocation]) -> list[Allocation]:
    """One allocation per (line, warehouse), in the order they were first made."""
    merged: dict[tuple[int, str], Allocation] = {}
    for a in allocations:
        key = (a.line_no, a.warehouse_id)
        prior = merged.get(key)
        merged[key] = a if prior is None else Allocation(a.line_no, a.sku, a.warehouse_id, prior.quantity + a.quantity)
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one reserve request, as recorded (and replayed to a repeat of it)."""

    decision_id: str
    allocations: tuple[Allocation, ...]
    unfilled: tuple[Line, ...]
    #: None when stock was reserved; else why nothing was.
    failure: str | None
    locations: Mapping[str, Point] = field(default_factory=dict)

    @classmethod
    def of(cls, decision_id: str, plan: SourcingPlan) -> Decision:
        """The decision a plan stands for once it is reserved (or refused)."""
        return cls(decision_id, plan.allocations, plan.unfilled, plan.failure, plan.locations)


def reservation_steps(allocations: Iterable[Allocation]) -> list[tuple[str, str, int]]:
    """Units to reserve per (sku, warehouse), in the one fixed order every writer locks rows in.

    Sorting by code point matches PostgreSQL's ``COLLATE "C"``, which the store's
    set-based statements use for their row locks, so no two transactions deadlock.
    """
    units: dict[tuple[str, str], int] = defaultdict(int)
    for a in allocations:
        units[(a.sku, a.warehouse_id)] += a.quantity
    return [(sku, wh, q) for (sku, wh), q in sorted(units.items())]
