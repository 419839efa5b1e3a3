"""Composition root of the warehouse simulator: describes it; the shared host runs it."""

from __future__ import annotations

from oms_shared import topics
from oms_shared.runtime import Subscription
from oms_simulators.host import run_simulator
from oms_simulators.warehouse.handlers import SIMULATOR, handlers
from oms_simulators.warehouse.settings import WarehouseSimSettings

__all__ = ["NAME", "main"]

NAME = "warehouse-sim"


def main() -> None:
    """Build the simulator from the environment and run it until SIGTERM."""
    settings = WarehouseSimSettings()
    run_simulator(NAME, SIMULATOR, settings, Subscription(topics.WAREHOUSE_TASKS, handlers(settings.policy())))
