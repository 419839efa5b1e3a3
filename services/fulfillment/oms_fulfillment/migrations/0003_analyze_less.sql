-- Tables updated many times per row are re-analysed after every 10% of their size in
-- changes (the default): at 300 orders/s several times a minute each, ~30-180 ms of a
-- core a time (a 30,000-row sample), while their distributions do not change (ids,
-- a handful of states). Analyse after changes worth twice the table instead; VACUUM
-- keeps the row counts current. (Autovacuum was ~12% of a core at 300/s, bench/README.md.)
ALTER TABLE fulfillment_orders SET (autovacuum_analyze_scale_factor = 2);
ALTER TABLE fulfillment_lines SET (autovacuum_analyze_scale_factor = 2);
