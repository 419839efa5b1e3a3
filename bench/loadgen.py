#!/usr/bin/env python3
"""The open-loop load generator: publishes canonical orders at a fixed rate, never waiting for answers.

    python bench/loadgen.py --rate 100 --duration 60 --prefix run1 --out published.jsonl

A separate process, like a sales channel: order i is published at t0 + i/rate
whatever the OMS does; each publish time (epoch seconds) is written to ``--out``
with the order id, so latencies are measured against when the order was offered,
not when the OMS got round to it. If the generator itself falls behind schedule it
says so (then the figure is about the generator, not the OMS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue import Catalogue

from oms_shared import topics
from oms_shared.contracts.order import order_id_for
from oms_shared.envelope import Envelope
from oms_shared.kafka import create_producer
from oms_shared.settings import SharedSettings


async def generate(rate: float, duration: float, prefix: str, skus: int, out: Path) -> dict[str, float]:
    """Publish ``rate * duration`` orders on schedule; return what was achieved."""
    producer = create_producer(SharedSettings().kafka_bootstrap_servers, client_id="oms-bench-loadgen")
    await producer.start()
    orders = Catalogue(skus=skus).orders(prefix)
    total = int(rate * duration)
    worst_lag = 0.0
    pending = []
    with out.open("w") as sink:
        t0 = time.time() + 0.2
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                worst_lag = max(worst_lag, -delay)
            external, payload = next(orders)
            order_id = order_id_for("web", external)
            published = time.time()
            envelope = Envelope(type="oms.order.place-order.v1", source="bench/loadgen", data=orjson.dumps(payload),
                                key=order_id.encode(), correlation_id=order_id)  # fmt: skip
            pending.append(await producer.send(topics.ORDER_INTAKE.name, value=envelope.data, key=envelope.key,
                                               headers=envelope.to_headers()))  # fmt: skip
            sink.write(json.dumps({"order_id": order_id, "t": published}) + "\n")
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    elapsed = time.time() - t0
    await producer.stop()
    return {"placed": total, "elapsed_s": elapsed, "achieved_rate": total / elapsed, "worst_lag_s": worst_lag}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(generate(args.rate, args.duration, args.prefix, args.skus, args.out))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
