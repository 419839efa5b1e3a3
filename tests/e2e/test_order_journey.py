"""Acceptance 2 of the journey: every path through the real services, simulators and Kafka.

Each test uses SKUs of its own, checks the order's public timeline, the stock it
leaves behind, and that every service database agrees (the invariant checker).
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from oms_shared import topics
from oms_shared.contracts.order import OrderStatusChanged
from tests import support
from tests.e2e.journey import MANUAL, Journey, OutsideWorld, order_payload, tools_invariants

NEAR_MANUAL = (51.30, 12.40)  # Leipzig: the manual warehouse is the nearest


def sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:10]}"


def ext() -> str:
    return f"E-{uuid.uuid4().hex[:12]}"


class TestHappyPaths:
    """Orders that ship: one warehouse, or split over two."""

    async def test_single_warehouse_to_delivered(self, journey: Journey) -> None:
        item = sku()
        await journey.receive({(item, "WH-BER"): 10})
        order_id = await journey.place(order_payload(ext(), [(item, 2, 1999)]))
        assert await journey.wait_phase(order_id) == "completed"
        statuses = await journey.statuses(order_id)
        assert statuses == [
            "received", "accepted", "reserved", "fulfilling", "packed", "shipment_booked", "shipped",
            "in_transit", "out_for_delivery", "delivered", "completed",
        ]  # fmt: skip
        assert await journey.stock(item) == {"WH-BER": (8, 0)}
        await journey.check_invariants([order_id])
        await self._status_topic_matches(journey, order_id, statuses)
        await self._checker_sees_a_broken_timeline(journey, order_id)

    async def _checker_sees_a_broken_timeline(self, journey: Journey, order_id: str) -> None:
        """The invariant checker would tell a saga whose kept last entry drifted, and a gap in a timeline."""
        db = journey.order_db

        async def found() -> tuple[int, int]:
            report = await tools_invariants().check(journey.dsns, orders=[order_id])
            return report.violations["timeline_tail"], report.violations["timeline_gap"]

        keep = "UPDATE sagas SET data = jsonb_set(data::jsonb, '{timeline_seq}', $2::jsonb)::text WHERE order_id = $1"
        await db.execute(keep, order_id, 10)
        assert await found() == (1, 0)
        await db.execute(keep, order_id, 11)
        renumber = "UPDATE status_history SET seq = $3 WHERE order_id = $1 AND seq = $2"
        await db.execute(renumber, order_id, 11, 12)
        assert await found() == (1, 1)
        await db.execute(renumber, order_id, 12, 11)
        assert await found() == (0, 0)

    async def _status_topic_matches(self, journey: Journey, order_id: str, statuses: list[str]) -> None:
        """The public status topic carries the same timeline, in order, keyed by order id."""
        consumer = AIOKafkaConsumer(bootstrap_servers=support.bootstrap_servers(), enable_auto_commit=False)
        await consumer.start()
        seen: list[OrderStatusChanged] = []
        try:
            # Start at the order's first status (the topic may hold millions of older events).
            first = await journey.order_db.fetchval("SELECT min(at) FROM status_history WHERE order_id = $1", order_id)
            partitions = [TopicPartition(topics.ORDER_STATUS.name, p) for p in range(topics.ORDER_STATUS.partitions)]
            consumer.assign(partitions)
            found = await consumer.offsets_for_times({tp: int(first.timestamp() * 1000) - 60_000 for tp in partitions})
            for tp in partitions:
                if found.get(tp) is not None:
                    consumer.seek(tp, found[tp].offset)
                else:
                    await consumer.seek_to_end(tp)

            async def all_seen() -> bool:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == order_id.encode():
                            seen.append(OrderStatusChanged.model_validate_json(record.value))
                return len(seen) >= len(statuses)

            await support.eventually(all_seen, timeout=60, what="status events on the topic")
        finally:
            await consumer.stop()
        assert [e.status for e in seen] == statuses
        assert [e.seq for e in seen] == list(range(1, len(statuses) + 1))

    async def test_split_over_two_warehouses(self, journey: Journey) -> None:
        a, b = sku(), sku()
        await journey.receive({(a, "WH-HAM"): 5, (b, "WH-MUC"): 5})
        order_id = await journey.place(order_payload(ext(), [(a, 1, 1000), (b, 2, 500)]))
        assert await journey.wait_phase(order_id) == "completed"
        history = await journey.history(order_id)
        booked = [h for h in history if h["status"] == "shipment_booked"]
        assert len(booked) == 2, "one shipment per warehouse"
        assert await journey.stock(a) == {"WH-HAM": (4, 0)}
        assert await journey.stock(b) == {"WH-MUC": (3, 0)}
        await journey.check_invariants([order_id])


class TestStockShortage:
    """No stock, and partial stock under each channel policy."""

    async def test_out_of_stock_is_rejected_and_refunded(self, journey: Journey) -> None:
        order_id = await journey.place(order_payload(ext(), [(sku(), 1, 1000)], channel="marketplace"))
        assert await journey.wait_phase(order_id) == "rejected"
        await journey.wait_status(order_id, "refunded")
        history = await journey.history(order_id)
        rejected = next(h for h in history if h["status"] == "rejected")
        assert rejected["reasons"], "a rejection says why"
        await journey.check_invariants([order_id])

    async def test_partial_stock_reject_policy(self, journey: Journey) -> None:
        item = sku()
        await journey.receive({(item, "WH-BER"): 1})
        order_id = await journey.place(order_payload(ext(), [(item, 3, 1000)], channel="marketplace"))
        assert await journey.wait_phase(order_id) == "rejected"
        await journey.wait_status(order_id, "refunded")
        assert await journey.stock(item) == {"WH-BER": (1, 0)}, "nothing stays reserved"
        await journey.check_invariants([order_id])

    async def test_partial_stock_ship_available_refunds_the_rest(self, journey: Journey) -> None:
        item = sku()
        await journey.receive({(item, "WH-BER"): 1})
        order_id = await journey.place(order_payload(ext(), [(item, 3, 1000)], channel="web"))
        assert await journey.wait_phase(order_id) == "completed"
        statuses = await journey.statuses(order_id)
        assert "partially_reserved" in statuses
        refunds = [h for h in await journey.history(order_id) if h["status"] == "refunded"]
        assert [r["details"]["amount"] for r in refunds] == [2000]
        assert await journey.stock(item) == {"WH-BER": (0, 0)}
        await journey.check_invariants([order_id])

    async def test_partial_stock_backorder_ships_when_stock_arrives(self, journey: Journey) -> None:
        item = sku()
        await journey.receive({(item, "WH-BER"): 1})
        order_id = await journey.place(order_payload(ext(), [(item, 3, 1000)], channel="pos"))
        await journey.wait_status(order_id, "backordered")
        await journey.receive({(item, "WH-BER"): 5})
        assert await journey.wait_phase(order_id) == "completed"
        assert await journey.stock(item) == {"WH-BER": (3, 0)}
        await journey.check_invariants([order_id])

    async def test_backorder_expires_into_cancellation(self, journey: Journey) -> None:
        order_id = await journey.place(order_payload(ext(), [(sku(), 2, 1000)], channel="pos"))
        await journey.wait_status(order_id, "backordered")
        assert await journey.wait_phase(order_id, timeout=60) == "cancelled"
        assert "refunded" in await journey.statuses(order_id)
        await journey.check_invariants([order_id])


class TestCancellation:
    """Cancellation at each stage: compensated and refunded before the hand-over, refused after."""

    async def test_right_after_placing(self, journey: Journey) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, "WH-BER"): 4})
        order_id = await journey.place(order_payload(external, [(item, 2, 1000)]))
        await journey.cancel("web", external)
        assert await journey.wait_phase(order_id) == "cancelled"
        assert await journey.stock(item) == {"WH-BER": (4, 0)}
        await journey.check_invariants([order_id])

    async def test_during_picking(self, journey: Journey, world: OutsideWorld) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, MANUAL): 4})
        order_id = await journey.place(order_payload(external, [(item, 2, 1000)], at=NEAR_MANUAL))
        await world.pick_list(order_id)
        await journey.cancel("web", external)
        assert await journey.wait_phase(order_id) == "cancelled"
        assert await journey.stock(item) == {MANUAL: (4, 0)}
        statuses = await journey.statuses(order_id)
        assert statuses[-3:] == ["cancelling", "refunded", "cancelled"]
        await journey.check_invariants([order_id])

    async def test_after_packing_while_booking(self, journey: Journey, world: OutsideWorld) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, MANUAL): 4})
        order_id = await journey.place(order_payload(external, [(item, 2, 1000)], at=NEAR_MANUAL))
        await world.confirm_pick(await world.pick_list(order_id))
        await world.booking(order_id)
        await journey.cancel("web", external)
        assert await journey.wait_phase(order_id) == "cancelled"
        assert await journey.stock(item) == {MANUAL: (4, 0)}
        await journey.check_invariants([order_id])

    async def test_after_booking_before_pickup(self, journey: Journey, world: OutsideWorld) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, MANUAL): 4})
        order_id = await journey.place(order_payload(external, [(item, 2, 1000)], at=NEAR_MANUAL))
        await world.confirm_pick(await world.pick_list(order_id))
        await world.answer(await world.booking(order_id), accept=True)
        await journey.wait_status(order_id, "shipment_booked")
        await journey.cancel("web", external)
        assert await journey.wait_phase(order_id) == "cancelled"
        assert await journey.stock(item) == {MANUAL: (4, 0)}
        await journey.check_invariants([order_id])

    async def test_after_hand_over_is_refused(self, journey: Journey, world: OutsideWorld) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, MANUAL): 4})
        order_id = await journey.place(order_payload(external, [(item, 2, 1000)], at=NEAR_MANUAL))
        await world.confirm_pick(await world.pick_list(order_id))
        booking = await world.booking(order_id)
        tracking = await world.answer(booking, accept=True)
        await world.scan(booking, tracking, "picked_up")
        await journey.wait_status(order_id, "shipped")
        await journey.cancel("web", external)
        history = await journey.wait_status(order_id, "cancel_refused")
        assert history
        refusal = next(h for h in await journey.history(order_id) if h["status"] == "cancel_refused")
        assert "carrier" in " ".join(refusal["reasons"])
        for scan in ("in_transit", "out_for_delivery", "delivered"):
            await world.scan(booking, tracking, scan)
        assert await journey.wait_phase(order_id) == "completed"
        assert await journey.stock(item) == {MANUAL: (2, 0)}
        await journey.check_invariants([order_id])


class TestWarehouseAndCarrierFailures:
    """Short picks are re-sourced; a refusing carrier is replaced; no carrier at all is compensated."""

    async def test_short_pick_is_resourced_from_another_warehouse(self, journey: Journey, world: OutsideWorld) -> None:
        item = sku()
        await journey.receive({(item, MANUAL): 2, (item, "WH-HAM"): 5})
        order_id = await journey.place(order_payload(ext(), [(item, 2, 1000)], at=NEAR_MANUAL))
        pick = await world.pick_list(order_id)
        assert pick.warehouse_id == MANUAL
        await world.confirm_pick(pick, short={1: 1})
        booking = await world.booking(order_id)
        tracking = await world.answer(booking, accept=True)
        for scan in ("picked_up", "in_transit", "out_for_delivery", "delivered"):
            await world.scan(booking, tracking, scan)
        assert await journey.wait_phase(order_id) == "completed"
        statuses = await journey.statuses(order_id)
        assert "short_picked" in statuses
        assert statuses.count("shipment_booked") == 2, "one shipment from the manual warehouse, one from Hamburg"
        assert await journey.stock(item) == {MANUAL: (0, 0), "WH-HAM": (4, 0)}
        await journey.check_invariants([order_id])

    async def test_carrier_refuses_then_another_carrier_takes_it(self, journey: Journey, world: OutsideWorld) -> None:
        item = sku()
        await journey.receive({(item, MANUAL): 3})
        order_id = await journey.place(order_payload(ext(), [(item, 1, 1000)], at=NEAR_MANUAL))
        await world.confirm_pick(await world.pick_list(order_id))
        first = await world.booking(order_id)
        await world.answer(first, accept=False)
        second = await world.booking(order_id, 2)
        assert second.carrier != first.carrier
        tracking = await world.answer(second, accept=True)
        for scan in ("picked_up", "in_transit", "out_for_delivery", "delivered"):
            await world.scan(second, tracking, scan)
        assert await journey.wait_phase(order_id) == "completed"
        booked = next(h for h in await journey.history(order_id) if h["status"] == "shipment_booked")
        assert booked["details"]["carrier"] == second.carrier
        assert first.carrier in booked["details"]["carriers_tried"]
        await journey.check_invariants([order_id])

    async def test_no_carrier_at_all_is_compensated_and_refunded(self, journey: Journey, world: OutsideWorld) -> None:
        item = sku()
        await journey.receive({(item, MANUAL): 3})
        order_id = await journey.place(order_payload(ext(), [(item, 1, 1000)], at=NEAR_MANUAL))
        await world.confirm_pick(await world.pick_list(order_id))
        n = 1
        while await journey.phase(order_id) == "fulfilling" and n <= 5:
            try:
                booking = await world.booking(order_id, n)
            except AssertionError:
                break
            await world.answer(booking, accept=False)
            n += 1
        assert await journey.wait_phase(order_id) == "cancelled"
        assert "shipment_failed" in await journey.statuses(order_id)
        assert await journey.stock(item) == {MANUAL: (3, 0)}
        await journey.check_invariants([order_id])


class TestIntakeDeduplication:
    """A replay creates nothing new; the same key with other content is a conflict."""

    async def test_replay_and_conflict(self, journey: Journey) -> None:
        item, external = sku(), ext()
        await journey.receive({(item, "WH-BER"): 5})
        payload = order_payload(external, [(item, 1, 1000)])
        order_id = await journey.place(payload)
        await journey.place(payload)
        await journey.place({**payload, "shipping_method": "express"})
        assert await journey.wait_phase(order_id) == "completed"
        await journey.wait_status(order_id, "conflict")
        count = await journey.order_db.fetchval("SELECT count(*) FROM orders WHERE external_order_id = $1", external)
        assert count == 1
        assert await journey.stock(item) == {"WH-BER": (4, 0)}, "the replay reserved nothing"
        conflicts = await journey.order_db.fetchval(
            "SELECT count(*) FROM intake_rejections WHERE kind = 'conflict' AND external_order_id = $1", external
        )
        assert conflicts == 1
        await journey.check_invariants([order_id])
