"""The pure parts of auth: tokens, password hashes, the users file, the directory."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from duckfleet.auth import ADMIN, USER, AuthConfigError, TokenSigner, Unauthenticated
from duckfleet.auth.passwords import hash_password, verify_password
from duckfleet.auth.users import UserDirectory, add_user, read_users_file, remove_user

KEY = b"0123456789abcdef0123456789abcdef"


def test_a_token_carries_user_role_and_expiry():
    now = [1_000_000.0]
    signer = TokenSigner(KEY, 60, clock=lambda: now[0])
    identity = signer.verify(signer.issue("ana", USER))
    assert (identity.user, identity.role, identity.expires) == ("ana", USER, 1_000_060)
    assert not identity.is_admin
    now[0] += 59
    assert signer.verify(signer.issue("bo", ADMIN)).is_admin
    token = signer.issue("ana", USER)
    now[0] += 61
    with pytest.raises(Unauthenticated, match="expired"):
        signer.verify(token)


def test_altered_or_foreign_tokens_are_refused():
    signer = TokenSigner(KEY, 60)
    token = signer.issue("ana", USER)
    version, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["r"] = ADMIN
    raised = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in [
        f"{version}.{raised}.{mac}",
        f"v2.{payload}.{mac}",
        token[:-1],
        TokenSigner(b"x" * 32, 60).issue("ana", USER),
        "",
        "a.b",
        "v1." + "x" * 5000 + ".y",
    ]:
        with pytest.raises(Unauthenticated):
            signer.verify(bad)


def test_a_short_key_stops_the_process():
    with pytest.raises(AuthConfigError, match="at least 16"):
        TokenSigner(b"short", 60)


def test_password_hashes_are_salted_and_checked():
    one, two = hash_password("s3cret"), hash_password("s3cret")
    assert one != two and one.startswith("scrypt$")
    assert verify_password("s3cret", one) and verify_password("s3cret", two)
    assert not verify_password("s3cret ", one)
    for malformed in ["", "scrypt$1$2$3", "md5$x", one.replace("scrypt$16384", "scrypt$99999999")]:
        assert not verify_password("s3cret", malformed)


def test_users_file_add_replace_remove(tmp_path: Path):
    path = str(tmp_path / "users")
    assert add_user(path, "ana", USER, "pw1")
    assert add_user(path, "bo", ADMIN, "pw2")
    assert not add_user(path, "ana", ADMIN, "pw3")  # replaced: new role and password
    assert os.stat(path).st_mode & 0o777 == 0o600
    text = Path(path).read_text()
    assert "pw1" not in text and "pw3" not in text
    users = read_users_file(path)
    assert {u.name: u.role for u in users.values()} == {"ana": ADMIN, "bo": ADMIN}
    directory = UserDirectory(users_file=path)
    assert directory.authenticate("ana", "pw3") == ADMIN
    with pytest.raises(Unauthenticated, match="wrong user name or password"):
        directory.authenticate("ana", "pw1")
    assert remove_user(path, "ana") and not remove_user(path, "ana")
    with pytest.raises(Unauthenticated):
        directory.authenticate("ana", "pw3")  # the file is read again when it changes
    for bad_name in ["", "a:b", "x" * 65, "a b"]:
        with pytest.raises(AuthConfigError):
            add_user(path, bad_name, USER, "pw")


def test_a_broken_users_file_stops_the_process(tmp_path: Path):
    path = tmp_path / "users"
    path.write_text("ana:user:plaintext-password\n")
    with pytest.raises(AuthConfigError, match=r"line 1.*not a scrypt hash"):
        UserDirectory(users_file=str(path))
    path.write_text(f"ana:root:{hash_password('x')}\n")
    with pytest.raises(AuthConfigError, match="unknown role 'root'"):
        UserDirectory(users_file=str(path))


def test_the_admin_from_the_environment_and_nobody_else():
    directory = UserDirectory("boss", "pw")
    assert directory.authenticate("boss", "pw") == ADMIN
    for user, password in [("boss", "PW"), ("admin", "pw"), ("", "")]:
        with pytest.raises(Unauthenticated):
            directory.authenticate(user, password)
    with pytest.raises(AuthConfigError, match="nobody can log in"):
        UserDirectory("boss", None, None)
