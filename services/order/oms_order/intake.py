"""Validation of intake messages: strict, complete (every reason), and safe on hostile input.

A channel's message is bytes from the outside world. Before pydantic sees it we
refuse what JSON parsers usually let through: oversized payloads, invalid UTF-8,
duplicate keys (which value would win?), NaN/Infinity, lone surrogates and NUL
characters (PostgreSQL text cannot hold them), absurd nesting. Then the contract
is validated strictly (no coercion) and business checks follow. Every reason is
collected so the channel can fix its message in one go.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from oms_order.currencies import ISO_4217
from oms_order.geo import place
from oms_shared.contracts import Contract
from oms_shared.contracts.order import CancelOrder, PlaceOrder

__all__ = ["MAX_PAYLOAD_BYTES", "Invalid", "Valid", "fingerprint", "parse_cancel", "parse_order"]

MAX_PAYLOAD_BYTES = 64 * 1024
_MAX_DEPTH = 32

T = TypeVar("T", bound=Contract)


@dataclass(frozen=True, slots=True)
class Valid:
    """A placed order that passed every check, with its ship-to coordinates resolved."""

    order: PlaceOrder
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message refused with every reason found; ``hint`` holds what could be read of it."""

    reasons: tuple[str, ...]
    hint: dict[str, str]


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"duplicate JSON key {key!r}")
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _check_strings(value: Any, path: str = "", depth: int = 0) -> list[str]:
    if depth > _MAX_DEPTH:
        return [f"{path or '<root>'}: nested deeper than {_MAX_DEPTH} levels"]
    problems: list[str] = []
    if isinstance(value, str):
        if "\x00" in value:
            problems.append(f"{path}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{path}: contains an unpaired surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            problems += _check_strings(key, f"{path}.<key>" if path else "<key>", depth + 1)
            problems += _check_strings(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _check_strings(item, f"{path}.{i}", depth + 1)
    return problems


def _load(raw: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    if len(raw) > MAX_PAYLOAD_BYTES:
        return None, [f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"payload is not valid UTF-8 ({exc.reason} at byte {exc.start})"]
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _Refused as exc:
        return None, [str(exc)]
    except RecursionError:
        return None, ["payload is nested too deeply"]
    except json.JSONDecodeError as exc:
        return None, [f"payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    if not isinstance(data, dict):
        return None, [f"payload must be a JSON object, not {type(data).__name__}"]
    if b"\\u" not in raw and raw.count(b"{") + raw.count(b"[") <= _MAX_DEPTH:
        # Nothing _check_strings could find: a NUL or a lone surrogate can only come
        # from a \u escape (the parser refuses raw control characters, the UTF-8 decoder
        # surrogates), and nesting cannot be deeper than the brackets are many. Most
        # orders take this way: the walk was a third of the intake's time.
        return data, []
    problems = _check_strings(data)
    return (None, problems) if problems else (data, [])


def _hint(data: dict[str, Any] | None) -> dict[str, str]:
    """Channel and external id if they can be read, so a rejection can be tied to its order."""
    if not data:
        return {}
    hint = {}
    for key in ("channel", "external_order_id"):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= 128:
            hint[key] = value
    return hint


def _schema(model: type[T], raw: bytes) -> tuple[T | None, list[str]]:
    # JSON mode: strict types as JSON has them (an array is a fine tuple, "5" is not 5).
    try:
        return model.model_validate_json(raw), []
    except ValidationError as exc:
        reasons = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "<order>"
            reasons.append(f"{where}: {err['msg']}")
        return None, reasons


def parse_order(raw: bytes) -> Valid | Invalid:
    """Validate a place-order message; never raises on bad input."""
    data, reasons = _load(raw)
    if data is None:
        return Invalid(tuple(reasons), {})
    order, reasons = _schema(PlaceOrder, raw)
    if isinstance(data.get("currency"), str) and data["currency"] not in ISO_4217:
        reasons.append(f"currency: {data['currency']!r} is not an ISO 4217 currency code")
    if order is None:
        return Invalid(tuple(reasons), _hint(data))
    lat_lon = _coordinates(order)
    if lat_lon is None:
        reasons.append(
            f"ship_to: no coordinates and postcode {order.ship_to.postcode!r} in {order.ship_to.country} "
            "cannot be placed"
        )
    if reasons or lat_lon is None:
        return Invalid(tuple(reasons), _hint(data))
    return Valid(order, lat_lon[0], lat_lon[1])


def parse_cancel(raw: bytes) -> CancelOrder | Invalid:
    """Validate a cancel-order message; never raises on bad input."""
    data, reasons = _load(raw)
    if data is None:
        return Invalid(tuple(reasons), {})
    cancel, reasons = _schema(CancelOrder, raw)
    return cancel if cancel is not None else Invalid(tuple(reasons), _hint(data))


def _coordinates(order: PlaceOrder) -> tuple[float, float] | None:
    if order.ship_to.coordinates is not None:
        return order.ship_to.coordinates.lat, order.ship_to.coordinates.lon
    return place(order.ship_to.country, order.ship_to.postcode)


def fingerprint(order: PlaceOrder) -> str:
    """A hash of the order's content: the same key with another fingerprint is a conflict."""
    return hashlib.sha256(order.model_dump_json().encode()).hexdigest()
