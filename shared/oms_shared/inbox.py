"""The inbox: which messages a consumer has already handled, recorded with the effect."""

from __future__ import annotations

from collections.abc import Sequence

from oms_shared.db import Connection

__all__ = ["claim"]

_CLAIM = """
INSERT INTO inbox (consumer, message_id)
SELECT $1, unnest($2::text[])
ON CONFLICT DO NOTHING
RETURNING message_id
"""


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
