"""Inventory's pure rules: distances, sourcing, availability, movements, short picks."""

from __future__ import annotations

import math

import pytest

from oms_inventory.domain import (
    EARTH_RADIUS_KM,
    Allocation,
    Decision,
    Line,
    Point,
    SourcingPlan,
    StockLevel,
    haversine_km,
    plan_sourcing,
    reservation_steps,
)
from oms_inventory.stock import (
    MovementVerdict,
    ReservedLine,
    StockRow,
    WarehouseLevel,
    availability,
    judge_movement,
    plan_write_offs,
    written_off,
)

PARIS = Point(48.8566, 2.3522)
LONDON = Point(51.5074, -0.1278)
ORIGIN = Point(0.0, 0.0)


def at_km(km: float) -> Point:
    """A point on the equator ``km`` east of ORIGIN."""
    return Point(0.0, math.degrees(km / EARTH_RADIUS_KM))


def stock(sku: str, warehouse_id: str, available: int, km: float, *, reserved: int = 0, safety: int = 0) -> StockLevel:
    return StockLevel(sku, warehouse_id, available + reserved + safety, reserved, safety, at_km(km))


def plan(
    lines: list[Line],
    levels: list[StockLevel],
    *,
    max_split: int = 3,
    allow_partial: bool = False,
    exclude: tuple[str, ...] = (),
) -> SourcingPlan:
    return plan_sourcing(lines, ORIGIN, levels, max_split=max_split, allow_partial=allow_partial, exclude=exclude)


def shipped(p: SourcingPlan) -> set[tuple[int, str, int]]:
    return {(a.line_no, a.warehouse_id, a.quantity) for a in p.allocations}


class TestHaversine:
    """Great-circle distance in kilometres."""

    def test_same_point_is_zero(self) -> None:
        """A point is 0 km from itself."""
        assert haversine_km(PARIS, PARIS) == 0.0

    def test_paris_to_london(self) -> None:
        """Paris to London is about 343.5 km."""
        assert haversine_km(PARIS, LONDON) == pytest.approx(343.5, abs=1.0)

    def test_symmetric(self) -> None:
        """The distance does not depend on the direction."""
        assert haversine_km(PARIS, LONDON) == pytest.approx(haversine_km(LONDON, PARIS))

    def test_one_degree_on_the_equator(self) -> None:
        """One degree of longitude on the equator is about 111.2 km."""
        assert haversine_km(ORIGIN, Point(0.0, 1.0)) == pytest.approx(111.19, abs=0.01)

    def test_antipodes_are_half_the_circumference(self) -> None:
        """Opposite points are pi * R apart (no domain error from rounding)."""
        assert haversine_km(Point(0.0, 0.0), Point(0.0, 180.0)) == pytest.approx(math.pi * EARTH_RADIUS_KM)
        assert haversine_km(Point(90.0, 0.0), Point(-90.0, 0.0)) == pytest.approx(math.pi * EARTH_RADIUS_KM)

    def test_across_the_date_line(self) -> None:
        """179E to 179W is 2 degrees, not 358."""
        assert haversine_km(Point(0.0, 179.0), Point(0.0, -179.0)) == pytest.approx(2 * 111.19, abs=0.1)


