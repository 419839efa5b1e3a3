"""The carriers' rate cards: zones by distance, prices by weight band, cut-off times, the cheapest carrier.

Pure: standard library only, no I/O. Carriers are configuration: :data:`CARRIERS`
is the built-in card; :func:`carriers_from_json` reads an override (the service's
``SHIPPING_CARRIERS_FILE``) into the same shape and checks it.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args

__all__ = [
    "CARRIERS",
    "METHODS",
    "ZONES",
    "ZONE_LIMITS_KM",
    "Carrier",
    "GeoPoint",
    "Quote",
    "ServiceLevel",
    "WeightBand",
    "Zone",
    "carriers_from_json",
    "haversine_km",
    "next_quote",
    "promised_ship_date",
    "quote",
    "rank_carriers",
    "validate_carriers",
    "zone_for",
]

Zone = Literal["local", "regional", "national", "international"]
ZONES: tuple[Zone, ...] = get_args(Zone)
#: A destination strictly closer than a limit (great-circle km) is in that zone; beyond the last: international.
ZONE_LIMITS_KM: tuple[tuple[Zone, float], ...] = (("local", 50.0), ("regional", 300.0), ("national", 1000.0))
METHODS: tuple[str, ...] = ("standard", "express")
EARTH_RADIUS_KM = 6371.0088
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A point on Earth in decimal degrees."""

    lat: float
    lon: float


def haversine_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance between two points, in kilometres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def zone_for(distance_km: float) -> Zone:
    """The rate zone of a parcel travelling ``distance_km``."""
    for zone, limit in ZONE_LIMITS_KM:
        if distance_km < limit:
            return zone
    return "international"


@dataclass(frozen=True, slots=True)
class WeightBand:
    """A parcel weighing up to ``max_grams`` (inclusive) costs ``prices`` (one per zone, in ZONES order)."""

    max_grams: int
    prices: tuple[int, int, int, int]

    def price(self, zone: Zone) -> int:
        """The price of one parcel of this band to ``zone``, in minor units."""
        return self.prices[ZONES.index(zone)]


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """One service a carrier sells: its prices by weight band and its daily collection cut-off (UTC)."""

    name: str
    currency: str
    cutoff_utc: time
    bands: tuple[WeightBand, ...]

    def parcel_price(self, weight_grams: int, zone: Zone) -> int | None:
        """The price of one parcel, or None if it is heavier than the level carries."""
        for band in self.bands:
            if weight_grams <= band.max_grams:
                return band.price(zone)
        return None


@dataclass(frozen=True, slots=True)
class Carrier:
    """A carrier and the service levels it sells."""

    name: str
    levels: tuple[ServiceLevel, ...]

    def level(self, name: str) -> ServiceLevel | None:
        """The service level called ``name``, if this carrier sells it."""
        return next((lv for lv in self.levels if lv.name == name), None)


@dataclass(frozen=True, slots=True)
class Quote:
    """What one carrier would charge for the whole shipment at one service level."""

    carrier: str
    service_level: str
    cost_minor: int
    currency: str
    cutoff_utc: time


def _band(max_grams: int, local: int, regional: int, national: int, international: int) -> WeightBand:
    return WeightBand(max_grams, (local, regional, national, international))


#: The built-in rate card (EUR cents). Cheap budgetpost wins light standard parcels near by,
#: parcelco wins heavy or far ones; quickship wins light express parcels near by, parcelco the rest.
CARRIERS: tuple[Carrier, ...] = (
    Carrier(
        "budgetpost",
        (
            ServiceLevel(
                "standard",
                "EUR",
                time(16, 0),
                (
                    _band(1_000, 350, 450, 590, 1290),
                    _band(5_000, 550, 690, 890, 1990),
                    _band(20_000, 990, 1290, 1690, 3990),
                ),
            ),
        ),
    ),
    Carrier(
        "parcelco",
        (
            ServiceLevel(
                "standard",
                "EUR",
                time(17, 0),
                (
                    _band(1_000, 450, 550, 690, 1190),
                    _band(5_000, 590, 690, 850, 1790),
                    _band(30_000, 890, 1090, 1390, 2990),
                ),
            ),
            ServiceLevel(
                "express",
                "EUR",
                time(14, 0),
                (
                    _band(1_000, 990, 1190, 1490, 2490),
                    _band(5_000, 1290, 1490, 1890, 3290),
                    _band(30_000, 1990, 2390, 2990, 5490),
                ),
            ),
        ),
    ),
    Carrier(
        "quickship",
        (
            ServiceLevel(
                "express",
                "EUR",
                time(18, 0),
                (
                    _band(1_000, 890, 1290, 1690, 2990),
                    _band(5_000, 1190, 1690, 2190, 3990),
                    _band(10_000, 1690, 2290, 2990, 5490),
                ),
            ),
        ),
    ),
)


