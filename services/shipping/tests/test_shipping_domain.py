"""Shipping's pure rules: zones, rate cards, the cheapest carrier, cut-offs, the shipment's life, labels."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from oms_shipping import domain
from oms_shipping.domain import (
    CANCEL_REFUSED_REASON,
    Attempt,
    CarrierAnswer,
    Package,
    PackedItem,
    Shipment,
    ShipmentRequest,
)
from oms_shipping.labels import render_label
from oms_shipping.rates import (
    CARRIERS,
    ZONES,
    Carrier,
    GeoPoint,
    Quote,
    ServiceLevel,
    WeightBand,
    carriers_from_json,
    haversine_km,
    next_quote,
    promised_ship_date,
    quote,
    rank_carriers,
    validate_carriers,
    zone_for,
)

PARIS = GeoPoint(48.8566, 2.3522)
VERSAILLES = GeoPoint(48.8049, 2.1204)  # ~18 km: local
ROUEN = GeoPoint(49.4432, 1.0999)  # ~112 km: regional
LYON = GeoPoint(45.7640, 4.8357)  # ~392 km: national
MADRID = GeoPoint(40.4168, -3.7038)  # ~1,053 km: international
NOON = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def carrier_named(name: str) -> Carrier:
    return next(c for c in CARRIERS if c.name == name)


def request(
    *weights: int, method: str = "standard", destination: GeoPoint = VERSAILLES, request_id: str = "r1"
) -> ShipmentRequest:
    packages = tuple(
        Package(f"P{n}", w, (PackedItem(n, f"SKU-{n}", 1),)) for n, w in enumerate(weights or (800,), start=1)
    )
    return ShipmentRequest(request_id, "W1", method, PARIS, destination, packages)


def opened(*weights: int, method: str = "standard", destination: GeoPoint = VERSAILLES) -> Shipment:
    return domain.open_shipment("S1", "O1", request(*weights, method=method, destination=destination), NOON)


def accepted(shipment: Shipment, tracking: str = "TRK1") -> CarrierAnswer:
    assert shipment.attempt is not None
    return CarrierAnswer(shipment.attempt.booking_id, shipment.attempt.carrier, True, tracking)


def rejected(shipment: Shipment, reason: str = "no capacity") -> CarrierAnswer:
    assert shipment.attempt is not None
    return CarrierAnswer(shipment.attempt.booking_id, shipment.attempt.carrier, False, reason=reason)


def booked(*weights: int, method: str = "standard", destination: GeoPoint = VERSAILLES) -> Shipment:
    shipment = opened(*weights, method=method, destination=destination)
    return domain.answer_booking(shipment, accepted(shipment), NOON).shipment


def dispatched() -> Shipment:
    shipment = booked()
    outcome = domain.apply_scan(shipment, "picked_up", "budgetpost", "TRK1")
    assert outcome.shipment is not None
    return outcome.shipment


class TestDistance:
    """Haversine distances are great-circle kilometres."""

    def test_same_point_is_zero(self) -> None:
        assert haversine_km(PARIS, PARIS) == 0.0

    def test_paris_london_is_about_344_km(self) -> None:
        assert haversine_km(PARIS, GeoPoint(51.5074, -0.1278)) == pytest.approx(343.5, abs=1.0)

    def test_symmetric(self) -> None:
        assert haversine_km(PARIS, MADRID) == pytest.approx(haversine_km(MADRID, PARIS))

    def test_antipodes_are_half_the_circumference(self) -> None:
        assert haversine_km(GeoPoint(0, 0), GeoPoint(0, 180)) == pytest.approx(20015.1, abs=1.0)

    def test_across_the_date_line_is_short(self) -> None:
        assert haversine_km(GeoPoint(0, 179.9), GeoPoint(0, -179.9)) == pytest.approx(22.2, abs=0.5)


class TestZones:
    """Zones by distance: local < 50 km <= regional < 300 km <= national < 1000 km <= international."""

    @pytest.mark.parametrize(
        ("km", "zone"),
        [
            (0.0, "local"),
            (49.999, "local"),
            (50.0, "regional"),
            (299.999, "regional"),
            (300.0, "national"),
            (999.999, "national"),
            (1000.0, "international"),
            (15000.0, "international"),
        ],
    )
    def test_boundaries(self, km: float, zone: str) -> None:
        assert zone_for(km) == zone

    @pytest.mark.parametrize(
        ("destination", "zone"),
        [(VERSAILLES, "local"), (ROUEN, "regional"), (LYON, "national"), (MADRID, "international")],
    )
    def test_real_cities_from_paris(self, destination: GeoPoint, zone: str) -> None:
        assert request(destination=destination).zone == zone


class TestRates:
    """A parcel costs the price of the first weight band that holds it, per zone; beyond the last band: no price."""

    level = carrier_named("budgetpost").levels[0]

    @pytest.mark.parametrize(
        ("grams", "zone", "price"),
        [
            (1, "local", 350),
            (1_000, "local", 350),
            (1_001, "local", 550),
            (5_000, "regional", 690),
            (5_001, "national", 1690),
            (20_000, "international", 3990),
        ],
    )
    def test_band_upper_bound_is_inclusive(self, grams: int, zone: Any, price: int) -> None:
        assert self.level.parcel_price(grams, zone) == price

    def test_heavier_than_the_last_band_has_no_price(self) -> None:
        assert self.level.parcel_price(20_001, "local") is None

    def test_quote_sums_every_parcel(self) -> None:
        q = quote(carrier_named("budgetpost"), "standard", [800, 3_000, 12_000], "local")
        assert q == Quote("budgetpost", "standard", 350 + 550 + 990, "EUR", time(16, 0))

    def test_one_parcel_too_heavy_makes_the_carrier_ineligible(self) -> None:
        assert quote(carrier_named("budgetpost"), "standard", [800, 25_000], "local") is None

    def test_level_not_sold_makes_the_carrier_ineligible(self) -> None:
        assert quote(carrier_named("budgetpost"), "express", [800], "local") is None
        assert quote(carrier_named("quickship"), "standard", [800], "local") is None

    def test_no_parcels_no_quote(self) -> None:
        assert quote(carrier_named("parcelco"), "standard", [], "local") is None

    def test_the_built_in_card_is_valid_and_has_three_carriers(self) -> None:
        assert validate_carriers(CARRIERS) == CARRIERS
        assert {c.name for c in CARRIERS} == {"budgetpost", "parcelco", "quickship"}
        assert {lv.name for lv in carrier_named("budgetpost").levels} == {"standard"}
        assert {lv.name for lv in carrier_named("parcelco").levels} == {"standard", "express"}
        assert {lv.name for lv in carrier_named("quickship").levels} == {"express"}


class TestCheapestCarrier:
    """Eligible = sells the method and carries every parcel; cheapest total first, ties by name."""

    @pytest.mark.parametrize(
        ("method", "weights", "zone", "expected"),
        [
            # standard: budgetpost is cheap when light and near, parcelco when heavy or far
            ("standard", [800], "local", ["budgetpost", "parcelco"]),
            ("standard", [800], "international", ["parcelco", "budgetpost"]),
            ("standard", [4_000], "regional", ["budgetpost", "parcelco"]),  # 690 = 690: by name
            ("standard", [4_000], "national", ["parcelco", "budgetpost"]),
            ("standard", [15_000], "local", ["parcelco", "budgetpost"]),
            ("standard", [25_000], "local", ["parcelco"]),  # over budgetpost's 20 kg
            ("standard", [35_000], "local", []),  # nobody carries 35 kg
            # express: quickship is cheap when light and near, parcelco otherwise
            ("express", [800], "local", ["quickship", "parcelco"]),
            ("express", [800], "regional", ["parcelco", "quickship"]),
            ("express", [8_000], "local", ["quickship", "parcelco"]),
            ("express", [8_000], "national", ["parcelco", "quickship"]),  # 2990 = 2990: by name
            ("express", [12_000], "local", ["parcelco"]),  # over quickship's 10 kg
            # several parcels: the total decides
            ("standard", [800, 800, 800], "local", ["budgetpost", "parcelco"]),
            ("standard", [800, 15_000], "local", ["budgetpost", "parcelco"]),  # 350+990 = 450+890: by name
            ("standard", [800, 800, 15_000], "local", ["budgetpost", "parcelco"]),  # 1690 < 1790
            ("standard", [800, 15_000, 15_000], "local", ["parcelco", "budgetpost"]),  # 2230 < 2330
        ],
    )
    def test_ranking(self, method: str, weights: list[int], zone: Any, expected: list[str]) -> None:
        assert [q.carrier for q in rank_carriers(CARRIERS, method, weights, zone)] == expected

    def test_costs_ascend(self) -> None:
        ranked = rank_carriers(CARRIERS, "express", [3_000], "international")
        assert [q.cost_minor for q in ranked] == sorted(q.cost_minor for q in ranked)
        assert ranked[0] == Quote("parcelco", "express", 3290, "EUR", time(14, 0))

    def test_ties_go_to_the_name_first_in_order(self) -> None:
        level = ServiceLevel("standard", "EUR", time(12), (WeightBand(1000, (100, 100, 100, 100)),))
        twins = (Carrier("zeta", (level,)), Carrier("alpha", (level,)))
        assert [q.carrier for q in rank_carriers(twins, "standard", [500], "local")] == ["alpha", "zeta"]

    def test_next_after_a_rejection_is_the_cheapest_not_tried(self) -> None:
        ranked = rank_carriers(CARRIERS, "express", [800], "local")
        assert next_quote(ranked, ()) == ranked[0]
        assert next_quote(ranked, {"quickship"}) == ranked[1]
        assert next_quote(ranked, {"parcelco"}) == ranked[0]
        assert next_quote(ranked, {"quickship", "parcelco"}) is None


class TestCutOff:
    """Booked before the level's cut-off (UTC) it ships that day; at or after it, the next day."""

    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            (datetime(2025, 3, 14, 0, 0, tzinfo=UTC), date(2025, 3, 14)),
            (datetime(2025, 3, 14, 15, 59, 59, tzinfo=UTC), date(2025, 3, 14)),
            (datetime(2025, 3, 14, 16, 0, tzinfo=UTC), date(2025, 3, 15)),
            (datetime(2025, 3, 14, 23, 59, tzinfo=UTC), date(2025, 3, 15)),
            (datetime(2025, 12, 31, 20, 0, tzinfo=UTC), date(2026, 1, 1)),
            (datetime(2024, 2, 28, 17, 0, tzinfo=UTC), date(2024, 2, 29)),
        ],
    )
    def test_against_a_16h_cutoff(self, at: datetime, expected: date) -> None:
        assert promised_ship_date(at, time(16, 0)) == expected

    def test_other_time_zones_are_converted_to_utc(self) -> None:
        # 17:30 in UTC+2 is 15:30 UTC: before a 16:00 UTC cut-off.
        at = datetime(2025, 3, 14, 17, 30, tzinfo=timezone(timedelta(hours=2)))
        assert promised_ship_date(at, time(16, 0)) == date(2025, 3, 14)

    def test_the_level_cutoff_sets_the_attempts_ship_date(self) -> None:
        at = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
        parcelco_express = rank_carriers([carrier_named("parcelco")], "express", [800], "local")[0]
        quickship_express = rank_carriers([carrier_named("quickship")], "express", [800], "local")[0]
        assert Attempt.of("S", 1, parcelco_express, at).promised_ship_date == date(2025, 3, 15)  # cut-off 14:00
        assert Attempt.of("S", 1, quickship_express, at).promised_ship_date == date(2025, 3, 14)  # cut-off 18:00