class TestSingleWarehouse:
    """The nearest warehouse that fills every line ships the whole order."""

    def test_nearest_of_several_that_can_fill(self) -> None:
        """Of two warehouses holding everything, the nearer one wins."""
        p = plan(
            [Line(1, "A", 2), Line(2, "B", 1)],
            [
                stock("A", "FAR", 10, 500),
                stock("B", "FAR", 10, 500),
                stock("A", "NEAR", 2, 10),
                stock("B", "NEAR", 1, 10),
            ],
        )
        assert p.failure is None
        assert shipped(p) == {(1, "NEAR", 2), (2, "NEAR", 1)}
        assert p.unfilled == ()

    def test_farther_single_beats_a_split(self) -> None:
        """A farther warehouse holding everything is preferred to two nearer shipments."""
        p = plan(
            [Line(1, "A", 1), Line(2, "B", 1)],
            [stock("A", "W1", 5, 1), stock("B", "W2", 5, 2), stock("A", "W3", 1, 900), stock("B", "W3", 1, 900)],
        )
        assert shipped(p) == {(1, "W3", 1), (2, "W3", 1)}

    def test_lines_of_one_sku_share_the_stock(self) -> None:
        """Two lines of one SKU need the sum at one warehouse to ship together."""
        p = plan([Line(1, "A", 3), Line(2, "A", 3)], [stock("A", "NEAR", 5, 1), stock("A", "FAR", 6, 50)])
        assert shipped(p) == {(1, "FAR", 3), (2, "FAR", 3)}

    def test_candidates_are_recorded_with_distance_units_and_score(self) -> None:
        """Every candidate shows its distance, what it could fill alone, its share and its pick."""
        p = plan([Line(1, "A", 4)], [stock("A", "NEAR", 1, 10), stock("A", "FAR", 4, 100)])
        near, far = p.candidates
        assert (near.warehouse_id, near.fillable_units, near.score, near.pick) == ("NEAR", 1, 0.25, None)
        assert (far.warehouse_id, far.fillable_units, far.score, far.pick) == ("FAR", 4, 1.0, 1)
        assert near.distance_km == pytest.approx(10, abs=0.01)
        assert far.distance_km == pytest.approx(100, abs=0.01)
        assert p.warehouses == ("FAR",)
        assert p.locations["FAR"] == at_km(100)


