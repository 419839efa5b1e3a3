"""Composition root of the inventory service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_inventory import one_statement
from oms_inventory.handlers import COMMAND_HANDLERS, MOVEMENT_HANDLERS
from oms_inventory.settings import InventorySettings
from oms_inventory.stock_cache import StockCache
from oms_shared import service, topics
from oms_shared.runtime import Subscription

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = InventorySettings()
    service.run(
        service.ServiceSpec(
            name="inventory",
            settings=settings,
            subscriptions=[
                Subscription(topics.INVENTORY_COMMANDS, COMMAND_HANDLERS),
                Subscription(topics.INVENTORY_MOVEMENTS, MOVEMENT_HANDLERS),
            ],
            migrations=["oms_inventory.migrations"],
            prepare=StockCache(settings.stock_cache_skus, settings.reservation_cache_orders).prepare,
            one_statement=one_statement.takes_one_statement,
        )
    )
