-- A saga document is written by the order service and read back only by it (pydantic
-- validates it on load); nothing queries inside it but the invariant checker, which
-- casts. As jsonb each write (about ten per order, 1-4 KB each) was parsed into jsonb
-- and each load printed back to text: measured with a 2 KB document, 45-90 us to
-- parse as jsonb, 2-4 us to store as text, 15-35 us to print jsonb back.
ALTER TABLE sagas ALTER COLUMN data TYPE text USING data::text;
