"""Placing a ship-to address on the map when the channel sent no coordinates.

A real deployment plugs in a geocoder; the OMS ships a small table of postcode
areas (the first digit of German, Dutch, French and Austrian postcodes and UK
postcode areas) so orders without coordinates can still be sourced by distance.
An address the table cannot place is rejected with that reason.
"""

from __future__ import annotations

__all__ = ["place"]

# (country, postcode prefix) -> (lat, lon) of the area's rough centre.
_AREAS: dict[tuple[str, str], tuple[float, float]] = {
    ("DE", "0"): (51.05, 13.74), ("DE", "1"): (52.52, 13.40), ("DE", "2"): (53.55, 9.99),
    ("DE", "3"): (52.37, 9.74), ("DE", "4"): (51.23, 6.78), ("DE", "5"): (50.94, 6.96),
    ("DE", "6"): (50.11, 8.68), ("DE", "7"): (48.78, 9.18), ("DE", "8"): (48.14, 11.58),
    ("DE", "9"): (49.45, 11.08),
    ("NL", "1"): (52.37, 4.90), ("NL", "2"): (52.08, 4.30), ("NL", "3"): (51.92, 4.48),
    ("NL", "4"): (51.59, 4.78), ("NL", "5"): (51.44, 5.48), ("NL", "6"): (51.84, 5.86),
    ("NL", "7"): (52.22, 6.89), ("NL", "8"): (52.51, 6.09), ("NL", "9"): (53.22, 6.57),
    ("FR", "0"): (46.20, 5.23), ("FR", "1"): (45.83, 1.26), ("FR", "2"): (47.32, 5.04),
    ("FR", "3"): (43.60, 1.44), ("FR", "4"): (44.84, -0.58), ("FR", "5"): (48.11, -1.68),
    ("FR", "6"): (43.70, 7.26), ("FR", "7"): (48.86, 2.35), ("FR", "8"): (47.90, 1.91),
    ("FR", "9"): (48.80, 2.13),
    ("AT", "1"): (48.21, 16.37), ("AT", "2"): (48.20, 15.63), ("AT", "3"): (48.31, 14.29),
    ("AT", "4"): (48.31, 14.29), ("AT", "5"): (47.81, 13.06), ("AT", "6"): (47.27, 11.39),
    ("AT", "7"): (47.85, 16.52), ("AT", "8"): (47.07, 15.44), ("AT", "9"): (46.62, 14.31),
    ("GB", "E"): (51.52, -0.05), ("GB", "EC"): (51.52, -0.09), ("GB", "N"): (51.57, -0.10),
    ("GB", "NW"): (51.55, -0.17), ("GB", "SE"): (51.47, -0.05), ("GB", "SW"): (51.47, -0.17),
    ("GB", "W"): (51.51, -0.20), ("GB", "WC"): (51.52, -0.12), ("GB", "M"): (53.48, -2.24),
    ("GB", "B"): (52.49, -1.89), ("GB", "L"): (53.41, -2.98), ("GB", "LS"): (53.80, -1.55),
    ("GB", "G"): (55.86, -4.25), ("GB", "EH"): (55.95, -3.19), ("GB", "BS"): (51.45, -2.59),
}  # fmt: skip


def place(country: str, postcode: str) -> tuple[float, float] | None:
    """Coordinates of the postcode's area, or None if the table does not know it."""
    code = postcode.strip().upper()
    for length in (2, 1):
        hit = _AREAS.get((country, code[:length]))
        if hit is not None and (length == 1 or not code[1:2].isdigit()):
            return hit
    return None
