"""The carrier simulator's handlers: booking requests in, answers and parcel scans out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import structlog

from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.shipping import (
    CarrierBookingAnswered,
    CarrierBookingCancelled,
    CarrierBookingRequested,
    CarrierScan,
)
from oms_shared.runtime import Handler, MessageContext
from oms_simulators import schedule
from oms_simulators.carrier.domain import PICKUP, SCANS, CarrierPolicy, answer_booking, scan_plan

__all__ = ["SIMULATOR", "handlers", "on_booking_cancelled", "on_booking_requested"]

log = structlog.get_logger(__name__)

SIMULATOR = "carrier"
ANSWER = "answer"


async def on_booking_requested(msg: CarrierBookingRequested, ctx: MessageContext, *, policy: CarrierPolicy) -> None:
    """Answer the booking after the booking delay; if accepted, plan the parcel's scans."""
    if not policy.simulates(msg.warehouse_id):
        log.info("booking_left_to_tests", warehouse_id=msg.warehouse_id, booking_id=msg.booking_id)
        return
    now = datetime.now(UTC)
    answer = answer_booking(policy, msg.carrier, msg.booking_id)
    answered = CarrierBookingAnswered(
        order_id=msg.order_id,
        shipment_id=msg.shipment_id,
        booking_id=msg.booking_id,
        carrier=msg.carrier,
        accepted=answer.accepted,
        tracking_number=answer.tracking_number,
        reason=answer.reason,
    )
    plan = [schedule.Planned(ANSWER, policy.booking_delay_s, topics.CARRIER_EVENTS, msg.order_id, answered)]
    if answer.tracking_number is not None:
        plan += [
            schedule.Planned(
                s.scan,
                s.after_s,
                topics.CARRIER_EVENTS,
                msg.order_id,
                CarrierScan(
                    order_id=msg.order_id,
                    shipment_id=msg.shipment_id,
                    carrier=msg.carrier,
                    tracking_number=answer.tracking_number,
                    scan=s.scan,
                    at=now + timedelta(seconds=s.after_s),
                    detail=s.detail,
                ),
            )
            for s in scan_plan(policy, msg.booking_id)
        ]
    await schedule.emit_or_schedule(ctx, SIMULATOR, msg.booking_id, plan, now)
    log.info("booking_answered", booking_id=msg.booking_id, accepted=answer.accepted, scans=[p.step for p in plan[1:]])


async def on_booking_cancelled(msg: CarrierBookingCancelled, ctx: MessageContext, *, policy: CarrierPolicy) -> None:
    """Before pickup, drop the parcel's pending scans; after pickup the cancel changes nothing."""
    dropped = await schedule.cancel_unsent(ctx, SIMULATOR, msg.booking_id, steps=SCANS, guard=PICKUP)
    log.info("booking_cancelled", booking_id=msg.booking_id, scans_dropped=dropped)


def handlers(policy: CarrierPolicy) -> dict[type[Contract], Handler]:
    """The handler of each message type read from the carrier requests topic."""
    return {
        CarrierBookingRequested: partial(on_booking_requested, policy=policy),
        CarrierBookingCancelled: partial(on_booking_cancelled, policy=policy),
    }
