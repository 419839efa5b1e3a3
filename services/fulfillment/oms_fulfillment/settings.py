"""Settings of the fulfillment service (environment variables prefixed FULFILLMENT_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url

__all__ = ["FulfillmentSettings"]


class FulfillmentSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as FULFILLMENT_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FULFILLMENT_", extra="ignore")

    database_url: str = local_database_url("fulfillment")
    health_port: int = 8083
