"""The topic registry, settings prefixes, error classification and backoff."""

from __future__ import annotations

import os
import re

import asyncpg
import pytest
from aiokafka import errors as kafka_errors
from pydantic import ValidationError

from oms_fulfillment.settings import FulfillmentSettings
from oms_inventory.settings import InventorySettings
from oms_order.settings import OrderSettings
from oms_returns.settings import ReturnsSettings
from oms_shared import service
from oms_shared.errors import SchemaViolation, is_transient
from oms_shared.kafka import create_consumer
from oms_shared.librdkafka import LibrdkafkaConsumer
from oms_shared.retry import Backoff
from oms_shared.runtime import Subscription
from oms_shared.settings import ServiceSettings
from oms_shared.topics import ALL_TOPICS, ORDER_PARTITIONS, WAREHOUSE_TASKS, by_name, with_dead_letters
from oms_shipping.settings import ShippingSettings
from oms_simulators.carrier.settings import CarrierSimSettings
from oms_simulators.warehouse.handlers import handlers
from oms_simulators.warehouse.settings import WarehouseSimSettings


class TestTopicRegistry:
    """Topic names, keys and partitioning follow the documented scheme."""

    def test_names_follow_the_scheme_and_are_unique(self) -> None:
        names = [t.name for t in ALL_TOPICS]
        assert len(names) == len(set(names))
        for name in names:
            assert re.fullmatch(r"oms\.[a-z]+\.[a-z-]+\.v\d+", name), name

    def test_order_keyed_topics_share_one_partition_count(self) -> None:
        assert {t.partitions for t in ALL_TOPICS if t.key == "order_id"} == {ORDER_PARTITIONS}

    def test_availability_is_a_compacted_table_without_dlt(self) -> None:
        availability = by_name("oms.inventory.availability.v1")
        assert availability.compacted
        assert availability.configs()["cleanup.policy"] == "compact"
        assert availability.dlt not in with_dead_letters([availability])

    def test_every_consumed_topic_has_a_dlt(self) -> None:
        expanded = {t.name for t in with_dead_letters(ALL_TOPICS)}
        for topic in ALL_TOPICS:
            if not topic.compacted:
                assert f"{topic.name}.dlt" in expanded
        assert by_name("oms.order.intake.v1.dlt").name == "oms.order.intake.v1.dlt"


class TestSettings:
    """Shared fields are unprefixed; service fields carry the service prefix."""

    def test_prefixes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:1234")
        monkeypatch.setenv("ORDER_HEALTH_PORT", "9999")
        monkeypatch.setenv("ORDER_DATABASE_URL", "postgresql://x@y/z")
        monkeypatch.setenv("INVENTORY_HEALTH_PORT", "1111")
        settings = OrderSettings()
        assert settings.kafka_bootstrap_servers == "broker:1234"
        assert settings.health_port == 9999
        assert settings.database_url == "postgresql://x@y/z"

    def test_prefixed_shared_field_is_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        monkeypatch.setenv("ORDER_KAFKA_BOOTSTRAP_SERVERS", "wrong:1")
        assert OrderSettings().kafka_bootstrap_servers == "127.0.0.1:9092"

    def test_only_the_path_is_answered_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Order and inventory fetch with 1 byte and 50 ms; the rest wait for fuller batches."""
        for name in list(os.environ):
            if "_CONSUMER_FETCH_" in name:
                monkeypatch.delenv(name)
        fetches: dict[type[ServiceSettings], tuple[int, int]] = {
            OrderSettings: (1, 50),
            InventorySettings: (1, 50),
            FulfillmentSettings: (64 * 1024, 200),
            ShippingSettings: (64 * 1024, 200),
            ReturnsSettings: (64 * 1024, 200),
            WarehouseSimSettings: (64 * 1024, 200),
            CarrierSimSettings: (64 * 1024, 200),
        }
        for cls, expected in fetches.items():
            settings = cls()
            assert (settings.consumer_fetch_min_bytes, settings.consumer_fetch_wait_ms) == expected, cls.__name__
        monkeypatch.setenv("SHIPPING_CONSUMER_FETCH_WAIT_MS", "75")
        assert ShippingSettings().consumer_fetch_wait_ms == 75

    def test_the_path_consumes_on_librdkafka(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Order and inventory run many small batches: librdkafka; the rest stay on aiokafka."""
        for name in list(os.environ):
            if name.endswith("_CONSUMER_CLIENT"):
                monkeypatch.delenv(name)
        clients = {cls: cls().consumer_client for cls in (OrderSettings, InventorySettings, ShippingSettings)}
        assert clients == {OrderSettings: "librdkafka", InventorySettings: "librdkafka", ShippingSettings: "aiokafka"}
        monkeypatch.setenv("ORDER_CONSUMER_CLIENT", "aiokafka")
        assert OrderSettings().consumer_client == "aiokafka"
        monkeypatch.setenv("ORDER_CONSUMER_CLIENT", "kafka-python")
        with pytest.raises(ValidationError):
            OrderSettings()
        consumer = create_consumer(
            "127.0.0.1:9092", "g", ["t"], client_id="c", instance_id="i-1", fetch_wait_ms=7, client="librdkafka"
        )
        assert isinstance(consumer, LibrdkafkaConsumer)
        config = consumer.config
        assert (config["group.id"], config["group.instance.id"], config["fetch.wait.max.ms"]) == ("g", "i-1", 7)
        assert (config["enable.auto.commit"], config["isolation.level"]) == (False, "read_committed")


