"""A tiny HTTP health endpoint: ``GET /health`` answers 200 when ready, 503 otherwise.

Deliberately without a web framework: one route, read by operators, by
``make status`` and by container orchestrators' readiness probes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson

__all__ = ["HealthServer"]

Check = Callable[[], Awaitable[dict[str, object]]]


class HealthServer:
    """Serves the result of ``check`` as JSON; ``ready`` is its ``"ready"`` field."""

    def __init__(self, check: Check, host: str, port: int) -> None:
        self._check = check
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start serving in the background."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            try:
                body = await asyncio.wait_for(self._check(), timeout=5)
            except Exception as exc:  # noqa: BLE001  (a failing check means "not ready", reported as such)
                body = {"ready": False, "error": repr(exc)}
            status = "200 OK" if body.get("ready") else "503 Service Unavailable"
            payload = orjson.dumps(body, default=str)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
