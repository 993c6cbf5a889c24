"""Prometheus metrics (duckfleet/metrics.py) on real processes: the /metrics of a
front door and of every worker, scraped before and after queries, move by exactly
what happened; and the metric definitions follow Prometheus naming with bounded
labels; and compose's Prometheus scrape config and Grafana dashboard ask for
those metrics where the processes serve them."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import adbc_driver_manager
import pytest
import yaml
from fleet_fixture import SLOW, first_claim, records_for, reference, run, run_in_thread
from prometheus_client.parser import text_string_to_metric_families
from tpch_data import is_ordered, tpch_query

from duckfleet import metrics
from duckfleet.control import QueryStore
from duckfleet.control.records import QueryState, QueryStatus
from duckfleet.verify import assert_same_result

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: list[Samples], name: str, **labels: str) -> float:
    return sum(value(s, name, **labels) for s in samples)


def urls(fleet) -> tuple[str, list[str]]:
    named = dict(fleet.metrics_urls())
    workers = [u for n, u in named.items() if n.startswith("worker")]
    assert len(workers) == fleet.workers, named
    return named["front door 0"], workers


def test_each_process_logs_its_metrics_url_once(fleet):
    for (role, i), port in fleet.metrics_ports.items():
        text = (Path(fleet.log_dir) / f"{role}-{i}.log").read_text()
        assert text.count(f"serving Prometheus metrics at http://127.0.0.1:{port}/metrics") == 1


def task_count(fleet, sql: str) -> int:
    (record,) = records_for(fleet, sql)
    store = fleet.store()
    try:
        return len(QueryStore(store).task_records(record.id))
    finally:
        store.close()


def wait_idle(worker_urls: list[str], timeout: float = 10) -> list[Samples]:
    """The workers' scrapes once none holds a task (the last step after a commit)."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = [scrape(u) for u in worker_urls]
        if total(scraped, "duckfleet_running_tasks") == 0 or time.monotonic() > deadline:
            return scraped
        time.sleep(0.05)


FAILING = "SELECT CAST(l_comment AS INTEGER) AS n FROM lineitem"


def test_counters_move_by_what_the_queries_did(fleet, tpch_dir):
    frontdoor_url, worker_urls = urls(fleet)
    door0, workers0 = scrape(frontdoor_url), wait_idle(worker_urls)

    sql = tpch_query(1)  # several partial tasks and a merge, through the queue
    assert_same_result(run(fleet.uri, sql), reference(tpch_dir, sql), ordered=is_ordered(sql))
    tasks = task_count(fleet, sql)
    assert tasks > 1
    door1, workers1 = scrape(frontdoor_url), wait_idle(worker_urls)

    with pytest.raises(adbc_driver_manager.Error, match=r"(?i)conver|cast"):
        run(fleet.uri, FAILING)
    door2, workers2 = scrape(frontdoor_url), wait_idle(worker_urls)

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def moved_workers(before: list[Samples], after: list[Samples], name: str) -> float:
        return total(after, name) - total(before, name)

    queries = "duckfleet_queries_total"
    # the TPC-H query: one finished query, every one of its tasks claimed and
    # completed once, its result served to the client straight from the workers
    assert moved(door0, door1, queries, outcome="finished") == 1
    assert moved(door0, door1, queries, outcome="failed") == 0
    assert moved(door0, door1, "duckfleet_query_duration_seconds_count") == 1
    assert moved_workers(workers0, workers1, "duckfleet_tasks_completed_total") == tasks
    assert moved_workers(workers0, workers1, "duckfleet_tasks_claimed_total") == tasks
    assert moved_workers(workers0, workers1, "duckfleet_task_duration_seconds_count") == tasks
    assert moved_workers(workers0, workers1, "duckfleet_tasks_retried_total") == 0
    assert moved_workers(workers0, workers1, "duckfleet_served_bytes_total") > 0
    assert total(workers1, "duckfleet_result_store_bytes") > 0  # kept until it expires
    for w in workers1:
        assert value(w, "duckfleet_etcd_request_duration_seconds_count", op="txn") > 0
    assert moved(door0, door1, "duckfleet_etcd_request_duration_seconds_count", op="txn") > 0

    # the failing cast: one failed query, no task of it completed
    assert moved(door1, door2, queries, outcome="failed") == 1
    assert moved(door1, door2, queries, outcome="finished") == 0
    assert moved(door1, door2, "duckfleet_query_duration_seconds_count") == 1
    assert moved_workers(workers1, workers2, "duckfleet_tasks_completed_total") == 0
    assert total(workers2, "duckfleet_running_tasks") == 0


