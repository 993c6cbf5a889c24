"""The compose deployment read as data, and its services run as local processes.

There is no Docker engine here, so tests/test_compose.py proves compose/ this way:

* `read_dotenv`, `interpolate`, `load_compose`: the files as `docker compose` reads
  them (variables from the shell first, then from the .env file, then the defaults
  written in the file).
* `dockerfile_instructions`, `image_env`: the Dockerfile's instructions, and the
  environment its ENV lines give every container.
* `map_to_loopback`: every service replica as a local process with its EXACT
  command and environment, where the only changes are the ones a container's own
  network namespace and file system make necessary here: host names and container
  ports become 127.0.0.1 and free ports, container paths (volumes, secrets, the
  image's venv) become local directories, and executables resolve locally.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from duckfleet.etcd_server import etcd_binary
from duckfleet.netutil import free_port


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def listening_port(taken: set[int]) -> int:
    """A free port below the ephemeral range, so that no outgoing connection (the etcd
    members dialling each other, say) takes it as its source port between now and the
    moment the process binds it; never one already in `taken`."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, low) if low > 11000 else free_port()
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENVOY_FILE = COMPOSE_DIR / "envoy.yaml"
IMAGE_VENV = "/opt/duckfleet/venv"  # where the Dockerfile installs duckfleet

# ---------------------------------------------------------------- reading the files


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' starts a comment line; values may be quoted or empty."""
    env: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"{path}:{n}: not KEY=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def variables_in(text: str) -> list[tuple[str, str | None]]:
    """(name, operator) of every ${...} or $NAME reference in text."""
    out: list[tuple[str, str | None]] = []
    for m in _VARIABLE.finditer(text):
        if m["braced"]:
            out.append((m["braced"], m["op"]))
        elif m["bare"]:
            out.append((m["bare"], None))
    return out


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose Specification interpolation: $$, $VAR, ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?error}, ${VAR?error}; in every string of a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = name in env
        set_and_nonempty = present and env[name] != ""
        if op == ":-":
            return env[name] if set_and_nonempty else arg
        if op == "-":
            return env[name] if present else arg
        if (op == ":?" and not set_and_nonempty) or (op == "?" and not present):
            raise KeyError(f"required variable {name} is missing: {arg}")
        return env.get(name, "")

    return _VARIABLE.sub(one, value)


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as `docker compose` reads it: YAML (anchors and merge keys
    resolved), then variables substituted from env, or from .env.example if None."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return interpolate(raw, read_dotenv(ENV_EXAMPLE) if env is None else env)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """What the ENV lines give every container (KEY=VALUE pairs, $VAR expanded from
    earlier ENV lines; $PATH is left for the local mapping)."""
    env: dict[str, str] = {}
    for word, args in instructions:
        if word != "ENV":
            continue
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = re.sub(r"\$(\w+)", lambda m: env.get(m[1], m[0]), value)
    return env


def healthcheck_command(instructions: list[tuple[str, str]]) -> str:
    """The shell command of the Dockerfile's HEALTHCHECK (`CMD` shell form)."""
    (args,) = [a for w, a in instructions if w == "HEALTHCHECK"]
    _, cmd = re.split(r"(?:^|\s)CMD\s+", args, maxsplit=1)
    return cmd


# ------------------------------------------------------------ the services, locally


def exposed_ports(service: dict[str, Any]) -> set[int]:
    """The ports a service's containers listen on: `expose` and `ports` targets."""
    ports = {int(p) for p in service.get("expose", [])}
    for p in service.get("ports", []):
        ports.add(int(str(p).rsplit(":", 1)[1]))
    return ports


