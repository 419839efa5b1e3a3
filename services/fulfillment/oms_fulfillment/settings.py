"""Settings of the fulfillment service (environment variables prefixed FULFILLMENT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url

__all__ = ["FulfillmentSettings"]


class FulfillmentSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as FULFILLMENT_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FULFILLMENT_", extra="ignore")

    database_url: str = local_database_url("fulfillment")
    health_port: int = 8083
    #: Off the intake->reserved path: the broker may hold a fetch up to the fetch wait
    #: for fuller batches. At 100 orders/s this took the four off-path consumers from
    #: ~53% to ~32% of a core, which the path's consumers got (p99 intake->reserved
    #: 237/224 -> 180/141 ms in back-to-back runs); shipped latency grows by a few waits.
    consumer_fetch_min_bytes: int = Field(64 * 1024, ge=1)
    #: A package holds at most this weight of goods (a heavier single unit travels alone).
    package_limit_grams: int = Field(20_000, ge=1)
    #: Weight of the box and filling, added to every package.
    packaging_grams: int = Field(200, ge=0)
