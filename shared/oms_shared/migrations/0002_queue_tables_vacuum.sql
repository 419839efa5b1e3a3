-- The outbox is a queue: every row is inserted, published within milliseconds and
-- deleted. With the default autovacuum trigger (20% of the table dead) its index fills
-- with dead entries that every relay round must step over: measured at 100 orders/s,
-- 17,000 dead rows beside 400 live ones made the relay's take 5 ms instead of < 1 ms.
-- Vacuum it after a fixed number of dead rows instead, without cost-based throttling
-- (the table stays a few pages long, so each vacuum is cheap).
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0
);

-- The inbox only grows until the pruner removes old rows; keep its visibility map
-- current so index-only dedup checks stay cheap.
ALTER TABLE inbox SET (
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 50000
);
