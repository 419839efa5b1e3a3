"""Composition root of the order service: describes it; the shared host runs it."""

from __future__ import annotations

from oms_order import book
from oms_order.handlers import REPLY_TOPICS, Handlers
from oms_order.poller import deadline_poller
from oms_order.settings import OrderSettings
from oms_shared import service, topics
from oms_shared.runtime import Subscription

__all__ = ["main"]


def main() -> None:
    """Build the service from the environment and run it until SIGTERM."""
    settings = OrderSettings()
    timing = settings.timing()
    handlers = Handlers(timing)
    service.run(
        service.ServiceSpec(
            name="order",
            settings=settings,
            subscriptions=[
                Subscription(topics.ORDER_INTAKE, handlers.intake()),
                *(Subscription(topic, handlers.replies(topic)) for topic in REPLY_TOPICS),
            ],
            migrations=["oms_order.migrations"],
            workers=[deadline_poller(timing, settings.poll_interval_s)],
            prepare=book.SagaCache(settings.saga_cache_size).prepare,
            one_statement=True,
        )
    )
