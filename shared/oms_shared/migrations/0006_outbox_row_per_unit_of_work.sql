-- One outbox row per unit of work: its messages as four arrays in message order, instead
-- of a row per message. Every queue row costs a heap tuple, an index entry, a delete and
-- a vacuum however small it is; at 300 orders/s the order database alone queued ~4,500
-- rows a second in units of ~30 messages. Measured with 45 messages a unit of work
-- (bench/README.md, session 22): ~30% less of PostgreSQL's CPU for the write and the
-- relay's delete, a third of the WAL. Rows waiting when this runs are carried over as
-- one-message rows, in their order. Code before it writes the old shape: stop a service's
-- every instance before starting one that applies this (no rolling upgrade across it).
ALTER TABLE outbox RENAME TO outbox_v1;
ALTER SEQUENCE outbox_id_seq RENAME TO outbox_v1_id_seq;
ALTER INDEX outbox_pkey RENAME TO outbox_v1_pkey;

CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    topics      text[]      NOT NULL,
    keys        bytea[]     NOT NULL,
    -- Each message's headers as JSON text ([[name, value], ...]): only the relay reads them.
    headers     text[]      NOT NULL,
    payloads    bytea[]     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(topics) > 0
           AND cardinality(keys) = cardinality(topics)
           AND cardinality(headers) = cardinality(topics)
           AND cardinality(payloads) = cardinality(topics))
);

INSERT INTO outbox (topics, keys, headers, payloads, created_at)
SELECT ARRAY[topic], ARRAY[key], ARRAY[headers], ARRAY[payload], created_at FROM outbox_v1 ORDER BY id;
DROP TABLE outbox_v1;

-- A large unit of work's arrays are stored out of line (TOAST): lz4 compresses them at a
-- fraction of the default pglz's CPU. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN headers SET COMPRESSION lz4, ALTER COLUMN payloads SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not available: the outbox keeps the default compression';
END $$;

-- Nothing filters on the arrays: no statistics for them (see 0005 and the statistics test).
ALTER TABLE outbox
    ALTER COLUMN topics SET STATISTICS 0, ALTER COLUMN keys SET STATISTICS 0,
    ALTER COLUMN headers SET STATISTICS 0, ALTER COLUMN payloads SET STATISTICS 0;

-- The queue's vacuum settings of 0002, for the new table: vacuum after a fixed number of
-- dead rows, without cost-based throttling (it stays a few pages long). 500 rows now hold
-- about what 2,000 did at a message each and more (the order consumer's units of work at
-- 300 orders/s carry ~30).
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_cost_delay = 0
);

-- One row per waiting message, in publishing order, for operators and tests.
CREATE VIEW outbox_messages AS
SELECT o.id, m.position, m.topic, m.key, m.headers, m.payload, o.created_at
FROM outbox o,
     unnest(o.topics, o.keys, o.headers, o.payloads) WITH ORDINALITY AS m(topic, key, headers, payload, position);
