"""Settings of the carrier simulator (environment variables prefixed CARRIER_SIM_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_simulators.carrier.domain import CarrierPolicy
from oms_simulators.settings import CommaSet, SimulatorSettings

__all__ = ["CarrierSimSettings"]


class CarrierSimSettings(SimulatorSettings):
    """Shared fields unprefixed; the simulator's own read as CARRIER_SIM_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_SIM_", extra="ignore")

    health_port: int = 8092
    group_id: str = "oms-carrier-sim"
    #: Seconds between a booking request and the carrier's answer.
    booking_delay_s: float = Field(0.1, ge=0)
    #: Seconds from the answer to the pickup scan, then between the following scans.
    pickup_delay_s: float = Field(0.3, ge=0)
    scan_interval_s: float = Field(0.2, ge=0)
    #: Probability that a booking is rejected; carriers in ``failing_carriers`` reject all.
    failure_rate: float = Field(0.0, ge=0, le=1)
    failing_carriers: CommaSet = frozenset()
    #: Probability that an accepted parcel is lost in transit.
    lost_parcel_rate: float = Field(0.0, ge=0, le=1)

    def delays_s(self) -> dict[str, float]:
        return {
            "booking_delay_s": self.booking_delay_s,
            "pickup_delay_s": self.pickup_delay_s,
            "scan_interval_s": self.scan_interval_s,
        }

    def policy(self) -> CarrierPolicy:
        """The carriers' behaviour these settings describe."""
        return CarrierPolicy(
            seed=self.seed,
            booking_delay_s=self.booking_delay_s,
            pickup_delay_s=self.pickup_delay_s,
            scan_interval_s=self.scan_interval_s,
            failure_rate=self.failure_rate,
            failing_carriers=self.failing_carriers,
            lost_parcel_rate=self.lost_parcel_rate,
            manual_warehouses=self.manual_warehouses,
        )
