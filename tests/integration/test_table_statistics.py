"""What autovacuum's ANALYZE may cost: documents carry no statistics, growing tables are
analysed after growth worth twice their size (bench/README.md, session 18).

At 300 orders/s on a young database every table that grows with the orders was
re-analysed every few seconds (the default: after 10% of growth), and the sort of each
sampled JSON document made that a quarter of PostgreSQL's CPU. These checks read each
service's migrated schema, so a new table or document column must choose.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from oms_shared.topology import SERVICES

#: Tables left at PostgreSQL's analyse default: reference data that hardly changes, the
#: outbox (a queue a few rows long), returns' ledger (rows only for refunded orders).
DEFAULT_ANALYSE = {
    "order": {"channel_policies", "intake_rejections", "outbox", "schema_migrations"},
    "inventory": {"warehouses", "rejected_movements", "outbox", "schema_migrations"},
    "fulfillment": {"items", "outbox", "schema_migrations"},
    "shipping": {"outbox", "schema_migrations"},
    "returns": {"order_payments", "refunds", "outbox", "schema_migrations"},
}

#: Document-like columns (JSON, bytes, arrays) that keep statistics: none.
DOCUMENTS_WITH_STATISTICS: set[tuple[str, str]] = set()

_TABLES = """
SELECT c.relname, coalesce(c.reloptions, '{}') AS options FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY c.relname
"""
# attstattarget: -1 is the default target, 0 no statistics.
_DOCUMENT_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attstattarget
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  AND (t.typname IN ('jsonb', 'json', 'bytea') OR t.typcategory = 'A')
ORDER BY c.relname, a.attname
"""


async def _schema(fresh_service_db: Any, service: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    pool = await fresh_service_db(service, f"oms_{service}.migrations")
    return await pool.fetch(_TABLES), await pool.fetch(_DOCUMENT_COLUMNS)


@pytest.mark.parametrize("service", SERVICES)
async def test_growing_tables_are_analysed_after_doubling(fresh_service_db: Any, service: str) -> None:
    tables, _ = await _schema(fresh_service_db, service)
    assert tables, "no tables migrated"
    analysed_often = [
        t["relname"]
        for t in tables
        if t["relname"] not in DEFAULT_ANALYSE[service] and "autovacuum_analyze_scale_factor=2" not in t["options"]
    ]
    assert analysed_often == [], f"{service}: set autovacuum_analyze_scale_factor = 2 or list the table as reference"
    # The listed ones exist (a renamed table must not leave a stale entry behind).
    assert DEFAULT_ANALYSE[service] <= {t["relname"] for t in tables}


@pytest.mark.parametrize("service", SERVICES)
async def test_documents_keep_no_statistics(fresh_service_db: Any, service: str) -> None:
    _, columns = await _schema(fresh_service_db, service)
    with_statistics = [
        f"{c['relname']}.{c['attname']} ({c['type']})"
        for c in columns
        if c["attstattarget"] != 0 and (c["relname"], c["attname"]) not in DOCUMENTS_WITH_STATISTICS
    ]
    assert with_statistics == [], f"{service}: SET STATISTICS 0 on documents nothing filters on"
