-- 0008 for the tables that only grow: orders and the timeline get rows at the order rate
-- and were re-analysed after every 10% of growth (every ~6 s each at 300 orders/s on a
-- young database, ~80-110 ms of a core a time), though every query reads them by key.
-- Analyse after growth worth twice the table instead (see bench/README.md, session 18).
ALTER TABLE orders SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE status_history SET (autovacuum_analyze_scale_factor = 2);
-- Nothing filters on the documents: a saga's state (1-4 KB of JSON as text, analysed
-- with sagas every few seconds at 300 orders/s before 0008), a refused message's bytes.
ALTER TABLE sagas ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE intake_rejections ALTER COLUMN raw SET STATISTICS 0, ALTER COLUMN reasons SET STATISTICS 0;
