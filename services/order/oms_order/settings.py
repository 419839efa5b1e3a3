"""Settings of the order service (environment variables prefixed ORDER_)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_order.saga import Timing
from oms_shared.settings import PATH_CONSUMER_CLIENT, ConsumerClient, ServiceSettings, local_database_url

__all__ = ["OrderSettings"]


class OrderSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as ORDER_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore")

    database_url: str = local_database_url("order")
    health_port: int = 8081
    consumer_client: ConsumerClient = PATH_CONSUMER_CLIENT
    #: Seconds to wait for a participant's reply before re-sending the command.
    reply_timeout_s: float = 15.0
    #: Seconds to wait for a carrier booking (the carrier answers through shipping).
    booking_timeout_s: float = 60.0
    #: Re-sends before a reservation is given up (compensated) or the saga is parked as stuck.
    max_attempts: int = 5
    #: Seconds between stock checks of a backordered order, and how long it may wait.
    backorder_retry_s: float = 30.0
    backorder_window_s: float = 72 * 3600
    poll_interval_s: float = 0.25
    #: Open sagas the consumer keeps in memory between batches (0: read every one from the database).
    saga_cache_size: int = Field(4096, ge=0)

    def timing(self) -> Timing:
        """The saga's timing built from these settings."""
        return Timing(
            reply_timeout=timedelta(seconds=self.reply_timeout_s),
            booking_timeout=timedelta(seconds=self.booking_timeout_s),
            max_attempts=self.max_attempts,
            backorder_retry=timedelta(seconds=self.backorder_retry_s),
            backorder_window=timedelta(seconds=self.backorder_window_s),
        )
