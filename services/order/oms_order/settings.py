"""Settings of the order service (environment variables prefixed ORDER_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url

__all__ = ["OrderSettings"]


class OrderSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as ORDER_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore")

    database_url: str = local_database_url("order")
    health_port: int = 8081
