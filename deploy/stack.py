#!/usr/bin/env python3
"""Local infrastructure for the OMS without Docker: one Kafka broker and one PostgreSQL.

Kafka runs from its Maven Central jars (deploy/kafka/pom.xml) as a single KRaft
node; PostgreSQL is a private cluster initialised under .run/pg. Everything this
script creates lives under <repo>/.run/, which is git-ignored.

Usage (inside the project's venv):
    python deploy/stack.py up [kafka|postgres]   start what is not running, provision, create topics
    python deploy/stack.py down                  stop the local broker and database
    python deploy/stack.py status                exit 0 when both answer real requests, 3 otherwise
    python deploy/stack.py pg-stop | pg-start | kafka-stop | kafka-start
    python deploy/stack.py env                   print export lines for the services
    python deploy/stack.py init                  provision + create topics on servers run by others

Environment:
    KAFKA_BOOTSTRAP_SERVERS  another broker to use instead of starting one (default 127.0.0.1:9092)
    DATABASE_URL             superuser URL of an existing server to use instead of starting one
    <SERVICE>_DB_PASSWORD    password for a service's role (default: the role name)

Tests import the module for provision_service(), admin_url(), service_url() and the
pg_/kafka_ start/stop functions (to simulate outages).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import glob
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from oms_shared.topology import OUTSIDE_WORLD, SERVICES, database_name, role_name

#: The broker version, recorded here and as the default of kafka.version in deploy/kafka/pom.xml.
#: 4.4.0 is the newest on Maven Central and runs on Java 17 (its broker classes are Java 17 bytecode).
KAFKA_VERSION = "4.4.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"
RUN_DIR = REPO_ROOT / ".run"

KAFKA_TEMPLATE_DIR = DEPLOY_DIR / "kafka"
KAFKA_RUN_DIR = RUN_DIR / "kafka"
KAFKA_DATA_DIR = KAFKA_RUN_DIR / "data"
KAFKA_LOG_DIR = KAFKA_RUN_DIR / "logs"
KAFKA_PID_FILE = KAFKA_RUN_DIR / "kafka.pid"
KAFKA_OUT_FILE = KAFKA_RUN_DIR / "kafka.out"
KAFKA_PROPERTIES = KAFKA_RUN_DIR / "server.properties"
KAFKA_LIB_DIR = RUN_DIR / "cache" / f"kafka-{KAFKA_VERSION}" / "lib"
#: Both ports are fixed in deploy/kafka/server.properties; keep them in step.
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
DEFAULT_BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
KAFKA_HEAP = "512m"
KAFKA_READY_TIMEOUT_S = 120.0
KAFKA_STOP_TIMEOUT_S = 30.0

PG_TEMPLATE_DIR = DEPLOY_DIR / "postgres"
PG_RUN_DIR = RUN_DIR / "pg"
PG_DATA_DIR = PG_RUN_DIR / "data"
PG_SOCKET_DIR = PG_RUN_DIR / "socket"
PG_LOG_FILE = PG_RUN_DIR / "postgres.log"
PG_HOST = "127.0.0.1"
PG_PORT = 55432
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"
PG_SUPERUSER_PASSWORD = "postgres"  # noqa: S105 - local, loopback-only development cluster
# The services' default DSNs use it (oms_shared.settings.LOCAL_PG_SOCKET_DIR).
PG_CLIENT_SOCKET_DIR = "/tmp"  # noqa: S108 - PostgreSQL's own default; SCRAM also authenticates the server
LOCAL_ADMIN_URL = (
    f"postgresql://{PG_SUPERUSER}:{PG_SUPERUSER_PASSWORD}@/postgres?host={PG_CLIENT_SOCKET_DIR}&port={PG_PORT}"
)
PG_START_TIMEOUT_S = 60


class StackError(Exception):
    """A failure with a message meant for the person at the terminal (exit code 1)."""


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------
# small process and port helpers


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _run(
    cmd: Sequence[str], *, cwd: Path | None = None, check: bool = True, new_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a short command, capturing its output; raise StackError (with that output) on failure.

    new_session: for commands that leave a daemon behind, so it does not share
    our process group (and a Ctrl-C or a test runner's group kill).
    """
    result = subprocess.run(
        list(cmd),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=new_session,
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise StackError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{output}")
    return result


def _apt_install(package: str) -> None:
    """Install a Debian package: fresh CI machines may lack PostgreSQL or Maven."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{package} is not installed and cannot be installed here (need root and apt-get)")
    say(f"installing {package} with apt-get (first run on this machine)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        if subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, check=False).returncode != 0:
            raise StackError(f"'{' '.join(cmd)}' failed")


_lock_depth = 0


@contextlib.contextmanager
def _stack_lock() -> Iterator[None]:
    """Serialise start/stop across processes (two `make up` at once); re-entrant within one."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / "stack.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library logger while polling a server that is expected to refuse for a while."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


# ---------------------------------------------------------------------------
# Kafka


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or DEFAULT_BOOTSTRAP


def kafka_is_external() -> bool:
    """A bootstrap address other than ours means someone else runs the broker."""
    return bootstrap_servers() != DEFAULT_BOOTSTRAP


async def kafka_ready(bootstrap: str | None = None, timeout: float = 5.0) -> bool:
    """One real metadata round-trip: the broker is up, and it knows itself as a live broker."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap or bootstrap_servers(), request_timeout_ms=int(timeout * 1000)
    )
    with _quiet_logger("aiokafka"):
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
            return bool(cluster.get("brokers"))
        except Exception:  # noqa: BLE001 - any failure simply means "not ready yet"
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


def _is_our_kafka(cmdline: str) -> bool:
    return "kafka.Kafka" in cmdline and str(KAFKA_PROPERTIES) in cmdline


def _find_orphan_kafka() -> int | None:
    """Our broker running without a (valid) pid file, e.g. after the file was deleted."""
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid != os.getpid() and _is_our_kafka(_cmdline(pid)) and _pid_alive(pid):
            return pid
    return None


def _kafka_pid() -> int | None:
    """Pid of our running broker, or None; a stale pid file (dead or reused pid) is removed."""
    pid = _read_pid(KAFKA_PID_FILE)
    if pid is not None:
        # A reused pid belongs to some other program: never treat (or signal) it as ours.
        if not _pid_alive(pid):
            say(f"kafka: removing stale pid file (pid {pid} is not running)")
        elif (cmdline := _cmdline(pid)) and "kafka.Kafka" not in cmdline:
            say(f"kafka: removing stale pid file (pid {pid} is now another program)")
        else:
            return pid
    KAFKA_PID_FILE.unlink(missing_ok=True)
    orphan = _find_orphan_kafka()
    if orphan is not None:
        say(f"kafka: found our broker running without a pid file (pid {orphan}); adopting it")
        KAFKA_PID_FILE.write_text(f"{orphan}\n")
    return orphan


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless)")
    return java


def _fetch_kafka_jars() -> None:
    """Download the broker jars once per version into .run/cache (skipped when present)."""
    if KAFKA_LIB_DIR.is_dir() and any(KAFKA_LIB_DIR.glob("kafka_2.13-*.jar")):
        return
    if shutil.which("mvn") is None:
        _apt_install("maven")
    partial = KAFKA_LIB_DIR.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    say(f"kafka: fetching Kafka {KAFKA_VERSION} jars from Maven Central (first run only)...")
    started = time.monotonic()
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(KAFKA_TEMPLATE_DIR / "pom.xml"),
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-Dkafka.lib.dir={partial}",
            "dependency:copy-dependencies@kafka-lib",
        ],
        cwd=REPO_ROOT,
    )
    # Rename only a complete download, so an interrupted one is retried next time.
    partial.rename(KAFKA_LIB_DIR)
    say(f"kafka: {len(list(KAFKA_LIB_DIR.glob('*.jar')))} jars fetched in {time.monotonic() - started:.1f} s")


def _write_kafka_properties() -> None:
    # Rendered on every start so that edits to the template take effect.
    template = (KAFKA_TEMPLATE_DIR / "server.properties").read_text()
    KAFKA_PROPERTIES.write_text(template.replace("@DATA_DIR@", str(KAFKA_DATA_DIR)))


def _kafka_java_cmd(main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        f"-Dkafka.logs.dir={KAFKA_LOG_DIR}",
        f"-Dlog4j2.configurationFile={KAFKA_TEMPLATE_DIR / 'log4j2.properties'}",
        "-cp",
        f"{KAFKA_LIB_DIR}/*",
        main_class,
        *args,
    ]


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with '-'.

    One id in 64 would start with '-', and kafka-storage's argument parser then reads it
    as an option ("argument --cluster-id/-t: expected one argument"); Kafka's own
    Uuid.randomUuid() draws again in that case, and so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_kafka_storage() -> None:
    """Format the KRaft metadata log once; meta.properties marks a formatted directory."""
    if (KAFKA_DATA_DIR / "meta.properties").exists():
        return
    cluster_id = kafka_cluster_id()
    # Static controller.quorum.voters, hence no --standalone.
    _run(_kafka_java_cmd("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(KAFKA_PROPERTIES)))
    say(f"kafka: storage formatted (cluster id {cluster_id})")


#: Starts "$@" in the background with output appended to $1 and prints its pid. The
#: shell exits at once, so the broker is nobody's child: it outlives this script, and
#: a test process that starts and stops it gets no zombie and no "subprocess still
#: running" warning.
_DETACH = 'out=$1; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'


def _spawn_kafka() -> int:
    KAFKA_LOG_DIR.mkdir(parents=True, exist_ok=True)
    cmd = _kafka_java_cmd("kafka.Kafka", str(KAFKA_PROPERTIES))
    # Heap and GC flags as in Kafka's own start scripts, with a fixed small heap.
    cmd[1:1] = [
        f"-Xms{KAFKA_HEAP}",
        f"-Xmx{KAFKA_HEAP}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        # The heap on transparent huge pages (the kernel's "madvise" mode, Debian's default):
        # fewer TLB misses; with the huge pages below, ~3-4 points of a core less across the
        # broker and PostgreSQL at 300 orders/s (bench/README.md, session 23).
        "-XX:+UseTransparentHugePages",
        "-Djava.awt.headless=true",
    ]
    with open(KAFKA_OUT_FILE, "a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka {KAFKA_VERSION} ===\n")
    # Own session: the broker is detached from the terminal (and its Ctrl-C).
    launched = _run(["sh", "-c", _DETACH, "sh", str(KAFKA_OUT_FILE), *cmd], cwd=KAFKA_RUN_DIR, new_session=True)
    pid = int(launched.stdout.strip())
    KAFKA_PID_FILE.write_text(f"{pid}\n")
    return pid


def _wait_kafka_ready(pid: int | None, started: float) -> None:
    """Poll with real metadata requests until ready; fail fast if our broker died."""
    deadline = started + KAFKA_READY_TIMEOUT_S
    bootstrap = bootstrap_servers()
    while True:
        if pid is not None and not _pid_alive(pid):
            KAFKA_PID_FILE.unlink(missing_ok=True)
            raise StackError(f"kafka exited during startup; last lines of {KAFKA_OUT_FILE}:\n{_tail(KAFKA_OUT_FILE)}")
        # Checking the port first keeps the client from logging connection errors.
        port_up = kafka_is_external() or _port_open(KAFKA_PORT)
        if port_up and asyncio.run(kafka_ready(bootstrap)):
            say(f"kafka ready in {time.monotonic() - started:.1f} s ({bootstrap})")
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"kafka at {bootstrap} not ready after {KAFKA_READY_TIMEOUT_S:.0f} s; "
                f"see {KAFKA_OUT_FILE} and {KAFKA_LOG_DIR}/server.log"
            )
        time.sleep(0.5)


def kafka_start() -> None:
    """Start the local broker unless it runs already; return once it answers metadata requests."""
    started = time.monotonic()
    if kafka_is_external():
        say(f"kafka: using external broker {bootstrap_servers()} (KAFKA_BOOTSTRAP_SERVERS)")
        _wait_kafka_ready(None, started)
        return
    with _stack_lock():
        KAFKA_RUN_DIR.mkdir(parents=True, exist_ok=True)
        pid = _kafka_pid()
        if pid is not None:
            say(f"kafka: already running (pid {pid})")
        else:
            busy = [port for port in (KAFKA_PORT, KAFKA_CONTROLLER_PORT) if _port_open(port)]
            if busy:
                raise StackError(
                    f"kafka: port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use by a process "
                    f"this script did not start; stop it, or set KAFKA_BOOTSTRAP_SERVERS to use it"
                )
            _fetch_kafka_jars()
            _write_kafka_properties()
            _format_kafka_storage()
            started = time.monotonic()
            pid = _spawn_kafka()
            say(f"kafka: started Kafka {KAFKA_VERSION} (pid {pid}), waiting for it to answer...")
        _wait_kafka_ready(pid, started)


def kafka_stop() -> None:
    """SIGTERM the local broker, SIGKILL that same pid after a timeout. Never touches an external one."""
    if kafka_is_external():
        say(f"kafka: external broker {bootstrap_servers()} left alone")
        return
    with _stack_lock():
        pid = _kafka_pid()
        if pid is None:
            say("kafka: not running")
            return
        say(f"kafka: stopping (pid {pid})...")
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        while _pid_alive(pid) and time.monotonic() - started < KAFKA_STOP_TIMEOUT_S:
            time.sleep(0.2)
        if _pid_alive(pid):
            say(f"kafka: no exit after {KAFKA_STOP_TIMEOUT_S:.0f} s, sending SIGKILL to pid {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        KAFKA_PID_FILE.unlink(missing_ok=True)
        say(f"kafka: stopped in {time.monotonic() - started:.1f} s")


def ensure_kafka_topics() -> None:
    """Create the system's topics (oms_shared.topics owns their list); idempotent."""
    try:
        from oms_shared.topics import ensure_topics
    except ImportError as exc:
        say(f"warning: topics not created: oms_shared.topics.ensure_topics is not importable ({exc})")
        return
    created = asyncio.run(ensure_topics(bootstrap_servers()))
    say(f"kafka: topics ensured ({len(created)} created)")


# ---------------------------------------------------------------------------
# PostgreSQL


def admin_url() -> str:
    """Superuser URL: DATABASE_URL when set, else the local cluster's."""
    return os.environ.get("DATABASE_URL", "").strip() or LOCAL_ADMIN_URL


def pg_is_external() -> bool:
    # DATABASE_URL equal to the local default (as printed by `env`) still means ours.
    return admin_url() != LOCAL_ADMIN_URL


def _service_password(service: str) -> str:
    # Local development convention: the password is the role name, unless overridden.
    return os.environ.get(f"{service.upper()}_DB_PASSWORD") or role_name(service)


def service_url(service: str, password: str | None = None) -> str:
    """DSN for one service: its own role and database on the admin URL's server."""
    parts = urlsplit(admin_url())
    host = parts.hostname or ""  # none: a Unix socket named in the query (host=/dir)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    user = quote(role_name(service), safe="")
    secret = quote(password if password is not None else _service_password(service), safe="")
    netloc = f"{user}:{secret}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(database_name(service), safe=""), parts.query, ""))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    # DDL takes no bind parameters; standard_conforming_strings makes '' the only escape needed.
    return "'" + value.replace("'", "''") + "'"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), parts.query, parts.fragment))


