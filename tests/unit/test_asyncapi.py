"""The AsyncAPI document is generated from the contracts and committed up to date."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import yaml

from oms_shared.topics import ALL_TOPICS
from tests.support import ROOT


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("oms_asyncapi", ROOT / "tools" / "asyncapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
