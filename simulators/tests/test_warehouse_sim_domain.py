"""The simulated pickers' decisions: full picks, reproducible short picks, manual warehouses."""

from __future__ import annotations

import pytest

from oms_simulators.warehouse.domain import Pick, PickerPolicy, PickResult, confirm_picks

PICKS = (Pick(2, "SKU-B", 3), Pick(1, "SKU-A", 2), Pick(2, "SKU-B", 1), Pick(3, "SKU-C", 1))
ALWAYS_SHORT = PickerPolicy(short_pick_rate=1.0)


class TestFullPick:
    """Without short picks every line is found in full."""

    def test_every_line_is_picked_in_full_and_bins_of_a_line_are_summed(self) -> None:
        assert confirm_picks(PickerPolicy(), "pl-1", PICKS) == (
            PickResult(1, "SKU-A", 2, 2),
            PickResult(2, "SKU-B", 4, 4),
            PickResult(3, "SKU-C", 1, 1),
        )

    def test_no_line_is_short(self) -> None:
        assert not any(line.short for line in confirm_picks(PickerPolicy(), "pl-1", PICKS))

    def test_an_empty_list_confirms_nothing(self) -> None:
        assert confirm_picks(ALWAYS_SHORT, "pl-1", []) == ()


class TestShortPick:
    """With probability short_pick_rate exactly one line comes back one unit short."""

    def test_exactly_one_line_is_one_unit_short(self) -> None:
        lines = confirm_picks(ALWAYS_SHORT, "pl-1", PICKS)
        short = [line for line in lines if line.short]
        assert len(short) == 1
        assert short[0].picked == short[0].requested - 1

    def test_a_short_line_of_one_unit_is_picked_zero(self) -> None:
        assert confirm_picks(ALWAYS_SHORT, "pl-1", [Pick(1, "SKU-A", 1)]) == (PickResult(1, "SKU-A", 1, 0),)

    def test_the_same_pick_list_is_short_on_the_same_line_every_time(self) -> None:
        assert confirm_picks(ALWAYS_SHORT, "pl-7", PICKS) == confirm_picks(ALWAYS_SHORT, "pl-7", PICKS)

    def test_the_short_line_varies_between_pick_lists(self) -> None:
        short_lines = {
            next(line.line_no for line in confirm_picks(ALWAYS_SHORT, f"pl-{n}", PICKS) if line.short)
            for n in range(200)
        }
        assert short_lines == {1, 2, 3}

    def test_the_rate_is_the_fraction_of_short_pick_lists(self) -> None:
        policy = PickerPolicy(short_pick_rate=0.25)
        short = sum(any(x.short for x in confirm_picks(policy, f"pl-{n}", PICKS)) for n in range(8000))
        assert short / 8000 == pytest.approx(0.25, abs=0.02)

    def test_another_seed_shorts_other_pick_lists(self) -> None:
        def shorted(seed: str) -> list[int]:
            policy = PickerPolicy(seed=seed, short_pick_rate=0.5)
            return [n for n in range(200) if any(x.short for x in confirm_picks(policy, f"pl-{n}", PICKS))]

        assert shorted("a") == shorted("a")
        assert shorted("a") != shorted("b")


class TestManualWarehouses:
    """Warehouses listed as manual are not simulated."""

    def test_manual_warehouses_are_not_simulated(self) -> None:
        policy = PickerPolicy(manual_warehouses=frozenset({"wh-manual"}))
        assert not policy.simulates("wh-manual")
        assert policy.simulates("wh-1")
