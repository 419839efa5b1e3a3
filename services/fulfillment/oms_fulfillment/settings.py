"""Settings of the fulfillment service (environment variables prefixed FULFILLMENT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.settings import OffPathSettings, local_database_url

__all__ = ["FulfillmentSettings"]


class FulfillmentSettings(OffPathSettings):
    """Shared fields unprefixed; this service's own fields read as FULFILLMENT_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FULFILLMENT_", extra="ignore")

    database_url: str = local_database_url("fulfillment")
    health_port: int = 8083
    #: A package holds at most this weight of goods (a heavier single unit travels alone).
    package_limit_grams: int = Field(20_000, ge=1)
    #: Weight of the box and filling, added to every package.
    packaging_grams: int = Field(200, ge=0)
