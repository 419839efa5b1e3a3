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
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue import Catalogue

from oms_shared import topics
from oms_shared.contracts.order import order_id_for
from oms_shared.envelope import Envelope
from oms_shared.settings import SharedSettings


def generate(rate: float, duration: float, prefix: str, skus: int, out: Path) -> dict[str, float]:
    """Publish ``rate * duration`` orders on schedule; return what was achieved.

    The generator stands for the sales channels, which run elsewhere in production; here
    it shares the two cores with the OMS, so it uses librdkafka (the same guarantees as
    the services' producer: acks=all, idempotent): with aiokafka it took ~15% of a core
    at 300 orders/s, CPU the OMS under test did not get. No linger: a channel sends each
    order as it comes, and orders 3.3 ms apart at 300/s never shared a 2 ms linger, which
    only held every order back before the clock the latencies start from (session 20:
    intake->accepted p50 at 100/s 2.7 ms against 5.4, the generator's CPU the same).
    """
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer({
        "bootstrap.servers": SharedSettings().kafka_bootstrap_servers,
        "client.id": "oms-bench-loadgen",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 0,
        # librdkafka leaves Nagle's algorithm on: a lone order then waited for the
        # previous request's (delayed) ACK, and p99 intake->reserved at 25/s doubled.
        "socket.nagle.disable": True,
    })  # fmt: skip
    total = int(rate * duration)
    # Built before the clock starts: the channels make their orders elsewhere, and making
    # them here cost ~50 us of this machine's CPU each (~1.5% of a core at 300/s).
    orders = Catalogue(skus=skus).orders(prefix)
    prepared = []
    for _ in range(total):
        external, payload = next(orders)
        prepared.append((order_id_for("web", external), orjson.dumps(payload)))
    worst_lag = 0.0
    print("ready", flush=True)  # bench/run.py starts its clock and its samplers now
    with out.open("w") as sink:
        t0 = time.time() + 0.2
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                worst_lag = max(worst_lag, -delay)
            order_id, data = prepared[i]
            published = time.time()
            envelope = Envelope(type="oms.order.place-order.v1", source="bench/loadgen", data=data,
                                key=order_id.encode(), correlation_id=order_id)  # fmt: skip
            headers: list[tuple[str, str | bytes | None]] = list(envelope.to_headers())
            producer.produce(topics.ORDER_INTAKE.name, value=envelope.data, key=envelope.key, headers=headers,
                             on_delivery=delivered)  # fmt: skip
            producer.poll(0)
            sink.write(json.dumps({"order_id": order_id, "t": published}) + "\n")
        left = producer.flush(60)
    elapsed = time.time() - t0
    if left or failed:
        raise SystemExit(f"loadgen: {left} orders unsent, {len(failed)} failed: {failed[:3]}")
    return {"placed": total, "elapsed_s": elapsed, "achieved_rate": total / elapsed, "worst_lag_s": worst_lag}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = generate(args.rate, args.duration, args.prefix, args.skus, args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
