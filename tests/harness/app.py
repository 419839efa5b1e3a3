"""The harness service: ``Increment`` in, one ``effects`` row and one ``Incremented`` out."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_shared.contracts import Contract
from oms_shared.outbox import OutboxWrite, UnitOfWork, outbox_ctes, outbox_id, outbox_result
from oms_shared.runtime import MessageContext, Subscription
from oms_shared.service import ServiceSpec, run
from oms_shared.settings import ServiceSettings, local_database_url
from oms_shared.topics import Topic

EVENTS = Topic("oms.harness.events.v1", "counter", "Runtime test events", retention_ms=3600_000)


def commands_topic(name: str) -> Topic:
    """A harness command topic; each test uses its own, so tests cannot see each other's messages."""
    return Topic(name, "counter", "Runtime test commands", retention_ms=3600_000)


class Increment(Contract):
    """Add ``amount`` to ``counter`` (recorded as one effect row)."""

    ce_type = "oms.harness.increment.v1"
    counter: str = Field(min_length=1)
    amount: int = Field(ge=1)


class Incremented(Contract):
    """The effect of one Increment."""

    ce_type = "oms.harness.incremented.v1"
    counter: str
    amount: int


async def on_increment(cmd: Increment, ctx: MessageContext) -> None:
    """Record the effect and emit the event through the outbox, in one transaction."""
    if cmd.counter.startswith("explode"):
        raise RuntimeError("the harness was told to fail on this message")
    await ctx.conn.execute(
        "INSERT INTO effects (message_id, counter, amount, worker) VALUES ($1, $2, $3, $4)",
        ctx.envelope.id,
        cmd.counter,
        cmd.amount,
        os.getpid(),
    )
    ctx.emit(EVENTS, Incremented(counter=cmd.counter, amount=cmd.amount), key=cmd.counter)


class Effects:
    """The one-statement harness's writer: a batch's effect rows, outbox and inbox claim in one statement."""

    _WRITE = f"""
    WITH effects_written AS (
        INSERT INTO effects (message_id, counter, amount, worker)
        SELECT m, c, a, $4 FROM unnest($1::text[], $2::text[], $3::int[]) AS u(m, c, a)
    ), {outbox_ctes(5)}
    SELECT {outbox_result(5)}
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.rows: list[tuple[str, str, int]] = []
        uow.write_with(self)

    async def flush(self) -> None:
        """Nothing before the outbox: written with it."""

    async def write(self, outbox: OutboxWrite) -> int | None:
        rows, self.rows = self.rows, []
        return outbox_id(
            await self._uow.conn.fetchrow(
                self._WRITE,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                os.getpid(),
                *outbox.params,
            )
        )


async def on_increment_one_statement(cmd: Increment, ctx: MessageContext) -> None:
    """The same effect through a writer part, for a one-statement consumer (no transaction block)."""
    if cmd.counter.startswith("explode"):
        raise RuntimeError("the harness was told to fail on this message")
    ctx.uow.part(Effects).rows.append((ctx.envelope.id, cmd.counter, cmd.amount))
    ctx.emit(EVENTS, Incremented(counter=cmd.counter, amount=cmd.amount), key=cmd.counter)


class HarnessSettings(ServiceSettings):
    """HARNESS_-prefixed settings."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore")

    database_url: str = local_database_url("harness")
    commands_topic: str = "oms.harness.commands.v1"
    group_id: str = "oms-harness"
    #: Run the consumer one-statement (see oms_shared.runtime), effects written by :class:`Effects`.
    one_statement: bool = False


def main() -> None:
    """Run the harness service."""
    settings = HarnessSettings()
    run(
        ServiceSpec(
            name="harness",
            settings=settings,
            subscriptions=[
                Subscription(
                    commands_topic(settings.commands_topic),
                    {Increment: on_increment_one_statement if settings.one_statement else on_increment},
                )
            ],
            migrations=["tests.harness.migrations"],
            group_id=settings.group_id,
            one_statement=settings.one_statement,
        )
    )
