#!/usr/bin/env python3
"""The benchmark: the order journey under paced load, stepped to its maximum sustainable rate,
beside raw Kafka, raw PostgreSQL and a DBOS peer, measured in one run on one machine.

    python bench/run.py                       full run (make bench)
    python bench/run.py --rates 50,100 --step-s 20 --skip-peer
    python bench/run.py --smoke               a few seconds at a small rate (the test suite runs this)

The services and simulators are started by this script (simulator delays zero)
unless ``--use-running`` says they already run (the smoke test). Results go to
``bench/results/<date>.json`` and ``<date>.md`` with PNG plots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import hops  # noqa: E402
from catalogue import WAREHOUSES, Catalogue  # noqa: E402
from measure import (  # noqa: E402
    BacklogProbe,
    ResourceSampler,
    StatusCollector,
    backlog,
    find_processes,
    latencies,
    over_time,
)

from oms_shared import topics  # noqa: E402
from oms_shared.contracts.common import Coordinates  # noqa: E402
from oms_shared.contracts.inventory import StockMovementRecorded, WarehouseUpserted  # noqa: E402
from oms_shared.envelope import Envelope  # noqa: E402
from oms_shared.errors import is_transient  # noqa: E402
from oms_shared.kafka import create_producer  # noqa: E402
from oms_shared.retry import Backoff  # noqa: E402
from oms_shared.settings import SharedSettings  # noqa: E402
from oms_shared.topology import SERVICES  # noqa: E402

T = TypeVar("T")
GROUPS = [f"oms-{s}" for s in SERVICES] + ["oms-warehouse-sim", "oms-carrier-sim"]
#: Simulators answer at once, without a database of their own (simulators/README.md): the
#: benchmark measures the OMS, not the outside world, which on a real site runs elsewhere.
SIMULATED_WORLD = {
    "WAREHOUSE_SIM_PICK_DELAY_S": "0", "CARRIER_SIM_BOOKING_DELAY_S": "0", "CARRIER_SIM_PICKUP_DELAY_S": "0",
    "CARRIER_SIM_SCAN_INTERVAL_S": "0", "WAREHOUSE_SIM_DURABLE": "false", "CARRIER_SIM_DURABLE": "false",
}  # fmt: skip
P99_LIMIT_MS = 1000.0
#: The latency path is decomposed over the last seconds of each step (bench/hops.py).
PATH_WINDOW_S = 20.0


def bootstrap() -> str:
    return SharedSettings().kafka_bootstrap_servers


def python() -> str:
    return sys.executable


# --- the stack ------------------------------------------------------------------------


def script(relative: str) -> Any:
    """One of the project's scripts (deploy/), imported as a module; loaded once."""
    import importlib.util

    name = "oms_script_" + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def launcher() -> Any:
    return script("deploy/services.py")


def stack() -> Any:
    return script("deploy/stack.py")


async def fresh_services(extra_env: dict[str, str]) -> None:
    """Stop running services, wipe their databases, start them again (simulators with zero delays)."""
    import asyncpg

    services = launcher()
    services.stop(list(services.PROCESSES))
    await skip_backlogs()
    st = stack()
    for name in (*SERVICES, "simulators"):
        conn = await asyncpg.connect(st.service_url(name))
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
    os.environ.update({**SIMULATED_WORLD, **extra_env})
    if services.start(list(services.PROCESSES), timeout=120) != 0:
        raise SystemExit("services did not become healthy")


