"""Operator commands: an order's timeline, and the parked ("stuck") sagas.

python -m oms_order.ops timeline <order id | channel:external id>
python -m oms_order.ops stuck
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from oms_order import store
from oms_order.settings import OrderSettings
from oms_shared.contracts.order import order_id_for
from oms_shared.db import Connection

__all__ = ["main"]


async def _timeline(conn: Connection, ref: str) -> int:
    order_id = order_id_for(*ref.split(":", 1)) if ":" in ref else ref
    entries = await store.timeline(conn, order_id)
    if not entries:
        print(f"no timeline for {order_id}", file=sys.stderr)
        return 1
    for e in entries:
        reasons = f"  ({'; '.join(e.reasons)})" if e.reasons else ""
        print(f"{e.seq:>3} {e.at.isoformat()} {e.status:<20}{reasons}")
    return 0


async def _stuck(conn: Connection) -> int:
    rows = await store.stuck_sagas(conn)
    for order_id, phase, reason, since in rows:
        print(f"{order_id} {phase:<12} since {since.isoformat()}  {reason}")
    print(f"{len(rows)} parked saga(s)")
    return 0


async def run(argv: list[str]) -> int:
    """Run one operator command."""
    if not argv or argv[0] not in {"timeline", "stuck"} or (argv[0] == "timeline" and len(argv) != 2):
        print(__doc__, file=sys.stderr)
        return 2
    conn = await asyncpg.connect(OrderSettings().database_url)
    try:
        return await (_timeline(conn, argv[1]) if argv[0] == "timeline" else _stuck(conn))
    finally:
        await conn.close()


def main() -> None:
    """Entry point of ``python -m oms_order.ops``."""
    raise SystemExit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
