"""Structured logging: JSON lines in production, pretty console output on a terminal.

Context: the message a handler works on (order id, message id, type,
topic/partition/offset) is set by the runtime in one context variable
(:func:`handling`), so every line a handler writes carries it. One variable set per
message, not six bound: structlog's ``bound_contextvars`` reads and resets every
context variable each time, and at 300 orders/s that was 7% of the order consumer's
CPU. A JSON line is built by ONE processor (:func:`json_line`: the message's fields,
the line's own, the service, level and time, in that order, rendered by orjson) instead
of structlog's chain of five: 2.9 against 4.5-5.4 us a line (~15 lines per order), the
largest saving being ``merge_contextvars``, which copies the whole context per line. So
in JSON mode structlog's context variables are not read: pass fields to the call, or
set them with :func:`handling`.

Lines are written in bursts, not one system call each: at 100 orders/s the services
log over a thousand lines a second, and a write per line (structlog's loggers flush
every line) cost more CPU than some handlers. A line waits at most ``flush_interval_s``
(0.1 s) in memory; warnings and errors, and everything before them, are written at
once, and whatever is buffered is written at exit. A SIGKILL can lose the last
tenth of a second of info lines, never a warning or an error.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog

__all__ = ["LineBuffer", "configure_logging", "handled", "handling", "json_line", "merge_message"]

#: The fields of the message being handled (set by :func:`handling`), merged into every line.
_MESSAGE: ContextVar[dict[str, Any] | None] = ContextVar("oms_message", default=None)


def handling(fields: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Log ``fields`` (order id, message id, ...) with every line until :func:`handled`."""
    return _MESSAGE.set(fields)


def handled(token: Token[dict[str, Any] | None]) -> None:
    """Stop logging the fields :func:`handling` set."""
    _MESSAGE.reset(token)


def merge_message(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the handled message's fields first, the line's own win."""
    fields = _MESSAGE.get()
    return {**fields, **event} if fields else event


#: structlog's method names that are not level names (as ``add_log_level`` maps them).
_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}


def json_line(service: str) -> Callable[[Any, str, MutableMapping[str, Any]], str]:
    """structlog's last processor in JSON mode: the whole line in one step (see the module doc).

    The same line the chain ``merge_contextvars`` (the service), :func:`merge_message`,
    ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)`` and ``JSONRenderer`` made.
    """

    def render(_logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        fields = _MESSAGE.get()
        line = {**fields, **event} if fields else event
        line.setdefault("service", service)
        line["level"] = _LEVEL_OF_METHOD.get(method, method)
        line["timestamp"] = datetime.now(UTC)
        return orjson.dumps(line, default=repr, option=orjson.OPT_UTC_Z).decode()

    return render


class LineBuffer:
    """A structlog logger writing rendered lines to ``file`` in bursts (see the module doc).

    Without a running event loop (start-up, tools) there is no one to flush later,
    so each line is written at once.
    """

    def __init__(self, file: TextIO, flush_interval_s: float = 0.1, max_lines: int = 1000) -> None:
        self._file = file
        self._interval = flush_interval_s
        self._max_lines = max_lines
        self._lines: list[str] = []
        self._scheduled = False

    def msg(self, message: str) -> None:
        """An ordinary line: buffered."""
        self._lines.append(message)
        if len(self._lines) >= self._max_lines:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            loop.call_later(self._interval, self.flush)
            self._scheduled = True

    def urgent(self, message: str) -> None:
        """A warning or an error: written at once, after everything buffered before it."""
        self._lines.append(message)
        self.flush()

    # structlog calls the method named after the line's level.
    debug = info = log = msg
    warning = warn = error = critical = fatal = exception = urgent

    def flush(self) -> None:
        """Write the buffered lines now."""
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> LineBuffer:
    """Configure structlog (and stdlib logging of the libraries) for one service process.

    Lines go to ``stream`` (stderr by default); the returned sink flushes them.
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    processors: list[Any] = (
        [structlog.processors.format_exc_info, json_line(service)]
        if use_json
        else [
            structlog.contextvars.merge_contextvars,
            merge_message,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(),
        ]
    )
    sink = LineBuffer(stream)
    atexit.register(sink.flush)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, asyncpg) log through stdlib logging: keep them at WARNING.
    # Those lines are not buffered: one may precede info lines of ours logged just before it.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    return sink
