"""Returns' API: refund commands from the saga, replies, and the public refund events.

The refund ledger keeps one refund per ``refund_key`` (UNIQUE) and never lets the
refunds of an order exceed what was paid for it.
"""

from __future__ import annotations

from pydantic import Field

from oms_shared.contracts import Contract

__all__ = ["IssueRefund", "RefundIssued", "RefundRejected"]


class IssueRefund(Contract):
    """Refund ``amount`` of the order; ``refund_key`` makes the request idempotent."""

    ce_type = "oms.returns.issue-refund.v1"
    order_id: str
    request_id: str
    refund_key: str
    amount: int = Field(ge=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount_paid: int = Field(ge=0)
    payment_reference: str
    reason: str


class RefundIssued(Contract):
    """A refund was recorded (reply to the saga and public event for finance/payment systems)."""

    ce_type = "oms.returns.refund-issued.v1"
    order_id: str
    request_id: str
    refund_id: str
    refund_key: str
    amount: int
    currency: str
    total_refunded: int
    payment_reference: str
    reason: str


class RefundRejected(Contract):
    """The refund would exceed what was paid (or the currency differs)."""

    ce_type = "oms.returns.refund-rejected.v1"
    order_id: str
    request_id: str
    refund_key: str
    reason: str
