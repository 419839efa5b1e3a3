"""Payload contracts. Each producer owns the models of what it writes.

Rules (ARCHITECTURE.md §3): changes within a major version are additive only;
consumers ignore unknown fields; a breaking change is a new ``ce_type`` version.
Money is integer minor units with an ISO 4217 currency, never float.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Contract"]


class Contract(BaseModel):
    """Base of every message payload; ``ce_type`` names it on the wire."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ce_type: ClassVar[str]
