"""Start, stop and report the OMS service processes on this machine.

    python deploy/services.py start [name ...]   start (idempotent) and wait until healthy
    python deploy/services.py stop  [name ...]   SIGTERM, then SIGKILL after a timeout
    python deploy/services.py status             health of each service; exit 0 if all are ready

Each service runs as ``python -m oms_<name>``, logs to ``.run/services/<name>.log``
and answers ``GET /health`` on its port (8081..8085 unless overridden by
``<NAME>_HEALTH_PORT``). Operators scale a service by starting more processes of it
with another health port: they share its consumer group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run" / "services"


@dataclass(frozen=True)
class Process:
    """One long-running process of the OMS: its module and health port."""

    name: str
    module: str
    port: int

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return RUN_DIR / f"{self.name}.log"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"{name.upper()}_HEALTH_PORT", default))


def processes() -> tuple[Process, ...]:
    """Every process `make run` starts, with health ports from the environment."""
    return (
        Process("order", "oms_order", _port("order", 8081)),
        Process("inventory", "oms_inventory", _port("inventory", 8082)),
        Process("fulfillment", "oms_fulfillment", _port("fulfillment", 8083)),
        Process("shipping", "oms_shipping", _port("shipping", 8084)),
        Process("returns", "oms_returns", _port("returns", 8085)),
        # The simulated outside world: warehouse pickers and carriers (not part of the OMS).
        Process("warehouse-sim", "oms_simulators.warehouse", _port("warehouse_sim", 8091)),
        Process("carrier-sim", "oms_simulators.carrier", _port("carrier_sim", 8092)),
    )


PROCESSES = processes()


def health(proc: Process) -> dict[str, object] | None:
    """The service's health document, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/health", timeout=3) as resp:
            body: dict[str, object] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        answer: dict[str, object] = json.loads(exc.read())
        return answer
    except (OSError, ValueError):
        return None


def _pid(proc: Process) -> int | None:
    try:
        pid = int(proc.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        proc.pid_file.unlink(missing_ok=True)  # stale: the process is gone
        return None
    except PermissionError:
        pass
    return pid


def start(procs: list[Process], timeout: float = 120.0) -> int:
    """Start the processes that are not running, then wait until every one reports ready."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for proc in procs:
        if _pid(proc) is not None:
            print(f"{proc.name}: already running (pid {_pid(proc)})")
            continue
        if health(proc) is not None:
            print(f"{proc.name}: port {proc.port} already answers but is not ours; not starting", file=sys.stderr)
            return 1
        with proc.log_file.open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", proc.module],
                cwd=ROOT,
                env={**os.environ, f"{proc.name.upper()}_HEALTH_PORT": str(proc.port), "LOG_FORMAT": "json"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.pid_file.write_text(str(child.pid))
        print(f"{proc.name}: started (pid {child.pid}, log {proc.log_file.relative_to(ROOT)})")
    return _wait_ready(procs, timeout)


def _wait_ready(procs: list[Process], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    waiting = list(procs)
    while waiting and time.monotonic() < deadline:
        for proc in list(waiting):
            if _pid(proc) is None:
                print(f"{proc.name}: exited during start-up; last log lines:\n{_tail(proc.log_file)}", file=sys.stderr)
                return 1
            body = health(proc)
            if body and body.get("ready"):
                print(f"{proc.name}: healthy on port {proc.port}")
                waiting.remove(proc)
        time.sleep(0.3)
    for proc in waiting:
        print(f"{proc.name}: not healthy after {timeout:.0f} s; see {proc.log_file}", file=sys.stderr)
    return 1 if waiting else 0


def stop(procs: list[Process], timeout: float = 20.0) -> int:
    """SIGTERM each running process; SIGKILL the same pid if it has not exited in time."""
    for proc in procs:
        pid = _pid(proc)
        if pid is None:
            print(f"{proc.name}: not running")
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            print(f"{proc.name}: killed after {timeout:.0f} s")
        else:
            print(f"{proc.name}: stopped")
        proc.pid_file.unlink(missing_ok=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists"; reap it if so.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def status(procs: list[Process]) -> int:
    """Print one line per process; exit 0 only if every one is ready."""
    healthy = True
    for proc in procs:
        body = health(proc)
        ready = bool(body and body.get("ready"))
        healthy &= ready
        detail = json.dumps(body) if body else "no answer"
        state = "healthy" if ready else "DOWN"
        print(f"{proc.name:<12} pid={_pid(proc) or '-':<8} port={proc.port:<5} {state}  {detail}")
    return 0 if healthy else 3


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"start", "stop", "status"}:
        print(__doc__)
        return 2
    names = set(argv[1:])
    procs = [p for p in PROCESSES if not names or p.name in names]
    return {"start": start, "stop": stop, "status": status}[argv[0]](procs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
