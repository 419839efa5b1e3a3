-- Rows of these tables are inserted and then updated once or twice, soon after, while
-- their page is full of newer inserts: the updates could not be HOT (no room beside the
-- old version) and wrote new index entries. Leave room on each page.
ALTER TABLE reservations SET (fillfactor = 70);
