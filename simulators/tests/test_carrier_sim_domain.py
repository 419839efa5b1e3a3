"""The simulated carriers' decisions: answers, tracking numbers, scan plans, lost parcels."""

from __future__ import annotations

import re

import pytest

from oms_simulators.carrier.domain import (
    CarrierPolicy,
    PlannedScan,
    answer_booking,
    scan_plan,
    tracking_number,
)

BOOKINGS = [f"bk-{n}" for n in range(5000)]


class TestTrackingNumber:
    """Carrier prefix plus digits derived from the booking id."""

    def test_format_is_prefix_and_twelve_digits(self) -> None:
        assert re.fullmatch(r"DHL\d{12}", tracking_number("dhl", "bk-1"))

    @pytest.mark.parametrize(
        ("carrier", "prefix"), [("ups-ground", "UPS"), ("DPD", "DPD"), ("gls", "GLS"), ("x1", "X1"), ("--", "SIM")]
    )
    def test_prefix_is_up_to_three_letters_or_digits_of_the_carrier(self, carrier: str, prefix: str) -> None:
        assert re.fullmatch(rf"{prefix}\d{{12}}", tracking_number(carrier, "bk-1"))

    def test_the_same_booking_gets_the_same_number(self) -> None:
        assert tracking_number("dhl", "bk-1") == tracking_number("dhl", "bk-1")

    def test_different_bookings_get_different_numbers(self) -> None:
        assert len({tracking_number("dhl", b) for b in BOOKINGS}) == len(BOOKINGS)


class TestAnswer:
    """Accepted with a tracking number, or rejected by rate or because the carrier is failing."""

    def test_accepted_with_the_bookings_tracking_number(self) -> None:
        answer = answer_booking(CarrierPolicy(), "dhl", "bk-1")
        assert answer.accepted
        assert answer.tracking_number == tracking_number("dhl", "bk-1")
        assert answer.reason == ""

    def test_a_failing_carrier_rejects_every_booking(self) -> None:
        policy = CarrierPolicy(failing_carriers=frozenset({"dhl"}))
        answers = [answer_booking(policy, "dhl", b) for b in BOOKINGS[:100]]
        assert not any(a.accepted for a in answers)
        assert all(a.tracking_number is None and "dhl" in a.reason for a in answers)
        assert answer_booking(policy, "ups", "bk-1").accepted

    def test_failure_rate_one_rejects_everything(self) -> None:
        policy = CarrierPolicy(failure_rate=1.0)
        assert not any(answer_booking(policy, "dhl", b).accepted for b in BOOKINGS[:100])

    def test_failure_rate_is_the_fraction_rejected_and_reproducible(self) -> None:
        policy = CarrierPolicy(failure_rate=0.1)
        rejected = [b for b in BOOKINGS if not answer_booking(policy, "dhl", b).accepted]
        assert len(rejected) / len(BOOKINGS) == pytest.approx(0.1, abs=0.02)
        assert rejected == [b for b in BOOKINGS if not answer_booking(policy, "dhl", b).accepted]
        assert all(answer_booking(policy, "dhl", b).reason for b in rejected)


class TestScanPlan:
    """Pickup after the answer plus the pickup delay, then a scan every interval."""

    def test_default_plan_is_pickup_transit_out_for_delivery_delivered(self) -> None:
        plan = scan_plan(CarrierPolicy(), "bk-1")
        assert [s.scan for s in plan] == ["picked_up", "in_transit", "out_for_delivery", "delivered"]
        assert [s.after_s for s in plan] == pytest.approx([0.4, 0.6, 0.8, 1.0])

    def test_times_follow_the_delays(self) -> None:
        policy = CarrierPolicy(booking_delay_s=1, pickup_delay_s=10, scan_interval_s=100)
        assert [s.after_s for s in scan_plan(policy, "bk-1")] == [11, 111, 211, 311]

    def test_zero_delays_plan_every_scan_now(self) -> None:
        policy = CarrierPolicy(booking_delay_s=0, pickup_delay_s=0, scan_interval_s=0)
        assert [s.after_s for s in scan_plan(policy, "bk-1")] == [0, 0, 0, 0]

    def test_a_lost_parcel_gets_an_exception_instead_of_the_last_two_scans(self) -> None:
        policy = CarrierPolicy(booking_delay_s=1, pickup_delay_s=2, scan_interval_s=4, lost_parcel_rate=1.0)
        assert scan_plan(policy, "bk-1") == (
            PlannedScan("picked_up", 3),
            PlannedScan("in_transit", 7),
            PlannedScan("exception", 11, "parcel lost"),
        )

    def test_lost_parcel_rate_is_the_fraction_lost_and_reproducible(self) -> None:
        policy = CarrierPolicy(lost_parcel_rate=0.2)
        lost = [b for b in BOOKINGS if scan_plan(policy, b)[-1].scan == "exception"]
        assert len(lost) / len(BOOKINGS) == pytest.approx(0.2, abs=0.02)
        assert lost == [b for b in BOOKINGS if scan_plan(policy, b)[-1].scan == "exception"]


class TestManualWarehouses:
    """Bookings from manual warehouses are not simulated."""

    def test_manual_warehouses_are_not_simulated(self) -> None:
        policy = CarrierPolicy(manual_warehouses=frozenset({"wh-manual"}))
        assert not policy.simulates("wh-manual")
        assert policy.simulates("wh-1")
