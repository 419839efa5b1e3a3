"""Composition root of the carrier simulator: describes it; the shared host runs it."""

from __future__ import annotations

from oms_shared import service, topics
from oms_shared.runtime import Subscription
from oms_simulators.carrier.handlers import SIMULATOR, handlers
from oms_simulators.carrier.settings import CarrierSimSettings
from oms_simulators.schedule import schedule_worker

__all__ = ["NAME", "main"]

NAME = "carrier-sim"


def main() -> None:
    """Build the simulator from the environment and run it until SIGTERM."""
    settings = CarrierSimSettings()
    service.run(
        service.ServiceSpec(
            name=NAME,
            settings=settings,
            subscriptions=[Subscription(topics.CARRIER_REQUESTS, handlers(settings.policy()))],
            migrations=["oms_simulators.migrations"],
            workers=[
                schedule_worker(
                    SIMULATOR,
                    f"oms/{NAME}",
                    interval_s=settings.schedule_poll_interval_s,
                    batch_size=settings.schedule_batch_size,
                    retention_s=settings.schedule_retention_s,
                )
            ],
            group_id=settings.group_id,
        )
    )
