"""The Flight SQL metadata commands, answered by the front door from the catalog.

duckfleet presents one catalog, ``duckfleet``, holding two schemas: ``main``, whose
tables are the catalog's tables (type ``TABLE``) and views (type ``VIEW``) in etcd, and
``system``, whose tables (type ``SYSTEM TABLE``: ``queries``, ``tasks``, ``workers``)
show the fleet's state (duckfleet/system_catalog.py). Keys are not declared, so the
key commands answer empty tables of the right shape.

Every command here is answered the same way: GetFlightInfo returns ``result_schema``
and one endpoint whose ticket is the command itself (tickets.local_ticket); DoGet on
any front door turns that ticket into ``result_table``. Only GetTables (and the
schema and catalog commands, for their filters) read the catalog, and only in DoGet.

Result schemas are exactly those FlightSql.proto documents in each command's comment:
names, order, types, and nullability (nullable unless the comment says "not null").
Where Arrow C++ (``SqlSchema``), arrow-go (``schema_ref``) and arrow-java differ from
the proto, the proto wins: GetPrimaryKeys answers ``key_name`` before ``key_sequence``
(they put ``key_sequence`` first; since duckfleet declares no keys, the key commands'
tables are empty whichever way a client reads them).

Filter patterns follow the spec: ``%`` any run of characters, ``_`` any one, ``\\``
escapes either (SQL_SEARCH_STRING_ESCAPE). Identifiers match case-insensitively, as
DuckDB's do. An explicit catalog or schema other than ours (``""`` included: "those
without a catalog") matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pyarrow as pa
from google.protobuf.message import Message

from duckfleet.catalog import Catalog, Table, View
from duckfleet.flight import sql_info, xdbc
from duckfleet.flight.types import arrow_type
from duckfleet.system_catalog import SYSTEM_SCHEMA
from duckfleet.wire import sql_messages as sql

CATALOG_NAME = "duckfleet"
DB_SCHEMA_NAME = "main"
TABLE_TYPE = "TABLE"
VIEW_TYPE = "VIEW"
SYSTEM_TABLE_TYPE = "SYSTEM TABLE"
SCHEMA_NAMES = (DB_SCHEMA_NAME, SYSTEM_SCHEMA)
LIKE_ESCAPE = "\\"

_utf8 = pa.utf8()

CATALOGS = pa.schema([pa.field("catalog_name", _utf8, nullable=False)])
DB_SCHEMAS = pa.schema(
    [pa.field("catalog_name", _utf8), pa.field("db_schema_name", _utf8, nullable=False)]
)
TABLES = pa.schema(
    [
        pa.field("catalog_name", _utf8),
        pa.field("db_schema_name", _utf8),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("table_type", _utf8, nullable=False),
    ]
)
TABLES_WITH_SCHEMA = TABLES.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES = pa.schema([pa.field("table_type", _utf8, nullable=False)])
PRIMARY_KEYS = pa.schema(
    [
        pa.field("catalog_name", _utf8),
        pa.field("db_schema_name", _utf8),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("column_name", _utf8, nullable=False),
        pa.field("key_name", _utf8),
        pa.field("key_sequence", pa.int32(), nullable=False),
    ]
)
FOREIGN_KEYS = pa.schema(
    [
        pa.field("pk_catalog_name", _utf8),
        pa.field("pk_db_schema_name", _utf8),
        pa.field("pk_table_name", _utf8, nullable=False),
        pa.field("pk_column_name", _utf8, nullable=False),
        pa.field("fk_catalog_name", _utf8),
        pa.field("fk_db_schema_name", _utf8),
        pa.field("fk_table_name", _utf8, nullable=False),
        pa.field("fk_column_name", _utf8, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", _utf8),
        pa.field("pk_key_name", _utf8),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)

# Column metadata keys of the schemas in GetTables' table_schema (FlightSql.proto).
_MD = "ARROW:FLIGHT:SQL:"

_FIXED_SCHEMAS: dict[str, pa.Schema] = {
    "CommandGetSqlInfo": sql_info.SCHEMA,
    "CommandGetXdbcTypeInfo": xdbc.SCHEMA,
    "CommandGetCatalogs": CATALOGS,
    "CommandGetDbSchemas": DB_SCHEMAS,
    "CommandGetTableTypes": TABLE_TYPES,
    "CommandGetPrimaryKeys": PRIMARY_KEYS,
    "CommandGetImportedKeys": FOREIGN_KEYS,
    "CommandGetExportedKeys": FOREIGN_KEYS,
    "CommandGetCrossReference": FOREIGN_KEYS,
}

COMMANDS: frozenset[str] = frozenset({*_FIXED_SCHEMAS, "CommandGetTables"})
"""The commands this module answers."""


def result_schema(command: Message) -> pa.Schema:
    """The schema of ``command``'s result (GetFlightInfo, GetSchema)."""
    name = command.DESCRIPTOR.name
    if name == "CommandGetTables":
        return TABLES_WITH_SCHEMA if command.include_schema else TABLES  # type: ignore[attr-defined]
    return _FIXED_SCHEMAS[name]


