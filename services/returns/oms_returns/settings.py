"""Settings of the returns service (environment variables prefixed RETURNS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.settings import OFF_PATH_FETCH_MIN_BYTES, ServiceSettings, local_database_url

__all__ = ["ReturnsSettings"]


class ReturnsSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as RETURNS_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="RETURNS_", extra="ignore")

    database_url: str = local_database_url("returns")
    health_port: int = 8085
    #: Off the intake->reserved path: fuller, fewer fetches (see OFF_PATH_FETCH_MIN_BYTES).
    consumer_fetch_min_bytes: int = Field(OFF_PATH_FETCH_MIN_BYTES, ge=1)
