-- Messages the simulators will send later (a pick confirmed in 0.2 s, a parcel scanned in
-- 0.5 s). One table for both simulators; each process moves only its own due rows into the
-- outbox, in one transaction with marking them sent.
CREATE TABLE IF NOT EXISTS schedule (
    id              bigserial   PRIMARY KEY,
    simulator       text        NOT NULL,  -- 'warehouse' | 'carrier'
    tag             text        NOT NULL,  -- what a cancellation names: pick_list_id, booking_id
    step            text        NOT NULL,  -- 'pick_confirmed', 'answer', 'picked_up', ...
    due_at          timestamptz NOT NULL,
    topic           text        NOT NULL,
    key             text        NOT NULL,
    ce_type         text        NOT NULL,
    payload         jsonb       NOT NULL,
    correlation_id  text,
    causation_id    text,
    traceparent     text,
    sent            boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A pick list or booking is planned once, whatever the redelivery.
    UNIQUE (simulator, tag, step)
);

-- The worker's scan: pending rows of one simulator in due order.
CREATE INDEX IF NOT EXISTS schedule_pending ON schedule (simulator, due_at, id) WHERE NOT sent;
-- Purging sent rows after their retention.
CREATE INDEX IF NOT EXISTS schedule_sent ON schedule (due_at) WHERE sent;
