-- 0006's fill factor of 70 bought HOT updates in bench/order_cpu.py (23%), where each
-- carrier scan is a batch of its own, but not in the benchmark: 9 of 134,283 saga updates
-- were HOT in 90 s at 300 orders/s, since almost every transition moves the indexed
-- deadline (a command sent or answered) and the scans arrive together. The room left
-- free in each page only made the table a third larger (more to vacuum and to cache).
-- Back to full pages; sagas_stuck stays on order_id (updated_at needs no index).
ALTER TABLE sagas RESET (fillfactor);