def quote(carrier: Carrier, method: str, weights: Sequence[int], zone: Zone) -> Quote | None:
    """The carrier's price for parcels of ``weights`` to ``zone``, or None if it cannot carry them."""
    level = carrier.level(method)
    if level is None or not weights:
        return None
    prices = [level.parcel_price(w, zone) for w in weights]
    if any(p is None for p in prices):
        return None
    total = sum(p for p in prices if p is not None)
    return Quote(carrier.name, level.name, total, level.currency, level.cutoff_utc)


def rank_carriers(carriers: Iterable[Carrier], method: str, weights: Sequence[int], zone: Zone) -> tuple[Quote, ...]:
    """Every eligible carrier's quote, cheapest first (ties broken by carrier name)."""
    quotes = (quote(c, method, weights, zone) for c in carriers)
    return tuple(sorted((q for q in quotes if q is not None), key=lambda q: (q.cost_minor, q.carrier)))


def next_quote(ranked: Sequence[Quote], tried: Collection[str]) -> Quote | None:
    """The cheapest quote of a carrier not tried yet, or None when every one was."""
    return next((q for q in ranked if q.carrier not in tried), None)


def promised_ship_date(booked_at: datetime, cutoff_utc: time) -> date:
    """The collection day: the booking's day (UTC) before the cut-off, the next day at or after it."""
    at = booked_at.astimezone(UTC) if booked_at.tzinfo else booked_at
    return at.date() if at.time() < cutoff_utc else at.date() + timedelta(days=1)


def validate_carriers(carriers: Sequence[Carrier]) -> tuple[Carrier, ...]:
    """Check a rate card is usable (raise ValueError saying what is wrong) and return it."""
    if not carriers:
        raise ValueError("no carriers configured")
    names = [c.name for c in carriers]
    if len(set(names)) != len(names):
        raise ValueError(f"carrier names repeat: {names}")
    currencies = {lv.currency for c in carriers for lv in c.levels}
    if len(currencies) > 1:
        raise ValueError(f"every rate must be in one currency to compare carriers, got {sorted(currencies)}")
    for carrier in carriers:
        where = f"carrier {carrier.name!r}"
        if not carrier.name or not carrier.levels:
            raise ValueError(f"{where}: a carrier needs a name and at least one service level")
        levels = [lv.name for lv in carrier.levels]
        if len(set(levels)) != len(levels) or not set(levels) <= set(METHODS):
            raise ValueError(f"{where}: service levels must be distinct and among {METHODS}, got {levels}")
        for level in carrier.levels:
            _validate_level(level, f"{where} level {level.name!r}")
    return tuple(carriers)


def _validate_level(level: ServiceLevel, where: str) -> None:
    if not _CURRENCY.match(level.currency):
        raise ValueError(f"{where}: currency {level.currency!r} is not an ISO 4217 code")
    if level.cutoff_utc.tzinfo is not None:
        raise ValueError(f"{where}: the cut-off is a UTC wall-clock time, without a time zone")
    if not level.bands:
        raise ValueError(f"{where}: no weight bands")
    limits = [b.max_grams for b in level.bands]
    if limits[0] <= 0 or any(a >= b for a, b in itertools.pairwise(limits)):
        raise ValueError(f"{where}: weight bands must be positive and strictly ascending, got {limits}")
    for band in level.bands:
        if len(band.prices) != len(ZONES) or any(not isinstance(p, int) or p < 0 for p in band.prices):
            raise ValueError(f"{where}: band {band.max_grams} g needs a non-negative integer price per zone")


def carriers_from_json(text: str) -> tuple[Carrier, ...]:
    """Read a rate card written as JSON (see the service README) and check it."""
    try:
        doc = json.loads(text)
        carriers = [_carrier(c) for c in doc["carriers"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid carriers configuration: {exc!r}") from exc
    return validate_carriers(carriers)


def _carrier(doc: dict[str, Any]) -> Carrier:
    levels = tuple(
        ServiceLevel(
            name=str(lv["level"]),
            currency=str(lv["currency"]),
            cutoff_utc=time.fromisoformat(lv["cutoff_utc"]),
            bands=tuple(_weight_band(b) for b in lv["bands"]),
        )
        for lv in doc["levels"]
    )
    return Carrier(str(doc["name"]), levels)


def _weight_band(doc: dict[str, Any]) -> WeightBand:
    p = doc["prices"]
    return WeightBand(int(doc["max_grams"]), (p["local"], p["regional"], p["national"], p["international"]))
