"""Which folders install as which packages (everything else is in pyproject.toml).

The design keeps each component in a top-level folder of its own (``flight/``,
``planner/``, ...); they install as subpackages of ``duckfleet`` (``duckfleet.flight``,
...) so nothing generic lands in site-packages. Packages are found, not listed: every
top-level folder holding an ``__init__.py`` is a component, and setuptools' package
discovery finds the subpackages inside it (``planner/joins``, ...). A new component
folder needs no line here.
"""

from pathlib import Path

ROOT = Path(__file__).parent
# Top-level packages that are not part of the installed duckfleet.
NOT_SHIPPED = {"duckfleet", "bench", "tests"}

COMPONENTS = sorted(
    p.name
    for p in ROOT.iterdir()
    if (p / "__init__.py").is_file() and p.name not in NOT_SHIPPED
)
PACKAGE_DIR = {"duckfleet": "duckfleet"} | {f"duckfleet.{c}": c for c in COMPONENTS}


def packages() -> list[str]:
    """Every package under PACKAGE_DIR's folders, found by setuptools."""
    from setuptools import find_packages  # here: tests read PACKAGE_DIR without setuptools

    return [
        package
        for name, folder in PACKAGE_DIR.items()
        for package in [name, *(f"{name}.{sub}" for sub in find_packages(ROOT / folder))]
    ]


if __name__ == "__main__":
    from setuptools import setup

    setup(package_dir=PACKAGE_DIR, packages=packages())
