"""bench/order_cpu.py cannot rot: a few batches of it, on a database of its own."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from tests import support


def _order_cpu() -> ModuleType:
    spec = importlib.util.spec_from_file_location("order_cpu", support.ROOT / "bench" / "order_cpu.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_every_order_runs_its_whole_journey_through_the_real_batch_path(fresh_service_db: Any) -> None:
    pool = await fresh_service_db("order_cpu", "oms_order.migrations")
    result = await _order_cpu().measure(120, 10, None, pool=pool)
    assert result["dead_lettered"] == 0
    assert result["replayed"] == 0
    # received, accepted, reserved, fulfilling, packed, shipment_booked, shipped, in_transit,
    # out_for_delivery, delivered, completed: every order went the whole way.
    assert result["statuses_emitted"] == 120 * 11
    assert result["messages"] > 0
    assert result["cpu_us_per_message"] > 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sagas WHERE phase = 'completed'") == 120
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
