#!/usr/bin/env python3
"""Generate docs/asyncapi.yaml: the public topics of the OMS, with JSON Schemas from the contracts.

    python tools/asyncapi.py          write docs/asyncapi.yaml
    python tools/asyncapi.py --check  exit 1 if the committed file is out of date

The public topics are the product's API: channels publish to the intake and
movements topics; other systems subscribe to status, availability and refunds.
Schemas come from the pydantic models the producers own, so they cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from oms_shared import topics
from oms_shared.contracts import Contract
from oms_shared.contracts.inventory import (
    AvailabilityChanged,
    SafetyStockSet,
    StockMovementRecorded,
    WarehouseUpserted,
)
from oms_shared.contracts.order import CancelOrder, OrderStatusChanged, PlaceOrder
from oms_shared.contracts.returns import RefundIssued

OUT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"

#: (topic, messages, who acts: "send" = the OMS receives what users send, "receive" = users receive)
PUBLIC: tuple[tuple[topics.Topic, tuple[type[Contract], ...], str], ...] = (
    (topics.ORDER_INTAKE, (PlaceOrder, CancelOrder), "send"),
    (topics.INVENTORY_MOVEMENTS, (StockMovementRecorded, WarehouseUpserted, SafetyStockSet), "send"),
    (topics.ORDER_STATUS, (OrderStatusChanged,), "receive"),
    (topics.INVENTORY_AVAILABILITY, (AvailabilityChanged,), "receive"),
    (topics.REFUNDS, (RefundIssued,), "receive"),
)

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, Kafka binary content mode: attributes as headers, the payload as value.",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {
            "type": "string",
            "description": "Unique message id, the deduplication key: a UUID (version 7, time-ordered, when the OMS "
            + "mints it).",
        },
        "ce_type": {"type": "string", "description": "The message type, e.g. oms.order.place-order.v1."},
        "ce_source": {"type": "string", "description": "Who produced the message, e.g. oms/order."},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "The order id, where the message is about one order."},
        "content-type": {"type": "string", "const": "application/json"},
        "ce_correlationid": {"type": "string", "description": "Extension: the order id the message belongs to."},
        "ce_causationid": {"type": "string", "description": "Extension: the ce_id of the message that caused it."},
        "ce_traceparent": {"type": "string", "description": "Extension: W3C trace context."},
    },
}


def _name(model: type[Contract]) -> str:
    return model.__name__


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain data."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic, models, action in PUBLIC:
        channel_id = topic.name.replace(".", "-")
        channels[channel_id] = {
            "address": topic.name,
            "description": f"{topic.description}. Key: {topic.key}. Partitions: {topic.partitions}."
            + (" Compacted: the latest value per key is kept." if topic.compacted else ""),
            "messages": {_name(m): {"$ref": f"#/components/messages/{_name(m)}"} for m in models},
            "bindings": {"kafka": {"topic": topic.name, "partitions": topic.partitions,
                                   "topicConfiguration": {"cleanup.policy": [topic.configs()["cleanup.policy"]]}}},
        }  # fmt: skip
        operations[f"{action}-{channel_id}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{_name(m)}"} for m in models],
        }
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas[name] = definition
            schemas[_name(model)] = schema
            messages[_name(model)] = {
                "name": model.ce_type,
                "title": _name(model),
                "summary": (model.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                "payload": {"$ref": f"#/components/schemas/{_name(model)}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": topic.key}}},
            }
    schemas["CloudEventHeaders"] = CLOUDEVENTS_HEADERS
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "OMS public event API",
            "version": "1.0.0",
            "description": (
                "The public topics of the Order Management System. Delivery is at least once: consumers "
                "deduplicate by ce_id. Every topic about one order is keyed by order id, so one order's "
                "events arrive in order. Within a major version changes are additive; unknown fields must "
                "be ignored. Money is integer minor units with an ISO 4217 currency. Generated by "
                "tools/asyncapi.py from the contracts; do not edit by hand."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make up"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def render() -> str:
    """The document as YAML text."""
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=110)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python tools/asyncapi.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
