"""Test support: the local stack's addresses, service processes, polling with a deadline."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from oms_shared.contracts import Contract
from oms_shared.envelope import Envelope, new_message_id
from oms_shared.kafka import create_producer

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".run" / "test-logs"


def script(relative: str) -> ModuleType:
    """One of the project's scripts (deploy/, tools/), imported as a module; loaded once."""
    name = "oms_script_" + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def stack() -> ModuleType:
    """The project's deploy/stack.py (Kafka and PostgreSQL control, provisioning)."""
    return script("deploy/stack.py")


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns a truthy value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def envelope_for(payload: Contract, *, key: str, message_id: str | None = None, source: str = "tests") -> Envelope:
    return Envelope(
        id=message_id or new_message_id(),
        type=payload.ce_type,
        source=source,
        data=payload.model_dump_json().encode(),
        key=key.encode(),
        correlation_id=key,
    )


async def publish(producer: AIOKafkaProducer, topic: str, envelope: Envelope) -> None:
    await producer.send_and_wait(topic, value=envelope.data, key=envelope.key, headers=envelope.to_headers())


async def started_producer() -> AIOKafkaProducer:
    producer = create_producer(bootstrap_servers(), client_id="oms-tests")
    await producer.start()
    return producer


class ServiceProcess:
    """A service run as a real OS process (``python -m <module>``) with its own health port."""

    def __init__(self, module: str, prefix: str, env: dict[str, str] | None = None, name: str | None = None) -> None:
        self.module = module
        self.prefix = prefix
        self.port = free_port()
        self.name = name or module
        self.env = {
            **os.environ,
            f"{prefix}_HEALTH_PORT": str(self.port),
            "LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> ServiceProcess:
        LOGS.mkdir(parents=True, exist_ok=True)
        log_file = (LOGS / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                body: dict[str, Any] = orjson.loads(resp.read())
                return body
        except urllib.error.HTTPError as exc:
            body = orjson.loads(exc.read())
            return body if isinstance(body, dict) else None
        except OSError:
            return None

    async def wait_ready(self, timeout: float = 60.0, *, assigned: bool = True) -> dict[str, Any]:
        async def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}; see {LOGS / self.name}.log")
            body = await asyncio.to_thread(self.health)
            if body and body.get("ready") and (not assigned or int(body.get("assigned_partitions", 0)) > 0):
                return body
            return None

        result: dict[str, Any] = await eventually(ready, timeout=timeout, what=f"{self.name} ready")
        return result

    async def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        proc = self.proc

        async def exited() -> bool:
            return proc.poll() is not None

        await eventually(exited, timeout=timeout, what=f"{self.name} to exit")
        return int(proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
