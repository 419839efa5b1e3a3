"""The refund ledger's rules: one refund per key, never more than was paid, in the payment's currency.

Pure: standard library only, no I/O. The handler locks the order's payment row,
reads what was already refunded, asks :func:`decide_refund`, and records the answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = ["Payment", "Refund", "RefundDecision", "RefundRequest", "decide_refund", "refund_id_for"]

_REFUND_IDS = uuid.UUID("a3c1e0b2-5f8d-4e6a-9b7c-2d4f6e8a0c13")


@dataclass(frozen=True, slots=True)
class Payment:
    """What the customer paid for an order (recorded the first time the ledger hears of the order)."""

    order_id: str
    amount_paid: int
    currency: str
    payment_reference: str


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A request to give back ``amount`` (minor units) of an order; ``refund_key`` makes it idempotent."""

    order_id: str
    refund_key: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refund:
    """A recorded refund; ``total_refunded`` is the order's total including it, as of when it was made."""

    refund_id: str
    refund_key: str
    order_id: str
    amount: int
    currency: str
    reason: str
    total_refunded: int


@dataclass(frozen=True, slots=True)
class RefundDecision:
    """Exactly one of: a new refund to record, a repeat of a recorded one, or a rejection reason."""

    new: Refund | None = None
    repeat: Refund | None = None
    rejected: str | None = None

    @property
    def refund(self) -> Refund | None:
        """The refund to report as issued (new or repeated); None if rejected."""
        return self.new or self.repeat


def refund_id_for(refund_key: str) -> str:
    """A refund's id, derived from its key: the same request always names the same refund."""
    return str(uuid.uuid5(_REFUND_IDS, refund_key))


def decide_refund(
    request: RefundRequest, payment: Payment, already_refunded: int, prior: Refund | None = None
) -> RefundDecision:
    """Decide a refund request against the order's payment and the refunds recorded so far.

    ``prior`` is the refund already recorded under the request's key, if any: a repeat
    is answered with it (even if the ledger has moved on since). Otherwise the amount
    must be positive, in the payment's currency, and keep the order's refunds within
    what was paid. Partial refunds, repeated, are fine up to that amount.
    """
    if prior is not None:
        if prior.order_id != request.order_id:
            return RefundDecision(rejected=f"refund key {request.refund_key} was used for another order")
        return RefundDecision(repeat=prior)
    if payment.order_id != request.order_id:
        raise ValueError(f"payment of {payment.order_id} given for order {request.order_id}")
    if request.amount <= 0:
        return RefundDecision(rejected=f"refund amount must be positive, not {request.amount}")
    if request.currency != payment.currency:
        return RefundDecision(rejected=f"currency {request.currency} differs from the payment's {payment.currency}")
    total = already_refunded + request.amount
    if total > payment.amount_paid:
        left = max(payment.amount_paid - already_refunded, 0)
        return RefundDecision(
            rejected=f"refund of {request.amount} exceeds what is left to refund ({left} of {payment.amount_paid}"
            f" {payment.currency} paid, {already_refunded} already refunded)"
        )
    return RefundDecision(
        new=Refund(
            refund_id=refund_id_for(request.refund_key),
            refund_key=request.refund_key,
            order_id=request.order_id,
            amount=request.amount,
            currency=request.currency,
            reason=request.reason,
            total_refunded=total,
        )
    )
