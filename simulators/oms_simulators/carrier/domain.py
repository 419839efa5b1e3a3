"""What the simulated carriers do with a booking: pure decisions, no I/O.

A carrier answers each booking request after ``booking_delay_s``: rejected with
probability ``failure_rate`` (always, for carriers in ``failing_carriers``), else
accepted with a tracking number derived from the booking id. An accepted parcel
is scanned ``picked_up`` ``pickup_delay_s`` after the answer, then ``in_transit``,
``out_for_delivery`` and ``delivered``, ``scan_interval_s`` apart; a lost parcel
(probability ``lost_parcel_rate``) gets an ``exception`` scan instead of the last two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from oms_simulators.chance import happens

__all__ = [
    "PICKUP",
    "SCANS",
    "BookingAnswer",
    "CarrierPolicy",
    "PlannedScan",
    "Scan",
    "answer_booking",
    "scan_plan",
    "tracking_number",
]

Scan = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]
PICKUP: Scan = "picked_up"
#: Every scan kind a plan may hold (what a cancellation removes).
SCANS: tuple[Scan, ...] = (PICKUP, "in_transit", "out_for_delivery", "delivered", "exception")
LOST_DETAIL = "parcel lost"
TRACKING_DIGITS = 12


@dataclass(frozen=True, slots=True)
class CarrierPolicy:
    """How the carriers behave; built from settings, fixed for a run."""

    seed: str = "oms-simulators"
    booking_delay_s: float = 0.1
    pickup_delay_s: float = 0.3
    scan_interval_s: float = 0.2
    failure_rate: float = 0.0
    failing_carriers: frozenset[str] = field(default_factory=frozenset)
    lost_parcel_rate: float = 0.0
    manual_warehouses: frozenset[str] = field(default_factory=frozenset)

    def simulates(self, warehouse_id: str) -> bool:
        """Whether the simulator serves bookings from this warehouse (tests drive the manual ones)."""
        return warehouse_id not in self.manual_warehouses


@dataclass(frozen=True, slots=True)
class BookingAnswer:
    """The carrier's answer: a tracking number if accepted, a reason if not."""

    accepted: bool
    tracking_number: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlannedScan:
    """A scan ``after_s`` seconds after the booking request arrived."""

    scan: Scan
    after_s: float
    detail: str = ""


def tracking_number(carrier: str, booking_id: str) -> str:
    """The carrier's prefix (up to 3 letters or digits, upper case) and digits fixed by the booking id."""
    prefix = "".join(c for c in carrier.upper() if c.isascii() and c.isalnum())[:3] or "SIM"
    digest = hashlib.blake2b(booking_id.encode(), digest_size=8).digest()
    return f"{prefix}{int.from_bytes(digest, 'big') % 10**TRACKING_DIGITS:0{TRACKING_DIGITS}d}"


def answer_booking(policy: CarrierPolicy, carrier: str, booking_id: str) -> BookingAnswer:
    """Accept or reject a booking, reproducibly for (seed, booking id)."""
    if carrier in policy.failing_carriers:
        return BookingAnswer(accepted=False, reason=f"{carrier} takes no bookings (simulated outage)")
    if happens(policy.failure_rate, policy.seed, "booking-rejected", booking_id):
        return BookingAnswer(accepted=False, reason="no pickup capacity (simulated rejection)")
    return BookingAnswer(accepted=True, tracking_number=tracking_number(carrier, booking_id))


def scan_plan(policy: CarrierPolicy, booking_id: str) -> tuple[PlannedScan, ...]:
    """The scans of an accepted booking, with their times from the request's arrival."""
    at = policy.booking_delay_s + policy.pickup_delay_s
    plan = [PlannedScan(PICKUP, at)]
    at += policy.scan_interval_s
    plan.append(PlannedScan("in_transit", at))
    at += policy.scan_interval_s
    if happens(policy.lost_parcel_rate, policy.seed, "parcel-lost", booking_id):
        plan.append(PlannedScan("exception", at, LOST_DETAIL))
        return tuple(plan)
    plan.append(PlannedScan("out_for_delivery", at))
    plan.append(PlannedScan("delivered", at + policy.scan_interval_s))
    return tuple(plan)
