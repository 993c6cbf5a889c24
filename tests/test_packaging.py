"""duckfleet as installed. Every module in the source tree's component folders is in
the install the suite runs against (setup.py finds the packages; nothing lists them).
Under scripts/test.sh that install is the wheel, in a fresh venv outside the tree, and
then this process and the processes tests start import duckfleet from it, never from
the source folders (DUCKFLEET_TEST_INSTALL=wheel)."""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import duckfleet

REPO = Path(__file__).resolve().parents[1]
SETUP = runpy.run_path(str(REPO / "setup.py"))  # its names; setup() runs as __main__ only
FROM_WHEEL = os.environ.get("DUCKFLEET_TEST_INSTALL") == "wheel"


def source_modules() -> list[str]:
    names = []
    for package, folder in SETUP["PACKAGE_DIR"].items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if any(not (REPO / folder / Path(*parts[:i]) / "__init__.py").is_file()
                   for i in range(len(parts))):  # fmt: skip
                continue  # not inside a package (no __init__.py on the way)
            names.append(".".join((package, *parts)).removesuffix(".__init__"))
    return names


def test_every_component_folder_is_a_package_of_duckfleet():
    assert set(SETUP["PACKAGE_DIR"]) >= {
        "duckfleet",
        "duckfleet.flight",
        "duckfleet.planner",
        "duckfleet.worker",
        "duckfleet.control",
    }
    assert "duckfleet.bench" not in SETUP["PACKAGE_DIR"]


def test_every_source_module_is_installed():
    modules = source_modules()
    assert "duckfleet.planner.joins.plan_joins" in modules
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    assert missing == []


@pytest.mark.skipif(not FROM_WHEEL, reason="the suite runs on the editable install")
def test_duckfleet_comes_from_the_install_not_the_source_tree():
    assert REPO not in Path(duckfleet.__file__).resolve().parents
    # a process started as the fixtures start theirs, from the repository's root
    done = subprocess.run(
        [sys.executable, "-c", "import duckfleet.planner.joins as j; print(j.__file__)"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert REPO not in Path(done.stdout.strip()).resolve().parents
    assert Path(sys.prefix).resolve() in Path(done.stdout.strip()).resolve().parents
