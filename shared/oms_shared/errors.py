"""The error hierarchy of the OMS runtime, and the one place errors are classified.

::

    OmsError
    ├── PoisonMessage          the message can never be processed: dead-letter it
    │   ├── UndecodableMessage     not JSON / not a CloudEvent we can read
    │   ├── SchemaViolation        valid JSON that fails the payload contract
    │   ├── UnknownMessageType     a ce_type this consumer has no handler for
    │   └── HandlerFailed          the handler raised a non-transient error (a bug or bad data)
    ├── RetryableError         the world is temporarily broken: retry in place
    └── DomainError            a business rule refused the input (a reply, not a crash)

Infrastructure exceptions (asyncpg, aiokafka, OSError) are not wrapped; they are
classified by :func:`is_transient` at the boundary of the consumer runtime and the
outbox relay, so that classification lives in exactly one place.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import errors as kafka_errors

__all__ = [
    "DomainError",
    "HandlerFailed",
    "OmsError",
    "PoisonMessage",
    "RetryableError",
    "SchemaViolation",
    "UndecodableMessage",
    "UnknownMessageType",
    "is_transient",
]


class OmsError(Exception):
    """Base of every error the OMS raises on purpose."""


class PoisonMessage(OmsError):
    """A message that will never succeed, whatever the retries: it goes to the DLT."""

    reason = "poison"


class UndecodableMessage(PoisonMessage):
    """The record is not a readable CloudEvent with a JSON payload."""

    reason = "undecodable"


class SchemaViolation(PoisonMessage):
    """The payload is JSON but does not satisfy the contract of its ``ce_type``."""

    reason = "schema_violation"


class UnknownMessageType(PoisonMessage):
    """No handler is registered for the message's ``ce_type`` on this topic."""

    reason = "unknown_type"


class HandlerFailed(PoisonMessage):
    """The handler raised a non-transient error; the message is parked on the DLT, not lost."""

    reason = "handler_error"


class RetryableError(OmsError):
    """Raised by code that knows the failure is temporary (e.g. a dependency is warming up)."""


class DomainError(OmsError):
    """A business rule refused the request; handlers turn it into a reply event."""


# SQLSTATE classes that mean "try again later": connection exceptions (08),
# insufficient resources (53), operator intervention such as shutdown (57),
# serialization failures and deadlocks (40).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` is worth retrying in place (database or broker unavailable)."""
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError, TimeoutError)):
        return True
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        # e.g. "connection is closed", "pool is closing": the connection died under us.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(getattr(exc, "retriable", False)) or isinstance(
            exc, (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError)
        )
    return False
