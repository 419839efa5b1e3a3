"""Packing: which picked units travel in which parcel, and what each parcel weighs.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Package", "PackingRules", "PickedLine", "Units", "pack"]


@dataclass(frozen=True, slots=True)
class Units:
    """A quantity of one order line."""

    line_no: int
    sku: str
    quantity: int


class PickedLine(Protocol):
    """What packing needs to know of a line: its units picked and what one weighs."""

    @property
    def line_no(self) -> int: ...
    @property
    def sku(self) -> str: ...
    @property
    def unit_weight_grams(self) -> int: ...
    @property
    def picked(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class PackingRules:
    """A package holds at most ``limit_grams`` of goods and weighs ``packaging_grams`` more."""

    limit_grams: int = 20_000
    packaging_grams: int = 200

    def __post_init__(self) -> None:
        if self.limit_grams < 1 or self.packaging_grams < 0:
            raise ValueError(f"invalid packing rules: {self}")


@dataclass(frozen=True, slots=True)
class Package:
    """A parcel: its number within the fulfillment, its gross weight and its content."""

    seq: int
    weight_grams: int
    items: tuple[Units, ...]

    def package_id(self, fulfillment_id: str) -> str:
        """Stable, so the same pick always yields the same package ids."""
        return f"{fulfillment_id}-P{self.seq}"


def pack(lines: Sequence[PickedLine], rules: PackingRules) -> tuple[Package, ...]:
    """Pack the picked units in pick order, filling each package up to the limit before starting the next.

    A unit heavier than the limit travels alone. A package weighs its units plus
    the packaging.
    """
    packages: list[Package] = []
    content: list[Units] = []
    load = 0

    def close() -> None:
        nonlocal content, load
        if content:
            packages.append(Package(len(packages) + 1, load + rules.packaging_grams, tuple(content)))
        content, load = [], 0

    for line in lines:
        remaining = line.picked or 0
        weight = line.unit_weight_grams
        if weight < 1:
            raise ValueError(f"line {line.line_no}: unit weight must be positive, not {weight}")
        if weight > rules.limit_grams:
            close()
            for _ in range(remaining):
                content, load = [Units(line.line_no, line.sku, 1)], weight
                close()
            continue
        while remaining:
            fits = (rules.limit_grams - load) // weight
            if fits == 0:
                close()
                continue
            taken = min(fits, remaining)
            content.append(Units(line.line_no, line.sku, taken))
            load += taken * weight
            remaining -= taken
    close()
    return tuple(packages)
