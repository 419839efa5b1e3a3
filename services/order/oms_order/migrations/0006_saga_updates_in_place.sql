-- Saga rows are rewritten about ten times per order. An update can stay in the row's page
-- without new index entries (HOT) only if no indexed column changes and the page has room:
-- * sagas_stuck indexed updated_at, which every update sets: it now indexes the (rarely
--   changing) order id of the parked sagas; `ops stuck` sorts the few it finds.
-- * the deadline column changes only when it must (see store._WRITE).
-- * half of each page is left free for the new versions (a saga is ~1.8 KB).
DROP INDEX IF EXISTS sagas_stuck;
CREATE INDEX sagas_stuck ON sagas (order_id) WHERE stuck_reason IS NOT NULL;
ALTER TABLE sagas SET (fillfactor = 50);
