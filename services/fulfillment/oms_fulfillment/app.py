"""Composition root of the fulfillment service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_fulfillment.settings import FulfillmentSettings
from oms_shared import service, topics
from oms_shared.runtime import Subscription

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = FulfillmentSettings()
    service.run(
        service.ServiceSpec(
            name="fulfillment",
            settings=settings,
            subscriptions=[Subscription(topics.FULFILLMENT_COMMANDS, {})],
            migrations=["oms_fulfillment.migrations"],
        )
    )
