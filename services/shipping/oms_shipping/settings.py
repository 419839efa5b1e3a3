"""Settings of the shipping service (environment variables prefixed SHIPPING_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url

__all__ = ["ShippingSettings"]


class ShippingSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as SHIPPING_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="SHIPPING_", extra="ignore")

    database_url: str = local_database_url("shipping")
    health_port: int = 8084
