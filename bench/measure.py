"""What the benchmark measures while load runs: status times, consumer backlog, CPU and memory.

- :class:`StatusCollector` follows the public status topic (as any subscriber would)
  and keeps, per order, the ``at`` time of its first accepted / reserved / shipped event.
- :func:`backlog` sums, per consumer group, end offset minus committed offset.
- :class:`ResourceSampler` samples CPU and RSS of the services, Kafka and PostgreSQL, and
  how fast the machine's CPU runs a fixed piece of work (:func:`cpu_probe_ms`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from oms_shared import topics

MILESTONES = ("accepted", "reserved", "shipped")


class StatusCollector:
    """Follows ``oms.order.status.v1`` from its current end and records milestone times per order.

    It stands for a subscriber on another machine, yet shares this one's two cores with
    the OMS, so it is cheap: librdkafka fetches and decodes in its own threads, the
    partitions are assigned at their end offsets (no consumer group to join or commit
    to), and the records are read in a thread of their own (the harness's event loop
    only samples). On aiokafka it used ~4.5% of a core at 300 orders/s.
    """

    def __init__(self, bootstrap: str) -> None:
        self.times: dict[str, dict[str, float]] = defaultdict(dict)
        self._consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-status-{uuid.uuid4()}", "enable.auto.commit": False,
            # Latency comes from the events' own times, not from when they arrive here:
            # fewer, fuller fetches cost the broker and the machine less.
            "fetch.min.bytes": 256 * 1024, "fetch.wait.max.ms": 200,
        })  # fmt: skip
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._assign_at_end)
        self._thread = threading.Thread(target=self._run, name="status-collector", daemon=True)
        self._thread.start()

    def _assign_at_end(self) -> None:
        name = topics.ORDER_STATUS.name
        metadata = self._consumer.list_topics(name, timeout=10)
        assigned = []
        for partition in metadata.topics[name].partitions:
            _, end = self._consumer.get_watermark_offsets(confluent_kafka.TopicPartition(name, partition), timeout=10)
            assigned.append(confluent_kafka.TopicPartition(name, partition, end))
        self._consumer.assign(assigned)

    def _run(self) -> None:
        while not self._stopping.is_set():
            for message in self._consumer.consume(2000, 0.2):
                value = message.value()
                if message.error() is not None or not value:
                    continue
                event = orjson.loads(value)
                status = event.get("status")
                if status in MILESTONES or status == "partially_reserved":
                    key = "reserved" if status == "partially_reserved" else status
                    self.times[event["order_id"]].setdefault(key, _epoch(event["at"]))

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._consumer.close()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99

    def ms(x: float) -> float:
        return round(x * 1000, 1)

    return {"p50": ms(cut[49]), "p95": ms(cut[94]), "p99": ms(cut[98]), "max": ms(ordered[-1]), "n": len(ordered)}


def latencies(published: dict[str, float], collector: StatusCollector) -> dict[str, dict[str, float]]:
    """Per milestone: percentiles of (event time - publish time) over the published orders."""
    result = {}
    for milestone in MILESTONES:
        values = [collector.times[o][milestone] - t for o, t in published.items() if milestone in collector.times[o]]
        result[milestone] = percentiles(values)
    return result


def over_time(
    published: dict[str, float], times: dict[str, dict[str, float]], milestone: str = "reserved", window_s: float = 10.0
) -> list[dict[str, float]]:
    """Latency to ``milestone`` by publish window: where in a long step the tail comes from.

    One entry per ``window_s`` of publishing (seconds since the first order): orders placed,
    p50 and p99 in ms of those that reached the milestone, and how many did not.
    """
    if not published:
        return []
    first = min(published.values())
    windows: dict[int, list[float]] = {}
    missing: dict[int, int] = {}
    for order_id, sent in published.items():
        index = int((sent - first) // window_s)
        reached = times.get(order_id, {}).get(milestone)
        windows.setdefault(index, [])
        if reached is None:
            missing[index] = missing.get(index, 0) + 1
        else:
            windows[index].append(reached - sent)
    rows = []
    for index in sorted(windows):
        stats = percentiles(windows[index])
        rows.append({"start_s": index * window_s, "orders": len(windows[index]) + missing.get(index, 0),
                     "p50": stats["p50"], "p99": stats["p99"], "missing": missing.get(index, 0)})  # fmt: skip
    return rows


class BacklogProbe:
    """Messages not yet consumed, per consumer group (end offset - committed offset, summed).

    One admin client and one consumer for the probe's life: opening them for every
    sample cost the broker and this process more CPU than the measurement is worth.
    """

    def __init__(self, bootstrap: str, groups: list[str]) -> None:
        self._groups = groups
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> BacklogProbe:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def sample(self) -> dict[str, int]:
        result = {}
        for group in self._groups:
            committed: dict[TopicPartition, Any] = await self._admin.list_consumer_group_offsets(group)
            if not committed:
                result[group] = 0
                continue
            ends = await self._consumer.end_offsets(list(committed))
            result[group] = sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items() if meta.offset >= 0)
        return result


async def backlog(bootstrap: str, groups: list[str]) -> dict[str, int]:
    """One sample of :class:`BacklogProbe`."""
    async with BacklogProbe(bootstrap, groups) as probe:
        return await probe.sample()


@dataclass
class ProcessGroup:
    """A named set of OS processes measured together (e.g. every PostgreSQL backend)."""

    name: str
    pids: list[int]
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    _procs: list[psutil.Process] = field(default_factory=list)


def find_processes() -> list[ProcessGroup]:
    """The OMS services and simulators (by module), Kafka (java kafka.Kafka), PostgreSQL (every postgres process)."""
    by_name: dict[str, list[int]] = defaultdict(list)
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        argv = proc.info["cmdline"] or []
        cmd = " ".join(argv)
        if proc.info["pid"] == os.getpid():
            by_name["bench.harness"].append(proc.info["pid"])
        elif "bench/loadgen.py" in cmd:
            by_name["bench.loadgen"].append(proc.info["pid"])
        elif "kafka.Kafka" in cmd:
            by_name["kafka"].append(proc.info["pid"])
        elif proc.info["name"] == "postgres":
            by_name["postgres"].append(proc.info["pid"])
        elif "-m" in argv and argv.index("-m") + 1 < len(argv):
            module = argv[argv.index("-m") + 1]
            if module.startswith(("oms_", "tests.harness")) and "pytest" not in cmd:
                by_name[module.removeprefix("oms_")].append(proc.info["pid"])
    return [ProcessGroup(name, pids) for name, pids in sorted(by_name.items())]


def cpu_probe_ms(rounds: int = 3) -> float:
    """CPU milliseconds this thread needs for a fixed piece of work (the least of ``rounds``).

    This machine is a virtual one on a shared host and reports no steal time, yet the same
    work costs it ~20% more CPU from one minute to the next (the host's clock, and its
    other guests: our thread is charged while the virtual CPU is held up). A tight loop
    in the first cache catches that, not contention for the host's caches and memory:
    compare runs with the code-free baselines too (bench/README.md, session 13). The
    least of a few rounds drops interrupts.
    """
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        total = 0
        for i in range(50_000):
            total += i * i
        best = min(best, time.thread_time() - started)
    return round(best * 1000, 3)


class ResourceSampler:
    """CPU seconds used and peak RSS over a window, per process group.

    CPU is accumulated from per-process increments every ``interval_s``. PostgreSQL's
    processes come and go (backends of recycled pool connections, autovacuum workers that
    analyse one table in ~100 ms and exit), so its group is measured as a whole instead:
    the CPU of every live postgres process plus what the postmaster's exited children
    used (:func:`postgres_cpu_s`), which counts a process that lived between two samples
    too. (Sampling the live processes alone, as the reports up to w did, missed most of
    the autovacuum workers: bench/README.md, session 18.)
    """

    def __init__(self, groups: list[ProcessGroup], interval_s: float = 1.0) -> None:
        self.groups = groups
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._last: dict[int, float] = {}
        self._postgres_last = 0.0
        self._gc_before: JvmGc | None = None
        self._machine_before: Any = None
        #: The whole machine over the window, % of all CPUs: busy, and the time the
        #: hypervisor gave to others (steal) or the disk kept us waiting (iowait); with
        #: ``probe_ms``, the median of :func:`cpu_probe_ms` sampled through the window.
        self.machine: dict[str, float] = {}
        self._probes: list[float] = []

    def _kafka_gc(self) -> JvmGc | None:
        kafka = next((g for g in self.groups if g.name == "kafka" and g.pids), None)
        return jvm_gc(kafka.pids[0]) if kafka else None

    def _sample(self, *, baseline: bool) -> None:
        for group in self.groups:
            if group.name == "postgres":
                group.pids = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
            rss = 0
            for pid in group.pids:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    rss += proc.memory_info().rss
                    if group.name == "postgres":
                        continue  # its CPU as a whole, below
                    times = proc.cpu_times()
                    now = times.user + times.system
                    if not baseline:
                        group.cpu_s += now - self._last.get(pid, now)
                    self._last[pid] = now
            group.peak_rss_mb = max(group.peak_rss_mb, rss / 2**20)
            if group.name == "postgres":
                total = postgres_cpu_s(group.pids)
                if not baseline:
                    group.cpu_s += total - self._postgres_last
                self._postgres_last = total

    async def start(self) -> None:
        self._started = time.monotonic()
        self._machine_before = psutil.cpu_times()
        self._gc_before = self._kafka_gc()
        self._sample(baseline=True)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._sample(baseline=False)
            self._probes.append(cpu_probe_ms())

    async def stop(self) -> dict[str, dict[str, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample(baseline=False)
        elapsed = time.monotonic() - self._started
        self.machine = machine_cpu(self._machine_before, psutil.cpu_times())
        if self._probes:
            self.machine["probe_ms"] = round(statistics.median(self._probes), 3)
        gc_after = self._kafka_gc()
        if self._gc_before is not None and gc_after is not None:
            self.machine["kafka_gc_pauses"] = gc_after.pauses - self._gc_before.pauses
            self.machine["kafka_gc_pause_ms"] = round(1000 * (gc_after.pause_s - self._gc_before.pause_s), 1)
        return {
            group.name: {
                "cpu_pct": round(100 * group.cpu_s / elapsed, 1) if elapsed else 0.0,
                "peak_rss_mb": round(group.peak_rss_mb, 1),
            }
            for group in self.groups
        }


@dataclass(frozen=True)
class JvmGc:
    """A JVM's garbage collections so far: how many paused it, and for how long in all."""

    pauses: int
    pause_s: float