def published_ports(compose: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Host port -> (service, container port) of every `ports` entry."""
    out: dict[int, tuple[str, int]] = {}
    for name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            host, _, target = str(p).rpartition(":")
            out[int(host.rsplit(":", 1)[-1])] = (name, int(target))
    return out


def replica_count(service: dict[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of a service's volumes (short syntax) and secrets."""
    out = []
    for v in service.get("volumes", []):
        source, target = str(v).split(":")[:2]
        out.append((source, target))
    for s in service.get("secrets", []):
        name = s if isinstance(s, str) else s["source"]
        out.append((f"secret:{name}", f"/run/secrets/{name}"))
    return out


@dataclass
class LocalReplica:
    """One container of one service, as a local process: argv, env, health check."""

    service: str
    index: int
    argv: list[str]
    env: dict[str, str]
    health: list[str] | None  # a command that exits 0 when the container is healthy

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"


@dataclass
class LoopbackMap:
    """Container addresses and paths -> this machine's."""

    compose: dict[str, Any]
    counts: dict[str, int]  # replicas per service
    paths: dict[str, Path]  # volume name or "secret:<name>" -> local path
    ports: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def port(self, service: str, index: int, container_port: int) -> int:
        key = (service, index, container_port)
        if key not in self.ports:
            if container_port not in exposed_ports(self.compose["services"][service]):
                raise KeyError(f"{service} does not expose port {container_port}")
            self.ports[key] = listening_port(set(self.ports.values()))
        return self.ports[key]

    def address(self, own: str, index: int, host: str, port: int) -> str | None:
        """127.0.0.1:<local port> for host:port as seen from inside `own`, or None
        when it names no service here."""
        services = self.compose["services"]
        if host in ("0.0.0.0", "127.0.0.1", "localhost"):
            if port in exposed_ports(services[own]):
                return f"127.0.0.1:{self.port(own, index, port)}"
            return None
        if host in services and port in exposed_ports(services[host]):
            if self.counts.get(host, 1) != 1:
                raise ValueError(f"{own} names scaled service {host}: no single address")
            return f"127.0.0.1:{self.port(host, 0, port)}"
        return None

    def path_map(self, service: dict[str, Any]) -> list[tuple[str, str]]:
        pairs = [(IMAGE_VENV, sys.prefix)]
        pairs += [(target, str(self.paths[source])) for source, target in mounts(service)]
        return sorted(pairs, key=lambda p: -len(p[0]))

    def rewrite(self, own: str, index: int, value: str) -> str:
        """One string of a service's command or environment, as seen from here."""

        def addr(m: re.Match[str]) -> str:
            return self.address(own, index, m[1], int(m[2])) or m[0]

        value = re.sub(r"(?<![\w.-])([A-Za-z0-9_.-]+):(\d+)\b", addr, value)
        for target, local in self.path_map(self.compose["services"][own]):
            value = re.sub(rf"(?<![\w./-]){re.escape(target)}(?=/|:|,|\s|$)", local, value)
        return value


OWN_PORT_VARIABLES = (
    "DUCKFLEET_PORT",
    "DUCKFLEET_WORKER_PORT",
    "DUCKFLEET_HEALTH_PORT",
    "DUCKFLEET_METRICS_PORT",
)


def local_executable(name: str) -> str:
    """The local program a container's command names (the image's PATH, here)."""
    etcd = etcd_binary()
    local = {
        "duckfleet": str(Path(sys.prefix) / "bin" / "duckfleet"),
        "etcd": etcd,
        "etcdctl": str(Path(etcd).with_name("etcdctl")),
    }
    if name not in local:
        raise KeyError(f"no local stand-in for the executable {name!r}")
    return local[name]


def map_to_loopback(
    compose: dict[str, Any],
    dockerfile: list[tuple[str, str]],
    counts: dict[str, int],
    paths: dict[str, Path],
    home: Path,
) -> tuple[list[LocalReplica], LoopbackMap]:
    """Every replica of every service in `counts` as a local process.

    A container has its own network namespace and file system; these processes
    share ours. So, and only so: a service's host name, and 0.0.0.0/127.0.0.1 with a
    port it exposes, become 127.0.0.1 and a free port per replica (`DUCKFLEET_*PORT`
    variables naming its own ports too); the advertised host becomes 127.0.0.1 and
    an advertised port that a service publishes becomes that service's local port;
    volume, secret and image paths become local paths; programs resolve locally.
    Everything else is the file's own command and environment, unchanged.
    """
    lb = LoopbackMap(compose, counts, paths)
    published = published_ports(compose)
    base_env = image_env(dockerfile)
    health = healthcheck_command(dockerfile)
    out: list[LocalReplica] = []
    for name, count in counts.items():
        svc = compose["services"][name]
        built = "build" in svc  # the duckfleet image: its ENV and HEALTHCHECK apply
        for i in range(count):
            env = {**(base_env if built else {}), **{k: str(v) for k, v in _env_of(svc).items()}}
            local_env: dict[str, str] = {"HOME": str(home)}
            for key, value in env.items():
                if key == "DUCKFLEET_ADVERTISE_HOST":
                    value = "127.0.0.1"
                elif key == "DUCKFLEET_ADVERTISE_PORT" and int(value) in published:
                    publisher, target = published[int(value)]
                    value = str(lb.port(publisher, 0, target))
                elif key in OWN_PORT_VARIABLES and int(value) in exposed_ports(svc):
                    value = str(lb.port(name, i, int(value)))
                elif key == "DUCKFLEET_HOST" and value == "0.0.0.0":
                    value = "127.0.0.1"
                value = lb.rewrite(name, i, value)
                if key == "PATH":
                    value = value.replace("$PATH", os.environ.get("PATH", ""))
                local_env[key] = value
            local_env.setdefault("PATH", os.environ.get("PATH", ""))
            command = [lb.rewrite(name, i, str(a)) for a in svc["command"]]
            argv = [local_executable(command[0]), *command[1:]]
            check = _health(name, built, health, lb, i)
            out.append(LocalReplica(name, i, argv, local_env, check))
    return out, lb


def _env_of(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(str(e).partition("=")[::2] for e in env)
    return dict(env)


def _health(
    name: str, built: bool, image_health: str, lb: LoopbackMap, index: int
) -> list[str] | None:
    check = lb.compose["services"][name].get("healthcheck")
    if check and check.get("disable"):
        return None
    if check and "test" in check:
        test = list(check["test"])
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        assert test[0] == "CMD", test
        rewritten = [lb.rewrite(name, index, str(a)) for a in test[1:]]
        return [local_executable(rewritten[0]), *rewritten[1:]]
    if built:
        return ["sh", "-c", image_health]  # the Dockerfile's HEALTHCHECK, shell form
    return None
