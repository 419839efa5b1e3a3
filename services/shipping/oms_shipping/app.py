"""Composition root of the shipping service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_shared import service
from oms_shipping import book
from oms_shipping.handlers import subscriptions
from oms_shipping.settings import ShippingSettings

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = ShippingSettings()
    service.run(
        service.ServiceSpec(
            name="shipping",
            settings=settings,
            subscriptions=subscriptions(settings.carriers()),
            migrations=["oms_shipping.migrations"],
            prepare=book.prepare,
        )
    )
