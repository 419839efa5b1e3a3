"""Intake validation: strict, complete, and safe on hostile input (no I/O)."""

from __future__ import annotations

import json

import pytest

from oms_order import intake
from oms_order.geo import place
from oms_shared.contracts.order import order_id_for
from tests.intake_samples import HOSTILE, valid_order


def parse(order: dict[str, object]) -> intake.Valid | intake.Invalid:
    return intake.parse_order(json.dumps(order).encode())


class TestValidOrders:
    """A well-formed order passes with its coordinates."""

    def test_canonical_order(self) -> None:
        result = parse(valid_order())
        assert isinstance(result, intake.Valid)
        assert result.order.total == 3495
        assert (result.lat, result.lon) == (52.517, 13.389)

    def test_postcode_is_placed_when_coordinates_are_missing(self) -> None:
        order = valid_order()
        order["ship_to"] = {**order["ship_to"], "coordinates": None}
        result = parse(order)
        assert isinstance(result, intake.Valid)
        assert (result.lat, result.lon) == place("DE", "10117")

    def test_unknown_fields_are_ignored(self) -> None:
        assert isinstance(parse(valid_order(gift_message="hi")), intake.Valid)

    def test_unicode_names_are_fine(self) -> None:
        order = valid_order()
        order["ship_to"] = {**order["ship_to"], "name": "Zoë 😀 \u202eﬁ"}
        assert isinstance(parse(order), intake.Valid)

    def test_fingerprint_tells_content_apart(self) -> None:
        a, b = parse(valid_order()), parse(valid_order(shipping_method="express"))
        assert isinstance(a, intake.Valid)
        assert isinstance(b, intake.Valid)
        assert intake.fingerprint(a.order) != intake.fingerprint(b.order)
        assert intake.fingerprint(a.order) == intake.fingerprint(parse(valid_order()).order)  # type: ignore[union-attr]

    def test_order_id_is_stable_per_channel_order(self) -> None:
        assert order_id_for("web", "1") == order_id_for("web", "1")
        assert order_id_for("web", "1") != order_id_for("pos", "1")


class TestHostileInput:
    """Every malformed or hostile message is refused with a reason that names the problem."""

    @pytest.mark.parametrize(("name", "raw", "fragment"), HOSTILE, ids=[h[0] for h in HOSTILE])
    def test_refused_with_reason(self, name: str, raw: bytes, fragment: str) -> None:
        result = intake.parse_order(raw)
        assert isinstance(result, intake.Invalid), name
        assert result.reasons
        assert any(fragment.lower() in r.lower() for r in result.reasons), result.reasons

    def test_every_reason_is_reported_at_once(self) -> None:
        order = valid_order(currency="XXY")
        order["lines"] = [{"sku": "S", "quantity": 0, "unit_price": -1}]
        result = parse(order)
        assert isinstance(result, intake.Invalid)
        text = " ".join(result.reasons)
        for fragment in ("quantity", "unit_price", "ISO 4217"):
            assert fragment in text

    def test_hint_keeps_channel_and_external_id_when_readable(self) -> None:
        result = parse(valid_order(currency="XXY"))
        assert isinstance(result, intake.Invalid)
        assert result.hint == {"channel": "web", "external_order_id": "W-1001"}


class TestCancelMessages:
    """Cancel messages are validated the same way."""

    def test_valid_and_invalid(self) -> None:
        ok = intake.parse_cancel(b'{"channel": "web", "external_order_id": "W-1", "reason": "x"}')
        assert not isinstance(ok, intake.Invalid)
        bad = intake.parse_cancel(b'{"channel": "web"}')
        assert isinstance(bad, intake.Invalid)
        assert any("external_order_id" in r for r in bad.reasons)
