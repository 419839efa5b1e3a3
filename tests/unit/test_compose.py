"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the code."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from oms_shared.settings import ServiceSettings, SharedSettings
from oms_shared.topology import SERVICES, database_name, role_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"oms_{service}.settings")
    cls: type[ServiceSettings] = getattr(module, f"{service.capitalize()}Settings")
    return cls


def env_names(cls: type[SharedSettings]) -> set[str]:
    """Every environment variable name the settings class reads."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        names.add(str(alias.choices[0]).upper() if alias is not None else f"{prefix}{name}".upper())  # type: ignore[union-attr]
    return names


class TestComposeMatchesCode:
    """Same services, same settings names, same way of creating topics and databases."""

    def test_same_services(self, compose: dict[str, Any]) -> None:
        assert set(SERVICES) <= set(compose["services"])
        assert {"kafka", "postgres", "init"} <= set(compose["services"])

    @pytest.mark.parametrize("service", SERVICES)
    def test_service_runs_its_module_with_known_settings(self, compose: dict[str, Any], service: str) -> None:
        spec = compose["services"][service]
        assert spec["command"] == ["python", "-m", f"oms_{service}"]
        known = env_names(settings_class(service))
        env = spec["environment"]
        unknown = set(env) - known
        assert not unknown, f"{service} sets settings the code does not read: {unknown}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        dsn = env[f"{service.upper()}_DATABASE_URL"]
        assert dsn.startswith(f"postgresql://{role_name(service)}:")
        assert dsn.endswith(f"/{database_name(service)}")
        port = int(env[f"{service.upper()}_HEALTH_PORT"])
        assert port == settings_class(service)().health_port
        assert spec["depends_on"]["init"]["condition"] == "service_completed_successfully"

    def test_init_creates_topics_and_databases_with_the_project_code(self, compose: dict[str, Any]) -> None:
        init = compose["services"]["init"]
        assert init["command"] == ["python", "deploy/stack.py", "init"]
        stack_source = (ROOT / "deploy" / "stack.py").read_text()
        assert '"init"' in stack_source, "deploy/stack.py must offer the init command compose relies on"
        assert "ensure_topics" in stack_source

    def test_kafka_is_configured_like_the_local_broker(self, compose: dict[str, Any]) -> None:
        env = compose["services"]["kafka"]["environment"]
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        local = (ROOT / "deploy" / "kafka" / "server.properties").read_text()
        assert "auto.create.topics.enable=false" in local
        assert "-Xmx512m" in env["KAFKA_HEAP_OPTS"]
