"""Settings of the inventory service (environment variables prefixed INVENTORY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url

__all__ = ["InventorySettings"]


class InventorySettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as INVENTORY_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore")

    database_url: str = local_database_url("inventory")
    health_port: int = 8082
