-- Returns: the refund ledger (RMAs come later).

-- What was paid for an order, recorded the first time the ledger hears of the order.
-- Refunding an order locks this row, so the refunds of one order are decided one at a time.
CREATE TABLE order_payments (
    order_id          text        PRIMARY KEY,
    amount_paid       bigint      NOT NULL CHECK (amount_paid >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    payment_reference text        NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);

-- One refund per refund_key, whatever the redelivery. total_refunded is the order's
-- total including this refund, so a repeated request gets exactly the same reply.
CREATE TABLE refunds (
    refund_id      text        PRIMARY KEY,
    refund_key     text        NOT NULL UNIQUE,
    order_id       text        NOT NULL REFERENCES order_payments (order_id),
    request_id     text        NOT NULL,
    amount         bigint      NOT NULL,
    currency       text        NOT NULL,
    reason         text        NOT NULL,
    total_refunded bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (amount > 0),
    CHECK (total_refunded >= amount)
);
CREATE INDEX refunds_order_id ON refunds (order_id);
