"""Acceptance 3-5 of the journey: a flash sale, 1,000 orders with faults, hostile intake."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from oms_shared import topics
from oms_shared.contracts.order import order_id_for
from oms_shared.envelope import Envelope
from tests import support
from tests.e2e.journey import SIMULATORS, TERMINAL, Journey, order_payload
from tests.intake_samples import HOSTILE


def sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:10]}"


@pytest.mark.slow
class TestFlashSale:
    """500 concurrent orders for 50 units over three warehouses: exactly 50 reserved, never oversold."""

    async def test_flash_sale(self, journey: Journey) -> None:
        item = sku()
        await journey.receive({(item, "WH-BER"): 20, (item, "WH-HAM"): 15, (item, "WH-MUC"): 15})
        samples: list[dict[str, tuple[int, int]]] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                samples.append(await journey.stock(item))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        channels = ("web", "marketplace", "pos")
        payloads = [order_payload(f"F-{uuid.uuid4().hex[:10]}", [(item, 1, 4999)], channel=channels[i % 3])
                    for i in range(500)]  # fmt: skip
        order_ids = await asyncio.gather(*(journey.place(p) for p in payloads))

        async def all_settled() -> bool:
            phases = await journey.order_db.fetch(
                "SELECT phase FROM sagas WHERE order_id = ANY($1::uuid[])", list(order_ids)
            )
            return len(phases) == 500 and all(r["phase"] in (*TERMINAL, "backordered") for r in phases)

        await support.eventually(all_settled, timeout=300, interval=1, what="500 flash-sale orders settled")
        done.set()
        await sampler
        assert samples, "stock was sampled during the run"
        for snapshot in samples:
            for warehouse, (on_hand, reserved) in snapshot.items():
                assert 0 <= reserved <= on_hand, (warehouse, on_hand, reserved)
        reserved_units = await journey.inventory_db.fetchval(
            "SELECT coalesce(sum(reserved_quantity), 0) FROM reservations WHERE sku = $1", item
        )
        assert reserved_units == 50, "exactly the 50 units were ever reserved"
        phases = await journey.order_db.fetch(
            "SELECT phase, count(*) AS n FROM sagas WHERE order_id = ANY($1::uuid[]) GROUP BY phase", list(order_ids)
        )
        by_phase = {r["phase"]: r["n"] for r in phases}
        assert by_phase.get("completed", 0) + by_phase.get("fulfilling", 0) == 50, by_phase
        assert sum(by_phase.values()) == 500
        for order_id in order_ids:
            history = await journey.history(order_id)
            last = history[-1]
            if last["status"] in ("rejected", "backordered"):
                assert last["reasons"], f"{order_id} has no reason"

        # Backordered orders (channel 'pos') wait for stock that never comes: they expire into cancellation.
        async def none_open() -> bool:
            open_ = await journey.order_db.fetchval(
                "SELECT count(*) FROM sagas WHERE order_id = ANY($1::uuid[]) AND phase NOT IN "
                "('completed', 'cancelled', 'rejected')", list(order_ids))  # fmt: skip
            return bool(open_ == 0)

        await support.eventually(none_open, timeout=300, interval=1, what="no flash-sale saga left open")
        await journey.check_invariants(order_ids)


@pytest.mark.slow
class TestThousandOrdersWithFaults:
    """1,000 orders with 5% short picks and 5% carrier refusals all end, and every invariant holds."""

    async def test_thousand_orders(self, journey: Journey, stack: object) -> None:
        for name, _, _ in SIMULATORS:
            journey.processes[name].terminate()
        fault_env = {"WAREHOUSE_SIM_SHORT_PICK_RATE": "0.05", "CARRIER_SIM_FAILURE_RATE": "0.05",
                     "WAREHOUSE_SIM_SEED": uuid.uuid4().hex, "CARRIER_SIM_SEED": uuid.uuid4().hex}  # fmt: skip
        for name, _, _ in SIMULATORS:
            proc = journey.processes[name]
            proc.start(**fault_env)
        await asyncio.gather(*(journey.processes[n].wait_ready(timeout=90) for n, _, _ in SIMULATORS))
        try:
            skus = [sku() for _ in range(20)]
            stock = {(s, w): 400 for s in skus for w in ("WH-BER", "WH-HAM", "WH-MUC", "WH-CGN")}
            await journey.receive(stock)
            payloads = []
            for i in range(1000):
                lines = [(skus[(i + k * 7) % 20], 1 + (i + k) % 3, 1000 + 10 * k) for k in range(1 + i % 3)]
                channel, method = ("web", "marketplace")[i % 2], ("standard", "express")[i % 4 == 0]
                payloads.append(order_payload(f"L-{uuid.uuid4().hex[:10]}", lines, channel=channel, method=method))
            order_ids: list[str] = []
            for chunk in range(0, 1000, 100):
                order_ids += await asyncio.gather(*(journey.place(p) for p in payloads[chunk : chunk + 100]))

            async def all_terminal() -> bool:
                rows = await journey.order_db.fetch(
                    "SELECT phase, stuck_reason FROM sagas WHERE order_id = ANY($1::uuid[])", order_ids
                )
                return len(rows) == 1000 and all(r["phase"] in TERMINAL or r["stuck_reason"] for r in rows)

            await support.eventually(all_terminal, timeout=900, interval=2, what="1000 orders terminal")
            report = await journey.check_invariants(order_ids)
            statuses = await journey.order_db.fetch(
                "SELECT status, count(*) AS n FROM status_history WHERE order_id = ANY($1::uuid[]) GROUP BY status",
                order_ids,
            )
            counts = {r["status"]: r["n"] for r in statuses}
            assert counts.get("short_picked", 0) > 0, "short picks were injected"
            assert counts.get("completed", 0) > 900, counts
            assert report.orders == 1000
            assert report.stuck == 0, "no parcel is lost in this run, so nothing may be parked"
            for proc in journey.processes.values():
                health = proc.health()
                assert health is not None
                assert health["dead_lettered"] == 0, f"{proc.name} dead-lettered messages"
        finally:
            for name, _, _ in SIMULATORS:
                journey.processes[name].terminate()
                journey.processes[name].start()
            await asyncio.gather(*(journey.processes[n].wait_ready(timeout=90) for n, _, _ in SIMULATORS))


class TestHostileIntake:
    """Malformed and hostile intake messages are rejected with reasons; nothing changes; nothing crashes."""

    async def test_hostile_corpus(self, journey: Journey) -> None:
        sagas_before = await journey.order_db.fetchval("SELECT count(*) FROM sagas")
        stock_before = await journey.inventory_db.fetchval("SELECT coalesce(sum(reserved), 0) FROM stock")
        ids = []
        for name, raw, _ in HOSTILE:
            envelope = Envelope(type="oms.order.place-order.v1", source="tests/hostile", data=raw,
                                key=f"hostile-{name}".encode())  # fmt: skip
            await support.publish(journey.producer, topics.ORDER_INTAKE.name, envelope)
            ids.append(envelope.id)

        async def all_recorded() -> bool:
            n = await journey.order_db.fetchval(
                "SELECT count(*) FROM intake_rejections WHERE message_id = ANY($1::text[])", ids
            )
            return bool(n == len(ids))

        await support.eventually(all_recorded, timeout=60, what="every hostile message recorded as rejected")
        rows = await journey.order_db.fetch(
            "SELECT message_id, kind, reasons, raw, order_id::text AS order_id FROM intake_rejections "
            "WHERE message_id = ANY($1::text[])", ids)  # fmt: skip
        by_id = {r["message_id"]: r for r in rows}
        for (name, raw, fragment), message_id in zip(HOSTILE, ids, strict=True):
            row = by_id[message_id]
            assert row["kind"] == "invalid", name
            assert any(fragment.lower() in r.lower() for r in row["reasons"]), (name, row["reasons"])
            assert bytes(row["raw"]) == raw, f"{name}: the raw message is kept byte for byte"
            history = await journey.history(row["order_id"])
            assert history[-1]["status"] == "rejected", name
        assert await journey.order_db.fetchval("SELECT count(*) FROM sagas") == sagas_before
        assert await journey.inventory_db.fetchval("SELECT coalesce(sum(reserved), 0) FROM stock") == stock_before
        for proc in journey.processes.values():
            health = proc.health()
            assert health is not None
            assert health["ready"] is True, proc.name
        assert order_id_for("?", ids[0])
