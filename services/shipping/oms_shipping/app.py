"""Composition root of the shipping service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_shared import service, topics
from oms_shared.runtime import Subscription
from oms_shipping.settings import ShippingSettings

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = ShippingSettings()
    service.run(
        service.ServiceSpec(
            name="shipping",
            settings=settings,
            subscriptions=[Subscription(topics.SHIPPING_COMMANDS, {})],
            migrations=["oms_shipping.migrations"],
        )
    )
