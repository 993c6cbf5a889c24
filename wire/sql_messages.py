"""The Flight SQL protobuf messages, declared here and built at import time.

No generated code and no protoc: each message is a small table of
``(field, number, type, label)`` rows, turned into a ``FileDescriptorProto``, added to
a private ``DescriptorPool`` and made into message classes with
``message_factory.GetMessageClass``. The classes serialise exactly as the ones protoc
would generate, because only full names, field numbers and wire types reach the wire.

Sources (field numbers must match them; tests check known encodings):

- ``format/FlightSql.proto`` (package ``arrow.flight.protocol.sql``): every command,
  ticket and action message, so that any command a client sends can be recognised by
  name, including the ones duckfleet does not implement.
- ``format/Flight.proto`` (package ``arrow.flight.protocol``): only the session
  messages (``SetSessionOptions``, ``GetSessionOptions``, ``CloseSession``) and
  ``CancelFlightInfo``'s request and result. Flight's own
  actions carry these messages *raw* in ``Action.body`` and ``Result.body``, whereas
  Flight SQL actions and commands wrap theirs in ``google.protobuf.Any``.

Type column: a scalar (``string``, ``bytes``, ``bool``, ``int32``, ``int64``, ``uint32``,
``sfixed64``, ``double``), ``map<K, V>``, or the name of a message or enum, looked up
from the innermost declaring message outwards, then in the package.
Label column: ``""`` (proto3 implicit presence), ``OPTIONAL`` (proto3 ``optional``:
``HasField`` works), ``REPEATED``, or ``oneof("name")`` for a member of a real oneof.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

SQL_PACKAGE = "arrow.flight.protocol.sql"
FLIGHT_PACKAGE = "arrow.flight.protocol"

OPTIONAL = "optional"
REPEATED = "repeated"


def oneof(name: str) -> str:
    """Label of a field that belongs to the oneof ``name``."""
    return f"oneof {name}"


Field = tuple[str, int, str, str]


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[str, ...]  # numbered 0, 1, 2, ... in this order


@dataclass(frozen=True)
class Msg:
    name: str
    fields: tuple[Field, ...] = ()
    enums: tuple[Enum, ...] = ()
    nested: tuple[Msg, ...] = ()


def _msg(
    name: str, *fields: Field, enums: tuple[Enum, ...] = (), nested: tuple[Msg, ...] = ()
) -> Msg:
    return Msg(name, fields, enums, nested)


# --- FlightSql.proto -----------------------------------------------------------------

_CATALOG_TABLE: tuple[Field, ...] = (
    ("catalog", 1, "string", OPTIONAL),
    ("db_schema", 2, "string", OPTIONAL),
    ("table", 3, "string", ""),
)

SQL_MESSAGES: tuple[Msg, ...] = (
    # Metadata commands (FlightDescriptor.cmd of GetFlightInfo / GetSchema).
    _msg("CommandGetSqlInfo", ("info", 1, "uint32", REPEATED)),
    _msg("CommandGetXdbcTypeInfo", ("data_type", 1, "int32", OPTIONAL)),
    _msg("CommandGetCatalogs"),
    _msg(
        "CommandGetDbSchemas",
        ("catalog", 1, "string", OPTIONAL),
        ("db_schema_filter_pattern", 2, "string", OPTIONAL),
    ),
    _msg(
        "CommandGetTables",
        ("catalog", 1, "string", OPTIONAL),
        ("db_schema_filter_pattern", 2, "string", OPTIONAL),
        ("table_name_filter_pattern", 3, "string", OPTIONAL),
        ("table_types", 4, "string", REPEATED),
        ("include_schema", 5, "bool", ""),
    ),
    _msg("CommandGetTableTypes"),
    _msg("CommandGetPrimaryKeys", *_CATALOG_TABLE),
    _msg("CommandGetExportedKeys", *_CATALOG_TABLE),
    _msg("CommandGetImportedKeys", *_CATALOG_TABLE),
    _msg(
        "CommandGetCrossReference",
        ("pk_catalog", 1, "string", OPTIONAL),
        ("pk_db_schema", 2, "string", OPTIONAL),
        ("pk_table", 3, "string", ""),
        ("fk_catalog", 4, "string", OPTIONAL),
        ("fk_db_schema", 5, "string", OPTIONAL),
        ("fk_table", 6, "string", ""),
    ),
    # Prepared statements and transactions (DoAction bodies and results, in Any).
    _msg(
        "ActionCreatePreparedStatementRequest",
        ("query", 1, "string", ""),
        ("transaction_id", 2, "bytes", OPTIONAL),
    ),
    _msg("SubstraitPlan", ("plan", 1, "bytes", ""), ("version", 2, "string", "")),
    _msg(
        "ActionCreatePreparedSubstraitPlanRequest",
        ("plan", 1, "SubstraitPlan", ""),
        ("transaction_id", 2, "bytes", OPTIONAL),
    ),
    _msg(
        "ActionCreatePreparedStatementResult",
        ("prepared_statement_handle", 1, "bytes", ""),
        ("dataset_schema", 2, "bytes", ""),
        ("parameter_schema", 3, "bytes", ""),
    ),
    _msg("ActionClosePreparedStatementRequest", ("prepared_statement_handle", 1, "bytes", "")),
    _msg("ActionBeginTransactionRequest"),
    _msg(
        "ActionBeginSavepointRequest", ("transaction_id", 1, "bytes", ""), ("name", 2, "string", "")
    ),
    _msg("ActionBeginTransactionResult", ("transaction_id", 1, "bytes", "")),
    _msg("ActionBeginSavepointResult", ("savepoint_id", 1, "bytes", "")),
    _msg(
        "ActionEndTransactionRequest",
        ("transaction_id", 1, "bytes", ""),
        ("action", 2, "EndTransaction", ""),
        enums=(
            Enum(
                "EndTransaction",
                (
                    "END_TRANSACTION_UNSPECIFIED",
                    "END_TRANSACTION_COMMIT",
                    "END_TRANSACTION_ROLLBACK",
                ),
            ),
        ),
    ),
    _msg(
        "ActionEndSavepointRequest",
        ("savepoint_id", 1, "bytes", ""),
        ("action", 2, "EndSavepoint", ""),
        enums=(
            Enum(
                "EndSavepoint",
                ("END_SAVEPOINT_UNSPECIFIED", "END_SAVEPOINT_RELEASE", "END_SAVEPOINT_ROLLBACK"),
            ),
        ),
    ),
    # Query execution.
    _msg(
        "CommandStatementQuery",
        ("query", 1, "string", ""),
        ("transaction_id", 2, "bytes", OPTIONAL),
    ),
    _msg(
        "CommandStatementSubstraitPlan",
        ("plan", 1, "SubstraitPlan", ""),
        ("transaction_id", 2, "bytes", OPTIONAL),
    ),
    _msg("TicketStatementQuery", ("statement_handle", 1, "bytes", "")),
    _msg("CommandPreparedStatementQuery", ("prepared_statement_handle", 1, "bytes", "")),
    _msg(
        "CommandStatementUpdate",
        ("query", 1, "string", ""),
        ("transaction_id", 2, "bytes", OPTIONAL),
    ),
    _msg("CommandPreparedStatementUpdate", ("prepared_statement_handle", 1, "bytes", "")),
    _msg(
        "CommandStatementIngest",
        ("table_definition_options", 1, "TableDefinitionOptions", ""),
        ("table", 2, "string", ""),
        ("schema", 3, "string", OPTIONAL),
        ("catalog", 4, "string", OPTIONAL),
        ("temporary", 5, "bool", ""),
        ("transaction_id", 6, "bytes", OPTIONAL),
        ("options", 1000, "map<string, string>", ""),
        nested=(
            _msg(
                "TableDefinitionOptions",
                ("if_not_exist", 1, "TableNotExistOption", ""),
                ("if_exists", 2, "TableExistsOption", ""),
                enums=(
                    Enum(
                        "TableNotExistOption",
                        (
                            "TABLE_NOT_EXIST_OPTION_UNSPECIFIED",
                            "TABLE_NOT_EXIST_OPTION_CREATE",
                            "TABLE_NOT_EXIST_OPTION_FAIL",
                        ),
                    ),
                    Enum(
                        "TableExistsOption",
                        (
                            "TABLE_EXISTS_OPTION_UNSPECIFIED",
                            "TABLE_EXISTS_OPTION_FAIL",
                            "TABLE_EXISTS_OPTION_APPEND",
                            "TABLE_EXISTS_OPTION_REPLACE",
                        ),
                    ),
                ),
            ),
        ),
    ),
    _msg("DoPutUpdateResult", ("record_count", 1, "int64", "")),
    _msg("DoPutPreparedStatementResult", ("prepared_statement_handle", 1, "bytes", OPTIONAL)),
    _msg("ActionCancelQueryRequest", ("info", 1, "bytes", "")),
    _msg(
        "ActionCancelQueryResult",
        ("result", 1, "CancelResult", ""),
        enums=(
            Enum(
                "CancelResult",
                (
                    "CANCEL_RESULT_UNSPECIFIED",
                    "CANCEL_RESULT_CANCELLED",
                    "CANCEL_RESULT_CANCELLING",
                    "CANCEL_RESULT_NOT_CANCELLABLE",
                ),
            ),
        ),
    ),
)

# --- Flight.proto: session and CancelFlightInfo messages only ------------------------------

FLIGHT_MESSAGES: tuple[Msg, ...] = (
    _msg(
        "SessionOptionValue",
        ("string_value", 1, "string", oneof("option_value")),
        ("bool_value", 2, "bool", oneof("option_value")),
        ("int64_value", 3, "sfixed64", oneof("option_value")),
        ("double_value", 4, "double", oneof("option_value")),
        ("string_list_value", 5, "StringListValue", oneof("option_value")),
        nested=(_msg("StringListValue", ("values", 1, "string", REPEATED)),),
    ),
    _msg("SetSessionOptionsRequest", ("session_options", 1, "map<string, SessionOptionValue>", "")),
    _msg(
        "SetSessionOptionsResult",
        ("errors", 1, "map<string, Error>", ""),
        enums=(Enum("ErrorValue", ("UNSPECIFIED", "INVALID_NAME", "INVALID_VALUE", "ERROR")),),
        nested=(_msg("Error", ("value", 1, "ErrorValue", "")),),
    ),
    _msg("GetSessionOptionsRequest"),
    _msg("GetSessionOptionsResult", ("session_options", 1, "map<string, SessionOptionValue>", "")),
    _msg("CloseSessionRequest"),
    _msg(
        "CloseSessionResult",
        ("status", 1, "Status", ""),
        enums=(Enum("Status", ("UNSPECIFIED", "CLOSED", "CLOSING", "NOT_CLOSEABLE")),),
    ),
    # `info` is a FlightInfo message in Flight.proto; declared as bytes (the same wire
    # format) and read with pyarrow's FlightInfo.deserialize.
    _msg("CancelFlightInfoRequest", ("info", 1, "bytes", "")),
    # CancelStatus is a top-level enum in Flight.proto; nested here, same wire format.
    _msg(
        "CancelFlightInfoResult",
        ("status", 1, "CancelStatus", ""),
        enums=(
            Enum(
                "CancelStatus",
                (
                    "CANCEL_STATUS_UNSPECIFIED",
                    "CANCEL_STATUS_CANCELLED",
                    "CANCEL_STATUS_CANCELLING",
                    "CANCEL_STATUS_NOT_CANCELLABLE",
                ),
            ),
        ),
    ),
)


# --- building descriptors --------------------------------------------------------------

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[str, int] = {
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
    "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32,
    "int64": _FDP.TYPE_INT64,
    "uint32": _FDP.TYPE_UINT32,
    "sfixed64": _FDP.TYPE_SFIXED64,
    "double": _FDP.TYPE_DOUBLE,
}


class _Scope:
    """Names visible from one message: its own nested types, then its parents'."""

    def __init__(self, full_name: str, spec: Msg, parent: _Scope | None) -> None:
        self.full_name = full_name
        self.parent = parent
        self.enums = {e.name for e in spec.enums}
        self.messages = {m.name for m in spec.nested}

    def resolve(self, type_name: str, top_messages: set[str], package: str) -> tuple[int, str]:
        scope: _Scope | None = self
        while scope is not None:
            if type_name in scope.enums:
                return _FDP.TYPE_ENUM, f".{scope.full_name}.{type_name}"
            if type_name in scope.messages:
                return _FDP.TYPE_MESSAGE, f".{scope.full_name}.{type_name}"
            scope = scope.parent
        if type_name in top_messages:
            return _FDP.TYPE_MESSAGE, f".{package}.{type_name}"
        raise ValueError(f"{self.full_name}: unknown field type {type_name!r}")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _set_type(field: _FDP, type_name: str, scope: _Scope, top: set[str], package: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]  # type: ignore[assignment]
    else:
        kind, full = scope.resolve(type_name, top, package)
        field.type = kind  # type: ignore[assignment]
        field.type_name = full


