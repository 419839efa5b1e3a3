"""The warehouse simulator's handlers: pick lists in, pick confirmations out (now or later)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import structlog

from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.fulfillment import PickConfirmed, PickedLine, PickListCancelled, PickListIssued
from oms_shared.runtime import Handler, MessageContext
from oms_simulators import schedule
from oms_simulators.warehouse.domain import Pick, PickerPolicy, confirm_picks

__all__ = ["SIMULATOR", "handlers", "on_pick_list_cancelled", "on_pick_list_issued"]

log = structlog.get_logger(__name__)

SIMULATOR = "warehouse"
CONFIRM = "pick_confirmed"


async def on_pick_list_issued(msg: PickListIssued, ctx: MessageContext, *, policy: PickerPolicy) -> None:
    """Pick the list: confirm every line (one maybe short) after the pick delay."""
    if not policy.simulates(msg.warehouse_id):
        log.info("pick_list_left_to_tests", warehouse_id=msg.warehouse_id, pick_list_id=msg.pick_list_id)
        return
    lines = confirm_picks(policy, msg.pick_list_id, (Pick(p.line_no, p.sku, p.quantity) for p in msg.picks))
    confirmed = PickConfirmed(
        order_id=msg.order_id,
        fulfillment_id=msg.fulfillment_id,
        pick_list_id=msg.pick_list_id,
        lines=tuple(PickedLine(line_no=x.line_no, sku=x.sku, requested=x.requested, picked=x.picked) for x in lines),
    )
    plan = [schedule.Planned(CONFIRM, policy.pick_delay_s, topics.WAREHOUSE_EVENTS, msg.order_id, confirmed)]
    await schedule.emit_or_schedule(ctx, SIMULATOR, msg.pick_list_id, plan, datetime.now(UTC))
    log.info(
        "pick_list_picked",
        pick_list_id=msg.pick_list_id,
        short_lines=[x.line_no for x in lines if x.short],
        delay_s=policy.pick_delay_s,
    )


async def on_pick_list_cancelled(msg: PickListCancelled, ctx: MessageContext, *, policy: PickerPolicy) -> None:
    """Drop the confirmation if it has not been sent yet; after that the cancel changes nothing."""
    if not policy.simulates(msg.warehouse_id):
        return
    dropped = await schedule.cancel_unsent(ctx, SIMULATOR, msg.pick_list_id, steps=[CONFIRM], guard=CONFIRM)
    log.info("pick_list_cancelled", pick_list_id=msg.pick_list_id, confirmation_dropped=bool(dropped))


def handlers(policy: PickerPolicy) -> dict[type[Contract], Handler]:
    """The handler of each message type read from the warehouse tasks topic."""
    return {
        PickListIssued: partial(on_pick_list_issued, policy=policy),
        PickListCancelled: partial(on_pick_list_cancelled, policy=policy),
    }
