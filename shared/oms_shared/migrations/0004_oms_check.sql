-- A consumer batch written as ONE statement outside a transaction block (the runtime's
-- one-statement mode, see oms_shared/runtime.py) cannot roll itself back from Python
-- after looking at what its parts did: each part's precondition (a saga still at the
-- version read, a message not claimed before) is checked inside the statement, and a
-- false one aborts the whole statement, so nothing of the batch is written.
-- `sqlstate` tells the caller what happened: OMS01, a message handled before; OMS02, a
-- row the batch read was written concurrently (both: the runtime replays the batch in a
-- transaction, claiming and locking first); 40001 (serialization_failure), retried as is.
CREATE OR REPLACE FUNCTION oms_check(ok boolean, sqlstate text, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION '%', message USING ERRCODE = sqlstate;
    END IF;
    RETURN true;
END
$$;
