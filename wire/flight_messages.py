"""The Flight protocol's own protobuf messages that pyarrow offers no Python class for,
declared the way wire/sql_messages.py declares Flight SQL's (no protoc, no generated
code), for the grpcio front door (flight/grpc_service.py).

Field numbers are those of ``format/Flight.proto`` (package ``arrow.flight.protocol``).
A field whose type is a Flight message pyarrow already reads and writes
(``FlightInfo``, ``FlightDescriptor``) is declared as ``bytes``: the same wire format,
filled with pyarrow's ``serialize()`` and read with its ``deserialize()``.

    HandshakeRequest / HandshakeResponse   protocol_version = 1, payload = 2
    ActionType                             type = 1, description = 2
    FlightData                             flight_descriptor = 1, data_header = 2,
                                           app_metadata = 3, data_body = 1000
    PutResult                              app_metadata = 1
    PollInfo                               info = 1, flight_descriptor = 2,
                                           progress = 3 (optional double);
                                           expiration_time (4) is never sent
"""

from __future__ import annotations

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from duckfleet.wire.sql_messages import FLIGHT_PACKAGE, OPTIONAL, Msg, _build_file

_HANDSHAKE = (("protocol_version", 1, "int64", ""), ("payload", 2, "bytes", ""))

MESSAGES: tuple[Msg, ...] = (
    Msg("HandshakeRequest", _HANDSHAKE),
    Msg("HandshakeResponse", _HANDSHAKE),
    Msg("ActionType", (("type", 1, "string", ""), ("description", 2, "string", ""))),
    Msg(
        "FlightData",
        (
            ("flight_descriptor", 1, "bytes", ""),
            ("data_header", 2, "bytes", ""),
            ("app_metadata", 3, "bytes", ""),
            ("data_body", 1000, "bytes", ""),
        ),
    ),
    Msg("PutResult", (("app_metadata", 1, "bytes", ""),)),
    Msg(
        "PollInfo",
        (
            ("info", 1, "bytes", ""),
            ("flight_descriptor", 2, "bytes", ""),
            ("progress", 3, "double", OPTIONAL),
        ),
    ),
)

_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file("duckfleet/flight/FlightService.proto", FLIGHT_PACKAGE, MESSAGES))


def _message(name: str) -> type[Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{FLIGHT_PACKAGE}.{name}"))


HandshakeRequest = _message("HandshakeRequest")
HandshakeResponse = _message("HandshakeResponse")
ActionType = _message("ActionType")
FlightData = _message("FlightData")
PutResult = _message("PutResult")
PollInfo = _message("PollInfo")