class TestSplit:
    """Without a single warehouse: fewest shipments by greedy cover, at most max_split."""

    def test_greedy_takes_the_warehouse_covering_most_units_first(self) -> None:
        """The bigger contribution is chosen first even when it is farther."""
        p = plan(
            [Line(1, "A", 5), Line(2, "B", 1)],
            [stock("B", "NEAR", 1, 1), stock("A", "FAR", 5, 100)],
        )
        assert shipped(p) == {(1, "FAR", 5), (2, "NEAR", 1)}
        assert {c.warehouse_id: c.pick for c in p.candidates} == {"NEAR": 2, "FAR": 1}

    def test_fewest_shipments(self) -> None:
        """Two shipments are found where taking the nearest first would need three."""
        p = plan(
            [Line(1, "A", 1), Line(2, "B", 1), Line(3, "C", 1)],
            [
                stock("A", "N", 1, 1),
                stock("A", "M1", 1, 50),
                stock("B", "M1", 1, 50),
                stock("C", "M2", 1, 60),
                stock("B", "M2", 1, 60),
            ],
        )
        assert len(p.warehouses) == 2
        assert "N" not in p.warehouses

    def test_ties_go_to_the_nearer_warehouse(self) -> None:
        """Equal coverage: the nearer warehouse is chosen."""
        p = plan(
            [Line(1, "A", 2), Line(2, "B", 2)],
            [stock("A", "FAR", 2, 300), stock("A", "NEAR", 2, 30), stock("B", "MID", 2, 100)],
        )
        assert shipped(p) == {(1, "NEAR", 2), (2, "MID", 2)}

    def test_equal_distance_ties_go_by_warehouse_id(self) -> None:
        """Same coverage, same distance: the smaller warehouse id, so decisions are repeatable."""
        p = plan([Line(1, "A", 1)], [stock("A", "WB", 1, 10), stock("A", "WA", 1, 10)])
        assert shipped(p) == {(1, "WA", 1)}

    def test_line_is_split_only_if_no_single_warehouse_holds_it(self) -> None:
        """A line one warehouse holds whole goes there whole, not in pieces from nearer ones."""
        p = plan(
            [Line(1, "A", 5), Line(2, "B", 2)],
            [stock("A", "NEAR", 3, 1), stock("B", "NEAR", 2, 1), stock("A", "FAR", 5, 100)],
        )
        assert shipped(p) == {(1, "FAR", 5), (2, "NEAR", 2)}

    def test_line_no_one_holds_is_split(self) -> None:
        """A line larger than any warehouse's stock is split, the bigger part first."""
        p = plan([Line(1, "A", 8)], [stock("A", "W1", 4, 1), stock("A", "W2", 5, 2)])
        assert shipped(p) == {(1, "W2", 5), (1, "W1", 3)}

    def test_line_becomes_splittable_once_its_holder_is_used_up(self) -> None:
        """After the only whole holder served another line of the SKU, the rest is split."""
        p = plan([Line(1, "A", 5), Line(2, "A", 5)], [stock("A", "W1", 6, 1), stock("A", "W2", 4, 2)])
        assert p.failure is None
        assert shipped(p) == {(1, "W1", 5), (2, "W2", 4), (2, "W1", 1)}

    def test_at_most_max_split_warehouses(self) -> None:
        """Three one-unit warehouses with max_split 2: all or nothing fails."""
        levels = [stock("A", f"W{i}", 1, i) for i in range(1, 4)]
        assert plan([Line(1, "A", 3)], levels, max_split=3).failure is None
        p = plan([Line(1, "A", 3)], levels, max_split=2)
        assert p.failure == "insufficient_stock"
        assert p.allocations == ()
        assert p.unfilled == (Line(1, "A", 1),)

    def test_max_split_one_with_partial_takes_the_best_warehouse(self) -> None:
        """max_split 1 and partial allowed: the warehouse with most units, the rest unfilled."""
        p = plan([Line(1, "A", 5)], [stock("A", "W1", 2, 1), stock("A", "W2", 3, 9)], max_split=1, allow_partial=True)
        assert shipped(p) == {(1, "W2", 3)}
        assert p.unfilled == (Line(1, "A", 2),)

    def test_cap_tops_up_from_chosen_warehouses(self) -> None:
        """When the cap leaves a line unfilled, a chosen warehouse's leftovers give what they can."""
        p = plan(
            [Line(1, "A", 5), Line(2, "B", 5)],
            [stock("A", "NEAR", 3, 1), stock("B", "NEAR", 5, 1), stock("A", "FAR", 5, 100)],
            max_split=1,
            allow_partial=True,
        )
        assert shipped(p) == {(2, "NEAR", 5), (1, "NEAR", 3)}
        assert p.unfilled == (Line(1, "A", 2),)


class TestCandidates:
    """Which warehouses may ship at all."""

    def test_safety_stock_is_not_available(self) -> None:
        """Units kept back as safety stock are not promised."""
        levels = [stock("A", "NEAR", 1, 1, safety=3), stock("A", "FAR", 2, 50)]
        assert shipped(plan([Line(1, "A", 2)], levels)) == {(1, "FAR", 2)}
        assert [c.warehouse_id for c in plan([Line(1, "A", 2)], levels).candidates] == ["NEAR", "FAR"]

    def test_reserved_and_safety_stock_leave_nothing(self) -> None:
        """A warehouse whose stock is all reserved or kept back is not a candidate."""
        levels = [stock("A", "W1", 0, 1, reserved=4, safety=1), stock("A", "W2", -2, 1, reserved=5, safety=2)]
        p = plan([Line(1, "A", 1)], levels)
        assert p.candidates == ()
        assert p.failure == "out_of_stock"

    def test_excluded_warehouses_are_skipped(self) -> None:
        """An excluded warehouse (e.g. the one that short-picked) is never chosen."""
        p = plan([Line(1, "A", 1)], [stock("A", "NEAR", 5, 1), stock("A", "FAR", 5, 50)], exclude=("NEAR",))
        assert shipped(p) == {(1, "FAR", 1)}
        assert [c.warehouse_id for c in p.candidates] == ["FAR"]

    def test_other_skus_are_ignored(self) -> None:
        """Stock of SKUs the order does not ask for makes no candidate."""
        p = plan([Line(1, "A", 1)], [stock("Z", "W1", 5, 1)])
        assert p.candidates == ()


