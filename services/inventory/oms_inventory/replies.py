"""Domain allocations as they travel in replies (with the warehouse's location where known)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from oms_inventory import domain
from oms_inventory.domain import Point
from oms_shared.contracts.common import Coordinates
from oms_shared.contracts.inventory import Allocation

__all__ = ["allocations"]


def allocations(
    items: Iterable[domain.Allocation], locations: Mapping[str, Point] | None = None
) -> tuple[Allocation, ...]:
    """The reply's allocations; ``locations`` adds each warehouse's coordinates."""
    where = locations or {}
    return tuple(
        Allocation(
            warehouse_id=a.warehouse_id,
            line_no=a.line_no,
            sku=a.sku,
            quantity=a.quantity,
            location=Coordinates(lat=p.lat, lon=p.lon) if (p := where.get(a.warehouse_id)) else None,
        )
        for a in items
    )
