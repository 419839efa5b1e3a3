"""Settings of the shipping service (environment variables prefixed SHIPPING_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.settings import ServiceSettings, local_database_url
from oms_shipping.rates import CARRIERS, Carrier, carriers_from_json

__all__ = ["ShippingSettings"]


class ShippingSettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as SHIPPING_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="SHIPPING_", extra="ignore")

    database_url: str = local_database_url("shipping")
    health_port: int = 8084
    #: Off the intake->reserved path: the broker may hold a fetch up to the fetch wait
    #: for fuller batches. At 100 orders/s this took the four off-path consumers from
    #: ~53% to ~32% of a core, which the path's consumers got (p99 intake->reserved
    #: 237/224 -> 180/141 ms in back-to-back runs); shipped latency grows by a few waits.
    consumer_fetch_min_bytes: int = Field(64 * 1024, ge=1)
    #: A JSON rate card replacing the built-in carriers (format in the service README).
    carriers_file: Path | None = None

    def carriers(self) -> tuple[Carrier, ...]:
        """The configured rate card: the file's if one is set, else the built-in one."""
        if self.carriers_file is None:
            return CARRIERS
        return carriers_from_json(self.carriers_file.read_text(encoding="utf-8"))