def test_a_fast_path_query_counts_one_offer_taken(fleet, tpch_dir):
    frontdoor_url, worker_urls = urls(fleet)
    door0, workers0 = scrape(frontdoor_url), wait_idle(worker_urls)
    sql = "SELECT count(*) AS n FROM nation"  # one small task: the fast path
    assert_same_result(run(fleet.uri, sql), reference(tpch_dir, sql), ordered=False)
    door1, workers1 = scrape(frontdoor_url), wait_idle(worker_urls)
    offers = "duckfleet_offers_total"
    assert total(workers1, offers, outcome="taken") - total(workers0, offers, outcome="taken") == 1
    assert (
        total(workers1, "duckfleet_tasks_completed_total")
        - total(workers0, "duckfleet_tasks_completed_total")
        == 1
    )
    # taken from an offer, not claimed from the queue
    assert total(workers1, "duckfleet_tasks_claimed_total") == total(
        workers0, "duckfleet_tasks_claimed_total"
    )
    finished = "duckfleet_queries_total"
    assert (
        value(door1, finished, outcome="finished") - value(door0, finished, outcome="finished") == 1
    )


def test_a_query_cancelled_elsewhere_counts_as_cancelled(fleet):
    """Another front door cancels a running query (QueryStore.end, as CancelFlightInfo
    there does): this front door counts it cancelled, not failed. (The workers
    interrupt its tasks and release them, which is no retry; but a task whose
    completion the cancel refuses before its worker hears of the cancel is counted
    as one, so that is not asserted here.)"""
    frontdoor_url, worker_urls = urls(fleet)
    door0, workers0 = scrape(frontdoor_url), wait_idle(worker_urls)
    thread, out = run_in_thread(fleet.uri, SLOW)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        q, _, _ = first_claim(qs)
        qs.end(q, QueryStatus(QueryState.CANCELLED, error="cancelled by the test"))
    finally:
        store.close()
    thread.join(60)
    assert "cancelled by the test" in str(out.get("error")), out
    door1, workers1 = scrape(frontdoor_url), wait_idle(worker_urls)
    queries = "duckfleet_queries_total"
    for outcome, moved in (("cancelled", 1), ("failed", 0), ("finished", 0)):
        assert value(door1, queries, outcome=outcome) - value(door0, queries, outcome=outcome) == (
            moved
        ), outcome
    claimed = "duckfleet_tasks_claimed_total"
    assert total(workers1, claimed) > total(workers0, claimed)  # it ran before the cancel
    assert total(workers1, "duckfleet_running_tasks") == 0


def test_a_front_door_counts_the_bytes_it_relays(fleet, tpch_dir):
    """A client that fetches the partitions from the front door (their fallback
    location): the front door counts the bytes it served. (A queued query: a
    fast-path answer comes before the worker's commit, and the front door refuses a
    partition of a query it still sees running.)"""
    import pyarrow as pa
    import pyarrow.flight as fl

    from duckfleet.client import statement_descriptor

    sql = "SELECT l_orderkey, l_quantity FROM lineitem WHERE l_quantity > 45"
    frontdoor_url, _ = urls(fleet)
    before = value(scrape(frontdoor_url), "duckfleet_served_bytes_total")
    client = fl.connect(fleet.uri)
    try:
        info = client.get_flight_info(statement_descriptor(sql))
        got = pa.concat_tables(client.do_get(e.ticket).read_all() for e in info.endpoints)
    finally:
        client.close()
    assert task_count(fleet, sql) > 1  # it went through the queue
    assert_same_result(got, reference(tpch_dir, sql), ordered=False)
    assert value(scrape(frontdoor_url), "duckfleet_served_bytes_total") - before >= got.nbytes > 0


def test_every_metric_follows_prometheus_naming_with_bounded_labels():
    registries = [
        metrics.FrontDoorMetrics().registry,
        metrics.WorkerMetrics(lambda: 0, lambda: 0, lambda: 0).registry,
    ]
    names: set[str] = set()
    allowed = {
        "outcome": set(metrics.QUERY_OUTCOMES) | set(metrics.OFFER_OUTCOMES),
        "op": set(metrics.ETCD_OPS),
    }
    for registry in registries:
        for family in registry.collect():
            assert family.name.startswith("duckfleet_"), family.name
            shown = family.name + ("_total" if family.type == "counter" else "")
            names.add(shown)
            if family.type == "histogram":
                assert family.name.endswith("_seconds"), family.name  # base unit
            if "bytes" in family.name:
                assert shown.endswith(("_bytes", "_bytes_total")), family.name
            for sample in family.samples:
                for label, v in sample.labels.items():
                    if label == "le":
                        continue
                    assert v in allowed[label], (family.name, label, v)
    assert names == metrics.METRIC_NAMES


