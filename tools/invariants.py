#!/usr/bin/env python3
"""The invariant checker: reads every service database and reports violations by count.

    python tools/invariants.py [--settle SECONDS] [--orders ID,ID,...] [--json]

ARCHITECTURE.md §7, checked against the real databases (never through the
services' APIs, so a bug in a service cannot hide itself):

  oversell               reserved > on_hand (or negative stock) anywhere
  conservation           on_hand differs from the sum of the recorded movements
  reserved_drift         stock.reserved differs from the sum of active reservations
  open_order             an accepted order neither terminal nor parked after --settle seconds
  refund_above_paid      refunds of an order exceed what was paid
  refund_mismatch        the saga's refunded total differs from the refund ledger's
  ended_order_holds_stock   a cancelled/rejected/completed order still has active reservations
  cancelled_but_shipped  a cancelled/rejected order has committed stock or a dispatched shipment
  cancelled_not_refunded a cancelled/rejected order is not refunded in full
  completed_undelivered  a completed order without any delivered shipment
  completed_unpaid_back  a completed order whose refund ledger differs from what the saga owed
  duplicate_shipment     more than one live shipment for one fulfillment
  orphan_record          a record in a participant for an order the order service does not know
  timeline_gap           an order's timeline does not number its entries 1, 2, ... without a gap
  timeline_tail          a saga's kept last timeline entry (timeline_seq, timeline_status) is not its timeline's last

Parked (stuck) orders are not violations; they are reported as ``stuck`` so an
operator sees them. Exit status 0 when every violation count is zero, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

TERMINAL = ("completed", "cancelled", "rejected")


@dataclass
class Report:
    """Violation counts (zero means the invariant holds), plus what an operator should look at."""

    violations: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stuck: int = 0
    orders: int = 0

    def add(self, name: str, count: int = 1, example: str | None = None) -> None:
        self.violations[name] = self.violations.get(name, 0) + count
        if example and len(self.examples[name]) < 5:
            self.examples[name].append(example)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "orders": self.orders, "stuck": self.stuck, "violations": self.violations,
                "examples": dict(self.examples)}  # fmt: skip


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def check(dsns: dict[str, str], *, settle_s: float = 0.0, orders: Iterable[str] | None = None) -> Report:
    """Check every invariant across the service databases named in ``dsns`` (service -> DSN)."""
    report = Report()
    only = sorted(set(orders)) if orders is not None else None
    for name in (
        "oversell", "conservation", "reserved_drift", "open_order", "refund_above_paid", "refund_mismatch",
        "ended_order_holds_stock", "cancelled_but_shipped", "cancelled_not_refunded", "completed_undelivered",
        "completed_unpaid_back", "duplicate_shipment", "orphan_record", "timeline_gap", "timeline_tail",
    ):  # fmt: skip
        report.violations[name] = 0

    inv = dsns["inventory"]
    for row in await _fetch(inv, "SELECT sku, warehouse_id FROM stock WHERE reserved > on_hand OR reserved < 0 "
                                 "OR on_hand < 0"):  # fmt: skip
        report.add("oversell", example=f"{row['sku']}@{row['warehouse_id']}")
    for row in await _fetch(inv, """
            SELECT s.sku, s.warehouse_id, s.on_hand, coalesce(m.total, 0) AS total
            FROM stock s LEFT JOIN (SELECT sku, warehouse_id, sum(quantity) AS total FROM movements GROUP BY 1, 2) m
                 USING (sku, warehouse_id)
            WHERE s.on_hand <> coalesce(m.total, 0)"""):  # fmt: skip
        report.add("conservation", example=f"{row['sku']}@{row['warehouse_id']}: {row['on_hand']} != {row['total']}")
    for row in await _fetch(inv, """
            SELECT s.sku, s.warehouse_id, s.reserved, coalesce(r.total, 0) AS total
            FROM stock s LEFT JOIN (SELECT sku, warehouse_id, sum(quantity) AS total FROM reservations
                                    WHERE state = 'active' GROUP BY 1, 2) r USING (sku, warehouse_id)
            WHERE s.reserved <> coalesce(r.total, 0)"""):  # fmt: skip
        report.add("reserved_drift", example=f"{row['sku']}@{row['warehouse_id']}: {row['reserved']} != {row['total']}")

    sagas = await _fetch(
        dsns["order"],
        """
        SELECT order_id::text AS order_id, phase, stuck_reason, (data::jsonb->>'amount_paid')::bigint AS paid,
               -- A field at its default is not in the document (saga_state.py).
               coalesce((data::jsonb->>'refunded')::bigint, 0) AS refunded,
               coalesce((data::jsonb->>'refund_due')::bigint, 0) AS refund_due,
               extract(epoch FROM now() - updated_at) AS idle_s,
               (data::jsonb->>'timeline_seq')::int AS kept_seq, data::jsonb->>'timeline_status' AS kept_status
        FROM sagas WHERE $1::text[] IS NULL OR order_id::text = ANY($1::text[])
        """,
        only,
    )
    known = {r["order_id"] for r in sagas}
    timelines = {
        r["order_id"]: r
        for r in await _fetch(
            dsns["order"],
            """
            SELECT order_id::text AS order_id, count(*) AS n, min(seq) AS first, max(seq) AS last,
                   (array_agg(status ORDER BY seq DESC))[1] AS last_status
            FROM status_history WHERE $1::text[] IS NULL OR order_id::text = ANY($1::text[]) GROUP BY order_id
            """,
            only,
        )
    }
    for oid, t in timelines.items():
        if t["first"] != 1 or t["last"] != t["n"]:
            report.add("timeline_gap", example=f"{oid}: {t['n']} entries numbered {t['first']}..{t['last']}")
    report.orders = len(sagas)
    reservations: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await _fetch(inv, "SELECT order_id, state, sum(quantity) AS q FROM reservations GROUP BY 1, 2"):
        reservations[row["order_id"]][row["state"]] = int(row["q"])
    refunds = {r["order_id"]: int(r["total"]) for r in await _fetch(
        dsns["returns"], "SELECT order_id, sum(amount) AS total FROM refunds GROUP BY 1")}  # fmt: skip
    shipments: dict[str, list[str]] = defaultdict(list)
    for row in await _fetch(dsns["shipping"], "SELECT order_id, status FROM shipments"):
        shipments[row["order_id"]].append(row["status"])
    for row in await _fetch(
        dsns["shipping"],
        """
            SELECT shipment_id FROM shipment_packages GROUP BY package_id, shipment_id HAVING count(*) > 1""",
    ):
        report.add("duplicate_shipment", example=str(row["shipment_id"]))
    fulfilled = {
        r["order_id"] for r in await _fetch(dsns["fulfillment"], "SELECT DISTINCT order_id FROM fulfillment_orders")
    }

    for saga in sagas:
        oid, phase = saga["order_id"], saga["phase"]
        paid, refunded = int(saga["paid"]), int(saga["refunded"])
        ledger = refunds.get(oid, 0)
        held = reservations.get(oid, {})
        statuses = shipments.get(oid, [])
        tail = timelines.get(oid)
        kept = (saga["kept_seq"], saga["kept_status"])
        if kept[0] is not None and kept != ((tail["last"], tail["last_status"]) if tail else (0, None)):
            report.add("timeline_tail", example=f"{oid}: saga keeps {kept}, timeline ends {tail and tail['last']}")
        if saga["stuck_reason"]:
            report.stuck += 1
        elif phase not in TERMINAL and saga["idle_s"] >= settle_s:
            report.add("open_order", example=f"{oid} {phase}")
        if ledger > paid:
            report.add("refund_above_paid", example=f"{oid}: {ledger} > {paid}")
        if phase in TERMINAL and ledger != refunded and not saga["stuck_reason"]:
            report.add("refund_mismatch", example=f"{oid}: saga {refunded} != ledger {ledger}")
        if phase in TERMINAL and held.get("active"):
            report.add("ended_order_holds_stock", example=f"{oid} {phase}: {held}")
        if phase in ("cancelled", "rejected"):
            if held.get("committed") or any(s in ("dispatched", "delivered") for s in statuses):
                report.add("cancelled_but_shipped", example=f"{oid}: {held} {statuses}")
            if ledger != paid:
                report.add("cancelled_not_refunded", example=f"{oid}: refunded {ledger} of {paid}")
        if phase == "completed":
            if "delivered" not in statuses:
                report.add("completed_undelivered", example=f"{oid}: {statuses}")
            if ledger != min(paid, int(saga["refund_due"])):
                report.add("completed_unpaid_back", example=f"{oid}: ledger {ledger} owed {saga['refund_due']}")
    if only is None:
        for oid in (set(reservations) | set(refunds) | set(shipments) | fulfilled) - known:
            report.add("orphan_record", example=oid)
    return report


def local_dsns() -> dict[str, str]:
    """The DSNs of the local stack's service databases (settings of each service apply)."""
    import importlib

    dsns = {}
    for service in ("order", "inventory", "fulfillment", "shipping", "returns"):
        module = importlib.import_module(f"oms_{service}.settings")
        settings = getattr(module, f"{service.capitalize()}Settings")()
        dsns[service] = settings.database_url
    return dsns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds an order may be in flight (default 60)")
    parser.add_argument("--orders", help="comma-separated order ids to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    orders = args.orders.split(",") if args.orders else None
    report = asyncio.run(check(local_dsns(), settle_s=args.settle, orders=orders))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(f"orders checked: {report.orders}   parked (stuck): {report.stuck}")
        for name, count in report.violations.items():
            print(f"  {'OK  ' if count == 0 else 'FAIL'} {name:<26} {count}  {' '.join(report.examples.get(name, []))}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