def _build_message(
    spec: Msg,
    out: descriptor_pb2.DescriptorProto,
    full_name: str,
    parent: _Scope | None,
    top: set[str],
    package: str,
) -> None:
    out.name = spec.name
    scope = _Scope(full_name, spec, parent)
    for enum in spec.enums:
        enum_out = out.enum_type.add(name=enum.name)
        for number, value in enumerate(enum.values):
            enum_out.value.add(name=value, number=number)
    for nested in spec.nested:
        _build_message(
            nested, out.nested_type.add(), f"{full_name}.{nested.name}", scope, top, package
        )

    real_oneofs: list[str] = []
    synthetic: list[tuple[_FDP, str]] = []  # proto3 `optional`: one synthetic oneof each
    for name, number, type_name, label in spec.fields:
        field = out.field.add(
            name=name, number=number, json_name=_camel(name)[:1].lower() + _camel(name)[1:]
        )
        field.label = _FDP.LABEL_OPTIONAL  # type: ignore[assignment]
        if type_name.startswith("map<"):
            key, value = (t.strip() for t in type_name[4:-1].split(","))
            entry = out.nested_type.add(name=f"{_camel(name)}Entry")
            entry.options.map_entry = True
            key_field = entry.field.add(
                name="key", number=1, json_name="key", label=_FDP.LABEL_OPTIONAL
            )
            _set_type(key_field, key, scope, top, package)
            value_field = entry.field.add(
                name="value", number=2, json_name="value", label=_FDP.LABEL_OPTIONAL
            )
            _set_type(value_field, value, scope, top, package)
            field.label = _FDP.LABEL_REPEATED  # type: ignore[assignment]
            field.type = _FDP.TYPE_MESSAGE  # type: ignore[assignment]
            field.type_name = f".{full_name}.{entry.name}"
            continue
        _set_type(field, type_name, scope, top, package)
        if label == REPEATED:
            field.label = _FDP.LABEL_REPEATED  # type: ignore[assignment]
        elif label == OPTIONAL:
            synthetic.append((field, f"_{name}"))
        elif label.startswith("oneof "):
            group = label.removeprefix("oneof ")
            if group not in real_oneofs:
                real_oneofs.append(group)
            field.oneof_index = real_oneofs.index(group)
        elif label:
            raise ValueError(f"{full_name}.{name}: unknown label {label!r}")
    for group in real_oneofs:
        out.oneof_decl.add(name=group)
    for field, group in synthetic:  # synthetic oneofs must follow the real ones
        field.proto3_optional = True
        field.oneof_index = len(out.oneof_decl)
        out.oneof_decl.add(name=group)


