"""Settings of the returns service (environment variables prefixed RETURNS_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import OffPathSettings, local_database_url

__all__ = ["ReturnsSettings"]


class ReturnsSettings(OffPathSettings):
    """Shared fields unprefixed; this service's own fields read as RETURNS_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="RETURNS_", extra="ignore")

    database_url: str = local_database_url("returns")
    health_port: int = 8085