class TestErrorClassification:
    """Transient failures are retried in place; everything else is not."""

    @pytest.mark.parametrize(
        "exc",
        [
            ConnectionRefusedError(),
            TimeoutError(),
            asyncpg.exceptions.AdminShutdownError("terminating"),
            asyncpg.exceptions.SerializationError("conflict"),
            asyncpg.exceptions.DeadlockDetectedError("deadlock"),
            asyncpg.exceptions.CannotConnectNowError("starting up"),
            asyncpg.InterfaceError("connection is closed"),
            kafka_errors.KafkaConnectionError(),
            kafka_errors.RequestTimedOutError(),
        ],
    )
    def test_transient(self, exc: BaseException) -> None:
        assert is_transient(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            ValueError("bug"),
            SchemaViolation("bad"),
            asyncpg.exceptions.UniqueViolationError("dup"),
            asyncpg.exceptions.CheckViolationError("oversell"),
            asyncpg.exceptions.InvalidPasswordError("no"),
        ],
    )
    def test_not_transient(self, exc: BaseException) -> None:
        assert not is_transient(exc)


class TestBackoff:
    """Delays double up to a cap and restart after a success."""

    def test_doubles_then_caps_then_resets(self) -> None:
        backoff = Backoff(base_s=0.1, cap_s=0.5)
        delays = [backoff.next() for _ in range(6)]
        assert 0.08 <= delays[0] <= 0.12
        assert 0.16 <= delays[1] <= 0.24
        assert all(d <= 0.6 for d in delays)
        assert delays[-1] >= 0.4
        backoff.reset()
        assert backoff.peek() == pytest.approx(0.1)


class TestStatelessSpec:
    """A stateless service (no database) is refused what would need one, and must consume something."""

    def test_refuses_database_parts_and_an_empty_subscription_list(self) -> None:
        settings = WarehouseSimSettings(pick_delay_s=0, durable=False)
        sub = Subscription(WAREHOUSE_TASKS, handlers(settings.policy()))
        assert service.ServiceSpec("sim", settings, [sub], stateless=True).stateless
        with pytest.raises(ValueError, match="migrations, workers or writes"):
            service.ServiceSpec("sim", settings, [sub], migrations=["oms_simulators.migrations"], stateless=True)
        with pytest.raises(ValueError, match="give it a subscription"):
            service.ServiceSpec("sim", settings, [], stateless=True)