def _build_file(
    file_name: str, package: str, specs: tuple[Msg, ...]
) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    top = {spec.name for spec in specs}
    for spec in specs:
        _build_message(spec, fdp.message_type.add(), f"{package}.{spec.name}", None, top, package)
    return fdp


POOL = descriptor_pool.DescriptorPool()
POOL.Add(_build_file("duckfleet/flight/FlightSql.proto", SQL_PACKAGE, SQL_MESSAGES))
POOL.Add(_build_file("duckfleet/flight/FlightSession.proto", FLIGHT_PACKAGE, FLIGHT_MESSAGES))

CLASSES: dict[str, type[Message]] = {
    f"{package}.{spec.name}": message_factory.GetMessageClass(
        POOL.FindMessageTypeByName(f"{package}.{spec.name}")
    )
    for package, specs in ((SQL_PACKAGE, SQL_MESSAGES), (FLIGHT_PACKAGE, FLIGHT_MESSAGES))
    for spec in specs
}
"""Every top-level message class, by full protobuf name."""


def _sql(name: str) -> type[Message]:
    return CLASSES[f"{SQL_PACKAGE}.{name}"]


def _flight(name: str) -> type[Message]:
    return CLASSES[f"{FLIGHT_PACKAGE}.{name}"]


CommandGetSqlInfo = _sql("CommandGetSqlInfo")
CommandGetXdbcTypeInfo = _sql("CommandGetXdbcTypeInfo")
CommandGetCatalogs = _sql("CommandGetCatalogs")
CommandGetDbSchemas = _sql("CommandGetDbSchemas")
CommandGetTables = _sql("CommandGetTables")
CommandGetTableTypes = _sql("CommandGetTableTypes")
CommandGetPrimaryKeys = _sql("CommandGetPrimaryKeys")
CommandGetExportedKeys = _sql("CommandGetExportedKeys")
CommandGetImportedKeys = _sql("CommandGetImportedKeys")
CommandGetCrossReference = _sql("CommandGetCrossReference")
ActionCreatePreparedStatementRequest = _sql("ActionCreatePreparedStatementRequest")
SubstraitPlan = _sql("SubstraitPlan")
ActionCreatePreparedSubstraitPlanRequest = _sql("ActionCreatePreparedSubstraitPlanRequest")
ActionCreatePreparedStatementResult = _sql("ActionCreatePreparedStatementResult")
ActionClosePreparedStatementRequest = _sql("ActionClosePreparedStatementRequest")
ActionBeginTransactionRequest = _sql("ActionBeginTransactionRequest")
ActionBeginSavepointRequest = _sql("ActionBeginSavepointRequest")
ActionBeginTransactionResult = _sql("ActionBeginTransactionResult")
ActionBeginSavepointResult = _sql("ActionBeginSavepointResult")
ActionEndTransactionRequest = _sql("ActionEndTransactionRequest")
ActionEndSavepointRequest = _sql("ActionEndSavepointRequest")
CommandStatementQuery = _sql("CommandStatementQuery")
CommandStatementSubstraitPlan = _sql("CommandStatementSubstraitPlan")
TicketStatementQuery = _sql("TicketStatementQuery")
CommandPreparedStatementQuery = _sql("CommandPreparedStatementQuery")
CommandStatementUpdate = _sql("CommandStatementUpdate")
CommandPreparedStatementUpdate = _sql("CommandPreparedStatementUpdate")
CommandStatementIngest = _sql("CommandStatementIngest")
DoPutUpdateResult = _sql("DoPutUpdateResult")
DoPutPreparedStatementResult = _sql("DoPutPreparedStatementResult")
ActionCancelQueryRequest = _sql("ActionCancelQueryRequest")
ActionCancelQueryResult = _sql("ActionCancelQueryResult")

SessionOptionValue = _flight("SessionOptionValue")
SetSessionOptionsRequest = _flight("SetSessionOptionsRequest")
SetSessionOptionsResult = _flight("SetSessionOptionsResult")
GetSessionOptionsRequest = _flight("GetSessionOptionsRequest")
GetSessionOptionsResult = _flight("GetSessionOptionsResult")
CloseSessionRequest = _flight("CloseSessionRequest")
CloseSessionResult = _flight("CloseSessionResult")
CancelFlightInfoRequest = _flight("CancelFlightInfoRequest")
CancelFlightInfoResult = _flight("CancelFlightInfoResult")


def short_name(message: Message | type[Message]) -> str:
    """``CommandStatementQuery`` for an instance or class of that message."""
    return message.DESCRIPTOR.name
