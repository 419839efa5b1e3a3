"""PostgreSQL access: the connection pool and the migrations runner."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Literal, TypeAlias

import asyncpg
import orjson
import structlog
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Connection", "PlanCacheMode", "apply_migrations", "create_pool"]

#: PostgreSQL's plan_cache_mode for a pool's connections ("auto": PostgreSQL's default).
PlanCacheMode: TypeAlias = Literal["auto", "force_generic_plan", "force_custom_plan"]

#: A connection, whether taken from a pool (a proxy) or opened directly.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

log = structlog.get_logger(__name__)

_MIGRATIONS_LOCK = 0x0F15_0001


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without asyncpg's reset query (UNLISTEN, RESET ALL, ...): one round trip saved.

    The OMS keeps no session state on pooled connections: advisory locks are
    transaction-scoped (the migrations' session lock is released explicitly), LISTEN
    runs on a connection of its own and settings are SET LOCAL. asyncpg still rolls
    back a transaction left open before the connection returns to the pool.
    """


def _jsonb_encode(value: Any) -> str:
    return orjson.dumps(value).decode()


async def create_pool(dsn: str, size: int = 10, *, plan_cache_mode: PlanCacheMode = "auto") -> asyncpg.Pool[Any]:
    """A pool whose connections encode/decode jsonb with orjson (and plan prepared statements
    as ``plan_cache_mode`` says: see ``ServiceSettings.db_plan_cache_mode``)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        server_settings={} if plan_cache_mode == "auto" else {"plan_cache_mode": plan_cache_mode},
        init=_init_connection,
        reset=_keep_session,
        # Connections die when PostgreSQL restarts; do not keep them around for long.
        max_inactive_connection_lifetime=60,
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def apply_migrations(pool: asyncpg.Pool[Any], *packages: str) -> list[str]:
    """Apply the numbered ``*.sql`` files of each package, in order, once; return those applied.

    Each file runs in its own transaction together with its bookkeeping row; an
    advisory lock serialises instances of one service starting at the same time.
    """
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATIONS_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
            for package in packages:
                for name, sql in _migration_files(package):
                    checksum = hashlib.sha256(sql.encode()).hexdigest()
                    if name in done:
                        if done[name] != checksum:
                            log.warning("migration_changed_after_apply", migration=name)
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum
                        )
                    applied.append(name)
                    log.info("migration_applied", migration=name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATIONS_LOCK)
    return applied


def _migration_files(package: str) -> list[tuple[str, str]]:
    root = resources.files(package)
    files = sorted((p for p in root.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(f"{package}:{p.name}", p.read_text(encoding="utf-8")) for p in files]
