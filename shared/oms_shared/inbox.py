"""The inbox: which messages a consumer has already handled, recorded with the effect."""

from __future__ import annotations

from collections.abc import Sequence

from oms_shared.db import Connection

__all__ = ["claim", "claim_sql", "prune"]


def claim_sql(consumer: str, message_ids: str) -> str:
    """The INSERT recording ``message_ids`` (a text[] parameter) as handled by ``consumer``.

    In id order, so two claims of overlapping batches cannot deadlock; an id claimed
    before is skipped (ON CONFLICT), which is how a repeat is recognised. The outbox
    embeds it in its own statement (:mod:`oms_shared.outbox`), the runtime's claim-first
    path runs it alone (:func:`claim`).
    """
    # Only placeholders ($n) are put in, by this package's own statements, never values.
    return f"""
    INSERT INTO inbox (consumer, message_id)
    SELECT {consumer}, m FROM unnest({message_ids}::text[]) AS m ORDER BY m
    ON CONFLICT DO NOTHING"""  # noqa: S608


_CLAIM = claim_sql("$1", "$2") + "\nRETURNING message_id"


async def claim(conn: Connection, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record ``message_ids`` as handled by ``consumer``; return those not handled before.

    Runs inside the caller's transaction, so the claim commits or rolls back with
    the effect. A concurrent claim of the same id waits on the primary key, then
    sees the conflict: the message's effect happens once.
    """
    if not message_ids:
        return set()
    rows = await conn.fetch(_CLAIM, consumer, list(message_ids))
    return {row["message_id"] for row in rows}


_PRUNE = """
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2
))
"""


async def prune(conn: Connection, retention_s: float, limit: int = 10_000) -> int:
    """Forget up to ``limit`` handled message ids older than ``retention_s``; return how many.

    A duplicate can only arrive while the original is still replayable: a relay
    republishing after a crash (seconds) or a consumer replaying uncommitted offsets
    (one batch). The retention (days by default) is far beyond both.
    """
    status = await conn.execute(_PRUNE, retention_s, limit)
    return int(status.split()[-1])
