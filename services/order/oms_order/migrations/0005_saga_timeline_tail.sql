-- The saga keeps its order's last timeline entry (number and status), so a batch numbers
-- its status events before it writes and writes everything in one statement (see
-- store._WRITE): no lookup of the last entry per order in the write. Existing sagas get
-- theirs from the timeline; a document without them (written by an older instance) is
-- completed from the timeline when it is loaded.
UPDATE sagas s
SET data = (s.data::jsonb || jsonb_build_object('timeline_seq', h.seq, 'timeline_status', h.status))::text
FROM (SELECT DISTINCT ON (order_id) order_id, seq, status FROM status_history ORDER BY order_id, seq DESC) AS h
WHERE h.order_id = s.order_id;
