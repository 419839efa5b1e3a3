"""Composition root of the fulfillment service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_fulfillment.book import prepare
from oms_fulfillment.handlers import COMMAND_HANDLERS, warehouse_handlers
from oms_fulfillment.packing import PackingRules
from oms_fulfillment.settings import FulfillmentSettings
from oms_shared import service, topics
from oms_shared.runtime import Subscription

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = FulfillmentSettings()
    packing = PackingRules(limit_grams=settings.package_limit_grams, packaging_grams=settings.packaging_grams)
    service.run(
        service.ServiceSpec(
            name="fulfillment",
            settings=settings,
            subscriptions=[
                Subscription(topics.FULFILLMENT_COMMANDS, COMMAND_HANDLERS),
                Subscription(topics.WAREHOUSE_EVENTS, warehouse_handlers(packing)),
            ],
            migrations=["oms_fulfillment.migrations"],
            prepare=prepare,
        )
    )
