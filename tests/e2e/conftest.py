"""The end-to-end session: a wiped stack, the services and simulators running as processes.

These tests own the real consumer groups (oms-order, oms-inventory, ...): stop a
`make run` stack first (`make stop`) when running them by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from oms_shared.db import create_pool
from oms_shared.topology import SERVICES
from tests import support
from tests.e2e.journey import Journey, OutsideWorld, start_processes, wipe


@pytest.fixture(scope="session")
async def journey(stack: Any, topics: None) -> AsyncIterator[Journey]:
    for service in (*SERVICES, "simulators"):
        await wipe(stack.service_url(service))
    processes = start_processes(stack)
    producer = await support.started_producer()
    order_db = await create_pool(stack.service_url("order"), size=4)
    inventory_db = await create_pool(stack.service_url("inventory"), size=4)
    try:
        await asyncio.gather(*(p.wait_ready(timeout=90) for p in processes.values()))
        j = Journey(producer, {s: stack.service_url(s) for s in SERVICES}, order_db, inventory_db, processes)
        await j.register_warehouses()
        yield j
    finally:
        for proc in processes.values():
            proc.terminate()
        await producer.stop()
        await order_db.close()
        await inventory_db.close()


@pytest.fixture
async def world(journey: Journey) -> AsyncIterator[OutsideWorld]:
    w = OutsideWorld(journey)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()
