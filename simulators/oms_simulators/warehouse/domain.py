"""What the simulated pickers do with a pick list: pure decisions, no I/O.

Pickers walk the list and find every unit, except that with probability
``short_pick_rate`` one line (chosen by the same stable hash) comes back one unit
short. Warehouses in ``manual_warehouses`` are not simulated at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from oms_simulators.chance import happens, pick_index

__all__ = ["Pick", "PickResult", "PickerPolicy", "confirm_picks"]


@dataclass(frozen=True, slots=True)
class PickerPolicy:
    """How the pickers behave; built from settings, fixed for a run."""

    seed: str = "oms-simulators"
    pick_delay_s: float = 0.2
    short_pick_rate: float = 0.0
    manual_warehouses: frozenset[str] = field(default_factory=frozenset)

    def simulates(self, warehouse_id: str) -> bool:
        """Whether the simulator works this warehouse (tests drive the manual ones)."""
        return warehouse_id not in self.manual_warehouses


@dataclass(frozen=True, slots=True)
class Pick:
    """One instruction of a pick list: a quantity of a line's SKU from one bin."""

    line_no: int
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PickResult:
    """What the picker reports for one order line."""

    line_no: int
    sku: str
    requested: int
    picked: int

    @property
    def short(self) -> bool:
        """Whether units of this line were not found."""
        return self.picked < self.requested


def confirm_picks(policy: PickerPolicy, pick_list_id: str, picks: Iterable[Pick]) -> tuple[PickResult, ...]:
    """The lines of the confirmation: per line, the units requested (summed over bins) and found."""
    requested: dict[tuple[int, str], int] = {}
    for pick in picks:
        requested[pick.line_no, pick.sku] = requested.get((pick.line_no, pick.sku), 0) + pick.quantity
    lines = [PickResult(no, sku, qty, qty) for (no, sku), qty in sorted(requested.items())]
    if lines and happens(policy.short_pick_rate, policy.seed, "short-pick", pick_list_id):
        i = pick_index(len(lines), policy.seed, "short-line", pick_list_id)
        line = lines[i]
        lines[i] = PickResult(line.line_no, line.sku, line.requested, line.requested - 1)
    return tuple(lines)
