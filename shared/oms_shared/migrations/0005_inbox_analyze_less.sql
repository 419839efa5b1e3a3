-- The inbox only grows (until the pruner) and is read by its primary key alone, yet it
-- was re-analysed after every 10% of growth: at 300 orders/s every few seconds while a
-- table is young, each time a 30,000-row sample sorted per column. Analyse after growth
-- worth twice the table instead (see bench/README.md, session 18).
ALTER TABLE inbox SET (autovacuum_analyze_scale_factor = 2);
