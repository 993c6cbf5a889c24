"""Flight SQL commands: ``google.protobuf.Any`` in and out, and what a bad one means.

Flight SQL puts every command (``FlightDescriptor.cmd``), every action body and result,
and every ticket duckfleet mints inside a ``google.protobuf.Any`` whose ``type_url`` is
``type.googleapis.com/<full message name>``. This module unpacks that envelope once;
the server dispatches on the typed message it gets back.

Errors (all DuckfleetError; duckfleet.wire.status maps them to Flight statuses)::

    FlightRequestError
    ├── MalformedRequest    not an Any, a payload that does not parse, a message
    │                       where another kind was expected          INVALID_ARGUMENT
    └── UnsupportedRequest  a Flight SQL command or action duckfleet does not
                            implement (named in the message)         NOT_IMPLEMENTED

Pure: no pyarrow, no I/O; shared by the front door and, through tickets.py, workers.
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from duckfleet.errors import DuckfleetError
from duckfleet.wire import sql_messages as sql

TYPE_URL_PREFIX = "type.googleapis.com/"

METADATA_COMMANDS: frozenset[str] = frozenset(
    {
        "CommandGetSqlInfo",
        "CommandGetXdbcTypeInfo",
        "CommandGetCatalogs",
        "CommandGetDbSchemas",
        "CommandGetTables",
        "CommandGetTableTypes",
        "CommandGetPrimaryKeys",
        "CommandGetImportedKeys",
        "CommandGetExportedKeys",
        "CommandGetCrossReference",
    }
)
"""Commands the front door answers itself, from the catalog and fixed tables."""

SUPPORTED_COMMANDS: frozenset[str] = METADATA_COMMANDS | {
    "CommandStatementQuery",
    "CommandPreparedStatementQuery",
}
"""Commands duckfleet answers in GetFlightInfo."""

KNOWN_COMMANDS: frozenset[str] = frozenset(
    spec.name for spec in sql.SQL_MESSAGES if spec.name.startswith("Command")
)
"""Every command of the Flight SQL spec that duckfleet recognises by name."""


class FlightRequestError(DuckfleetError):
    """A request that is not valid Flight SQL, or not Flight SQL duckfleet speaks."""


class MalformedRequest(FlightRequestError):
    pass


class UnsupportedRequest(FlightRequestError):
    pass


def type_url(message: Message | type[Message]) -> str:
    return TYPE_URL_PREFIX + message.DESCRIPTOR.full_name


def pack(message: Message) -> bytes:
    """``message`` wrapped in a serialized ``Any``."""
    envelope = any_pb2.Any(type_url=type_url(message), value=message.SerializeToString())
    return envelope.SerializeToString()


def read_any(data: bytes, what: str = "Flight SQL command") -> tuple[str, bytes]:
    """``(full message name, payload)`` of a serialized ``Any``; MalformedRequest otherwise."""
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"malformed {what}: not a protobuf Any ({exc})") from None
    if not envelope.type_url:
        raise MalformedRequest(
            f"malformed {what}: expected a google.protobuf.Any with a type_url "
            f"such as {TYPE_URL_PREFIX}{sql.SQL_PACKAGE}.CommandStatementQuery"
        )
    # Any's type_url may carry any host; only the part after the last '/' names the type.
    return envelope.type_url.rsplit("/", 1)[-1], envelope.value


def unpack(
    data: bytes, expected: type[Message] | None = None, what: str = "Flight SQL command"
) -> Message:
    """The typed message inside a serialized ``Any``.

    With ``expected``, anything else is a MalformedRequest; without it, any message
    of the Flight SQL or Flight session protocol is accepted.
    """
    full_name, payload = read_any(data, what)
    cls = sql.CLASSES.get(full_name)
    if cls is None:
        raise _unknown(full_name, what)
    if expected is not None and cls is not expected:
        raise MalformedRequest(
            f"malformed {what}: expected {expected.DESCRIPTOR.name}, got {cls.DESCRIPTOR.name}"
        )
    return parse_message(cls, payload, what)


def parse_message(cls: type[Message], payload: bytes, what: str) -> Message:
    """``cls`` parsed from its serialized bytes (no Any around them)."""
    message = cls()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise MalformedRequest(
            f"malformed {what}: the {cls.DESCRIPTOR.name} payload does not parse ({exc})"
        ) from None
    return message


def parse_command(data: bytes, accept: Collection[str] = SUPPORTED_COMMANDS) -> Message:
    """The command of a ``FlightDescriptor``, if duckfleet implements it.

    A Flight SQL command outside ``accept`` raises UnsupportedRequest naming it; a
    type that is not a Flight SQL command, or bytes that are not an ``Any``, raise
    MalformedRequest.
    """
    full_name, payload = read_any(data)
    name = full_name.rsplit(".", 1)[-1]
    cls = sql.CLASSES.get(full_name)
    if cls is None:
        raise _unknown(full_name, "Flight SQL command")
    if name not in KNOWN_COMMANDS:
        raise MalformedRequest(f"{name} is not a Flight SQL command; it cannot be used here")
    if name not in accept:
        raise UnsupportedRequest(f"{name} is not implemented by duckfleet yet")
    return parse_message(cls, payload, "Flight SQL command")


def _unknown(full_name: str, what: str) -> FlightRequestError:
    if full_name.startswith(sql.SQL_PACKAGE + "."):
        # A Flight SQL message newer than this server: the request is fine, we lack it.
        return UnsupportedRequest(
            f"unknown Flight SQL message type {full_name}: not implemented by duckfleet"
        )
    return MalformedRequest(f"malformed {what}: unknown message type {full_name!r}")
