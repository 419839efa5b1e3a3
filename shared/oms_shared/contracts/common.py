"""Value types shared by several contracts: coordinates, order lines, packages.

Money is always integer minor units plus an ISO 4217 currency code, never float.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Coordinates", "LineQuantity", "PackageSpec", "StrictModel"]


class StrictModel(BaseModel):
    """A nested value inside a contract: frozen, unknown fields ignored (additive evolution)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Coordinates(StrictModel):
    """A point on Earth in decimal degrees (WGS 84)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class LineQuantity(StrictModel):
    """A quantity of one SKU for one order line."""

    line_no: int = Field(ge=1)
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)


class PackageSpec(StrictModel):
    """A packed parcel: its id, weight and what is inside."""

    package_id: str
    weight_grams: int = Field(ge=1)
    items: tuple[LineQuantity, ...]
