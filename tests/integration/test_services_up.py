"""Acceptance 6 (the part a test can show): the five services start and report healthy."""

from __future__ import annotations

import os
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
    module = support.script("deploy/services.py")
    saved_globals = {"PROCESSES": module.PROCESSES, "RUN_DIR": module.RUN_DIR}
    setattr(module, "PROCESSES", module.processes())  # noqa: B010  (read the health ports set above)
    setattr(module, "RUN_DIR", support.ROOT / ".run" / "test-services")  # noqa: B010
    try:
        yield module
    finally:
        module.stop(list(module.PROCESSES))
        for name, value in saved_globals.items():
            setattr(module, name, value)
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