def result_table(command: Message, catalog: Callable[[], Catalog]) -> pa.Table:
    """``command``'s result (DoGet). ``catalog`` is called only if the answer needs it."""
    if isinstance(command, sql.CommandGetSqlInfo):
        return sql_info.sql_info_table(command.info)  # type: ignore[attr-defined]
    if isinstance(command, sql.CommandGetXdbcTypeInfo):
        wanted = command.data_type if command.HasField("data_type") else None  # type: ignore[attr-defined]
        return xdbc.type_info_table(wanted)
    if isinstance(command, sql.CommandGetCatalogs):
        return _table(CATALOGS, [[CATALOG_NAME]])
    if isinstance(command, sql.CommandGetDbSchemas):
        return db_schemas_table(command)
    if isinstance(command, sql.CommandGetTables):
        return tables_table(command, catalog())
    if isinstance(command, sql.CommandGetTableTypes):
        return _table(TABLE_TYPES, [[SYSTEM_TABLE_TYPE], [TABLE_TYPE], [VIEW_TYPE]])
    return _table(result_schema(command), [])  # keys: none are declared


def db_schemas_table(command: Message) -> pa.Table:
    rows = []
    if _in_catalog(command, "catalog"):
        matches = like(_optional(command, "db_schema_filter_pattern"))
        rows = [[CATALOG_NAME, name] for name in SCHEMA_NAMES if matches(name)]
    return _table(DB_SCHEMAS, rows)


def tables_table(command: Message, catalog: Catalog) -> pa.Table:
    include_schema: bool = command.include_schema  # type: ignore[attr-defined]
    table_types = {t.upper() for t in command.table_types}  # type: ignore[attr-defined]
    schema_matches = like(_optional(command, "db_schema_filter_pattern"))
    if not _in_catalog(command, "catalog"):
        return _table(result_schema(command), [])
    name_matches = like(_optional(command, "table_name_filter_pattern"))
    main = DB_SCHEMA_NAME
    entries: list[tuple[str, str, Table | View, str]] = [
        (main, t.name, t, TABLE_TYPE) for t in catalog.tables.values()
    ]
    entries += [(main, v.name, v, VIEW_TYPE) for v in catalog.views.values()]
    entries += [(SYSTEM_SCHEMA, n, t, SYSTEM_TABLE_TYPE) for n, t in catalog.system.items()]
    rows = []
    for schema, name, table, kind in sorted(entries, key=lambda e: (e[0], e[1])):
        if not (schema_matches(schema) and name_matches(name)):
            continue
        if table_types and kind not in table_types:
            continue
        row: list[object] = [CATALOG_NAME, schema, name, kind]
        if include_schema:
            row.append(table_schema(table, schema, name).serialize().to_pybytes())
        rows.append(row)
    return _table(result_schema(command), rows)


def table_schema(
    table: Table | View, schema: str = DB_SCHEMA_NAME, name: str | None = None
) -> pa.Schema:
    """The Arrow schema of a catalog table (in ``schema``, named ``name``, by default
    the table's name), its columns described as the spec suggests."""
    where = (schema, name or table.name)
    return pa.schema([_column_field(where, column.name, column.type) for column in table.columns])


def _column_field(where: tuple[str, str], name: str, duckdb_type: str) -> pa.Field:
    type_ = arrow_type(duckdb_type)
    schema, table = where
    metadata = {
        "CATALOG_NAME": CATALOG_NAME,
        "SCHEMA_NAME": schema,  # what C++, Java and Go clients read
        "DB_SCHEMA_NAME": schema,  # what FlightSql.proto names it
        "TABLE_NAME": table,
        "TYPE_NAME": duckdb_type,
        "IS_AUTO_INCREMENT": "0",
        "IS_CASE_SENSITIVE": "1" if pa.types.is_string(type_) else "0",
        "IS_READ_ONLY": "1",
        "IS_SEARCHABLE": "1",
    }
    if pa.types.is_decimal(type_):
        metadata["PRECISION"] = str(type_.precision)
        metadata["SCALE"] = str(type_.scale)
    return pa.field(name, type_, nullable=True, metadata={_MD + k: v for k, v in metadata.items()})


def like(pattern: str | None) -> Callable[[str], bool]:
    """A matcher for a Flight SQL filter pattern; None matches everything."""
    if pattern is None:
        return lambda _name: True
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == LIKE_ESCAPE:
            parts.append(re.escape(next(chars, LIKE_ESCAPE)))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    regex = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
    return lambda name: regex.fullmatch(name) is not None


def _optional(command: Message, field: str) -> str | None:
    return getattr(command, field) if command.HasField(field) else None


def _in_catalog(command: Message, field: str) -> bool:
    wanted = _optional(command, field)
    return wanted is None or wanted.lower() == CATALOG_NAME


def _table(schema: pa.Schema, rows: Iterable[list[object]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) or [() for _ in schema]
    arrays = [pa.array(list(c), f.type) for c, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
