"""The inbox forgets handled message ids past the retention, and only those."""

from __future__ import annotations

from typing import Any

from oms_shared.inbox import claim, prune


async def test_prune_removes_only_ids_older_than_the_retention(fresh_service_db: Any) -> None:
    pool = await fresh_service_db("inboxprune")
    async with pool.acquire() as conn:
        assert await claim(conn, "c", ["old-1", "old-2", "new-1"]) == {"old-1", "old-2", "new-1"}
        await conn.execute("UPDATE inbox SET processed_at = now() - interval '8 days' WHERE message_id LIKE 'old-%'")
        assert await prune(conn, retention_s=7 * 24 * 3600, limit=1) == 1  # chunked
        assert await prune(conn, retention_s=7 * 24 * 3600) == 1
        assert await prune(conn, retention_s=7 * 24 * 3600) == 0
        left = [r["message_id"] for r in await conn.fetch("SELECT message_id FROM inbox ORDER BY message_id")]
        assert left == ["new-1"]
        # A recent id still deduplicates after the prune.
        assert await claim(conn, "c", ["new-1", "new-2"]) == {"new-2"}
