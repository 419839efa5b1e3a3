"""Reproducible randomness: decisions from a stable hash of (seed, purpose, id), never ``random()``.

The same seed and id always give the same outcome, in any process and after any
restart or redelivery, so a test or a benchmark run can be replayed exactly. The
``purpose`` keeps decisions about one id independent of each other (whether a
pick list is short says nothing about which of its lines is).
"""

from __future__ import annotations

import hashlib

__all__ = ["chance", "happens", "pick_index"]

_SEP = "\x1f"  # unit separator: ("a", "bc") and ("ab", "c") must hash differently


def chance(seed: str, purpose: str, key: str) -> float:
    """A number in [0, 1), uniformly spread and fixed for (seed, purpose, key)."""
    digest = hashlib.blake2b(_SEP.join((seed, purpose, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def happens(rate: float, seed: str, purpose: str, key: str) -> bool:
    """Whether an event of probability ``rate`` happens to ``key`` (rate 0: never, 1: always)."""
    return chance(seed, purpose, key) < rate


def pick_index(count: int, seed: str, purpose: str, key: str) -> int:
    """An index in ``range(count)``, fixed for (seed, purpose, key)."""
    if count < 1:
        raise ValueError("nothing to pick from")
    return int(chance(seed, purpose, key) * count)
