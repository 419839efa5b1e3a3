"""Composition root of the carrier simulator: describes it; the shared host runs it."""

from __future__ import annotations

from oms_shared import topics
from oms_shared.runtime import Subscription
from oms_simulators.carrier.handlers import SIMULATOR, handlers
from oms_simulators.carrier.settings import CarrierSimSettings
from oms_simulators.host import run_simulator

__all__ = ["NAME", "main"]

NAME = "carrier-sim"


def main() -> None:
    """Build the simulator from the environment and run it until SIGTERM."""
    settings = CarrierSimSettings()
    run_simulator(NAME, SIMULATOR, settings, Subscription(topics.CARRIER_REQUESTS, handlers(settings.policy())))
