-- The transactional outbox and inbox every service database carries (ARCHITECTURE.md §4).

-- Messages written in the same transaction as the business change that caused them.
-- The relay publishes rows in id order and deletes them once Kafka acknowledged them.
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    headers     jsonb       NOT NULL,
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per message a consumer has handled, inserted in the same transaction as
-- the effect: a conflict means "already done", so redeliveries have no effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