class TestAllOrNothing:
    """Without allow_partial, nothing is reserved unless everything is."""

    def test_no_stock_anywhere_is_out_of_stock(self) -> None:
        """No candidate at all: out_of_stock with every line unfilled."""
        p = plan([Line(1, "A", 2), Line(2, "B", 1)], [])
        assert p.failure == "out_of_stock"
        assert p.unfilled == (Line(1, "A", 2), Line(2, "B", 1))

    def test_some_stock_is_insufficient_stock(self) -> None:
        """Some but not all units: insufficient_stock, nothing allocated, the missing units listed."""
        p = plan([Line(1, "A", 2), Line(2, "B", 1)], [stock("A", "W1", 1, 1)])
        assert p.failure == "insufficient_stock"
        assert p.allocations == ()
        assert p.unfilled == (Line(1, "A", 1), Line(2, "B", 1))


class TestPartial:
    """With allow_partial, whatever can be reserved is."""

    def test_reserves_what_it_can_and_reports_the_rest(self) -> None:
        """A reservation with unfilled units is a success."""
        p = plan([Line(1, "A", 2), Line(2, "B", 1)], [stock("A", "W1", 1, 1)], allow_partial=True)
        assert p.failure is None
        assert shipped(p) == {(1, "W1", 1)}
        assert p.unfilled == (Line(1, "A", 1), Line(2, "B", 1))

    def test_nothing_at_all_still_fails(self) -> None:
        """Partial allowed but no unit anywhere: out_of_stock."""
        p = plan([Line(1, "A", 2)], [stock("A", "W1", 0, 1)], allow_partial=True)
        assert p.failure == "out_of_stock"
        assert p.allocations == ()


class TestInputChecks:
    """Input that can never be sourced is a bug, not a refusal."""

    def test_duplicate_line_numbers_raise(self) -> None:
        """Two lines with one number are refused."""
        with pytest.raises(ValueError, match="unique"):
            plan([Line(1, "A", 1), Line(1, "B", 1)], [])

    def test_max_split_below_one_raises(self) -> None:
        """max_split 0 is refused."""
        with pytest.raises(ValueError, match="max_split"):
            plan([Line(1, "A", 1)], [], max_split=0)


class TestReservationSteps:
    """Rows are locked in one fixed order by every writer."""

    def test_sorted_by_sku_then_warehouse_and_merged(self) -> None:
        """Allocations of one (sku, warehouse) become one step; steps sort by code point."""
        steps = reservation_steps(
            [
                Allocation(1, "b", "W1", 1),
                Allocation(2, "B", "W2", 2),
                Allocation(3, "B", "W1", 3),
                Allocation(4, "B", "W1", 4),
            ]
        )
        assert steps == [("B", "W1", 7), ("B", "W2", 2), ("b", "W1", 1)]

    def test_decision_of_a_plan(self) -> None:
        """A decision carries the plan's answer under its id."""
        p = plan([Line(1, "A", 1)], [stock("A", "W1", 1, 1)])
        d = Decision.of("d-1", p)
        assert (d.decision_id, d.allocations, d.failure, d.locations) == ("d-1", p.allocations, None, p.locations)


