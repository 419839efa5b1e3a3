"""Settings both simulators share; each simulator adds its own and its env prefix."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import NoDecode

from oms_shared.settings import OffPathSettings, local_database_url

__all__ = ["CommaSet", "SimulatorSettings"]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value


#: A set read from a comma-separated environment variable (``"wh-1, wh-2"``), not JSON.
CommaSet = Annotated[frozenset[str], NoDecode, BeforeValidator(_split_commas)]


class SimulatorSettings(OffPathSettings):
    """Fields of every simulator process; both share the ``oms_simulators`` database."""

    database_url: str = local_database_url("simulators")
    #: The simulator's consumer group (each simulator sets its own default).
    group_id: str
    #: Seed of every random decision: the same seed replays the same world.
    seed: str = "oms-simulators"
    #: Warehouses the simulator leaves alone: tests drive them by hand.
    manual_warehouses: CommaSet = frozenset()
    #: How often the worker looks for due scheduled messages, and how many it moves at once.
    schedule_poll_interval_s: float = Field(0.1, gt=0)  # idle polling costs CPU beside the OMS
    schedule_batch_size: int = Field(500, ge=1)
    #: Sent schedule rows are kept this long (for inspection), then purged.
    schedule_retention_s: float = Field(300.0, ge=0)
    #: False: run without a database (the runtime's stateless mode): every answer is sent at
    #: once, straight to Kafka, with an id derived from its cause. Only with every delay 0:
    #: the benchmark's outside world, which on a real site runs on other machines.
    durable: bool = True

    def delays_s(self) -> dict[str, float]:
        """The simulator's delays by name (each simulator lists its own)."""
        return {}

    @model_validator(mode="after")
    def _stateless_needs_zero_delays(self) -> SimulatorSettings:
        delayed = sorted(name for name, value in self.delays_s().items() if value > 0)
        if not self.durable and delayed:
            raise ValueError(f"durable=false sends every answer at once: these delays must be 0: {', '.join(delayed)}")
        return self
