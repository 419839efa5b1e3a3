"""Payload contracts. Each producer owns the models of what it writes.

Rules (ARCHITECTURE.md §3): changes within a major version are additive only;
consumers ignore unknown fields; a breaking change is a new ``ce_type`` version.
Money is integer minor units with an ISO 4217 currency, never float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict

__all__ = ["Contract", "RawPayload", "payload_json"]


def payload_json(fields: Mapping[str, Any]) -> bytes:
    """A payload's JSON from its fields, byte for byte what its contract model's dump would
    be when ``fields`` are in the model's order and of its types (datetimes in UTC, written
    with a ``Z`` as pydantic does). For hot paths that build a service's own events without
    constructing and validating the model (``UnitOfWork.emit_json``); their tests compare
    the bytes with the model's dump."""
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)


class Contract(BaseModel):
    """Base of every message payload; ``ce_type`` names it on the wire."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ce_type: ClassVar[str]


class RawPayload(Contract):
    """A message the service validates itself: the runtime hands over the raw bytes.

    Used at trust boundaries (the public intake), where an invalid message must
    become a business rejection with every reason, not a dead letter. Subclass it
    with the ``ce_type`` to accept.
    """

    data: bytes