async def skip_backlogs() -> None:
    """Move every group's committed offsets to the topics' ends: wiped databases start from now.

    Otherwise whatever an earlier, interrupted run left unconsumed would be replayed into
    the fresh databases and measured as this run's load.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        for group in GROUPS:
            committed = await _committed_partitions(admin, group)
            if not committed:
                continue
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign(committed)
                await _commit_ends(consumer, committed)
            finally:
                await consumer.stop()
    finally:
        await admin.close()


async def _commit_ends(consumer: Any, partitions: list[Any]) -> None:
    """Commit the partitions' end offsets for the consumer's group, once the group is empty.

    The services were stopped just before, but a broker restarted since (``make down``,
    ``make up``) may still list their members until their sessions time out, and it
    refuses a commit from outside a group that has members: wait for them to go.
    """
    from aiokafka.errors import CommitFailedError

    async def commit() -> None:
        await consumer.commit(await consumer.end_offsets(partitions))

    await _retrying(commit, lambda exc: isinstance(exc, CommitFailedError), timeout_s=120)


async def _committed_partitions(admin: Any, group: str) -> list[Any]:
    """The partitions ``group`` has committed offsets for.

    A broker that has never seen a consumer group creates its offsets topic on the first
    coordinator lookup and answers "coordinator not available" until it is ready: on a
    fresh machine that is this lookup, so retry transient errors, as the services do.
    """
    return list(await _retrying(lambda: admin.list_consumer_group_offsets(group), is_transient, timeout_s=60))


async def _retrying(step: Callable[[], Awaitable[T]], retryable: Callable[[Exception], bool], *, timeout_s: float) -> T:
    """``step()``, retried with backoff (up to 1 s apart) while it raises a retryable error, for ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    backoff = Backoff(cap_s=1.0)
    while True:
        try:
            return await step()
        except Exception as exc:
            if not retryable(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(backoff.next())


async def seed(catalogue: Catalogue) -> None:
    """Register the warehouses and give every SKU plenty of stock everywhere (skipped if already there).

    Stock is seeded the way a warehouse system would, through the movements topic. The
    receipts wait until inventory has registered the warehouses (a receipt for an unknown
    warehouse is rejected), and any pair still missing afterwards is sent again.
    """
    import asyncpg

    from oms_inventory.settings import InventorySettings

    conn = await asyncpg.connect(InventorySettings().database_url)
    producer = create_producer(bootstrap(), client_id="oms-bench-seed")
    await producer.start()
    try:
        wanted = {(catalogue.sku(rank), wid) for rank in range(1, catalogue.skus + 1) for wid, _, _ in WAREHOUSES}
        missing = wanted - await _stocked(conn)
        if not missing:
            return
        for wid, lat, lon in WAREHOUSES:
            await _send(producer, topics.INVENTORY_MOVEMENTS.name, WarehouseUpserted(
                warehouse_id=wid, name=wid, location=Coordinates(lat=lat, lon=lon)), wid)  # fmt: skip
        ids = [wid for wid, _, _ in WAREHOUSES]
        if not await _until(lambda: conn.fetchval(_HAVE_WAREHOUSES, ids, len(ids)), timeout_s=120):
            raise SystemExit("seeding: inventory did not register the warehouses")
        for _ in range(3):
            for sku, wid in sorted(missing):
                await _send(producer, topics.INVENTORY_MOVEMENTS.name, StockMovementRecorded(
                    movement_id=f"bench-seed-{sku}-{wid}", sku=sku, warehouse_id=wid, kind="receipt",
                    quantity=1_000_000), sku, wait=False)  # fmt: skip
            await producer.flush()
            await _until_stocked(conn, len(wanted))
            missing = wanted - await _stocked(conn)
            if not missing:
                return
        raise SystemExit(f"stock seeding did not finish: {len(missing)} (SKU, warehouse) pairs missing")
    finally:
        await producer.stop()
        await conn.close()


_HAVE_WAREHOUSES = "SELECT count(*) = $2 FROM warehouses WHERE id = ANY($1)"
_STOCK_ROWS = "SELECT count(*) FROM stock WHERE sku LIKE 'BSKU-%'"


async def _stocked(conn: Any) -> set[tuple[str, str]]:
    rows = await conn.fetch("SELECT sku, warehouse_id FROM stock WHERE sku LIKE 'BSKU-%'")
    return {(r["sku"], r["warehouse_id"]) for r in rows}


async def _until_stocked(conn: Any, wanted: int, stall_s: float = 20.0) -> None:
    """Wait until there are ``wanted`` stock rows, or their count stops growing for ``stall_s``."""
    last, since = -1, time.monotonic()
    while (have := await conn.fetchval(_STOCK_ROWS)) < wanted:
        if have != last:
            last, since = have, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return
        await asyncio.sleep(0.5)


async def _until(check: Callable[[], Awaitable[bool]], *, timeout_s: float) -> bool:
    """Poll ``check`` every 0.5 s until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.5)
    return False


async def _send(producer: Any, topic: str, payload: Any, key: str, wait: bool = True) -> None:
    envelope = Envelope(type=payload.ce_type, source="bench", data=payload.model_dump_json().encode(), key=key.encode())
    if wait:
        await producer.send_and_wait(topic, value=envelope.data, key=envelope.key, headers=envelope.to_headers())
    else:
        await producer.send(topic, value=envelope.data, key=envelope.key, headers=envelope.to_headers())


async def topic_offsets() -> dict[str, int]:
    """Records in every OMS topic (to count the messages the journey writes per order)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in topics.ALL_TOPICS])
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap())
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        totals: dict[str, int] = {}
        for tp, end in ends.items():
            totals[tp.topic] = totals.get(tp.topic, 0) + int(end)
        return totals
    finally:
        await consumer.stop()


