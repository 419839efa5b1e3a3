"""Settings of the shipping service (environment variables prefixed SHIPPING_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from oms_shared.settings import OffPathSettings, local_database_url
from oms_shipping.rates import CARRIERS, Carrier, carriers_from_json

__all__ = ["ShippingSettings"]


class ShippingSettings(OffPathSettings):
    """Shared fields unprefixed; this service's own fields read as SHIPPING_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="SHIPPING_", extra="ignore")

    database_url: str = local_database_url("shipping")
    health_port: int = 8084
    #: A JSON rate card replacing the built-in carriers (format in the service README).
    carriers_file: Path | None = None

    def carriers(self) -> tuple[Carrier, ...]:
        """The configured rate card: the file's if one is set, else the built-in one."""
        if self.carriers_file is None:
            return CARRIERS
        return carriers_from_json(self.carriers_file.read_text(encoding="utf-8"))
