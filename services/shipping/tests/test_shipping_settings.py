"""The shipping service's settings: the rate card comes from a JSON file when one is configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oms_shipping.rates import CARRIERS
from oms_shipping.settings import ShippingSettings

CARD = {
    "carriers": [
        {
            "name": "hauler",
            "levels": [
                {
                    "level": "standard",
                    "currency": "EUR",
                    "cutoff_utc": "15:30",
                    "bands": [
                        {"max_grams": 5000, "prices": {"local": 1, "regional": 2, "national": 3, "international": 4}}
                    ],
                }
            ],
        }
    ]
}


class TestCarriersSetting:
    """SHIPPING_CARRIERS_FILE replaces the built-in rate card; without it the built-in one is used."""

    def test_default_is_the_built_in_card(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("SHIPPING_CARRIERS_FILE", raising=False)
        assert ShippingSettings().carriers() == CARRIERS

    def test_a_file_overrides_it(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        path = tmp_path / "carriers.json"
        path.write_text(json.dumps(CARD), encoding="utf-8")
        monkeypatch.setenv("SHIPPING_CARRIERS_FILE", str(path))
        (carrier,) = ShippingSettings().carriers()
        assert carrier.name == "hauler"
        assert carrier.levels[0].cutoff_utc.isoformat() == "15:30:00"
        assert carrier.levels[0].bands[0].prices == (1, 2, 3, 4)

    def test_an_invalid_file_stops_the_service(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        path = tmp_path / "carriers.json"
        path.write_text(json.dumps({"carriers": []}), encoding="utf-8")
        monkeypatch.setenv("SHIPPING_CARRIERS_FILE", str(path))
        with pytest.raises(ValueError, match="no carriers"):
            ShippingSettings().carriers()
