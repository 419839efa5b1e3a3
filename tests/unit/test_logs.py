"""The log sink writes lines in bursts but never holds a warning, and keeps the order."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import orjson
import structlog

from oms_shared.logs import LineBuffer, configure_logging, handled, handling


async def test_info_lines_wait_for_the_flush_interval() -> None:
    out = io.StringIO()
    sink = LineBuffer(out, flush_interval_s=0.05)
    sink.info("one")
    sink.info("two")
    assert out.getvalue() == ""
    await asyncio.sleep(0.2)
    assert out.getvalue() == "one\ntwo\n"


async def test_a_warning_writes_everything_before_it_at_once() -> None:
    out = io.StringIO()
    sink = LineBuffer(out, flush_interval_s=60)
    sink.info("first")
    sink.warning("careful")
    assert out.getvalue() == "first\ncareful\n"
    sink.error("broken")
    assert out.getvalue() == "first\ncareful\nbroken\n"


async def test_a_full_buffer_is_written_without_waiting() -> None:
    out = io.StringIO()
    sink = LineBuffer(out, flush_interval_s=60, max_lines=3)
    for n in range(3):
        sink.info(str(n))
    assert out.getvalue() == "0\n1\n2\n"


def test_without_an_event_loop_each_line_is_written_at_once() -> None:
    out = io.StringIO()
    sink = LineBuffer(out)
    sink.info("now")
    assert out.getvalue() == "now\n"


async def test_structlog_lines_reach_the_sink_as_json_with_context() -> None:
    out = io.StringIO()
    sink = configure_logging("svc", "INFO", "json", stream=out)
    try:
        token = handling({"order_id": "o-1"})
        structlog.get_logger("t").info("handled", n=1)
        structlog.get_logger("t").debug("hidden")
        structlog.get_logger("t").warn("odd", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), thing=object())
        handled(token)
        sink.flush()
        raw = out.getvalue().splitlines()
        lines = [orjson.loads(line) for line in raw]
        assert [(r["event"], r["order_id"], r["service"], r["level"]) for r in lines] == [
            ("handled", "o-1", "svc", "info"),
            ("odd", "o-1", "svc", "warning"),
        ]
        # The message's fields, the line's own, then service, level and time (UTC, Z), as structlog's chain wrote.
        assert list(lines[0]) == ["order_id", "n", "event", "service", "level", "timestamp"]
        assert lines[0]["timestamp"].endswith("Z")
        assert datetime.fromisoformat(lines[0]["timestamp"]).tzinfo is not None
        assert lines[1]["at"] == "2026-01-02T03:04:05Z"
        assert lines[1]["thing"].startswith("<object object")  # not JSON: its repr, never an error
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


async def test_the_handled_message_s_fields_are_on_every_line_until_it_is_done() -> None:
    out = io.StringIO()
    sink = configure_logging("svc", "INFO", "json", stream=out)
    try:
        token = handling({"order_id": "o-1", "offset": 7})
        structlog.get_logger("t").info("inside", offset=8)
        handled(token)
        structlog.get_logger("t").info("after")
        sink.flush()
        inside, after = (orjson.loads(line) for line in out.getvalue().splitlines())
        assert (inside["order_id"], inside["offset"], inside["service"]) == ("o-1", 8, "svc")  # the line's own wins
        assert "order_id" not in after
        assert "offset" not in after
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


async def test_an_exception_line_carries_the_traceback_at_level_error() -> None:
    out = io.StringIO()
    configure_logging("svc", "INFO", "json", stream=out)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("t").exception("failed")
        (line,) = (orjson.loads(raw) for raw in out.getvalue().splitlines())
        assert (line["event"], line["level"], line["service"]) == ("failed", "error", "svc")
        assert "ValueError: boom" in line["exception"]
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
