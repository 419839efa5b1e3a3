-- 0003 for the tables that only grow (pick lists, their stops, packages): re-analysed
-- after every 10% of growth, every few seconds each at 300 orders/s on a young database,
-- though every query reads them by key. Analyse after growth worth twice the table, and
-- keep no statistics for a package's items document (see bench/README.md, session 18).
ALTER TABLE pick_lists SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE pick_list_stops SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE packages SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE packages ALTER COLUMN items SET STATISTICS 0;
