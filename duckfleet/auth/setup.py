"""What a process's configuration asks for: a token signer, a user directory, TLS.

Each returns None when its feature is off, and raises AuthConfigError, saying which
setting to fix, when it is on but cannot work.
"""

from __future__ import annotations

from duckfleet.auth.errors import AuthConfigError
from duckfleet.auth.tls import TlsFiles, tls_files
from duckfleet.auth.tokens import TokenSigner
from duckfleet.auth.users import UserDirectory
from duckfleet.config import CommonConfig, FrontDoorConfig

BASIC = "basic"
NONE = "none"
MODES = (BASIC, NONE)


def auth_enabled(cfg: CommonConfig) -> bool:
    mode = cfg.auth.strip().lower()
    if mode not in MODES:
        raise AuthConfigError(f"DUCKFLEET_AUTH must be one of {', '.join(MODES)}, not {cfg.auth!r}")
    return mode == BASIC


def token_signer(cfg: CommonConfig) -> TokenSigner | None:
    """The fleet's token signer, or None when auth is off."""
    if not auth_enabled(cfg):
        return None
    key = secret(cfg.token_key, cfg.token_key_file, "DUCKFLEET_TOKEN_KEY")
    if not key:
        raise AuthConfigError(
            "auth is on (DUCKFLEET_AUTH=basic) but there is no token key: set "
            "DUCKFLEET_TOKEN_KEY or DUCKFLEET_TOKEN_KEY_FILE to the same random secret on "
            "every front door and worker (or DUCKFLEET_AUTH=none for local use)"
        )
    return TokenSigner(key.encode(), cfg.token_ttl)


def user_directory(cfg: FrontDoorConfig) -> UserDirectory | None:
    """Who may log in at a front door, or None when auth is off."""
    if not auth_enabled(cfg):
        return None
    password = secret(cfg.admin_password, cfg.admin_password_file, "DUCKFLEET_ADMIN_PASSWORD")
    return UserDirectory(cfg.admin_user, password or None, cfg.users_file or None)


def tls(cfg: CommonConfig) -> TlsFiles | None:
    return tls_files(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_ca_file)


def secret(value: str, path: str, setting: str) -> str:
    """A secret given as `value`, else read from the file at `path` (its `_FILE`
    setting); "" when neither is set."""
    if value:
        return value
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise AuthConfigError(f"{setting}_FILE: cannot read {path}: {exc}") from None
