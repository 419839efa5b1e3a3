"""The fixed shape of the system: which services exist and their conventions."""

from __future__ import annotations

__all__ = ["OUTSIDE_WORLD", "SERVICES", "database_name", "role_name"]

#: Every service is its own process and owns one database of this name.
SERVICES: tuple[str, ...] = ("order", "inventory", "fulfillment", "shipping", "returns")

#: Simulators of warehouses and carriers: not part of the OMS, but they get a database
#: (for their schedule of future events and their own outbox/inbox) provisioned the same way.
OUTSIDE_WORLD: tuple[str, ...] = ("simulators",)


def database_name(service: str) -> str:
    """Name of the PostgreSQL database owned by ``service``."""
    return f"oms_{service}"


def role_name(service: str) -> str:
    """Name of the login role that owns ``service``'s database (and nothing else)."""
    return f"oms_{service}"
