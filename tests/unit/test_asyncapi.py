"""The AsyncAPI document is generated from the contracts and committed up to date."""

from __future__ import annotations

from typing import Any

import yaml

from oms_shared.topics import ALL_TOPICS
from tests.support import ROOT, script


def generator() -> Any:
    return script("tools/asyncapi.py")


class TestAsyncApi:
    """docs/asyncapi.yaml describes every public topic with schemas from the pydantic models."""

    def test_committed_file_is_current(self) -> None:
        assert (ROOT / "docs" / "asyncapi.yaml").read_text() == generator().render(), "run: python tools/asyncapi.py"

    def test_every_public_topic_is_documented(self) -> None:
        doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
        addresses = {c["address"] for c in doc["channels"].values()}
        assert addresses == {t.name for t in ALL_TOPICS if t.public}
        place = doc["components"]["schemas"]["PlaceOrder"]
        assert "lines" in place["required"]
        assert doc["components"]["messages"]["PlaceOrder"]["name"] == "oms.order.place-order.v1"