# --- one step of load -------------------------------------------------------------------


async def step(rate: float, duration: float, skus: int, grace_s: float = 30.0) -> dict[str, Any]:
    """Offer ``rate`` orders/s for ``duration`` s; measure latency, throughput, backlog, resources."""
    collector = StatusCollector(bootstrap())
    await collector.start()
    offsets_before = await topic_offsets()
    out = BENCH / "results" / "tmp" / f"published-{uuid.uuid4().hex[:8]}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"B{uuid.uuid4().hex[:8]}"
    gen = await asyncio.create_subprocess_exec(
        python(), str(BENCH / "loadgen.py"), "--rate", str(rate), "--duration", str(duration), "--prefix", prefix,
        "--skus", str(skus), "--out", str(out), stdout=subprocess.PIPE,
    )  # fmt: skip
    # The generator builds the step's orders first (the channels make them elsewhere): the
    # clock and the samplers start when it says it is ready, so neither counts that work.
    assert gen.stdout is not None
    await gen.stdout.readline()
    sampler = ResourceSampler(find_processes())  # the generator among them: the measurement's own cost
    await sampler.start()
    started = time.time()
    lag_series: list[tuple[float, int]] = []
    last_lag: dict[str, int] = {}
    consumers_before = await consumer_timings()
    async with BacklogProbe(bootstrap(), GROUPS) as probe:
        while gen.returncode is None:
            try:
                await asyncio.wait_for(gen.wait(), timeout=2)
            except TimeoutError:
                lag = await probe.sample()
                lag_series.append((round(time.time() - started, 1), sum(lag.values())))
                last_lag = lag
    consumers = consumer_rates(consumers_before, await consumer_timings(), time.time() - started)
    gen_result = json.loads((await gen.stdout.read()).decode().strip().splitlines()[-1]) if gen.stdout else {}
    published = {row["order_id"]: row["t"] for row in map(json.loads, out.read_text().splitlines())}
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if sum(1 for o in published if "shipped" in collector.times.get(o, {})) >= len(published):
            break
        await asyncio.sleep(0.5)
    resources = await sampler.stop()
    await collector.stop()
    offsets_after = await topic_offsets()
    end = started + duration
    # Messages sent after the step (the last orders' later hops) count: the grace period waited for them.
    path_ms = await hops.path(bootstrap(), max(started, end - PATH_WINDOW_S), time.time())
    by_topic = {t: n - offsets_before.get(t, 0) for t, n in offsets_after.items() if n > offsets_before.get(t, 0)}
    messages = sum(by_topic.values())
    out.unlink()
    lat = latencies(published, collector)
    reserved_times = sorted(collector.times[o]["reserved"] for o in published if "reserved" in collector.times[o])
    shipped_times = sorted(collector.times[o]["shipped"] for o in published if "shipped" in collector.times[o])
    window = duration
    growth = _backlog_growth(lag_series)
    result = {
        "offered_rate": rate,
        "duration_s": duration,
        # When the first order was published (UTC ISO): the origin of reserved_over_time's
        # windows, to set them beside database or broker logs.
        "started_at": datetime.fromtimestamp(min(published.values(), default=started), UTC).isoformat(),
        "placed": len(published),
        "loadgen": gen_result,
        "reserved": len(reserved_times),
        "shipped": len(shipped_times),
        "throughput_reserved": round(sum(1 for t in reserved_times if t <= started + window + 1) / window, 1),
        "throughput_shipped": round(sum(1 for t in shipped_times if t <= started + window + 1) / window, 1),
        "latency_ms": lat,
        "reserved_over_time": over_time(published, collector.times),
        "path_ms": path_ms,
        "backlog": lag_series,
        "backlog_growth_per_s": growth,
        "backlog_by_group_at_end": last_lag,
        "resources": resources,
        "machine": sampler.machine,
        "consumers": consumers,
        "messages": messages,
        "messages_per_order": round(messages / max(1, len(published)), 1),
        "messages_per_order_by_topic": {
            t: round(n / max(1, len(published)), 2) for t, n in sorted(by_topic.items(), key=lambda kv: -kv[1])
        },
    }
    # "No backlog growth": the backlog (in messages) must not grow faster than 2% of the
    # traffic; a few hundred messages are always in flight, and sampling them is noisy.
    result["sustainable"] = bool(
        len(reserved_times) == len(published)
        and lat["reserved"]["p99"] < P99_LIMIT_MS
        and growth <= 0.02 * rate * max(1.0, messages / max(1, len(published)))
    )
    return result


