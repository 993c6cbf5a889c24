"""A minimal Flight SQL client on pyarrow.flight, for the CLI and the benchmarks.

Applications should use the ADBC Flight SQL driver (see README); this exists so
`duckfleet query` needs nothing beyond duckfleet's own dependencies, and so the
benchmarks can measure the bare protocol.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.wire.commands import pack
from duckfleet.wire.sql_messages import CommandStatementQuery


def statement_descriptor(sql: str) -> fl.FlightDescriptor:
    return fl.FlightDescriptor.for_command(pack(CommandStatementQuery(query=sql)))


def fetch_endpoint(
    endpoint: fl.FlightEndpoint,
    default: fl.FlightClient,
    options: fl.FlightCallOptions | None = None,
    tls_root_certs: bytes | None = None,
) -> pa.Table:
    """Read one endpoint from its first location that answers, else from `default`.

    ``options`` (the bearer token header) go with every call, to the workers too."""
    errors = []
    kwargs = {"tls_root_certs": tls_root_certs} if tls_root_certs else {}
    for location in endpoint.locations:
        try:
            with fl.connect(location, **kwargs) as client:
                return client.do_get(endpoint.ticket, options=options).read_all()
        except fl.FlightError as exc:
            errors.append(f"{location.uri.decode()}: {exc}")
    if endpoint.locations and errors and len(errors) == len(endpoint.locations):
        raise fl.FlightUnavailableError("; ".join(errors))
    return default.do_get(endpoint.ticket, options=options).read_all()


def login(client: fl.FlightClient, user: str, password: str) -> fl.FlightCallOptions:
    """Handshake with user and password; call options carrying the bearer token."""
    header = client.authenticate_basic_token(user, password)
    return fl.FlightCallOptions(headers=[header])


def execute(
    uri: str,
    sql: str,
    user: str | None = None,
    password: str = "",
    tls_root_certs: bytes | None = None,
) -> pa.Table:
    """Run ``sql`` at ``uri``; log in first when ``user`` is given; trust
    ``tls_root_certs`` (PEM) for grpc+tls."""
    kwargs = {"tls_root_certs": tls_root_certs} if tls_root_certs else {}
    with fl.connect(uri, **kwargs) as client:
        options = login(client, user, password) if user else None
        info = client.get_flight_info(statement_descriptor(sql), options=options)
        parts = [fetch_endpoint(ep, client, options, tls_root_certs) for ep in info.endpoints]
    if not parts:
        return info.schema.empty_table()
    return pa.concat_tables(parts)


def format_table(table: pa.Table, max_rows: int = 100) -> str:
    """A plain text grid, no pandas needed."""
    names = table.column_names
    rows = [
        ["NULL" if v is None else str(v) for v in r.values()]
        for r in table.slice(0, max_rows).to_pylist()
    ]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    more = table.num_rows - len(rows)
    out.append(
        f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
        + (f", {more} not shown)" if more else ")")
    )
    return "\n".join(out)