def card_json(carriers: tuple[Carrier, ...]) -> str:
    return json.dumps(
        {
            "carriers": [
                {
                    "name": c.name,
                    "levels": [
                        {
                            "level": lv.name,
                            "currency": lv.currency,
                            "cutoff_utc": lv.cutoff_utc.isoformat(),
                            "bands": [
                                {"max_grams": b.max_grams, "prices": dict(zip(ZONES, b.prices, strict=True))}
                                for b in lv.bands
                            ],
                        }
                        for lv in c.levels
                    ],
                }
                for c in carriers
            ]
        }
    )


def level(**changes: Any) -> ServiceLevel:
    base = ServiceLevel("standard", "EUR", time(16), (WeightBand(1000, (1, 2, 3, 4)), WeightBand(2000, (2, 3, 4, 5))))
    return replace(base, **changes)


class TestConfiguration:
    """A JSON rate card reads into the same shape as the built-in one; an unusable card is refused."""

    def test_json_round_trip_of_the_built_in_card(self) -> None:
        assert carriers_from_json(card_json(CARRIERS)) == CARRIERS

    @pytest.mark.parametrize(
        "text", ["not json", "{}", '{"carriers": [{"name": "x"}]}', '{"carriers": [{"name": "x", "levels": [{}]}]}']
    )
    def test_malformed_json_is_a_value_error(self, text: str) -> None:
        with pytest.raises(ValueError, match="invalid carriers configuration"):
            carriers_from_json(text)

    @pytest.mark.parametrize(
        ("carriers", "message"),
        [
            ((), "no carriers"),
            ((Carrier("a", (level(),)), Carrier("a", (level(),))), "repeat"),
            ((Carrier("a", (level(),)), Carrier("b", (level(currency="USD"),))), "one currency"),
            ((Carrier("a", ()),), "at least one service level"),
            ((Carrier("a", (level(), level())),), "distinct"),
            ((Carrier("a", (level(name="overnight"),)),), "among"),
            ((Carrier("a", (level(currency="euro"),)),), "ISO 4217"),
            ((Carrier("a", (level(bands=()),)),), "no weight bands"),
            (
                (Carrier("a", (level(bands=(WeightBand(2000, (1, 1, 1, 1)), WeightBand(1000, (1, 1, 1, 1)))),)),),
                "ascending",
            ),
            ((Carrier("a", (level(bands=(WeightBand(0, (1, 1, 1, 1)),)),)),), "positive"),
            ((Carrier("a", (level(bands=(WeightBand(10, (1, -1, 1, 1)),)),)),), "non-negative"),
            ((Carrier("a", (level(cutoff_utc=time(16, tzinfo=UTC)),)),), "without a time zone"),
        ],
    )
    def test_invalid_cards_are_refused(self, carriers: tuple[Carrier, ...], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            validate_carriers(carriers)


class TestOpenShipment:
    """A new shipment asks the cheapest eligible carrier, or fails at once when none is eligible."""

    def test_books_the_cheapest_first(self) -> None:
        shipment = opened(800, method="express")
        assert shipment.status == "booking"
        assert shipment.attempt == Attempt("S1", 1, "quickship", "express", 890, "EUR", date(2025, 3, 14))
        assert shipment.attempt.booking_id == "S1:1"
        assert shipment.carriers_tried == ("quickship",)

    def test_nothing_eligible_fails_with_the_reason(self) -> None:
        shipment = opened(35_000)
        assert shipment.status == "failed"
        assert shipment.attempt is None
        assert shipment.carriers_tried == ()
        assert shipment.failure_reason == "no carrier offers standard for parcels up to 35000 g to a local destination"

    def test_a_custom_card_is_used(self) -> None:
        only = (Carrier("solo", (level(),)),)
        shipment = domain.open_shipment("S1", "O1", request(800), NOON, only)
        assert shipment.attempt is not None
        assert (shipment.attempt.carrier, shipment.attempt.cost_minor) == ("solo", 1)

    def test_parcels_need_distinct_ids(self) -> None:
        with pytest.raises(ValueError, match="distinct"):
            ShipmentRequest("r", "W1", "standard", PARIS, VERSAILLES, (Package("P1", 10), Package("P1", 20)))

    def test_booking_state_of_each_status(self) -> None:
        base = opened()
        states = {s: domain.booking_state(replace(base, status=s)) for s in ("booking", "booked", "failed")}
        states |= {s: domain.booking_state(replace(base, status=s)) for s in ("cancelled", "dispatched", "delivered")}
        assert states == {
            "booking": "pending",
            "booked": "booked",
            "failed": "failed",
            "cancelled": "cancelled",
            "dispatched": "booked",
            "delivered": "booked",
        }


class TestCarrierAnswers:
    """Accepted books; refused moves to the next cheapest carrier not tried; none left fails; stale is ignored."""

    def test_accepted_books_with_the_tracking_number(self) -> None:
        shipment = opened()
        outcome = domain.answer_booking(shipment, accepted(shipment, "TRK-9"), NOON)
        assert outcome.kind == "booked"
        assert outcome.shipment.status == "booked"
        assert outcome.shipment.tracking_number == "TRK-9"
        assert outcome.void is None

    def test_refused_asks_the_next_cheapest(self) -> None:
        shipment = opened()
        later = NOON.replace(hour=17)
        outcome = domain.answer_booking(shipment, rejected(shipment), later)
        assert outcome.kind == "retrying"
        assert outcome.refusal == "no capacity"
        assert outcome.shipment.status == "booking"
        assert outcome.shipment.attempt == Attempt("S1", 2, "parcelco", "standard", 450, "EUR", date(2025, 3, 15))
        assert outcome.shipment.carriers_tried == ("budgetpost", "parcelco")

    def test_every_carrier_refusing_fails(self) -> None:
        shipment = opened()
        second = domain.answer_booking(shipment, rejected(shipment), NOON).shipment
        outcome = domain.answer_booking(second, rejected(second, "strike"), NOON)
        assert outcome.kind == "failed"
        assert outcome.shipment.status == "failed"
        assert outcome.shipment.carriers_tried == ("budgetpost", "parcelco")
        assert outcome.shipment.failure_reason == (
            "every eligible carrier refused the booking (last: parcelco: strike)"
        )

    def test_a_refusal_without_reason_says_so(self) -> None:
        shipment = opened()
        outcome = domain.answer_booking(shipment, rejected(shipment, ""), NOON)
        assert outcome.refusal == "refused without a reason"

    def test_accepted_without_tracking_number_is_voided_and_moves_on(self) -> None:
        shipment = opened()
        outcome = domain.answer_booking(shipment, accepted(shipment, ""), NOON)
        assert outcome.kind == "retrying"
        assert outcome.refusal == "accepted without a tracking number"
        assert outcome.void == shipment.attempt

    def test_a_tracking_number_of_another_shipment_is_voided_and_moves_on(self) -> None:
        shipment = opened()
        outcome = domain.answer_booking(shipment, replace(accepted(shipment), tracking_number_taken=True), NOON)
        assert outcome.kind == "retrying"
        assert "already belongs to another shipment" in outcome.refusal
        assert outcome.void == shipment.attempt

    def test_answer_to_an_earlier_attempt_is_stale(self) -> None:
        shipment = opened()
        first_answer = rejected(shipment)
        second = domain.answer_booking(shipment, first_answer, NOON).shipment
        assert domain.answer_booking(second, first_answer, NOON).kind == "stale"
        assert domain.answer_booking(second, replace(first_answer, accepted=True, tracking_number="T"), NOON).kind == (
            "stale"
        )

    def test_answer_from_another_carrier_is_stale(self) -> None:
        shipment = opened()
        outcome = domain.answer_booking(shipment, replace(accepted(shipment), carrier="quickship"), NOON)
        assert outcome.kind == "stale"
        assert outcome.shipment is shipment

    @pytest.mark.parametrize("status", ["booked", "failed", "cancelled", "dispatched", "delivered"])
    def test_answer_outside_booking_is_stale(self, status: Any) -> None:
        shipment = opened()
        assert domain.answer_booking(replace(shipment, status=status), accepted(shipment), NOON).kind == "stale"


class TestScans:
    """The first scan in the carrier's hands dispatches once; later statuses are reported once each."""

    def test_pick_up_dispatches_a_booked_shipment(self) -> None:
        outcome = domain.apply_scan(booked(), "picked_up", "budgetpost", "TRK1")
        assert outcome.dispatched
        assert outcome.reported is None
        assert outcome.shipment is not None
        assert outcome.shipment.status == "dispatched"

    def test_second_pick_up_does_nothing(self) -> None:
        outcome = domain.apply_scan(dispatched(), "picked_up", "budgetpost", "TRK1")
        assert outcome.ignored == "already reported"
        assert not outcome.dispatched

    @pytest.mark.parametrize("scan", ["in_transit", "out_for_delivery", "exception"])
    def test_later_scans_are_reported_once(self, scan: str) -> None:
        first = domain.apply_scan(dispatched(), scan, "budgetpost", "TRK1")
        assert first.reported == scan
        assert not first.dispatched
        assert first.shipment is not None
        assert first.shipment.status == "dispatched"
        assert domain.apply_scan(first.shipment, scan, "budgetpost", "TRK1").ignored == "already reported"

    def test_delivered_sets_the_status_and_is_reported_once(self) -> None:
        first = domain.apply_scan(dispatched(), "delivered", "budgetpost", "TRK1")
        assert first.reported == "delivered"
        assert first.shipment is not None
        assert first.shipment.status == "delivered"
        again = domain.apply_scan(first.shipment, "delivered", "budgetpost", "TRK1")
        assert again.ignored == "already reported"

    def test_an_exception_after_delivery_is_still_reported(self) -> None:
        delivered = domain.apply_scan(dispatched(), "delivered", "budgetpost", "TRK1").shipment
        assert delivered is not None
        outcome = domain.apply_scan(delivered, "exception", "budgetpost", "TRK1")
        assert outcome.reported == "exception"
        assert outcome.shipment is not None
        assert outcome.shipment.status == "delivered"

    @pytest.mark.parametrize(
        ("first", "late"),
        [("delivered", "in_transit"), ("delivered", "out_for_delivery"), ("out_for_delivery", "in_transit")],
    )
    def test_a_late_scan_of_an_earlier_leg_is_not_reported(self, first: str, late: str) -> None:
        ahead = domain.apply_scan(dispatched(), first, "budgetpost", "TRK1").shipment
        assert ahead is not None
        outcome = domain.apply_scan(ahead, late, "budgetpost", "TRK1")
        assert outcome.ignored == "already reported"
        assert outcome.reported is None

    def test_skipping_a_leg_still_reports_the_next_one(self) -> None:
        ahead = domain.apply_scan(dispatched(), "in_transit", "budgetpost", "TRK1").shipment
        assert ahead is not None
        assert domain.apply_scan(ahead, "delivered", "budgetpost", "TRK1").reported == "delivered"

    @pytest.mark.parametrize("scan", ["in_transit", "out_for_delivery", "delivered"])
    def test_a_missed_pick_up_scan_is_implied_by_a_later_one(self, scan: str) -> None:
        outcome = domain.apply_scan(booked(), scan, "budgetpost", "TRK1")
        assert outcome.dispatched
        assert outcome.reported == scan

    def test_an_exception_before_pick_up_is_ignored(self) -> None:
        outcome = domain.apply_scan(booked(), "exception", "budgetpost", "TRK1")
        assert outcome.ignored == "exception before the pick-up"
        assert not outcome.dispatched

    @pytest.mark.parametrize(
        ("shipment", "why"),
        [
            (None, "unknown shipment"),
            (replace(opened(), status="cancelled"), "shipment cancelled"),
            (opened(), "shipment not booked (booking)"),
            (opened(35_000), "shipment not booked (failed)"),
        ],
    )
    def test_scans_without_effect(self, shipment: Shipment | None, why: str) -> None:
        outcome = domain.apply_scan(shipment, "picked_up", "budgetpost", "TRK1")
        assert outcome.ignored == why
        assert not outcome.dispatched

    @pytest.mark.parametrize(("carrier", "tracking"), [("parcelco", "TRK1"), ("budgetpost", "OTHER")])
    def test_a_scan_of_another_parcel_is_ignored(self, carrier: str, tracking: str) -> None:
        outcome = domain.apply_scan(booked(), "picked_up", carrier, tracking)
        assert outcome.ignored == "carrier or tracking number does not match the booking"


class TestCancel:
    """Cancel before the hand-over voids the booking in hand; after it is refused; unknown leaves a tombstone."""

    def test_while_booking_voids_the_request(self) -> None:
        shipment = opened()
        outcome = domain.cancel_shipment(shipment, "S1", "O1")
        assert outcome.kind == "cancelled"
        assert outcome.shipment.status == "cancelled"
        assert outcome.void == shipment.attempt

    def test_when_booked_voids_the_booking(self) -> None:
        shipment = booked()
        outcome = domain.cancel_shipment(shipment, "S1", "O1")
        assert outcome.kind == "cancelled"
        assert outcome.void == shipment.attempt

    def test_when_failed_there_is_nothing_to_void(self) -> None:
        shipment = opened()
        failed = domain.answer_booking(shipment, rejected(shipment), NOON).shipment
        failed = domain.answer_booking(failed, rejected(failed), NOON).shipment
        outcome = domain.cancel_shipment(failed, "S1", "O1")
        assert outcome.kind == "cancelled"
        assert outcome.void is None

    def test_twice_is_a_repeat(self) -> None:
        cancelled = domain.cancel_shipment(opened(), "S1", "O1").shipment
        outcome = domain.cancel_shipment(cancelled, "S1", "O1")
        assert outcome.kind == "already_cancelled"
        assert outcome.void is None

    @pytest.mark.parametrize("status", ["dispatched", "delivered"])
    def test_after_the_hand_over_is_refused(self, status: Any) -> None:
        outcome = domain.cancel_shipment(replace(booked(), status=status), "S1", "O1")
        assert outcome.kind == "refused"
        assert outcome.reason == CANCEL_REFUSED_REASON == "parcel already handed to the carrier"
        assert outcome.shipment.status == status

    def test_unknown_leaves_a_tombstone(self) -> None:
        outcome = domain.cancel_shipment(None, "S9", "O9")
        assert outcome.kind == "cancelled"
        assert outcome.shipment == Shipment("S9", "O9", "cancelled")
        assert domain.booking_state(outcome.shipment) == "cancelled"


class TestLabel:
    """The ZPL label shows carrier, level, tracking number, destination and weight, one label per parcel."""

    def test_content(self) -> None:
        label = render_label(booked(2_500, 800, method="express", destination=LYON))
        assert label.count("^XA") == label.count("^XZ") == 2
        assert "^FDPARCELCO^FS" in label
        assert "EXPRESS" in label
        assert "^BCN,160,Y,N,N^FDTRK1^FS" in label
        assert "To 45.76400, 4.83570 (national)" in label
        assert "Parcel 1/2 P1 - 2.500 kg" in label
        assert "Parcel 2/2 P2 - 0.800 kg" in label

    def test_control_characters_cannot_inject_commands(self) -> None:
        shipment = replace(booked(), tracking_number="AB^XZ~JA")
        assert "^FDAB XZ JA^FS" in render_label(shipment)

    def test_an_unbooked_shipment_has_no_label(self) -> None:
        with pytest.raises(ValueError, match="not booked"):
            render_label(opened())
