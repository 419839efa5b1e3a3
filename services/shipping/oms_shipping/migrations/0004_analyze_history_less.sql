-- 0003 for the tables that only grow (labels, tracking events, a shipment's packages):
-- re-analysed after every 10% of growth, every few seconds each at 300 orders/s on a
-- young database, though every query reads them by key. Analyse after growth worth twice
-- the table, and keep no statistics for documents nothing filters on: the label itself,
-- a package's items, the statuses a shipment reported (see bench/README.md, session 18).
ALTER TABLE labels SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE tracking_events SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE shipment_packages SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE labels ALTER COLUMN content SET STATISTICS 0;
ALTER TABLE shipment_packages ALTER COLUMN items SET STATISTICS 0;
ALTER TABLE shipments ALTER COLUMN reported SET STATISTICS 0;
