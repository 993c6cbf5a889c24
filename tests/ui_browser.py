"""Headless Chromium for the query page's tests and screenshots, and `duckfleet ui`
started the way an operator starts it (the CLI, as a process).

Chromium and its driver are Debian's (`apt-get install chromium chromium-driver`);
without them the browser tests are skipped, saying so.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("DUCKFLEET_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DUCKFLEET_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing_browser() -> str:
    """Why no browser test can run here, or "" when one can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} is missing: `apt-get install -y {package}` (Debian) to run this"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return ""


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        driver.execute_cdp_cmd("Network.enable", {})
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, user: str, password: str) -> None:
    """Every later request of `driver` carries HTTP Basic credentials."""
    value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": value}})


@contextmanager
def ui_process(env: Mapping[str, str], log_path: str) -> Iterator[str]:
    """`duckfleet ui --listen 127.0.0.1:0` as a child process; yields its URL."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "duckfleet", "ui", "--listen", "127.0.0.1:0"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # "query page: http://127.0.0.1:PORT/"
        if not line.startswith("query page: "):
            proc.wait(10)
            with open(log_path, errors="replace") as f:
                raise RuntimeError(f"duckfleet ui did not start: {line!r}\n{f.read()[-2000:]}")
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