async def consumer_timings() -> dict[str, dict[str, Any]]:
    """Each running service's consumer counters (health endpoint), by service name."""
    services = launcher()
    found = {}
    for proc in services.PROCESSES:
        body = await asyncio.to_thread(services.health, proc)
        if body and body.get("consumer"):
            found[proc.name] = {**body["consumer"], "handled": body.get("handled", 0)}
    return found


def consumer_rates(before: dict[str, Any], after: dict[str, Any], elapsed_s: float) -> dict[str, dict[str, float]]:
    """Per service over the step: batches/s, messages per batch, busy %, and ms per batch in each phase."""
    rates = {}
    for name, end in after.items():
        start = before.get(name)
        if start is None or elapsed_s <= 0:
            continue
        batches = end["batches"] - start["batches"]
        per_batch = max(1, batches)
        rates[name] = {
            "batches_per_s": round(batches / elapsed_s, 1),
            "messages_per_batch": round((end["handled"] - start["handled"]) / per_batch, 1),
            "busy_pct": round(100 * (end["busy_s"] - start["busy_s"]) / elapsed_s, 1),
            "replayed": end.get("replayed", 0) - start.get("replayed", 0),
            **{
                f"{phase}_ms": round(1000 * (end["phases_s"][phase] - start["phases_s"][phase]) / per_batch, 2)
                for phase in end["phases_s"]
            },
        }
    return rates


def _backlog_growth(series: list[tuple[float, int]]) -> float:
    """Least-squares slope of the backlog over the second half of the step (messages per second)."""
    tail = series[len(series) // 2 :]
    if len(tail) < 2:
        return 0.0
    xs, ys = [t for t, _ in tail], [float(v) for _, v in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 2) if den else 0.0


async def drain(timeout_s: float = 600.0) -> int:
    """Wait until every consumer group has caught up, so one step's backlog does not spill into the next."""
    deadline = time.monotonic() + timeout_s
    left = sum((await backlog(bootstrap(), GROUPS)).values())
    while left > 0 and time.monotonic() < deadline:
        await asyncio.sleep(2)
        left = sum((await backlog(bootstrap(), GROUPS)).values())
    return left


# --- baselines --------------------------------------------------------------------------


def run_json(args: list[str], timeout: float) -> dict[str, Any]:
    """Run a baseline script that prints its result as JSON on its last line (or writes it to --json)."""
    done = subprocess.run([python(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-2000:]}
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            result: dict[str, Any] = json.loads(line)
            return result
        except ValueError:
            continue
    return {"error": f"no JSON result in the output: {done.stdout[-1000:]}"}


def run_peer(rate: float, duration: float, skus: int) -> dict[str, Any]:
    """One step of the DBOS peer, its result read from the file it writes."""
    out = BENCH / "results" / "tmp" / f"dbos-{uuid.uuid4().hex[:8]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [python(), str(BENCH / "dbos_peer.py"), "--rate", str(rate), "--duration", str(duration), "--skus", str(skus),
         "--json", str(out)], capture_output=True, text=True, timeout=duration * 6 + 300, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        return {"offered_rate": rate, "error": (done.stderr or done.stdout)[-2000:]}
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


# --- profile and scaling -------------------------------------------------------------------


def busiest_service(resources: dict[str, dict[str, float]]) -> str:
    """The OMS service that used the most CPU (simulators, Kafka and PostgreSQL excluded)."""
    services = {n: u for n, u in resources.items() if n in SERVICES}
    return max(services, key=lambda n: services[n]["cpu_pct"])


def pids_of(service: str) -> list[int]:
    return [pid for group in find_processes() if group.name == service for pid in group.pids]


async def profiled_step(rate: float, duration: float, skus: int, service: str) -> tuple[dict[str, Any], str]:
    """Run a step while py-spy samples ``service``; return the step and a summary of the top costs."""
    pid = pids_of(service)[0]
    out = BENCH / "results" / "tmp" / f"profile-{service}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(duration)),
        "--format", "raw", "--output", str(out), "--nonblocking", "--rate", "200",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    outcome = await step(rate, duration, skus)
    _, err = await spy.communicate()
    if not out.exists():
        return outcome, f"py-spy produced no profile: {err.decode()[-500:]}"
    summary = summarise_profile(out.read_text(), service)
    import gzip

    saved = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d}-profile-{service}.txt.gz"
    saved.write_bytes(gzip.compress(out.read_bytes()))  # collapsed stacks: `zcat | flamegraph.pl` draws them
    return outcome, summary


