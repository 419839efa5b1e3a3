"""The benchmark cannot rot: a few seconds of it run against the OMS under test."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests import support
from tests.e2e.journey import Journey


class TestBenchmarkSmoke:
    """`bench/run.py --smoke` measures the running journey and both raw baselines, and writes its result."""

    async def test_smoke_run(self, journey: Journey, tmp_path: Path) -> None:
        assert journey.processes
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(support.ROOT / "bench" / "run.py"), "--smoke", "--use-running", "--skip-peer",
            "--out", str(tmp_path), cwd=support.ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
        assert proc.returncode == 0, output.decode()[-3000:]
        (result_file,) = tmp_path.glob("*-smoke.json")
        result = json.loads(result_file.read_text())
        (step,) = result["steps"]
        assert step["placed"] == 30
        started_at = datetime.fromisoformat(step["started_at"])
        assert abs((datetime.now(UTC) - started_at).total_seconds()) < 600, started_at
        assert step["reserved"] == 30, "every order offered was reserved"
        assert step["shipped"] == 30, "and shipped"
        assert step["latency_ms"]["reserved"]["n"] == 30
        assert 0 < step["latency_ms"]["reserved"]["p50"] <= step["latency_ms"]["reserved"]["p99"]
        windows = step["reserved_over_time"]  # 30 orders over ~3 s of publishing
        assert sum(w["orders"] for w in windows) == 30
        assert sum(w["missing"] for w in windows) == 0
        assert step["messages_per_order"] > 5
        # The broker's garbage collections in the step are counted (jstat beside java).
        assert step["machine"]["kafka_gc_pauses"] >= 0
        assert step["machine"]["kafka_gc_pause_ms"] >= 0
        assert {"order", "inventory", "kafka", "postgres"} <= set(step["resources"])
        # Every hop of intake->reserved is decomposed, from the 30 orders' own messages.
        path = step["path_ms"]
        assert len(path) == 5, path
        for segment, figures in path.items():
            assert figures["n"] >= 30, (segment, figures)
            assert 0 <= figures["p50"] <= figures["p99"], (segment, figures)
        assert result["raw_kafka"]["messages_per_s"] > 0, result["raw_kafka"]
        assert result["raw_sql"]["orders_per_s"] > 0, result["raw_sql"]
