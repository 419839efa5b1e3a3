"""A valid canonical order, and a corpus of malformed and hostile intake messages."""

from __future__ import annotations

import copy
import json
from typing import Any


def valid_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "channel": "web",
        "external_order_id": "W-1001",
        "customer": {"id": "c-1", "email": "ada@example.com"},
        "ship_to": {
            "name": "Ada Lovelace",
            "line1": "Unter den Linden 1",
            "city": "Berlin",
            "postcode": "10117",
            "country": "DE",
            "coordinates": {"lat": 52.517, "lon": 13.389},
        },
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": 1250},
            {"sku": "SKU-2", "quantity": 1, "unit_price": 500},
        ],
        "currency": "EUR",
        "shipping_method": "standard",
        "shipping_fee": 495,
        "payment": {"amount_paid": 3495, "reference": "psp-1"},
    }
    order.update(overrides)
    return order


def _with(path: str, value: Any) -> bytes:
    order = copy.deepcopy(valid_order())
    target: Any = order
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return json.dumps(order).encode()


_DELETE = object()

#: (name, raw bytes, a fragment every rejection of it must mention)
HOSTILE: list[tuple[str, bytes, str]] = [
    ("truncated", json.dumps(valid_order()).encode()[:60], "not valid JSON"),
    ("empty", b"", "not valid JSON"),
    ("not an object", b"[1, 2, 3]", "JSON object"),
    ("invalid utf-8", b'{"channel": "\xff\xfe"}', "UTF-8"),
    ("duplicate keys", b'{"channel": "web", "channel": "pos"}', "duplicate JSON key"),
    ("NaN", json.dumps(valid_order()).replace('"shipping_fee": 495', '"shipping_fee": NaN').encode(), "NaN"),
    ("Infinity", b'{"shipping_fee": Infinity}', "Infinity"),
    ("huge payload", json.dumps(valid_order(note="x" * 70_000)).encode(), "limit"),
    ("deep nesting", b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
    ("lone surrogate", json.dumps(valid_order(external_order_id="\ud800")).encode(), "surrogate"),
    ("NUL character", _with("customer.id", "a\x00b"), "NUL"),
    ("missing lines", _with("lines", _DELETE), "lines"),
    ("missing payment", _with("payment", _DELETE), "payment"),
    ("no lines", _with("lines", []), "lines"),
    ("too many lines", _with("lines", [{"sku": "S", "quantity": 1, "unit_price": 0}] * 101), "lines"),
    ("zero quantity", _with("lines.0.quantity", 0), "quantity"),
    ("negative quantity", _with("lines.0.quantity", -3), "quantity"),
    ("huge quantity", _with("lines.0.quantity", 10_001), "quantity"),
    ("quantity as string", _with("lines.0.quantity", "2"), "quantity"),
    ("float money", _with("lines.0.unit_price", 12.5), "unit_price"),
    ("price as string", _with("lines.0.unit_price", "1250"), "unit_price"),
    ("negative price", _with("lines.0.unit_price", -1), "unit_price"),
    ("unknown currency", _with("currency", "XXY"), "ISO 4217"),
    ("lowercase currency", _with("currency", "eur"), "currency"),
    ("bad email", _with("customer.email", "not-an-email"), "email"),
    ("bad country", _with("ship_to.country", "Germany"), "country"),
    ("unplaceable address", _with("ship_to", {**valid_order()["ship_to"], "coordinates": None, "country": "JP"}),
     "cannot be placed"),
    ("latitude out of range", _with("ship_to.coordinates", {"lat": 123.0, "lon": 0.0}), "lat"),
    ("wrong total", _with("payment", {"amount_paid": 1, "reference": "p"}), "does not equal"),
    ("unknown shipping method", _with("shipping_method", "teleport"), "shipping_method"),
    ("bad sku", _with("lines.0.sku", "SKU 1; DROP TABLE"), "sku"),
    ("channel with spaces", _with("channel", "web shop"), "channel"),
    ("wrong types everywhere", b'{"channel": 1, "external_order_id": [], "customer": "c", "lines": {}}', "channel"),
    ("emoji and RTL marks in names are fine but missing fields are not", _with("ship_to", {"name": "😀\u202e"}),
     "ship_to"),
]  # fmt: skip
