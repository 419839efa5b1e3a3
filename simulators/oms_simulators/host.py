"""Running one simulator on the shared service host: its subscription plus the schedule worker.

With ``durable=false`` (every delay 0) it runs without a database: the runtime's
stateless mode answers each message at once, straight to Kafka, and there is nothing
to schedule.
"""

from __future__ import annotations

from oms_shared import service
from oms_shared.runtime import Subscription
from oms_simulators.schedule import schedule_worker
from oms_simulators.settings import SimulatorSettings

__all__ = ["run_simulator"]


def run_simulator(name: str, simulator: str, settings: SimulatorSettings, subscription: Subscription) -> None:
    """Run a simulator process until SIGTERM: its one subscription and (when durable) its delayed-message worker."""
    durable = settings.durable
    # The delayed messages wait in the database: a stateless simulator has neither.
    workers = (
        [
            schedule_worker(
                simulator,
                f"oms/{name}",
                interval_s=settings.schedule_poll_interval_s,
                batch_size=settings.schedule_batch_size,
                retention_s=settings.schedule_retention_s,
            )
        ]
        if durable
        else []
    )
    service.run(
        service.ServiceSpec(
            name=name,
            settings=settings,
            subscriptions=[subscription],
            migrations=["oms_simulators.migrations"] if durable else [],
            workers=workers,
            group_id=settings.group_id,
            stateless=not durable,
        )
    )
