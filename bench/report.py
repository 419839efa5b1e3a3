#!/usr/bin/env python3
"""Turn a benchmark result (bench/results/<date>.json) into a markdown report with PNG plots.

python bench/report.py bench/results/2026-11-26.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {"sustained": 300, "p99_at_100": 50.0, "p99_at_300": 150.0, "shipped": 150, "rss_mb": 200}


def _step_at(steps: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return next((s for s in steps if s["offered_rate"] == rate), None)


def plots(result: dict[str, Any], base: Path) -> list[str]:
    """Latency (p50/p99 intake->reserved) and throughput against the offered rate, OMS and DBOS peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = result["steps"]
    peer = [p for p in result.get("dbos", []) if "error" not in p]
    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s["offered_rate"] for s in ours], [s["latency_ms"]["reserved"]["p99"] for s in ours], "o-",
            label="OMS p99 intake->reserved")  # fmt: skip
    ax.plot([s["offered_rate"] for s in ours], [s["latency_ms"]["reserved"]["p50"] for s in ours], "o--",
            label="OMS p50 intake->reserved")  # fmt: skip
    if peer:
        ax.plot([p["offered_rate"] for p in peer], [p["latency_ms"]["reserved"]["p99"] for p in peer], "s-",
                label="DBOS peer p99 intake->reserved")  # fmt: skip
        ax.plot([p["offered_rate"] for p in peer], [p["latency_ms"]["reserved"]["p50"] for p in peer], "s--",
                label="DBOS peer p50 intake->reserved")  # fmt: skip
    ax.set_xlabel("offered rate (orders/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    latency_png = base.with_name(base.stem + "-latency.png")
    fig.savefig(latency_png, dpi=110)
    names.append(latency_png.name)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s["offered_rate"] for s in ours], [s["throughput_reserved"] for s in ours], "o-", label="OMS reserved/s")
    ax.plot([s["offered_rate"] for s in ours], [s["throughput_shipped"] for s in ours], "o--", label="OMS shipped/s")
    if peer:
        ax.plot([p["offered_rate"] for p in peer], [p["achieved_rate"] for p in peer], "s-", label="DBOS shipped/s")
    top = max(s["offered_rate"] for s in ours)
    ax.plot([0, top], [0, top], ":", color="grey", label="offered")
    ax.set_xlabel("offered rate (orders/s)")
    ax.set_ylabel("achieved (orders/s)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    throughput_png = base.with_name(base.stem + "-throughput.png")
    fig.savefig(throughput_png, dpi=110)
    names.append(throughput_png.name)
    return names


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _prefix(machine: dict[str, Any]) -> str:
    """Where the interpreter lives (older reports did not record it)."""
    return f" (from {machine['python_prefix']})" if machine.get("python_prefix") else ""


def markdown(result: dict[str, Any], images: list[str]) -> str:
    steps = result["steps"]
    best = result["max_sustainable_rate"]
    m = result["machine"]
    lines = [
        f"# Benchmark of the order journey ({result['date'][:10]})",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GiB, {m['platform']}, Python {m['python']}{_prefix(m)}. "
        "Everything co-located: Kafka (heap 512 MB), PostgreSQL 15 with durable commits (fsync and "
        "synchronous_commit on), five services, two simulators (zero delays), the load generator.",
        "",
        f"**Maximum sustainable rate: {best:g} orders/s** (p99 intake->reserved below 1 s, no backlog growth, "
        f"every order reserved).",
        "",
        "## Steps (open-loop, paced load)",
        "",
        "| offered/s | reserved/s | shipped/s | accepted p50/p99 ms | reserved p50/p95/p99/max ms | shipped p50/p99 ms "
        "| backlog growth msg/s | msgs/order | sustainable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        a, r, sh = s["latency_ms"]["accepted"], s["latency_ms"]["reserved"], s["latency_ms"]["shipped"]
        lines.append(
            f"| {s['offered_rate']:g} | {s['throughput_reserved']} | {s['throughput_shipped']} | {a['p50']}/{a['p99']} "
            f"| {r['p50']}/{r['p95']}/{r['p99']}/{r['max']} | {sh['p50']}/{sh['p99']} | {s['backlog_growth_per_s']} "
            f"| {s['messages_per_order']} | {'yes' if s['sustainable'] else 'no'} |"
        )
    top = next((s for s in steps if s["offered_rate"] == best), steps[-1])
    lines += ["", f"## CPU and memory at {top['offered_rate']:g} orders/s", "", "| process | CPU % | peak RSS MB |",
              "|---|---|---|"]  # fmt: skip
    for name, usage in sorted(top["resources"].items()):
        lines.append(f"| {name} | {usage['cpu_pct']} | {usage['peak_rss_mb']} |")
    lines += ["", "The whole machine per step (% of all its CPUs; *steal*: time the hypervisor gave to other "
              "machines, *iowait*: idle waiting on the disk; *probe*: CPU ms a fixed piece of work took, the "
              "median through the step: higher when the shared host runs this machine slower; *Kafka GC*: the "
              "broker's garbage-collection pauses in the step, how many and their total): "
              + "; ".join(f"{s['offered_rate']:g}/s busy {m['busy_pct']}, steal {m['steal_pct']}, "
                          f"iowait {m['iowait_pct']}" + (f", probe {m['probe_ms']}" if "probe_ms" in m else "")
                          + (f", Kafka GC {m['kafka_gc_pauses']} pauses / {m['kafka_gc_pause_ms']} ms"
                             if "kafka_gc_pauses" in m else "")
                          for s in steps if (m := s.get("machine"))) + "."]  # fmt: skip
    if warm := result.get("warmup"):
        lines += ["", f"Warm-up before the steps (not a step): {warm['offered_rate']:g} orders/s for "
                  f"{warm['duration_s']:g} s, p99 intake->reserved {warm['latency_ms']['reserved']['p99']} ms."]  # fmt: skip
    lines += ["", "## Baselines in the same run", ""]
    kafka, sql = result.get("raw_kafka", {}), result.get("raw_sql", {})
    if kafka and "error" not in kafka:
        lines.append(f"- raw aiokafka produce->consume: {kafka['messages_per_s']} msg/s = "
                     f"{kafka['orders_per_s_equivalent']} orders/s at {kafka['messages_per_order']} messages per order; "
                     f"OMS max / raw Kafka = {_ratio(best, kafka['orders_per_s_equivalent'])}")  # fmt: skip
    if sql and "error" not in sql:
        lines.append(f"- raw asyncpg, the journey's SQL without Kafka ({sql['transactions_per_order']} transactions per "
                     f"order, {sql['workers']} connections): {sql['orders_per_s']} orders/s; "
                     f"OMS max / raw SQL = {_ratio(best, sql['orders_per_s'])}")  # fmt: skip
    peer = [p for p in result.get("dbos", []) if "error" not in p]
    if peer:
        lines += [
            "",
            "| DBOS peer offered/s | shipped/s | reserved p50/p99 ms | shipped p50/p99 ms |",
            "|---|---|---|---|",
        ]
        for p in peer:
            r, sh = p["latency_ms"]["reserved"], p["latency_ms"]["shipped"]
            lines.append(
                f"| {p['offered_rate']:g} | {p['achieved_rate']} | {r['p50']}/{r['p99']} | {sh['p50']}/{sh['p99']} |"
            )
        # The same criterion as ours: every offered order shipped, p99 intake->reserved under 1 s.
        peer_best = max((p["offered_rate"] for p in peer if p["latency_ms"]["reserved"]["p99"] < 1000
                         and p["shipped"] >= 0.99 * p.get("offered", p["placed"])), default=0)  # fmt: skip
        peer_peak = max(p["achieved_rate"] for p in peer)
        best_throughput = max(s["throughput_shipped"] for s in steps)
        lines.append("")
        lines.append(
            f"DBOS peer maximum sustainable rate: {peer_best:g} orders/s (OMS / DBOS = {_ratio(best, peer_best)}); "
            f"highest throughput to shipped: DBOS {peer_peak}/s, OMS {best_throughput}/s "
            f"(OMS / DBOS = {_ratio(best_throughput, peer_peak)})"
        )
    lines += ["", "## Targets", ""]
    at100, at300 = _step_at(steps, 100), _step_at(steps, 300)
    rss = max((u["peak_rss_mb"] for s in steps for n, u in s["resources"].items()
               if n not in ("kafka", "postgres") and not n.startswith("bench.")), default=0)  # fmt: skip

    def p99(step: dict[str, Any] | None) -> str:
        if step is None:
            return f"not reached (stepping stopped at {steps[-1]['offered_rate']:g}/s)"
        return f"{step['latency_ms']['reserved']['p99']} ms"

    checks = [
        ("sustained intake->reserved at 300/s", best >= TARGETS["sustained"], f"max sustainable {best:g}/s"),
        ("p99 intake->reserved <= 50 ms at 100/s", bool(at100 and at100["latency_ms"]["reserved"]["p99"] <= 50),
         p99(at100)),
        ("p99 intake->reserved <= 150 ms at 300/s", bool(at300 and at300["latency_ms"]["reserved"]["p99"] <= 150),
         p99(at300)),
        ("full journey to shipped >= 150/s", max(s["throughput_shipped"] for s in steps if s["sustainable"] or True) >= 150,
         f"{max(s['throughput_shipped'] for s in steps)}/s"),
        ("each service <= 200 MB RSS", rss <= TARGETS["rss_mb"], f"peak {rss} MB"),
    ]  # fmt: skip
    lines += ["| target | met | measured |", "|---|---|---|"]
    lines += [f"| {name} | {'yes' if ok else '**no**'} | {value} |" for name, ok, value in checks]
    lines += ["", *[f"![{i}]({i})" for i in images], ""]
    beyond = next((s for s in steps if not s["sustainable"]), None)
    if beyond and beyond.get("backlog_by_group_at_end"):
        lag = ", ".join(f"{g} {n}" for g, n in sorted(beyond["backlog_by_group_at_end"].items(), key=lambda kv: -kv[1]))
        lines += ["## Who falls behind", "",
                  f"Backlog per consumer group at the end of the {beyond['offered_rate']:g}/s step: {lag}.", ""]  # fmt: skip
    lines += _path_table(steps)
    lines += _over_time_table(steps)
    lines += _consumers_table(next((s for s in steps if s["offered_rate"] == best), None))
    top = next((s for s in steps if s["offered_rate"] == best), None)
    if top and top.get("messages_per_order_by_topic"):
        per_topic = ", ".join(f"{t} {n}" for t, n in top["messages_per_order_by_topic"].items())
        lines += ["## Messages per order, by topic", "", f"At {best:g}/s: {per_topic}.", ""]
    if result.get("profile"):
        lines += ["## Profile of the busiest service at the maximum sustainable rate", "", "```", result["profile"],
                  "```", ""]  # fmt: skip
    if result.get("scaling"):
        sc = result["scaling"]
        lines += ["## Scaling", "", sc.get("summary", json.dumps(sc)), ""]
    return "\n".join(lines)


def _over_time_table(steps: list[dict[str, Any]], min_duration_s: float = 120.0) -> list[str]:
    """intake->reserved by 10 s of publishing, for long steps: where in the step the tail comes from."""
    lines: list[str] = []
    for step in steps:
        rows = step.get("reserved_over_time") or []
        if step["duration_s"] < min_duration_s or not rows:
            continue
        lines += [f"## intake->reserved over the {step['offered_rate']:g}/s step", "",
                  "By 10 s of publishing (seconds since the step's first order"
                  + (f", which was at {step['started_at']}" if step.get("started_at") else "")
                  + "): orders placed, p50 / p99 ms of those reserved, orders not reserved.", "",
                  "| from s | orders | p50 ms | p99 ms | not reserved |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['start_s']:g} | {r['orders']} | {r['p50']} | {r['p99']} | {r['missing']} |" for r in rows]
        lines += [""]
    return lines


def _path_table(steps: list[dict[str, Any]]) -> list[str]:
    """Where intake->reserved time goes, segment by segment (bench/hops.py), for each step."""
    measured = [s for s in steps if s.get("path_ms")]
    if not measured:
        return []
    segments = list(measured[0]["path_ms"])
    lines = ["## Where intake->reserved time goes", "",
             "Each segment from the topics alone (`bench/hops.py`, orders placed in the last 20 s of each step): a service's "
             "*consume* share runs from the cause's send to the handler's emit (Kafka, the consumer's "
             "queue, the batch before the handler); *outbox -> Kafka* from the emit to the relay's send "
             "(the rest of the batch, its commit, the relay). p50 / p99 ms.", "",
             "| offered/s | " + " | ".join(segments) + " |", "|---|" + "---|" * len(segments)]  # fmt: skip
    for s in measured:
        cells = [f"{s['path_ms'][seg]['p50']:g} / {s['path_ms'][seg]['p99']:g}" for seg in segments]
        lines.append(f"| {s['offered_rate']:g} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _consumers_table(step: dict[str, Any] | None) -> list[str]:
    """Each service's consumer at one step: how busy, how big its batches, where a batch's time goes."""
    if not step or not step.get("consumers"):
        return []
    # The phases are the runtime's (oms_shared.runtime.Timings), in its order: "<phase>_ms" keys.
    phases = [k.removesuffix("_ms") for k in next(iter(step["consumers"].values())) if k.endswith("_ms")]
    lines = [f"## Consumers at {step['offered_rate']:g} orders/s", "",
             "From each service's health endpoint over the step: *busy* is the share of wall time spent "
             "handling batches; the phases split a batch's transaction (ms per batch): BEGIN, the "
             "prepare hook, the handlers, the writes (parts, outbox, inbox), COMMIT (a one-statement "
             "consumer has no BEGIN or COMMIT: its write is its transaction); *replayed*: batches whose "
             "first attempt failed (a repeat, a concurrent writer) and ran again claiming first.", "",
             "| service | batches/s | messages/batch | busy % | replayed | " + " | ".join(phases) + " |",
             "|---|---|---|---|---|" + "---|" * len(phases)]  # fmt: skip
    for name, c in sorted(step["consumers"].items()):
        cells = " | ".join(f"{c[f'{p}_ms']:g}" for p in phases)
        lines.append(f"| {name} | {c['batches_per_s']:g} | {c['messages_per_batch']:g} | {c['busy_pct']:g} | "
                     f"{c.get('replayed', 0)} | {cells} |")  # fmt: skip
    return [*lines, ""]


def write_report(path: Path) -> Path:
    """Write ``<path>.md`` and the plots beside the JSON result; return the markdown path."""
    result = json.loads(path.read_text())
    images = plots(result, path)
    out = path.with_suffix(".md")
    out.write_text(markdown(result, images))
    return out


if __name__ == "__main__":
    print(write_report(Path(sys.argv[1])))
