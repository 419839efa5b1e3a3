"""All SQL of the returns service: functions of a connection, returning domain objects."""

from __future__ import annotations

from typing import Any

from oms_returns.domain import Payment, Refund
from oms_shared.db import Connection

__all__ = ["insert_refund", "lock_payment", "payment_of", "refunds_of", "refunds_so_far"]

_RECORD_PAYMENT = """
INSERT INTO order_payments (order_id, amount_paid, currency, payment_reference) VALUES ($1, $2, $3, $4)
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id, amount_paid, currency, payment_reference
"""

_LOCK_PAYMENT = """
SELECT order_id, amount_paid, currency, payment_reference FROM order_payments WHERE order_id = $1 FOR UPDATE
"""

# Run after the payment row is locked: in READ COMMITTED this statement's snapshot then
# includes every refund committed by whoever held the lock before.
_SO_FAR = """
SELECT (SELECT coalesce(sum(amount), 0)::bigint FROM refunds WHERE order_id = $1) AS total,
       r.refund_id, r.refund_key, r.order_id, r.amount, r.currency, r.reason, r.total_refunded
FROM (SELECT 1) AS one
LEFT JOIN refunds r ON r.refund_key = $2
"""

_INSERT_REFUND = """
INSERT INTO refunds (refund_id, refund_key, order_id, request_id, amount, currency, reason, total_refunded)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING  -- refund_id derives from refund_key: either index may report the race
"""

_COLUMNS = "refund_id, refund_key, order_id, amount, currency, reason, total_refunded"


async def lock_payment(conn: Connection, first_seen: Payment) -> Payment:
    """The order's payment, recorded from ``first_seen`` if new, its row locked until the transaction ends."""
    row = await conn.fetchrow(
        _RECORD_PAYMENT, first_seen.order_id, first_seen.amount_paid, first_seen.currency, first_seen.payment_reference
    )
    if row is None:  # known already: lock it (a row we just inserted is ours until commit)
        row = await conn.fetchrow(_LOCK_PAYMENT, first_seen.order_id)
    assert row is not None, f"payment of {first_seen.order_id} vanished"
    return _payment(row)


async def refunds_so_far(conn: Connection, order_id: str, refund_key: str) -> tuple[int, Refund | None]:
    """The order's refunded total, and the refund already recorded under ``refund_key`` (any order)."""
    row = await conn.fetchrow(_SO_FAR, order_id, refund_key)
    assert row is not None
    prior = _refund(row) if row["refund_id"] is not None else None
    return row["total"], prior


async def insert_refund(conn: Connection, refund: Refund, request_id: str) -> bool:
    """Record a refund; False if its key was taken meanwhile (by a concurrent request for another order)."""
    status = await conn.execute(
        _INSERT_REFUND,
        refund.refund_id,
        refund.refund_key,
        refund.order_id,
        request_id,
        refund.amount,
        refund.currency,
        refund.reason,
        refund.total_refunded,
    )
    return status == "INSERT 0 1"


async def payment_of(conn: Connection, order_id: str) -> Payment | None:
    """The recorded payment of an order, if the ledger has seen it."""
    row = await conn.fetchrow(
        "SELECT order_id, amount_paid, currency, payment_reference FROM order_payments WHERE order_id = $1", order_id
    )
    return _payment(row) if row is not None else None


async def refunds_of(conn: Connection, order_id: str) -> list[Refund]:
    """The refunds of an order, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY total_refunded",  # noqa: S608  (constant columns)
        order_id,
    )
    return [_refund(r) for r in rows]


def _payment(row: Any) -> Payment:
    return Payment(row["order_id"], row["amount_paid"], row["currency"], row["payment_reference"])


def _refund(row: Any) -> Refund:
    return Refund(
        row["refund_id"],
        row["refund_key"],
        row["order_id"],
        row["amount"],
        row["currency"],
        row["reason"],
        row["total_refunded"],
    )
