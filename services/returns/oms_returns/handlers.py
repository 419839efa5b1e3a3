"""One handler per message: lock the order's payment, ask the domain, record, reply and publish."""

from __future__ import annotations

import structlog

from oms_returns import domain, store
from oms_returns.domain import Payment, RefundRequest
from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.returns import IssueRefund, RefundIssued, RefundRejected
from oms_shared.errors import RetryableError
from oms_shared.runtime import Handler, MessageContext

__all__ = ["COMMAND_HANDLERS", "on_issue_refund"]

log = structlog.get_logger(__name__)


async def on_issue_refund(cmd: IssueRefund, ctx: MessageContext) -> None:
    """Refund within what was paid, once per refund key; a repeat is answered again but not republished."""
    claimed = Payment(cmd.order_id, cmd.amount_paid, cmd.currency, cmd.payment_reference)
    payment = await store.lock_payment(ctx.conn, claimed)
    if payment != claimed:
        log.warning("payment_differs_from_recorded", recorded_paid=payment.amount_paid, claimed_paid=cmd.amount_paid)
    already, prior = await store.refunds_so_far(ctx.conn, cmd.order_id, cmd.refund_key)
    request = RefundRequest(cmd.order_id, cmd.refund_key, cmd.amount, cmd.currency, cmd.reason)
    decision = domain.decide_refund(request, payment, already, prior)
    refund = decision.refund
    if refund is None:
        rejected = RefundRejected(
            order_id=cmd.order_id, request_id=cmd.request_id, refund_key=cmd.refund_key, reason=decision.rejected or ""
        )
        ctx.emit(topics.RETURNS_REPLIES, rejected, key=cmd.order_id)
        log.info("refund_rejected", refund_key=cmd.refund_key, amount=cmd.amount, reason=decision.rejected)
        return
    if decision.new is not None and not await store.insert_refund(ctx.conn, decision.new, cmd.request_id):
        raise RetryableError(f"refund key {cmd.refund_key} was taken concurrently")
    issued = RefundIssued(
        order_id=refund.order_id,
        request_id=cmd.request_id,
        refund_id=refund.refund_id,
        refund_key=refund.refund_key,
        amount=refund.amount,
        currency=refund.currency,
        total_refunded=refund.total_refunded,
        payment_reference=payment.payment_reference,
        reason=refund.reason,
    )
    ctx.emit(topics.RETURNS_REPLIES, issued, key=cmd.order_id)
    if decision.new is not None:
        ctx.emit(topics.REFUNDS, issued, key=cmd.order_id)
        log.info("refund_issued", refund_key=cmd.refund_key, amount=refund.amount, total=refund.total_refunded)
    else:
        log.info("refund_repeated", refund_key=cmd.refund_key, amount=refund.amount)


COMMAND_HANDLERS: dict[type[Contract], Handler] = {IssueRefund: on_issue_refund}
