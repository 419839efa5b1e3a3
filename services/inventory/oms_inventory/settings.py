"""Settings of the inventory service (environment variables prefixed INVENTORY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.db import PlanCacheMode
from oms_shared.settings import PATH_CONSUMER_CLIENT, ConsumerClient, ServiceSettings, local_database_url

__all__ = ["InventorySettings"]


class InventorySettings(ServiceSettings):
    """Shared fields unprefixed; this service's own fields read as INVENTORY_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore")

    database_url: str = local_database_url("inventory")
    health_port: int = 8082
    consumer_client: ConsumerClient = PATH_CONSUMER_CLIENT
    #: The one-statement batches' read (store._BATCH_CONTEXT) was planned anew on ~80% of its
    #: executions under "auto": 0.4 ms of PostgreSQL's CPU each (1.1 ms on an idle machine),
    #: on the path to `reserved`, where its generic plan runs as fast (measured with
    #: pg_stat_statements.track_planning, session 13). Every other statement of this service
    #: kept its generic plan anyway.
    db_plan_cache_mode: PlanCacheMode = "force_generic_plan"
    #: Stock rows of at most this many SKUs kept between one-statement batches, so a batch
    #: that only reserves SKUs held there plans without reading them (oms_inventory.stock_cache;
    #: ~30 MB for 20,000 SKUs in five warehouses). 0: every batch reads.
    stock_cache_skus: int = Field(20_000, ge=0)
    #: Active reservations of at most this many (order, warehouse) pairs kept from the
    #: one-statement batches that made them, so the batch that commits them (the order's
    #: dispatch) needs no read either (~1 KB a pair). 0: every commit reads.
    reservation_cache_orders: int = Field(20_000, ge=0)
