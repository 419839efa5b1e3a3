"""Composition root of the returns service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_returns.handlers import COMMAND_HANDLERS
from oms_returns.settings import ReturnsSettings
from oms_shared import service, topics
from oms_shared.runtime import Subscription

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = ReturnsSettings()
    service.run(
        service.ServiceSpec(
            name="returns",
            settings=settings,
            subscriptions=[Subscription(topics.RETURNS_COMMANDS, COMMAND_HANDLERS)],
            migrations=["oms_returns.migrations"],
        )
    )