class TestAvailability:
    """Available to promise per SKU, summed over warehouses."""

    def test_sums_over_warehouses_with_breakdown(self) -> None:
        """on_hand - reserved - safety per warehouse, summed; rows sorted by warehouse."""
        (sku,) = availability([WarehouseLevel("A", "W2", 10, 3, 2), WarehouseLevel("A", "W1", 5, 0, 0)])
        assert sku.available == 10
        assert [(w.warehouse_id, w.available) for w in sku.warehouses] == [("W1", 5), ("W2", 5)]

    def test_never_negative(self) -> None:
        """Safety stock above what is free counts as zero, not as a debt."""
        (sku,) = availability([WarehouseLevel("A", "W1", 5, 4, 3), WarehouseLevel("A", "W2", 2, 0, 0)])
        assert sku.available == 2
        assert sku.warehouses[0].available == 0

    def test_inactive_warehouse_promises_nothing(self) -> None:
        """A warehouse out of service is listed but adds nothing."""
        (sku,) = availability([WarehouseLevel("A", "W1", 5, 0, 0, active=False)])
        assert sku.available == 0

    def test_one_entry_per_sku(self) -> None:
        """Rows of several SKUs give one availability each, sorted by SKU."""
        result = availability([WarehouseLevel("B", "W1", 1, 0, 0), WarehouseLevel("A", "W1", 2, 0, 0)])
        assert [(s.sku, s.available) for s in result] == [("A", 2), ("B", 1)]


class TestMovements:
    """A movement applies once, to a known warehouse, never below zero or below reserved."""

    def test_receipt_applies(self) -> None:
        """A positive movement on a known warehouse applies."""
        assert judge_movement(StockRow(0, 0, False), 10) is MovementVerdict.APPLY

    def test_duplicate_is_skipped(self) -> None:
        """A movement whose key was seen is not applied again, and not rejected either."""
        verdict = judge_movement(StockRow(0, 0, True), 10)
        assert verdict is MovementVerdict.DUPLICATE
        assert not verdict.rejected

    def test_unknown_warehouse_is_rejected(self) -> None:
        """No stock row (no warehouse) means rejected."""
        assert judge_movement(None, 10) is MovementVerdict.UNKNOWN_WAREHOUSE
        assert MovementVerdict.UNKNOWN_WAREHOUSE.rejected

    def test_below_zero_is_rejected(self) -> None:
        """on_hand may not go negative."""
        assert judge_movement(StockRow(3, 0, False), -4) is MovementVerdict.NEGATIVE_ON_HAND

    def test_below_reserved_is_rejected(self) -> None:
        """on_hand may not drop below what is promised to orders."""
        assert judge_movement(StockRow(10, 8, False), -3) is MovementVerdict.BELOW_RESERVED

    def test_down_to_reserved_exactly_applies(self) -> None:
        """on_hand may equal reserved."""
        assert judge_movement(StockRow(10, 8, False), -2) is MovementVerdict.APPLY


class TestShortPickWriteOffs:
    """Missing units are taken off the order's active reservations."""

    def test_cut_matches_line_and_sku(self) -> None:
        """Only the reservation of the short line shrinks."""
        active = [ReservedLine("r1", 1, "A", 3), ReservedLine("r1", 2, "B", 2)]
        assert plan_write_offs(active, [Line(2, "B", 1)]) == [ReservedLine("r1", 2, "B", 1)]

    def test_never_more_than_reserved(self) -> None:
        """A shortage above the reservation writes off only what is reserved."""
        assert plan_write_offs([ReservedLine("r1", 1, "A", 2)], [Line(1, "A", 5)]) == [ReservedLine("r1", 1, "A", 2)]

    def test_spread_over_reservations_of_the_line_in_order(self) -> None:
        """A line reserved by two requests is cut from the first, then the second."""
        active = [ReservedLine("r1", 1, "A", 2), ReservedLine("r2", 1, "A", 3)]
        cuts = plan_write_offs(active, [Line(1, "A", 4)])
        assert cuts == [ReservedLine("r1", 1, "A", 2), ReservedLine("r2", 1, "A", 2)]
        assert written_off(cuts) == [Line(1, "A", 4)]

    def test_shortage_of_an_unreserved_line_cuts_nothing(self) -> None:
        """Nothing reserved for the line: nothing to write off."""
        assert plan_write_offs([ReservedLine("r1", 1, "A", 2)], [Line(3, "A", 1), Line(1, "B", 1)]) == []
