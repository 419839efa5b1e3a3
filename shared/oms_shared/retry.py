"""Exponential backoff with jitter, for retrying transient failures in place."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of base * 2**n seconds, capped, with +-20% jitter so instances do not retry in step."""

    def __init__(self, base_s: float = 0.05, cap_s: float = 5.0) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self.attempts = 0

    def peek(self) -> float:
        """The delay the next call to :meth:`next` will return, before jitter."""
        return min(self._cap_s, self._base_s * 2.0**self.attempts)

    def next(self) -> float:
        """The next delay; each call doubles the following one up to the cap."""
        delay = self.peek()
        self.attempts += 1
        return float(delay * random.uniform(0.8, 1.2))  # noqa: S311  (jitter, not cryptography)

    def reset(self) -> None:
        """Start again from the base delay after a success."""
        self.attempts = 0