def summarise_profile(collapsed: str, service: str, top: int = 15) -> str:
    """Self time per function (leaf frames) and inclusive time of our own modules, from collapsed stacks."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        self_time[leaf] = self_time.get(leaf, 0) + count
        for frame in set(frames):
            if "oms_" in frame or "asyncpg" in frame or "aiokafka" in frame:
                inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "no samples"
    lines = [f"{service}: {total} samples. Self time (top {top}):"]
    for frame, count in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame[:140]}")
    lines.append(f"Inclusive time in our code and the drivers (top {top}):")
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame[:140]}")
    return "\n".join(lines)


async def scaled_step(rate: float, duration: float, skus: int, service: str) -> dict[str, Any]:
    """The same step with a second instance of ``service`` in its consumer group."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (ROOT / ".run" / "services" / f"{service}-2.log").open("ab")
    extra = await asyncio.create_subprocess_exec(
        python(), "-m", f"oms_{service}", cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, f"{service.upper()}_HEALTH_PORT": str(port), "LOG_FORMAT": "json"},
    )  # fmt: skip
    try:
        await _wait_healthy(port)
        await asyncio.sleep(5)  # let the group rebalance settle
        return await step(rate, duration, skus)
    finally:
        extra.terminate()
        await asyncio.wait_for(extra.wait(), timeout=30)


