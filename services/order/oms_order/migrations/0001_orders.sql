-- The order service's tables: orders, saga state, the public timeline, intake rejections.

-- What to do when only part of an order is in stock, per channel (FEATURES: per-channel policies).
CREATE TABLE channel_policies (
    channel         text PRIMARY KEY,
    partial_policy  text NOT NULL CHECK (partial_policy IN ('reject', 'backorder', 'ship_available')),
    max_split       integer NOT NULL DEFAULT 3 CHECK (max_split >= 1)
);
INSERT INTO channel_policies (channel, partial_policy, max_split) VALUES
    ('web', 'ship_available', 3),
    ('marketplace', 'reject', 2),
    ('pos', 'backorder', 3)
ON CONFLICT DO NOTHING;

-- One row per accepted order; (channel, external_order_id) deduplicates intake.
CREATE TABLE orders (
    order_id           uuid PRIMARY KEY,
    channel            text NOT NULL,
    external_order_id  text NOT NULL,
    fingerprint        text NOT NULL,
    customer_id        text NOT NULL,
    currency           text NOT NULL,
    total              bigint NOT NULL CHECK (total >= 0),
    amount_paid        bigint NOT NULL CHECK (amount_paid >= 0),
    payload            jsonb NOT NULL,
    message_id         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, external_order_id)
);

-- The saga of each order: its whole state as one document, plus what the poller needs.
CREATE TABLE sagas (
    order_id      uuid PRIMARY KEY REFERENCES orders (order_id),
    phase         text NOT NULL,
    status        text NOT NULL,
    data          jsonb NOT NULL,
    deadline      timestamptz,
    stuck_reason  text,
    version       integer NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_deadline ON sagas (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX sagas_open ON sagas (phase) WHERE phase NOT IN ('completed', 'cancelled', 'rejected');
CREATE INDEX sagas_stuck ON sagas (updated_at) WHERE stuck_reason IS NOT NULL;

-- The public timeline, also published on oms.order.status.v1 (seq increases by one per order).
CREATE TABLE status_history (
    order_id         uuid NOT NULL,
    seq              integer NOT NULL,
    status           text NOT NULL,
    previous_status  text,
    reasons          text[] NOT NULL DEFAULT '{}',
    details          jsonb NOT NULL DEFAULT '{}',
    at               timestamptz NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Intake messages refused (invalid, conflicting, unknown order): the raw bytes are kept.
CREATE TABLE intake_rejections (
    id                 bigserial PRIMARY KEY,
    message_id         text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('invalid', 'conflict', 'unknown_order')),
    order_id           uuid,
    channel            text,
    external_order_id  text,
    reasons            text[] NOT NULL,
    raw                bytea NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_rejections_order ON intake_rejections (order_id);
