"""Named crash points for fault-injection tests.

``OMS_FAILPOINTS=consumer.after_db_commit`` makes the process kill itself with
SIGKILL the first time it reaches that point, which is how the tests prove that
a crash between two steps (database commit / offset commit, Kafka publish /
outbox delete) loses and doubles nothing. Unset, a failpoint costs one set lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["hit"]

_ACTIVE = frozenset(filter(None, os.environ.get("OMS_FAILPOINTS", "").split(",")))


def hit(name: str) -> None:
    """Die at once, like a power cut, if the failpoint ``name`` is armed."""
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
