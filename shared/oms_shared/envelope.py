"""CloudEvents 1.0 in Kafka binary content mode: attributes in headers, JSON payload as value.

Any CloudEvents SDK can read what the OMS writes: the record value is the JSON
payload, and the attributes travel as ``ce_*`` headers plus ``content-type``.
Extensions (``correlationid``, ``causationid``, ``traceparent``) are lowercase
alphanumerics, as the spec requires.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oms_shared.errors import UndecodableMessage

__all__ = ["Envelope", "Position", "derived_message_id", "new_message_id"]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

_REQUIRED = ("ce_id", "ce_type", "ce_source", "ce_specversion")


def new_message_id() -> str:
    """A fresh CloudEvents ``id``, which is also the deduplication key: a UUIDv7 (RFC 9562).

    Its first 48 bits are the Unix time in milliseconds, the rest random (74 bits), so
    ids sort by creation time and the inboxes' primary keys grow at their right edge,
    instead of a random leaf per message: measured here, 500 inserts into a 60,000-row
    inbox took 2.3-3.4 ms with time-ordered ids against 3.7-5.8 ms with random ones.
    The random bits come from a generator seeded from the OS once per process: an id must
    be unique, not unguessable, and a system call per id (``os.urandom``) cost 1.6 us
    against 0.9 (the order service makes thousands a second).
    """
    ms = time.time_ns() // 1_000_000
    rand = _random_bits(74)
    value = (ms & _MS_MASK) << 80 | (0x7000 | rand >> 62) << 64 | 0b10 << 62 | rand & _RAND_B_MASK
    return _uuid_text(f"{value:032x}")


def derived_message_id(cause: str, index: int) -> str:
    """The id of the ``index``-th message caused by message ``cause``: the same every time.

    For a sender without a database (see the runtime's stateless mode): handling the same
    message again emits the same ids, so the receivers' inboxes drop the repeats. A UUIDv7
    whose time is the cause's (when the cause is a UUIDv7, as the OMS's ids are) and whose
    other bits are a hash of the cause and the index: ids still sort roughly by time, so
    the inboxes' keys keep growing at their right edge.
    """
    digest = bytearray(hashlib.blake2b(f"{cause}/{index}".encode(), digest_size=16).digest())
    hexed = cause.replace("-", "")
    if len(hexed) == 32 and hexed[12] == "7":  # a UUIDv7: keep its 48 bits of time
        digest[:6] = bytes.fromhex(hexed[:12])
    digest[6] = 0x70 | digest[6] & 0x0F
    digest[8] = 0x80 | digest[8] & 0x3F
    return _uuid_text(digest.hex())


def _uuid_text(h: str) -> str:
    """32 hex digits in the UUID's 8-4-4-4-12 form."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_MS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1
_random = random.Random(int.from_bytes(os.urandom(32), "big"))  # noqa: S311  (unique, not secret)
_random_bits = _random.getrandbits
# A forked child must not repeat its parent's sequence.
os.register_at_fork(after_in_child=lambda: _random.seed(int.from_bytes(os.urandom(32), "big")))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a received record sat in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Envelope:
    """One CloudEvent: its attributes and its JSON payload bytes.

    Treat it as immutable (``dataclasses.replace`` makes a changed copy). It is not a
    frozen dataclass only because one is built for every message received and sent, and
    a frozen one's ``__init__`` (a ``object.__setattr__`` call per field) took 1.2 us
    against 0.5.
    """

    type: str
    source: str
    data: bytes
    id: str = field(default_factory=new_message_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    key: bytes | None = None
    position: Position | None = None

    def to_headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers carrying this event's attributes (binary content mode)."""
        return [(name, value.encode()) for name, value in self.header_items()]

    def header_items(self) -> list[tuple[str, str]]:
        """The headers of :meth:`to_headers` as text (the outbox stores them as JSON)."""
        headers = [
            ("ce_specversion", SPECVERSION),
            ("ce_id", self.id),
            ("ce_type", self.type),
            ("ce_source", self.source),
            ("ce_time", self.time.isoformat()),
            ("content-type", CONTENT_TYPE),
        ]
        if self.subject:
            headers.append(("ce_subject", self.subject))
        if self.correlation_id:
            headers.append(("ce_correlationid", self.correlation_id))
        if self.causation_id:
            headers.append(("ce_causationid", self.causation_id))
        if self.traceparent:
            headers.append(("ce_traceparent", self.traceparent))
        return headers

    @classmethod
    def from_record(
        cls,
        headers: Sequence[tuple[str, bytes]],
        value: bytes | None,
        key: bytes | None,
        position: Position | None = None,
    ) -> Envelope:
        """Read a record written in binary content mode; raise UndecodableMessage if it is not one."""
        attrs: dict[str, str] = {}
        try:
            for name, raw in headers:
                attrs[name] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UndecodableMessage(f"header is not UTF-8: {exc}") from exc
        missing = [name for name in _REQUIRED if not attrs.get(name)]
        if missing:
            raise UndecodableMessage(f"missing CloudEvents headers: {', '.join(missing)}")
        if attrs["ce_specversion"] != SPECVERSION:
            raise UndecodableMessage(f"unsupported specversion {attrs['ce_specversion']!r}")
        if value is None:
            raise UndecodableMessage("record has no value")
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            time=_parse_time(attrs.get("ce_time")),
            subject=attrs.get("ce_subject"),
            correlation_id=attrs.get("ce_correlationid"),
            causation_id=attrs.get("ce_causationid"),
            traceparent=attrs.get("ce_traceparent"),
            data=value,
            key=key,
            position=position,
        )


def _parse_time(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UndecodableMessage(f"ce_time is not RFC 3339: {raw!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
