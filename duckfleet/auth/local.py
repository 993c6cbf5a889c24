"""Auth and TLS of a whole local fleet: what `duckfleet up` and the tests start with.

A LocalFleet hands ``FleetSecurity.env()`` to every child process, so its front
doors and workers share one token key (and one certificate, with TLS on).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from duckfleet.auth.setup import BASIC, NONE, secret
from duckfleet.auth.tls import TlsFiles, make_self_signed


@dataclass(frozen=True)
class FleetSecurity:
    auth: bool = False
    token_key: str = ""
    admin_user: str = "admin"
    admin_password: str = ""
    users_file: str = ""
    tls: TlsFiles | None = None
    generated_password: bool = False  # say so when printing it

    @staticmethod
    def basic(
        admin_password: str | None = None,
        admin_user: str = "admin",
        users_file: str = "",
        tls: TlsFiles | None = None,
        token_key: str | None = None,
    ) -> FleetSecurity:
        """Auth on, with a fresh token key and admin password unless given."""
        return FleetSecurity(
            auth=True,
            token_key=token_key or secrets.token_urlsafe(32),
            admin_user=admin_user,
            admin_password=admin_password or secrets.token_urlsafe(12),
            users_file=users_file,
            tls=tls,
            generated_password=not admin_password,
        )

    @staticmethod
    def from_environment(
        no_auth: bool, want_tls: bool, environ: Mapping[str, str] = os.environ
    ) -> FleetSecurity:
        """`duckfleet up`: auth unless --no-auth or DUCKFLEET_AUTH=none; the token key,
        admin and users file from DUCKFLEET_* when set, generated otherwise; TLS from
        DUCKFLEET_TLS_CERT_FILE/KEY_FILE, or a self-signed pair with --tls."""
        tls = None
        cert, key = (
            environ.get("DUCKFLEET_TLS_CERT_FILE", ""),
            environ.get("DUCKFLEET_TLS_KEY_FILE", ""),
        )
        if cert and key:
            tls = TlsFiles(cert, key, environ.get("DUCKFLEET_TLS_CA_FILE", ""))
        elif want_tls:
            tls = make_self_signed(tempfile.mkdtemp(prefix="duckfleet-tls-"))
        if no_auth or environ.get("DUCKFLEET_AUTH", BASIC).strip().lower() == NONE:
            return FleetSecurity(auth=False, tls=tls)
        return FleetSecurity.basic(
            admin_password=_secret(environ, "DUCKFLEET_ADMIN_PASSWORD"),
            admin_user=environ.get("DUCKFLEET_ADMIN_USER", "admin"),
            users_file=environ.get("DUCKFLEET_USERS_FILE", ""),
            tls=tls,
            token_key=_secret(environ, "DUCKFLEET_TOKEN_KEY"),
        )

    @property
    def scheme(self) -> str:
        return "grpc+tls" if self.tls is not None else "grpc"

    def env(self) -> dict[str, str]:
        """DUCKFLEET_* for the fleet's processes; overrides whatever the caller has."""
        env = {
            "DUCKFLEET_AUTH": BASIC if self.auth else NONE,
            "DUCKFLEET_TLS_CERT_FILE": self.tls.cert_file if self.tls else "",
            "DUCKFLEET_TLS_KEY_FILE": self.tls.key_file if self.tls else "",
            "DUCKFLEET_TLS_CA_FILE": self.tls.ca_file if self.tls else "",
        }
        if self.auth:
            env.update(
                {
                    "DUCKFLEET_TOKEN_KEY": self.token_key,
                    "DUCKFLEET_TOKEN_KEY_FILE": "",
                    "DUCKFLEET_ADMIN_USER": self.admin_user,
                    "DUCKFLEET_ADMIN_PASSWORD": self.admin_password,
                    "DUCKFLEET_ADMIN_PASSWORD_FILE": "",
                    "DUCKFLEET_USERS_FILE": self.users_file,
                }
            )
        return env

    def describe(self) -> list[str]:
        """Lines `duckfleet up` prints: which mode it runs and how to connect."""
        if not self.auth:
            lines = ["auth: none (local use only: anyone who reaches the port is admin)"]
        else:
            how = (
                "generated; set DUCKFLEET_ADMIN_PASSWORD to choose it"
                if (self.generated_password)
                else "from DUCKFLEET_ADMIN_PASSWORD"
            )
            lines = [
                f"auth: basic; admin user {self.admin_user!r}, password "
                f"{self.admin_password} ({how})"
            ]
            if self.users_file:
                lines.append(f"auth: users file {self.users_file}")
        if self.tls is None:
            lines.append("tls: off (plaintext; `duckfleet up --tls` for a self-signed pair)")
        else:
            lines.append(
                f"tls: on, certificate {self.tls.cert_file}; clients must trust it "
                "(ADBC option adbc.flight.sql.client_option.tls_root_certs = its PEM text; "
                f"JDBC: useEncryption=true&tlsRootCerts={self.tls.cert_file})"
            )
        return lines


def _secret(environ: Mapping[str, str], name: str) -> str:
    return secret(environ.get(name, ""), environ.get(f"{name}_FILE", ""), name)
