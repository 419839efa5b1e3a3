"""Settings of the warehouse simulator (environment variables prefixed WAREHOUSE_SIM_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_simulators.settings import SimulatorSettings
from oms_simulators.warehouse.domain import PickerPolicy

__all__ = ["WarehouseSimSettings"]


class WarehouseSimSettings(SimulatorSettings):
    """Shared fields unprefixed; the simulator's own read as WAREHOUSE_SIM_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="WAREHOUSE_SIM_", extra="ignore")

    health_port: int = 8091
    group_id: str = "oms-warehouse-sim"
    #: Seconds between a pick list arriving and its confirmation (0: confirm at once).
    pick_delay_s: float = Field(0.2, ge=0)
    #: Probability that a pick list comes back with one line short.
    short_pick_rate: float = Field(0.0, ge=0, le=1)

    def delays_s(self) -> dict[str, float]:
        return {"pick_delay_s": self.pick_delay_s}

    def policy(self) -> PickerPolicy:
        """The pickers' behaviour these settings describe."""
        return PickerPolicy(
            seed=self.seed,
            pick_delay_s=self.pick_delay_s,
            short_pick_rate=self.short_pick_rate,
            manual_warehouses=self.manual_warehouses,
        )