#: Advisory lock key serialising provisioning: concurrent ALTER ROLE / GRANT on the
#: same catalog row fail with "tuple concurrently updated" instead of waiting.
_PROVISION_LOCK_KEY = 0x0D5_5EED


async def provision_service(admin_url: str, service: str, password: str | None = None) -> str:
    """Create (or update) the service's login role and its private database; return its DSN.

    Idempotent and safe to run concurrently. The database is closed to PUBLIC, so
    another service's role cannot even connect to it.
    """
    role, database = role_name(service), database_name(service)
    secret = password if password is not None else _service_password(service)
    attributes = f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {_literal(secret)}"
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        # Session-level lock: CREATE DATABASE cannot run inside a transaction.
        await conn.execute("SELECT pg_advisory_lock($1)", _PROVISION_LOCK_KEY)
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            # Also when it existed: an overridden password must take effect.
            await conn.execute(f"ALTER ROLE {_ident(role)} {attributes}")
        else:
            await conn.execute(f"CREATE ROLE {_ident(role)} {attributes}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f"CREATE DATABASE {_ident(database)} OWNER {_ident(role)}")
        await conn.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {_ident(database)} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {_ident(database)} TO {_ident(role)}")
        db_conn = await asyncpg.connect(_with_database(admin_url, database), timeout=10)
        try:
            # Before PostgreSQL 15, PUBLIC could create in schema public; close it in any version.
            await db_conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            await db_conn.execute(f"GRANT ALL ON SCHEMA public TO {_ident(role)}")
        finally:
            await db_conn.close()
    finally:
        # Closing the session releases the advisory lock.
        await conn.close()
    return service_url(service, secret)


async def provision_all(url: str | None = None) -> None:
    for service in (*SERVICES, *OUTSIDE_WORLD):
        await provision_service(url or admin_url(), service)


async def pg_ready(url: str | None = None, timeout: float = 5.0) -> bool:
    """A real login and `SELECT 1`."""
    try:
        conn = await asyncpg.connect(url or admin_url(), timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    try:
        return bool(await conn.fetchval("SELECT 1", timeout=timeout) == 1)
    except Exception:  # noqa: BLE001
        return False
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def _find_pg_bin_dir() -> Path | None:
    """Newest installed PostgreSQL server binaries (Debian layout), if any."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parent.parent.name))).parent


def _pg_bin_dir() -> Path:
    """Like _find_pg_bin_dir, but installs Debian's postgresql package when there is none."""
    bin_dir = _find_pg_bin_dir()
    if bin_dir is None:
        _apt_install("postgresql")
        bin_dir = _find_pg_bin_dir()
    if bin_dir is None:
        raise StackError("no initdb under /usr/lib/postgresql/*/bin even after installing postgresql")
    return bin_dir


def _as_pg_user(cmd: list[str]) -> list[str]:
    # initdb, pg_ctl and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_OS_USER, "--", *cmd]
    return cmd


def _pg_ctl(*args: str, check: bool = True, new_session: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = _as_pg_user([str(_pg_bin_dir() / "pg_ctl"), "-D", str(PG_DATA_DIR), *args])
    # cwd inside .run/pg so that the postgres user can resolve its current directory.
    return _run(cmd, cwd=PG_RUN_DIR, check=check, new_session=new_session)


def _prepare_pg_dirs() -> None:
    PG_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise StackError(f"OS user '{PG_OS_USER}' does not exist (is the postgresql package installed?)") from exc
    # The postgres user must be able to reach .run/pg through every parent folder.
    for parent in PG_RUN_DIR.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    for path in (PG_RUN_DIR, PG_SOCKET_DIR, *([PG_LOG_FILE] if PG_LOG_FILE.exists() else [])):
        os.chown(path, account.pw_uid, account.pw_gid)
    # Traversable (the socket lives inside) but not listable; data/ itself is 0700.
    PG_RUN_DIR.chmod(0o711)


def _pg_initdb() -> None:
    if (PG_DATA_DIR / "PG_VERSION").exists():
        return
    shutil.rmtree(PG_DATA_DIR, ignore_errors=True)  # a half-done earlier initdb
    pwfile = PG_RUN_DIR / "initdb.pw"
    pwfile.write_text(PG_SUPERUSER_PASSWORD + "\n")
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        account = pwd.getpwnam(PG_OS_USER)
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    try:
        cmd = [
            str(_pg_bin_dir() / "initdb"),
            "-D",
            str(PG_DATA_DIR),
            "-U",
            PG_SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ]
        _run(_as_pg_user(cmd), cwd=PG_RUN_DIR)
    finally:
        pwfile.unlink(missing_ok=True)
    say(f"postgres: initialised cluster in {PG_DATA_DIR}")


def _write_pg_config() -> None:
    """Install our settings and pg_hba into the data directory (on every start, so edits apply)."""
    settings = (PG_TEMPLATE_DIR / "oms.conf").read_text()
    settings = settings.replace("@PORT@", str(PG_PORT)).replace("@SOCKET_DIR@", str(PG_SOCKET_DIR))
    (PG_DATA_DIR / "oms.conf").write_text(settings)
    shutil.copyfile(PG_TEMPLATE_DIR / "pg_hba.conf", PG_DATA_DIR / "pg_hba.conf")
    main_conf = PG_DATA_DIR / "postgresql.conf"
    include = "include 'oms.conf'"
    if include not in main_conf.read_text():
        with open(main_conf, "a") as conf:
            conf.write(f"\n# OMS local settings (deploy/postgres/oms.conf), last so they win\n{include}\n")
    if os.geteuid() == 0:
        account = pwd.getpwnam(PG_OS_USER)
        for name in ("oms.conf", "pg_hba.conf"):
            os.chown(PG_DATA_DIR / name, account.pw_uid, account.pw_gid)


def _pg_pid() -> int | None:
    """Postmaster pid when our local cluster runs (pg_ctl also sees through a stale postmaster.pid)."""
    if not (PG_DATA_DIR / "PG_VERSION").exists() or _find_pg_bin_dir() is None:
        return None
    if _pg_ctl("status", check=False).returncode != 0:
        return None
    return _read_pid(PG_DATA_DIR / "postmaster.pid")


def pg_start() -> None:
    """Start the local cluster (initialising it on first use) unless it runs already."""
    if pg_is_external():
        say("postgres: using external server (DATABASE_URL)")
        if not asyncio.run(pg_ready()):
            raise StackError("postgres: DATABASE_URL server does not answer SELECT 1")
        return
    with _stack_lock():
        _pg_bin_dir()
        _prepare_pg_dirs()
        pid = _pg_pid()
        if pid is not None:
            say(f"postgres: already running (pid {pid})")
            return
        if _port_open(PG_PORT, PG_HOST):
            raise StackError(f"postgres: port {PG_PORT} on {PG_HOST} is in use by a process this script did not start")
        _pg_initdb()
        _write_pg_config()
        _reserve_huge_pages()
        started = time.monotonic()
        # -w: return only once the server accepts connections.
        _pg_ctl("start", "-w", "-t", str(PG_START_TIMEOUT_S), "-l", str(PG_LOG_FILE), new_session=True)
        say(f"postgres: started (pid {_pg_pid()}) in {time.monotonic() - started:.1f} s on {PG_HOST}:{PG_PORT}")


def _reserve_huge_pages() -> None:
    """Have the kernel keep the huge pages PostgreSQL's shared memory needs (``huge_pages = try``).

    Shared buffers on 2 MB pages spare every backend most of its TLB misses and page-table
    walks (bench/README.md, session 23). Only as root, and only ever adding pages: the
    reservation (``vm.nr_hugepages``, ~560 MB here) stays until the machine restarts. If
    the kernel cannot find them, PostgreSQL starts on ordinary pages as before.
    """
    if os.geteuid() != 0:
        return
    postgres = [str(_pg_bin_dir() / "postgres"), "-D", str(PG_DATA_DIR), "-C", "shared_memory_size_in_huge_pages"]
    result = _run(_as_pg_user(postgres), cwd=PG_RUN_DIR, check=False)
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    try:
        needed = int(result.stdout.strip())
        total, free = int(meminfo["HugePages_Total"]), int(meminfo["HugePages_Free"])
    except (KeyError, ValueError):
        return  # no huge pages on this kernel, or a PostgreSQL that cannot tell
    if free >= needed:
        return
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/nr_hugepages").write_text(f"{total + needed - free}\n")
        say(f"postgres: {needed} huge pages reserved for shared memory (vm.nr_hugepages)")


def pg_stop() -> None:
    """Fast shutdown of the local cluster. Never stops a DATABASE_URL server."""
    if pg_is_external():
        raise StackError("postgres: DATABASE_URL points at a server this script does not manage; not stopping it")
    with _stack_lock():
        if _pg_pid() is None:
            say("postgres: not running")
            return
        _pg_ctl("stop", "-m", "fast", "-w", "-t", str(PG_START_TIMEOUT_S))
        say("postgres: stopped")


# ---------------------------------------------------------------------------
# commands


def cmd_up(what: str | None) -> int:
    if what in (None, "postgres"):
        pg_start()
        asyncio.run(provision_all())
        say(f"postgres: provisioned {len(SERVICES)} service databases ({', '.join(map(database_name, SERVICES))})")
    if what in (None, "kafka"):
        kafka_start()
        ensure_kafka_topics()
    return 0


def cmd_init(timeout_s: float = 120.0) -> int:
    """Provision databases and create topics on servers someone else runs (docker compose, CI)."""
    deadline = time.monotonic() + timeout_s
    while not (asyncio.run(pg_ready()) and asyncio.run(kafka_ready())):
        if time.monotonic() > deadline:
            raise StackError(f"kafka or postgres not ready after {timeout_s:.0f} s")
        time.sleep(1)
    asyncio.run(provision_all())
    say(f"postgres: provisioned {len(SERVICES)} service databases")
    ensure_kafka_topics()
    return 0


def cmd_down() -> int:
    kafka_stop()
    if pg_is_external():
        say("postgres: external server (DATABASE_URL) left alone")
    else:
        pg_stop()
    return 0


def cmd_status() -> int:
    healthy = True

    if kafka_is_external():
        ready = asyncio.run(kafka_ready())
        say(f"kafka:    external {bootstrap_servers()}  ready={'yes' if ready else 'no'}")
    else:
        pid = _kafka_pid()
        ready = pid is not None and asyncio.run(kafka_ready())
        state = f"running  pid={pid}" if pid is not None else "stopped"
        say(f"kafka:    {state}  port={KAFKA_PORT}  ready={'yes' if ready else 'no'}  version={KAFKA_VERSION}")
    healthy &= ready

    if pg_is_external():
        ready = asyncio.run(pg_ready())
        say(f"postgres: external (DATABASE_URL)  ready={'yes' if ready else 'no'}")
    else:
        pg_pid = _pg_pid()
        ready = pg_pid is not None and asyncio.run(pg_ready())
        state = f"running  pid={pg_pid}" if pg_pid is not None else "stopped"
        say(f"postgres: {state}  port={PG_PORT}  ready={'yes' if ready else 'no'}")
    healthy &= ready
    return 0 if healthy else 3


def cmd_env() -> int:
    say(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(bootstrap_servers())}")
    say(f"export DATABASE_URL={shlex.quote(admin_url())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what is not running, provision databases, create topics")
    up.add_argument("what", nargs="?", choices=("kafka", "postgres"))
    for name, text in (
        ("down", "stop the local broker and database"),
        ("status", "exit 0 when Kafka and PostgreSQL both answer, 3 otherwise"),
        ("pg-start", "start only the local PostgreSQL"),
        ("pg-stop", "stop only the local PostgreSQL"),
        ("kafka-start", "start only the local Kafka"),
        ("kafka-stop", "stop only the local Kafka"),
        ("env", "print export lines for KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL"),
        ("init", "wait for running servers, provision databases, create topics (starts nothing)"),
    ):
        commands.add_parser(name, help=text)
    args = parser.parse_args(argv)

    actions: dict[str, Callable[[], object]] = {
        "up": lambda: cmd_up(args.what),
        "down": cmd_down,
        "status": cmd_status,
        "env": cmd_env,
        "init": cmd_init,
        "pg-start": pg_start,
        "pg-stop": pg_stop,
        "kafka-start": kafka_start,
        "kafka-stop": kafka_stop,
    }
    try:
        code = actions[args.command]()
        return code if isinstance(code, int) else 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
