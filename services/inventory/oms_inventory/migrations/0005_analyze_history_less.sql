-- 0004 for the tables that only grow (movements, the sourcing decisions, the requests'
-- replies): re-analysed after every 10% of growth, every few seconds each at 300 orders/s
-- on a young database; the sourcing decisions' four JSON documents made each ANALYZE of
-- that table cost ~360 ms of a core (18,000 rows), most of it sorting jsonb values
-- nothing filters on. Analyse after growth worth twice the table, and keep no
-- statistics for the documents (see bench/README.md, session 18).
ALTER TABLE movements SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE sourcing_decisions SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE requests SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE sourcing_decisions
    ALTER COLUMN ship_to SET STATISTICS 0,
    ALTER COLUMN candidates SET STATISTICS 0,
    ALTER COLUMN chosen SET STATISTICS 0,
    ALTER COLUMN unfilled SET STATISTICS 0;
ALTER TABLE requests ALTER COLUMN reply SET STATISTICS 0;
