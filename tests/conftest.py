import os

from etcd_fixture import etcd, store  # noqa: F401  (a real etcd per module)
from fleet_fixture import fleet  # noqa: F401  (front door + 2 workers, as processes)
from secure_fleet import secure_fleet  # noqa: F401  (session: auth on, 1 front door, 2 workers)
from tpch_data import tpch_dir  # noqa: F401  (session fixture: tiny TPC-H in Parquet)

# The test tables are a few small files each, and the tests of distribution expect
# one split per file: every fleet process a test starts inherits "no packing"
# (planner/splits.py). tests/test_fast_path.py starts a fleet that packs.
os.environ.setdefault("DUCKFLEET_PACK_BYTES", "0")