def _get_json(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310  (our own health endpoint)
        body: dict[str, Any] = json.loads(resp.read())
        return body


async def _wait_healthy(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{port}/health")
            if body.get("assigned_partitions", 0) > 0:
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"second instance on port {port} did not become ready")


# --- the run ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # Which build: the distribution's (/usr, PGO and LTO) or another (bench/README, session 21).
        "python_prefix": sys.base_prefix,
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    catalogue = Catalogue(skus=args.skus)
    if not args.use_running:
        await fresh_services({})
    await seed(catalogue)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(), "machine": machine(), "settings": vars(args)}
    if args.warmup_s > 0:
        # A cold stack (a JVM still compiling, empty tables, empty caches) is not the steady
        # state a step stands for: a ten-minute step that started cold spent its first ~100 s
        # working off what the first seconds queued (the machine has ~5% to spare at 300/s).
        await drain()
        print(f"warm-up: {args.warmup_rate:g} orders/s for {args.warmup_s:g} s (not a step) ...", flush=True)
        warm = await step(args.warmup_rate, args.warmup_s, args.skus, grace_s=args.grace_s)
        results["warmup"] = {key: warm[key] for key in ("offered_rate", "duration_s", "throughput_reserved",
                                                          "latency_ms", "sustainable")}  # fmt: skip
    steps = []
    for rate in args.rates:
        await drain()
        print(f"step: {rate} orders/s for {args.step_s} s ...", flush=True)
        outcome = await step(rate, args.step_s, args.skus, grace_s=args.grace_s)
        steps.append(outcome)
        print(f"  reserved p99 {outcome['latency_ms']['reserved']['p99']} ms, shipped/s "
              f"{outcome['throughput_shipped']}, sustainable {outcome['sustainable']}", flush=True)  # fmt: skip
        results["steps"] = steps
        checkpoint(args, results)
        if not outcome["sustainable"] and not args.all_steps:
            break
    results["steps"] = steps
    sustainable = [s["offered_rate"] for s in steps if s["sustainable"]]
    results["max_sustainable_rate"] = max(sustainable) if sustainable else 0
    if not args.smoke and not args.steps_only and steps:
        top = next((s for s in steps if s["offered_rate"] == results["max_sustainable_rate"]), steps[0])
        busiest = busiest_service(top["resources"])
        profile_rate = top["offered_rate"]
        await drain()
        print(f"profile: {busiest} at {profile_rate} orders/s ...", flush=True)
        profiled, results["profile"] = await profiled_step(profile_rate, min(args.step_s, 30), args.skus, busiest)
        results["profiled_step"] = profiled
        beyond = next((s for s in steps if not s["sustainable"]), None)
        scale_rate = beyond["offered_rate"] if beyond else profile_rate
        one = beyond or top
        await drain()
        print(f"scaling: two instances of {busiest} at {scale_rate} orders/s ...", flush=True)
        two = await scaled_step(scale_rate, args.step_s, args.skus, busiest)
        ratio = two["throughput_reserved"] / one["throughput_reserved"] if one["throughput_reserved"] else 0.0
        results["scaling"] = {
            "service": busiest, "rate": scale_rate, "one_instance": one, "two_instances": two,
            "ratio_reserved": round(ratio, 2),
            "summary": (f"Two instances of {busiest} at {scale_rate:g} orders/s: reserved/s {two['throughput_reserved']} "
                        f"vs {one['throughput_reserved']} with one (ratio {ratio:.2f}); p99 intake->reserved "
                        f"{two['latency_ms']['reserved']['p99']} ms vs {one['latency_ms']['reserved']['p99']} ms."),
        }  # fmt: skip
    per_order = max((s["messages_per_order"] for s in steps), default=20.0)
    orders_for_baseline = int(max(args.rates) * args.step_s)
    checkpoint(args, results)
    if not args.use_running and not (args.skip_baselines and args.skip_peer):
        # Baselines and the peer get the machine to themselves: idle services take CPU.
        launcher().stop(list(launcher().PROCESSES))
    if not args.skip_baselines:
        print("baseline: raw kafka ...", flush=True)
        results["raw_kafka"] = run_json([str(BENCH / "raw_kafka.py"), "--orders", str(orders_for_baseline),
                                         "--messages-per-order", str(per_order)], timeout=600)  # fmt: skip
        print("baseline: raw asyncpg ...", flush=True)
        results["raw_sql"] = run_json([str(BENCH / "raw_sql.py"), "--orders", str(orders_for_baseline),
                                       "--skus", str(args.skus)], timeout=600)  # fmt: skip
    if not args.skip_peer:
        peer_steps: list[dict[str, Any]] = []
        results["dbos"] = peer_steps
        for rate in args.rates:
            print(f"peer: dbos at {rate} orders/s ...", flush=True)
            peer = await asyncio.to_thread(run_peer, rate, args.step_s, args.skus)
            peer_steps.append(peer)
            checkpoint(args, results)
            if "error" in peer or peer.get("shipped", 0) < 0.99 * peer.get("offered", peer.get("placed", 1)):
                break  # past the peer's capacity, like our own stepping
    return results


def result_path(args: argparse.Namespace) -> Path:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d") + ("-smoke" if args.smoke else "")
    path: Path = args.out / f"{stamp}.json"
    return path


def checkpoint(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Write what is measured so far, so a crash late in a long run loses nothing."""
    args.out.mkdir(parents=True, exist_ok=True)
    result_path(args).write_text(json.dumps(results, indent=2, default=str))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[25, 50, 100, 125, 150, 175, 200, 250, 300]
    )
    parser.add_argument("--step-s", type=float, default=60.0)
    parser.add_argument("--grace-s", type=float, default=30.0)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--warmup-s", type=float, default=0.0, help="an unmeasured step first, to warm the stack")
    parser.add_argument("--warmup-rate", type=float, default=100.0)
    parser.add_argument("--use-running", action="store_true", help="measure services that already run")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--all-steps", action="store_true", help="keep stepping after the first unsustainable rate")
    parser.add_argument("--steps-only", action="store_true", help="no profile and no scaling step (quick iterations)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds at 10 orders/s, 200 SKUs")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rates, args.step_s, args.skus, args.grace_s = [10.0], 3.0, 200, 30.0
    return args


if __name__ == "__main__":
    import uvloop

    arguments = parse(sys.argv[1:])
    outcome = uvloop.run(main(arguments))
    checkpoint(arguments, outcome)
    path = result_path(arguments)
    print(f"results: {path}")
    if not arguments.smoke:
        from report import write_report

        print(f"report: {write_report(path)}")