def parse_jstat_gcutil(text: str) -> JvmGc:
    """``jstat -gcutil``'s output: young and full collections and concurrent cycles (their
    pauses: G1's remark and cleanup), with GCT, the time all of them held the JVM."""
    header, values = (line.split() for line in text.strip().splitlines()[-2:])
    # A collector without concurrent cycles (the parallel one) prints "-" for CGC and CGCT.
    row = {name: "0" if value == "-" else value for name, value in zip(header, values, strict=True)}
    return JvmGc(pauses=int(row["YGC"]) + int(row["FGC"]) + int(row.get("CGC", "0")), pause_s=float(row["GCT"]))


def jvm_gc(pid: int) -> JvmGc | None:
    """The garbage collections of the JVM ``pid`` so far (``jstat``, beside the ``java`` on
    the PATH), or None without a JDK's tools. A collection pauses every request the broker
    is handling: session 18 counted one young collection a second at 300/s, ~14-19 ms each."""
    java = shutil.which("java")
    jstat = Path(java).resolve().parent / "jstat" if java else None
    if jstat is None or not jstat.exists():
        return None
    try:
        done = subprocess.run([str(jstat), "-gcutil", str(pid)], capture_output=True, text=True, timeout=10, check=True)
        return parse_jstat_gcutil(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def postgres_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by PostgreSQL: its live processes (``pids``) and its exited ones.

    An exited backend or autovacuum worker is reaped by the postmaster, whose children
    times then hold all of its CPU; a process between exit and reaping still shows its own.
    The sum grows by exactly the CPU used between two calls, whoever exited meanwhile.
    """
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            total += times.user + times.system
            if proc.ppid() not in pids:  # the postmaster
                total += times.children_user + times.children_system
    return total


def machine_cpu(before: Any, after: Any) -> dict[str, float]:
    """Machine-wide CPU between two ``psutil.cpu_times()``, in % of all CPUs: busy, steal, iowait."""
    spent = {name: getattr(after, name) - getattr(before, name) for name in after._fields}
    total = sum(spent.values()) or 1.0
    idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0) + spent.get("steal", 0.0)
    return {
        "busy_pct": round(100 * (total - idle) / total, 1),
        "steal_pct": round(100 * spent.get("steal", 0.0) / total, 1),
        "iowait_pct": round(100 * spent.get("iowait", 0.0) / total, 1),
    }
