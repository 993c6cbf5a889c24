"""Screenshots of the query page for the README: `.venv/bin/python tests/ui_screenshots.py`.

Starts a fleet with auth on (etcd, one front door, two workers) over TPC-H at
`--scale` (generated under `--data-dir` if not there), runs a few TPC-H queries
through ADBC as the admin and as a user, leaves one long query running, starts
`duckfleet ui` through the CLI and has headless Chromium save

    docs/ui-queries.png     the query list
    docs/ui-query-q9.png    the page of TPC-H Q9: stages, tasks, timeline
    docs/ui-workers.png     the workers and their slots

Needs Debian's chromium and chromium-driver (see tests/ui_browser.py).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from secure_fleet import add_user, connect
from ui_browser import chromium, log_in, missing_browser, ui_process, wait_for

from duckfleet.auth.local import FleetSecurity
from duckfleet.control import QueryStore
from duckfleet.local_fleet import LocalFleet, generate_tpch, register_tables

REPO = Path(__file__).resolve().parents[1]
QUERIES = Path(os.environ.get("DUCKFLEET_TPCH_QUERIES", "/work/shared/tpch/queries"))
LONG = "select count(*) from lineitem a, lineitem b where a.l_quantity + b.l_quantity < 0"


def query(n: int) -> str:
    for name in (f"q{n:02d}.sql", f"Q{n:02d}.sql"):
        if (QUERIES / name).is_file():
            return (QUERIES / name).read_text()
    raise SystemExit(f"no TPC-H query {n} under {QUERIES} (DUCKFLEET_TPCH_QUERIES)")


def full_page(driver, path: Path, width: int = 1400) -> None:
    """The whole page, however long (at most 4000 px)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": width, "height": min(int(height), 4000)}
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {**metrics, "deviceScaleFactor": 1, "mobile": False}
    )
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print(f"wrote {path}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--data-dir", default="/tmp/duckfleet-ui-shots")
    p.add_argument("--out", default=str(REPO / "docs"))
    p.add_argument("--split-joins", default="always", help="DUCKFLEET_SPLIT_JOINS of the fleet")
    args = p.parse_args()
    if why := missing_browser():
        raise SystemExit(why)
    base = Path(tempfile.mkdtemp(prefix="ui-shots-"))
    users = base / "users"
    add_user(users, "ana", "user", "ana-pw")
    admin_pw = uuid.uuid4().hex
    security = FleetSecurity.basic(admin_password=admin_pw, users_file=str(users))
    root = generate_tpch(args.data_dir, args.scale)
    # every join split that keeps the answer right, so Q9's page shows several stages
    fleet = LocalFleet(
        port=0,
        cores_per_worker=1,
        log_dir=str(base),
        security=security,
        extra_env={"DUCKFLEET_SPLIT_JOINS": args.split_joins},
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with fleet:
        store = fleet.store()
        register_tables(store, root)
        for n, user, pw in ((1, "admin", admin_pw), (6, "ana", "ana-pw"), (3, "admin", admin_pw)):
            with connect(fleet.uri, user, pw) as conn, conn.cursor() as cur:
                cur.execute(query(n))
                cur.fetch_arrow_table()
        q9 = query(9)
        with connect(fleet.uri, "admin", admin_pw) as conn, conn.cursor() as cur:
            cur.execute(q9)
            cur.fetch_arrow_table()
        (q9_id,) = [r.id for r in QueryStore(store).all_records() if r.sql.strip() == q9.strip()]

        def long_query() -> None:
            try:
                with connect(fleet.uri, "ana", "ana-pw") as conn, conn.cursor() as cur:
                    cur.execute(LONG)
            except Exception:
                pass  # cancelled below

        client = threading.Thread(target=long_query, daemon=True)
        client.start()
        env = {"DUCKFLEET_ETCD": fleet.etcd_url or "", "DUCKFLEET_NAMESPACE": fleet.namespace}
        with ui_process({**env, **security.env()}, str(base / "ui.log")) as url, chromium() as d:
            log_in(d, "admin", admin_pw)
            wait_for("the long query to run", lambda: QueryStore(store).claims(), 60)
            d.get(url)
            full_page(d, out / "ui-queries.png")
            d.get(f"{url}query/{q9_id}")
            full_page(d, out / "ui-query-q9.png")
            d.get(f"{url}workers")
            full_page(d, out / "ui-workers.png")
            d.get(url)
            d.find_element(
                "link text", next(r.id for r in QueryStore(store).all_records() if r.sql == LONG)
            ).click()
            d.find_element("id", "cancel").click()
        client.join(30)
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
