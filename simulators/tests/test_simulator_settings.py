"""Each simulator reads its own prefixed environment variables."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from oms_simulators.carrier.domain import CarrierPolicy
from oms_simulators.carrier.settings import CarrierSimSettings
from oms_simulators.warehouse.domain import PickerPolicy
from oms_simulators.warehouse.settings import WarehouseSimSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith(("WAREHOUSE_SIM_", "CARRIER_SIM_")):
            monkeypatch.delenv(name)


class TestWarehouseSimSettings:
    """WAREHOUSE_SIM_ settings and their defaults."""

    def test_defaults(self) -> None:
        settings = WarehouseSimSettings()
        assert settings.health_port == 8091
        assert settings.group_id == "oms-warehouse-sim"
        assert urlsplit(settings.database_url).path == "/oms_simulators"
        assert settings.policy() == PickerPolicy(seed=settings.seed, pick_delay_s=0.2, short_pick_rate=0.0)

    def test_environment_overrides_with_comma_separated_warehouses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WAREHOUSE_SIM_PICK_DELAY_S", "0")
        monkeypatch.setenv("WAREHOUSE_SIM_SHORT_PICK_RATE", "0.5")
        monkeypatch.setenv("WAREHOUSE_SIM_MANUAL_WAREHOUSES", "wh-a, wh-b,,")
        monkeypatch.setenv("WAREHOUSE_SIM_SEED", "run-7")
        policy = WarehouseSimSettings().policy()
        assert policy == PickerPolicy(
            seed="run-7", pick_delay_s=0.0, short_pick_rate=0.5, manual_warehouses=frozenset({"wh-a", "wh-b"})
        )

    def test_the_carrier_prefix_does_not_reach_the_warehouse(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CARRIER_SIM_SEED", "carrier-only")
        monkeypatch.setenv("CARRIER_SIM_HEALTH_PORT", "9999")
        settings = WarehouseSimSettings()
        assert settings.seed != "carrier-only"
        assert settings.health_port == 8091

    def test_a_rate_above_one_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WAREHOUSE_SIM_SHORT_PICK_RATE", "1.5")
        with pytest.raises(ValueError, match="short_pick_rate"):
            WarehouseSimSettings()


class TestCarrierSimSettings:
    """CARRIER_SIM_ settings and their defaults."""

    def test_defaults(self) -> None:
        settings = CarrierSimSettings()
        assert settings.health_port == 8092
        assert settings.group_id == "oms-carrier-sim"
        assert urlsplit(settings.database_url).path == "/oms_simulators"
        assert settings.policy() == CarrierPolicy(seed=settings.seed)

    def test_environment_overrides(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in {
            "BOOKING_DELAY_S": "0",
            "PICKUP_DELAY_S": "0",
            "SCAN_INTERVAL_S": "0",
            "FAILURE_RATE": "0.1",
            "FAILING_CARRIERS": "dhl,ups",
            "LOST_PARCEL_RATE": "0.2",
            "MANUAL_WAREHOUSES": "wh-m",
        }.items():
            monkeypatch.setenv(f"CARRIER_SIM_{name}", value)
        policy = CarrierSimSettings().policy()
        assert policy == CarrierPolicy(
            seed=policy.seed,
            booking_delay_s=0,
            pickup_delay_s=0,
            scan_interval_s=0,
            failure_rate=0.1,
            failing_carriers=frozenset({"dhl", "ups"}),
            lost_parcel_rate=0.2,
            manual_warehouses=frozenset({"wh-m"}),
        )


class TestStatelessNeedsZeroDelays:
    """durable=false (no database, no schedule) is refused while any delay is above 0."""

    def test_warehouse(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WAREHOUSE_SIM_DURABLE", "false")
        with pytest.raises(ValueError, match="pick_delay_s"):
            WarehouseSimSettings()
        monkeypatch.setenv("WAREHOUSE_SIM_PICK_DELAY_S", "0")
        assert WarehouseSimSettings().durable is False

    def test_carrier_names_every_delay_left(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CARRIER_SIM_DURABLE", "false")
        monkeypatch.setenv("CARRIER_SIM_BOOKING_DELAY_S", "0")
        with pytest.raises(ValueError, match="pickup_delay_s, scan_interval_s"):
            CarrierSimSettings()
        monkeypatch.setenv("CARRIER_SIM_PICKUP_DELAY_S", "0")
        monkeypatch.setenv("CARRIER_SIM_SCAN_INTERVAL_S", "0")
        assert CarrierSimSettings().durable is False

    def test_durable_by_default(self) -> None:
        assert WarehouseSimSettings().durable is True
        assert CarrierSimSettings().durable is True
