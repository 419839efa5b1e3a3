-- Let saga updates be HOT (heap-only: no new index entries, the old version pruned
-- within its page) where they can: that needs an unchanged value in every indexed
-- column and room in the page. updated_at changes on every update and was indexed
-- (sagas_stuck), so no update was HOT (2 of 10,390 in bench/order_cpu.py); the stuck
-- list is a handful of rows, found as well through an index on order_id. A fill factor
-- of 70 leaves room for a new version of a ~1.7 KB document. Updates that change the
-- deadline (a command sent or answered) still are not HOT: 23% of them are now.
DROP INDEX IF EXISTS sagas_stuck;
CREATE INDEX sagas_stuck ON sagas (order_id) WHERE stuck_reason IS NOT NULL;
ALTER TABLE sagas SET (fillfactor = 70);
