"""Acceptance 5: a service's role cannot connect to another service's database."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from oms_shared.topology import SERVICES, database_name


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


class TestDatabaseIsolation:
    """Each service owns its database; the others' roles are refused at connect time."""

    @pytest.mark.parametrize("service", SERVICES)
    async def test_own_database_accepts_own_role(self, stack: Any, service: str) -> None:
        conn = await asyncpg.connect(stack.service_url(service))
        try:
            assert await conn.fetchval("SELECT current_database()") == database_name(service)
        finally:
            await conn.close()

    @pytest.mark.parametrize("service", SERVICES)
    async def test_other_databases_refuse_the_role(self, stack: Any, service: str) -> None:
        own = stack.service_url(service)
        for other in SERVICES:
            if other == service:
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await asyncpg.connect(with_database(own, database_name(other)))
