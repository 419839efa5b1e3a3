-- sagas_open (phase of the sagas not closed yet) was read by no query: operators and the
-- invariant checker look sagas up by order id, the poller by deadline, `ops stuck` by
-- stuck reason. Yet every saga update wrote an entry into it (~ten per order: sagas are
-- rewritten on each transition and never HOT, see bench/README.md), and vacuum cleaned
-- them up again.
DROP INDEX IF EXISTS sagas_open;
