from etcd_fixture import etcd, store  # noqa: F401
from fleet_fixture import fleet  # noqa: F401
from tpch_data import tpch_dir  # noqa: F401
