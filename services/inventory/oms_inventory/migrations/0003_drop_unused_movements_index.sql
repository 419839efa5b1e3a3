-- movements_by_stock (sku, warehouse_id) was read by no query (idx_scan 0 after a full
-- benchmark and ten minutes at 300 orders/s): the conservation check sums the whole
-- ledger per stock row in one pass, and movements are found by movement_id or order.
-- Every movement (a committed reservation line is one: ~2.5 per order) wrote an entry
-- into it.
DROP INDEX IF EXISTS movements_by_stock;
