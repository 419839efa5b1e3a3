"""Fulfillment's pure rules (domain and packing): bins, the serpentine walk, packing, picks and cancels."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from oms_fulfillment.domain import (
    DEFAULT_UNIT_WEIGHT_GRAMS,
    BinLocation,
    CancelOutcome,
    CreateAnswer,
    Fulfillment,
    FulfillmentLine,
    InvalidPickConfirmation,
    Item,
    Status,
    answer_repeated_create,
    cancel,
    confirm_pick,
    default_item,
    item_for,
    parse_bin,
    plan_fulfillment,
    walking_key,
)
from oms_fulfillment.packing import PackingRules, Units, pack

RULES = PackingRules()


def line(
    line_no: int, weight: int, picked: int | None, *, quantity: int | None = None, bin: str = "A-01-1"
) -> FulfillmentLine:
    """A line of ``picked`` units of ``weight`` grams (quantity defaults to what was picked)."""
    return FulfillmentLine(line_no, f"SKU-{line_no}", quantity or max(picked or 1, 1), bin, weight, picked)


def walk(*bins: str) -> list[str]:
    return sorted(bins, key=walking_key)


def picking(*lines: FulfillmentLine) -> Fulfillment:
    return Fulfillment("F1", "O1", Status.PICKING, "W1", "PL1", lines)


class TestBins:
    """A bin is aisle letters, rack and shelf; anything else is not placeable."""

    def test_parses_aisle_rack_shelf(self) -> None:
        assert parse_bin("C-07-3") == BinLocation("C", 7, 3)

    def test_is_lenient_on_case_and_spaces(self) -> None:
        assert parse_bin(" c-7-3 ") == BinLocation("C", 7, 3)

    @pytest.mark.parametrize("text", ["", "C7-3", "C-07", "7-07-3", "C-x-3", "C-07-3-1"])
    def test_rejects_what_it_cannot_place(self, text: str) -> None:
        assert parse_bin(text) is None

    def test_prints_in_canonical_form(self) -> None:
        assert str(BinLocation("C", 7, 3)) == "C-07-3"

    @pytest.mark.parametrize(("aisle", "number"), [("A", 1), ("B", 2), ("Z", 26), ("AA", 27), ("AB", 28)])
    def test_numbers_aisles_in_walking_order(self, aisle: str, number: int) -> None:
        assert BinLocation(aisle, 1, 1).aisle_number == number


class TestWalkingOrder:
    """The picker walks up odd aisles and down even ones, shelves bottom up, unplaceable bins last."""

    def test_racks_ascend_in_odd_aisles(self) -> None:
        assert walk("A-09-1", "A-01-1", "A-10-1") == ["A-01-1", "A-09-1", "A-10-1"]

    def test_racks_descend_in_even_aisles(self) -> None:
        assert walk("B-01-1", "B-10-1", "B-09-1") == ["B-10-1", "B-09-1", "B-01-1"]

    def test_aisles_come_in_order_whatever_the_racks(self) -> None:
        route = walk("C-20-1", "A-20-1", "B-01-1", "A-01-1", "C-01-1", "B-20-1")
        assert route == ["A-01-1", "A-20-1", "B-20-1", "B-01-1", "C-01-1", "C-20-1"]

    def test_shelves_ascend_within_a_rack_in_every_aisle(self) -> None:
        assert walk("A-05-3", "A-05-1", "A-05-2") == ["A-05-1", "A-05-2", "A-05-3"]
        assert walk("B-05-3", "B-05-1", "B-06-2") == ["B-06-2", "B-05-1", "B-05-3"]

    def test_racks_are_compared_as_numbers(self) -> None:
        assert walk("A-10-1", "A-9-1") == ["A-9-1", "A-10-1"]

    def test_double_letter_aisles_follow_z(self) -> None:
        assert walk("AA-01-1", "Z-01-1", "B-01-1") == ["B-01-1", "Z-01-1", "AA-01-1"]

    def test_unplaceable_bins_come_last_by_name(self) -> None:
        assert walk("dock-2", "T-20-5", "dock-1", "A-01-1") == ["A-01-1", "T-20-5", "dock-1", "dock-2"]


class TestCatalogueDefaults:
    """A SKU missing from the catalogue gets a stable bin in A..T/1..20/1..5 and 500 g."""

    def test_is_stable(self) -> None:
        assert default_item("SKU-42") == default_item("SKU-42")

    def test_stays_in_the_default_ranges(self) -> None:
        for n in range(500):
            item = default_item(f"SKU-{n}")
            location = parse_bin(item.bin)
            assert location is not None
            assert "A" <= location.aisle <= "T"
            assert 1 <= location.rack <= 20
            assert 1 <= location.shelf <= 5
            assert item.weight_grams == DEFAULT_UNIT_WEIGHT_GRAMS

    def test_spreads_skus_over_the_warehouse(self) -> None:
        bins = {default_item(f"SKU-{n}").bin for n in range(500)}
        aisles = {b[0] for b in bins}
        assert len(bins) > 300
        assert len(aisles) == 20

    def test_catalogue_entry_wins_over_the_default(self) -> None:
        known = {"SKU-1": Item("Q-03-2", 1234)}
        assert item_for("SKU-1", known) == Item("Q-03-2", 1234)
        assert item_for("SKU-2", known) == default_item("SKU-2")


class TestPlanFulfillment:
    """A new fulfillment is picking, with its lines in walking order and catalogue weights."""

    def test_orders_lines_by_the_walk_with_catalogue_bins_and_weights(self) -> None:
        catalogue = {"a": Item("B-01-1", 100), "b": Item("B-09-1", 200), "c": Item("A-05-1", 300)}
        f = plan_fulfillment("F1", "O1", "W1", [Units(1, "a", 1), Units(2, "b", 2), Units(3, "c", 3)], catalogue)
        assert [(fl.line_no, fl.bin, fl.unit_weight_grams) for fl in f.lines] == [
            (3, "A-05-1", 300),
            (2, "B-09-1", 200),
            (1, "B-01-1", 100),
        ]
        assert (f.status, f.warehouse_id, f.order_id) == (Status.PICKING, "W1", "O1")
        assert all(fl.picked is None for fl in f.lines)

    def test_unknown_skus_get_their_default_location(self) -> None:
        f = plan_fulfillment("F1", "O1", "W1", [Units(1, "mystery", 2)], {})
        assert (f.lines[0].bin, f.lines[0].unit_weight_grams) == (default_item("mystery").bin, 500)

    def test_lines_in_one_bin_keep_line_order(self) -> None:
        catalogue = {"a": Item("A-01-1", 1), "b": Item("A-01-1", 1)}
        f = plan_fulfillment("F1", "O1", "W1", [Units(2, "b", 1), Units(1, "a", 1)], catalogue)
        assert [fl.line_no for fl in f.lines] == [1, 2]

    def test_pick_list_id_is_stable_per_fulfillment(self) -> None:
        first = plan_fulfillment("F1", "O1", "W1", [Units(1, "a", 1)], {})
        again = plan_fulfillment("F1", "O1", "W1", [Units(1, "a", 1)], {})
        other = plan_fulfillment("F2", "O1", "W1", [Units(1, "a", 1)], {})
        assert first.pick_list_id == again.pick_list_id != other.pick_list_id

    def test_a_line_number_twice_is_invalid(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            plan_fulfillment("F1", "O1", "W1", [Units(1, "a", 1), Units(1, "b", 1)], {})


class TestPacking:
    """Units go into packages in pick order, up to the limit; packaging adds 200 g."""

    def test_nothing_picked_means_no_packages(self) -> None:
        assert pack([line(1, 500, 0), line(2, 500, None)], RULES) == ()

    def test_package_weight_is_units_plus_packaging(self) -> None:
        (package,) = pack([line(1, 700, 3)], RULES)
        assert package.weight_grams == 3 * 700 + 200
        assert package.items == (Units(1, "SKU-1", 3),)
        assert package.seq == 1

    def test_exactly_the_limit_fits_in_one_package(self) -> None:
        (package,) = pack([line(1, 5_000, 4)], RULES)
        assert package.weight_grams == 20_200

    def test_one_gram_over_the_limit_starts_a_new_package(self) -> None:
        packages = pack([line(1, 5_000, 4), line(2, 1, 1)], RULES)
        assert [p.items for p in packages] == [(Units(1, "SKU-1", 4),), (Units(2, "SKU-2", 1),)]
        assert [p.weight_grams for p in packages] == [20_200, 201]

    def test_a_line_is_split_across_packages(self) -> None:
        packages = pack([line(1, 1_000, 45)], RULES)
        assert [p.items[0].quantity for p in packages] == [20, 20, 5]
        assert [p.seq for p in packages] == [1, 2, 3]

    def test_fills_the_current_package_before_opening_another(self) -> None:
        packages = pack([line(1, 15_000, 1), line(2, 2_000, 4)], RULES)
        assert [p.items for p in packages] == [
            (Units(1, "SKU-1", 1), Units(2, "SKU-2", 2)),
            (Units(2, "SKU-2", 2),),
        ]

    def test_a_unit_heavier_than_the_limit_travels_alone(self) -> None:
        packages = pack([line(1, 100, 2), line(2, 25_000, 2), line(3, 100, 1)], RULES)
        assert [p.items for p in packages] == [
            (Units(1, "SKU-1", 2),),
            (Units(2, "SKU-2", 1),),
            (Units(2, "SKU-2", 1),),
            (Units(3, "SKU-3", 1),),
        ]
        assert packages[1].weight_grams == 25_200

    def test_keeps_the_pick_order(self) -> None:
        packages = pack([line(3, 100, 1), line(1, 100, 1), line(2, 100, 1)], RULES)
        assert [u.line_no for u in packages[0].items] == [3, 1, 2]

    def test_the_limit_is_configurable(self) -> None:
        packages = pack([line(1, 1_000, 5)], PackingRules(limit_grams=2_000, packaging_grams=50))
        assert [p.weight_grams for p in packages] == [2_050, 2_050, 1_050]

    def test_many_light_units_share_one_package(self) -> None:
        (package,) = pack([line(1, 1, 10_000)], RULES)
        assert package.items == (Units(1, "SKU-1", 10_000),)

    def test_rejects_impossible_rules_and_weights(self) -> None:
        with pytest.raises(ValueError, match="packing rules"):
            PackingRules(limit_grams=0)
        with pytest.raises(ValueError, match="packing rules"):
            PackingRules(packaging_grams=-1)
        with pytest.raises(ValueError, match="unit weight"):
            pack([line(1, 0, 1)], RULES)

    def test_conserves_units_and_respects_the_limit(self) -> None:
        rng = random.Random(7)  # noqa: S311  (a seeded generator makes the cases reproducible, not secret)
        for _ in range(300):
            weights = [1, 90, 999, 5_000, 19_999, 20_000, 20_001, 40_000]
            lines = [line(n, rng.choice(weights), rng.randint(0, 30)) for n in range(1, rng.randint(2, 7))]
            packages = pack(lines, RULES)
            for p in packages:
                goods = p.weight_grams - RULES.packaging_grams
                units = sum(u.quantity for u in p.items)
                assert goods <= RULES.limit_grams or units == 1
                unit_weight = {fl.line_no: fl.unit_weight_grams for fl in lines}
                assert goods == sum(u.quantity * unit_weight[u.line_no] for u in p.items)
            for fl in lines:
                packed = sum(u.quantity for p in packages for u in p.items if u.line_no == fl.line_no)
                assert packed == (fl.picked or 0)


class TestConfirmPick:
    """A confirmation packs what was picked and reports shortages; late ones are ignored."""

    def test_a_complete_pick_is_packed_without_shortages(self) -> None:
        f = picking(line(1, 500, None, quantity=2), line(2, 500, None, quantity=1))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 2), Units(2, "SKU-2", 1)], RULES)
        assert result.fulfillment is not None
        assert result.fulfillment.status is Status.PACKED
        assert result.fulfillment.shortages == ()
        assert result.fulfillment.picked_units == (Units(1, "SKU-1", 2), Units(2, "SKU-2", 1))
        assert sum(u.quantity for p in result.packages for u in p.items) == 3

    def test_a_short_pick_reports_what_is_missing_per_line(self) -> None:
        f = picking(line(1, 500, None, quantity=5), line(2, 500, None, quantity=3))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 2), Units(2, "SKU-2", 3)], RULES)
        assert result.fulfillment is not None
        assert result.fulfillment.shortages == (Units(1, "SKU-1", 3),)
        assert result.packages[0].items == (Units(1, "SKU-1", 2), Units(2, "SKU-2", 3))

    def test_nothing_picked_means_no_packages_and_everything_short(self) -> None:
        f = picking(line(1, 500, None, quantity=5), line(2, 500, None, quantity=3))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 0), Units(2, "SKU-2", 0)], RULES)
        assert result.fulfillment is not None
        assert result.packages == ()
        assert result.fulfillment.shortages == (Units(1, "SKU-1", 5), Units(2, "SKU-2", 3))

    def test_a_line_not_confirmed_was_not_found(self) -> None:
        f = picking(line(1, 500, None, quantity=1), line(2, 500, None, quantity=4))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 1)], RULES)
        assert result.fulfillment is not None
        assert result.fulfillment.shortages == (Units(2, "SKU-2", 4),)

    def test_picking_more_than_asked_is_capped(self) -> None:
        f = picking(line(1, 500, None, quantity=2))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 9)], RULES)
        assert result.fulfillment is not None
        assert result.fulfillment.picked_units == (Units(1, "SKU-1", 2),)

    def test_packs_in_pick_order_and_reports_by_line_number(self) -> None:
        f = picking(line(2, 15_000, None, quantity=1), line(1, 15_000, None, quantity=2))
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 1), Units(2, "SKU-2", 1)], RULES)
        assert result.fulfillment is not None
        assert [p.items[0].line_no for p in result.packages] == [2, 1]
        assert result.fulfillment.shortages == (Units(1, "SKU-1", 1),)

    @pytest.mark.parametrize("status", [Status.PACKED, Status.CANCELLED, Status.HANDED_OVER])
    def test_is_ignored_unless_picking(self, status: Status) -> None:
        f = replace(picking(line(1, 500, None)), status=status)
        result = confirm_pick(f, "PL1", [Units(1, "SKU-1", 1)], RULES)
        assert result.fulfillment is None
        assert result.ignored == f"fulfillment is {status.value}"

    def test_another_pick_list_is_invalid(self) -> None:
        with pytest.raises(InvalidPickConfirmation, match="pick list"):
            confirm_pick(picking(line(1, 500, None)), "PL2", [Units(1, "SKU-1", 1)], RULES)

    @pytest.mark.parametrize(
        "units",
        [
            [Units(9, "SKU-9", 1)],
            [Units(1, "SKU-X", 1)],
            [Units(1, "SKU-1", 1), Units(1, "SKU-1", 1)],
            [Units(1, "SKU-1", -1)],
        ],
    )
    def test_lines_that_do_not_match_the_pick_list_are_invalid(self, units: list[Units]) -> None:
        with pytest.raises(InvalidPickConfirmation):
            confirm_pick(picking(line(1, 500, None)), "PL1", units, RULES)


class TestCancel:
    """Cancel works in every state but handed over, and a repeat gets the same answer."""

    def test_an_unknown_fulfillment_leaves_a_tombstone(self) -> None:
        decision = cancel(None, "F9", "O9")
        assert decision.outcome is CancelOutcome.TOMBSTONE
        assert decision.fulfillment == Fulfillment("F9", "O9", Status.CANCELLED)
        assert decision.put_away == ()

    def test_while_picking_the_pick_list_stops_and_nothing_is_put_away(self) -> None:
        decision = cancel(picking(line(1, 500, None)), "F1", "O1")
        assert decision.outcome is CancelOutcome.STOP_PICKING
        assert decision.fulfillment.status is Status.CANCELLED
        assert decision.put_away == ()

    def test_once_packed_the_packed_units_are_put_away(self) -> None:
        packed = replace(picking(line(2, 500, 3, quantity=4), line(1, 500, 0, quantity=1)), status=Status.PACKED)
        decision = cancel(packed, "F1", "O1")
        assert decision.outcome is CancelOutcome.UNPACK
        assert decision.put_away == (Units(2, "SKU-2", 3),)

    def test_a_repeat_gets_the_same_put_away(self) -> None:
        packed = replace(picking(line(1, 500, 2)), status=Status.PACKED)
        first = cancel(packed, "F1", "O1")
        again = cancel(first.fulfillment, "F1", "O1")
        assert again.outcome is CancelOutcome.ALREADY_CANCELLED
        assert again.put_away == first.put_away == (Units(1, "SKU-1", 2),)

    def test_once_handed_over_it_is_refused(self) -> None:
        handed = replace(picking(line(1, 500, 1)), status=Status.HANDED_OVER)
        decision = cancel(handed, "F1", "O1")
        assert decision.outcome is CancelOutcome.REFUSED
        assert decision.fulfillment.status is Status.HANDED_OVER
        assert "carrier" in decision.reason


class TestRepeatedCreate:
    """A create for a known id creates nothing: started, or cancelled if it was cancelled first."""

    @pytest.mark.parametrize("status", [Status.PICKING, Status.PACKED, Status.HANDED_OVER])
    def test_a_live_fulfillment_is_reported_started(self, status: Status) -> None:
        assert answer_repeated_create(replace(picking(), status=status)) is CreateAnswer.STARTED

    def test_a_cancelled_or_tombstoned_one_is_reported_cancelled(self) -> None:
        assert answer_repeated_create(cancel(None, "F1", "O1").fulfillment) is CreateAnswer.CANCELLED
        assert answer_repeated_create(replace(picking(), status=Status.CANCELLED)) is CreateAnswer.CANCELLED

    def test_only_a_packed_fulfillment_can_be_handed_over(self) -> None:
        assert [s for s in Status if replace(picking(), status=s).can_hand_over] == [Status.PACKED]