def test_metrics_can_be_turned_off_and_serve_on_a_free_port():
    m = metrics.FrontDoorMetrics()
    assert m.serve("127.0.0.1", metrics.DISABLED) == ""
    url = m.serve("127.0.0.1", 0)
    try:
        assert url == f"http://127.0.0.1:{m.port}/metrics" and m.port > 0
        m.finished.inc()
        assert value(scrape(url), "duckfleet_queries_total", outcome="finished") == 1
        with pytest.raises(metrics.MetricsError, match="DUCKFLEET_METRICS_PORT"):
            metrics.WorkerMetrics(lambda: 0, lambda: 0, lambda: 0).serve("127.0.0.1", m.port)
    finally:
        m.stop()


# ------------------------------------------------- compose: Prometheus and Grafana

COMPOSE_DIR = Path(__file__).resolve().parents[1] / "compose"
METRIC = re.compile(r"\bduckfleet_\w+")
# the keys Prometheus 2.x reads at the top of its config and in a scrape config
PROMETHEUS_KEYS = {
    "global", "scrape_configs", "rule_files", "alerting", "remote_write", "remote_read",
    "storage", "tracing", "scrape_config_files",
}  # fmt: skip
SCRAPE_KEYS = {
    "job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme", "params",
    "honor_labels", "honor_timestamps", "static_configs", "dns_sd_configs",
    "relabel_configs", "metric_relabel_configs", "basic_auth", "authorization",
    "tls_config", "follow_redirects",
}  # fmt: skip


def compose_services() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["services"]


def metrics_port() -> int:
    env = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["x-duckfleet-env"]
    return int(env["DUCKFLEET_METRICS_PORT"])


def mounted(service: dict, target: str) -> str:
    """The file of the compose config mounted at `target` in `service`."""
    configs = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["configs"]
    (source,) = [c["source"] for c in service["configs"] if c["target"] == target]
    return configs[source]["file"]


def test_prometheus_scrapes_every_front_door_and_worker_on_the_metrics_port():
    services = compose_services()
    prometheus = services["prometheus"]
    (flag,) = [a for a in prometheus["command"] if a.startswith("--config.file=")]
    assert mounted(prometheus, flag.split("=", 1)[1]) == "./prometheus.yml"
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    assert set(config) <= PROMETHEUS_KEYS, set(config) - PROMETHEUS_KEYS
    jobs = config["scrape_configs"]
    assert len({j["job_name"] for j in jobs}) == len(jobs)
    port, scraped = metrics_port(), set()
    for job in jobs:
        assert set(job) <= SCRAPE_KEYS, set(job) - SCRAPE_KEYS
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A" and sd["port"] == port
            assert job.get("metrics_path", "/metrics") == "/metrics"
            for name in sd["names"]:
                assert str(port) in services[name]["expose"], name
                scraped.add(name)
    assert scraped == {"frontdoor", "worker"}  # every replica of both, by DNS


def test_grafana_dashboard_panels_ask_for_metrics_the_code_defines():
    services = compose_services()
    grafana = services["grafana"]
    source = yaml.safe_load((COMPOSE_DIR / "grafana" / "datasource.yml").read_text())
    (ds,) = source["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    provider = yaml.safe_load((COMPOSE_DIR / "grafana" / "dashboards.yml").read_text())
    (folder,) = [p["options"]["path"] for p in provider["providers"]]
    assert mounted(grafana, f"{folder}/duckfleet.json") == "./grafana/duckfleet.json"

    dashboard = json.loads((COMPOSE_DIR / "grafana" / "duckfleet.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert panels and len({p["id"] for p in panels}) == len(panels)
    used: set[str] = set()
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat", "gauge", "bargauge", "table"), panel
        assert panel["title"] and panel["datasource"]["uid"] == ds["uid"], panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "xywh")
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            names = METRIC.findall(expr)
            assert names, expr
            for name in names:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert base in metrics.METRIC_NAMES, f"{panel['title']}: {name} is not defined"
                used.add(base)
    assert used == metrics.METRIC_NAMES, f"metrics on no panel: {metrics.METRIC_NAMES - used}"
