"""The CloudEvents binary-mode envelope."""

from __future__ import annotations

import time
import uuid

import pytest

from oms_shared.envelope import Envelope, Position, derived_message_id, new_message_id
from oms_shared.errors import UndecodableMessage

BASE = [("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s")]


class TestEnvelope:
    """Attributes travel as ce_* headers and come back identical."""

    def test_round_trip_keeps_every_attribute(self) -> None:
        sent = Envelope(
            type="oms.test.happened.v1",
            source="oms/test",
            data=b'{"a": 1}',
            subject="order-1",
            correlation_id="order-1",
            causation_id="cause-1",
            traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            key=b"order-1",
        )
        received = Envelope.from_record(sent.to_headers(), sent.data, sent.key, Position("t", 0, 5))
        assert received.id == sent.id
        assert received.type == sent.type
        assert received.source == sent.source
        assert received.time == sent.time
        assert received.subject == "order-1"
        assert received.correlation_id == "order-1"
        assert received.causation_id == "cause-1"
        assert received.traceparent == sent.traceparent
        assert received.position == Position("t", 0, 5)

    def test_headers_follow_the_kafka_binding(self) -> None:
        headers = dict(Envelope(type="t.v1", source="s", data=b"{}", correlation_id="c").to_headers())
        assert headers["ce_specversion"] == b"1.0"
        assert headers["content-type"] == b"application/json"
        assert headers["ce_correlationid"] == b"c"
        assert "ce_subject" not in headers

    @pytest.mark.parametrize(
        ("headers", "value", "message"),
        [
            ([], b"{}", "missing CloudEvents headers"),
            (
                [("ce_specversion", b"0.3"), ("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s")],
                b"{}",
                "specversion",
            ),
            ([("ce_specversion", b"1.0"), ("ce_id", b"\xff"), ("ce_type", b"t"), ("ce_source", b"s")], b"{}", "UTF-8"),
            ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s")], None, "no value"),
            (
                [
                    ("ce_specversion", b"1.0"),
                    ("ce_id", b"1"),
                    ("ce_type", b"t"),
                    ("ce_source", b"s"),
                    ("ce_time", b"x"),
                ],
                b"{}",
                "RFC 3339",
            ),
        ],
    )
    def test_unreadable_records_are_undecodable(
        self, headers: list[tuple[str, bytes]], value: bytes | None, message: str
    ) -> None:
        with pytest.raises(UndecodableMessage, match=message):
            Envelope.from_record(headers, value, None)


def test_message_ids_are_uuid7_ordered_by_time() -> None:
    """RFC 9562 version 7 and variant bits, the current millisecond first, unique, in creation order across ms."""
    before = time.time_ns() // 1_000_000
    ids = [new_message_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids, strict=True))
    stamps = [u.int >> 80 for u in parsed]
    assert before <= min(stamps)
    assert max(stamps) <= after
    assert stamps == sorted(stamps)
    assert len(set(ids)) == len(ids)
    time.sleep(0.002)
    assert new_message_id() > max(ids)  # a later millisecond sorts after, as text too


def test_derived_ids_are_stable_uuid7_keeping_the_cause_time() -> None:
    cause = new_message_id()
    derived = derived_message_id(cause, 0)
    assert derived == derived_message_id(cause, 0)
    assert derived != derived_message_id(cause, 1) != derived_message_id(new_message_id(), 1)
    parsed = uuid.UUID(derived)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert derived[:13] == cause[:13], "the cause's 48 bits of time are kept: inbox keys stay time-ordered"
    other = uuid.UUID(derived_message_id("not-a-uuid", 0))
    assert other.version == 7
