"""TLS material: the certificate and key files a front door or worker serves with,
the roots its own clients trust, and a self-signed pair for local use.

Servers read DUCKFLEET_TLS_CERT_FILE (PEM, the certificate chain) and
DUCKFLEET_TLS_KEY_FILE (PEM, its private key). Their own outgoing calls (a front door
fetching a partition from a worker, a worker fetching an input from another) trust
DUCKFLEET_TLS_CA_FILE, or the certificate file itself when that is unset, which is
right for a self-signed certificate shared by the fleet.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass

from duckfleet.auth.errors import AuthConfigError


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str
    key_file: str
    ca_file: str = ""

    def server_pair(self) -> tuple[bytes, bytes]:
        """``(certificate chain, private key)`` as pyarrow.flight's tls_certificates wants."""
        return _read(self.cert_file, "DUCKFLEET_TLS_CERT_FILE"), _read(
            self.key_file, "DUCKFLEET_TLS_KEY_FILE"
        )

    def root_certs(self) -> bytes:
        """The PEM roots this process's own clients trust."""
        if self.ca_file:
            return _read(self.ca_file, "DUCKFLEET_TLS_CA_FILE")
        return _read(self.cert_file, "DUCKFLEET_TLS_CERT_FILE")


def tls_files(cert_file: str, key_file: str, ca_file: str = "") -> TlsFiles | None:
    """The TLS files configured, None when TLS is off; both or neither must be set."""
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise AuthConfigError(
            "TLS needs both DUCKFLEET_TLS_CERT_FILE and DUCKFLEET_TLS_KEY_FILE; one is missing"
        )
    files = TlsFiles(cert_file, key_file, ca_file)
    files.server_pair()  # unreadable files stop the process at startup, saying which
    return files


def _read(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AuthConfigError(f"{setting}: cannot read {path}: {exc}") from None
    if b"-----BEGIN " not in data:
        raise AuthConfigError(f"{setting}: {path} is not a PEM file")
    return data


def make_self_signed(
    directory: str, hosts: tuple[str, ...] = (), days: int = 30, local_names: bool = True
) -> TlsFiles:
    """A self-signed certificate (also its own CA) and key under ``directory``.

    Valid for ``hosts`` and, with ``local_names``, localhost, 127.0.0.1, ::1 and this
    machine's host name.
    For local use: clients must trust ``cert.pem`` (it is no public CA's).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    local = ("localhost", "127.0.0.1", "::1", socket.gethostname()) if local_names else ()
    names = dict.fromkeys((*local, *hosts))
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "duckfleet local fleet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_file = os.path.join(directory, "cert.pem")
    key_file = os.path.join(directory, "key.pem")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return TlsFiles(cert_file, key_file)
