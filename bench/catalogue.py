"""The benchmark's world: a catalogue of SKUs, five warehouses, Zipf-skewed canonical orders.

Deterministic for a seed, so the OMS and every baseline see the same orders.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["WAREHOUSES", "Catalogue", "order_payload"]

#: (id, lat, lon): five German cities.
WAREHOUSES: tuple[tuple[str, float, float], ...] = (
    ("BW-BER", 52.52, 13.40),
    ("BW-HAM", 53.55, 9.99),
    ("BW-MUC", 48.14, 11.58),
    ("BW-CGN", 50.94, 6.96),
    ("BW-FRA", 50.11, 8.68),
)
#: Ship-to points customers are spread over.
CITIES: tuple[tuple[str, float, float], ...] = (
    ("Berlin", 52.52, 13.40), ("Hamburg", 53.55, 9.99), ("Munich", 48.14, 11.58), ("Cologne", 50.94, 6.96),
    ("Frankfurt", 50.11, 8.68), ("Stuttgart", 48.78, 9.18), ("Leipzig", 51.34, 12.37), ("Dresden", 51.05, 13.74),
    ("Hanover", 52.37, 9.74), ("Nuremberg", 49.45, 11.08),
)  # fmt: skip


@dataclass(frozen=True)
class Catalogue:
    """``skus`` SKUs with Zipf(s) popularity; every warehouse stocks every SKU."""

    skus: int = 10_000
    zipf_s: float = 1.1
    seed: int = 7

    def sku(self, rank: int) -> str:
        return f"BSKU-{rank:05d}"

    def price(self, rank: int) -> int:
        return 199 + (rank * 7919) % 9800

    def _cumulative(self) -> list[float]:
        weights = [1.0 / (k**self.zipf_s) for k in range(1, self.skus + 1)]
        return list(itertools.accumulate(weights))

    def orders(self, prefix: str) -> Any:
        """An endless stream of (external id, payload) with 1-5 Zipf-distributed lines each."""
        rng = random.Random(self.seed)
        cumulative = self._cumulative()
        total = cumulative[-1]
        for n in itertools.count():
            lines: dict[int, int] = {}
            for _ in range(rng.randint(1, 5)):
                rank = bisect.bisect_left(cumulative, rng.random() * total) + 1
                lines[rank] = lines.get(rank, 0) + rng.randint(1, 2)
            city = CITIES[rng.randrange(len(CITIES))]
            external = f"{prefix}-{n}"
            yield (
                external,
                order_payload(
                    external, [(self.sku(r), q, self.price(r)) for r, q in sorted(lines.items())], (city[1], city[2])
                ),
            )


def order_payload(external_id: str, lines: list[tuple[str, int, int]], at: tuple[float, float]) -> dict[str, Any]:
    """A canonical place-order payload (the intake's public schema)."""
    total = sum(q * p for _, q, p in lines) + 495
    return {
        "channel": "web",
        "external_order_id": external_id,
        "customer": {"id": f"c-{external_id}", "email": "bench@example.com"},
        "ship_to": {"name": "Bench Customer", "line1": "Street 1", "city": "City", "postcode": "10115",
                    "country": "DE", "coordinates": {"lat": at[0], "lon": at[1]}},
        "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines],
        "currency": "EUR",
        "shipping_method": "standard",
        "shipping_fee": 495,
        "payment": {"amount_paid": total, "reference": f"psp-{external_id}"},
    }  # fmt: skip
