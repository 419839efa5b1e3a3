"""Acceptance 6 (the part a test can show): the five services start and report healthy."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from oms_shared.topology import SERVICES
from tests import support


@pytest.fixture
def launcher(topics: None) -> Iterator[ModuleType]:
    """deploy/services.py with health ports of its own, so a running `make run` is left alone."""
    saved = dict(os.environ)
    for name in (*SERVICES, "warehouse_sim", "carrier_sim"):
        os.environ[f"{name.upper()}_HEALTH_PORT"] = str(support.free_port())
    spec = importlib.util.spec_from_file_location("oms_services_launcher", support.ROOT / "deploy" / "services.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    module.RUN_DIR = support.ROOT / ".run" / "test-services"  # type: ignore[attr-defined]
    try:
        yield module
    finally:
        module.stop(list(module.PROCESSES))
        os.environ.clear()
        os.environ.update(saved)


class TestServicesStart:
    """`deploy/services.py start` (what `make run` calls) brings the five services and the simulators up."""

    def test_start_status_stop(self, launcher: ModuleType) -> None:
        procs = list(launcher.PROCESSES)
        assert [p.name for p in procs] == [*SERVICES, "warehouse-sim", "carrier-sim"]
        assert launcher.start(procs, timeout=120) == 0
        assert launcher.start(procs, timeout=30) == 0, "a second start is a no-op"
        assert launcher.status(procs) == 0
        for proc in procs:
            body = launcher.health(proc)
            assert body is not None
            assert body["ready"] is True
            assert body["service"] == proc.name
            assert body["assigned_partitions"] > 0
        assert launcher.stop(procs) == 0
        assert launcher.status(procs) == 3
