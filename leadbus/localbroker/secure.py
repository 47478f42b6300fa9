"""A secured local cluster in one call: the project CA, node certificates, the admin credential and its file.

    secure_cluster(nodes, directory, secure_dir) -> KafkaCluster

`secure_dir/tls/` keeps the local CA (made once, reused); node certificates go with the cluster's
data in `directory`; the admin's password is taken from `secure_dir/clients/admin.json` when that
file exists and made otherwise, and the file is (re)written for the new cluster's servers. The admin
credential enters the metadata log at format time; `leadbus acl apply` creates the others.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from leadbus.clients import ClientConfigError, KafkaSettings, write_client_config
from leadbus.localbroker.cluster import ClusterSecurity, KafkaCluster
from leadbus.localbroker.tls import BrokerTls, LocalCa

ADMIN = "admin"


def secure_cluster(nodes: int, directory: Path | None, secure_dir: Path, *, admin: str = ADMIN, **options: Any
                   ) -> KafkaCluster:
    """`directory` None: a temporary folder, deleted with the cluster (as for an open one)."""
    owned = directory is None
    directory, secure_dir = Path(directory or tempfile.mkdtemp(prefix="leadbus-kafka-")), Path(secure_dir)
    ca = LocalCa.ensure(secure_dir / "tls")
    tls = BrokerTls.local(ca, directory / "tls", list(range(1, nodes + 1)))
    admin_file = secure_dir / "clients" / f"{admin}.json"
    password = None
    if admin_file.exists():
        try:
            password = KafkaSettings.from_file(admin_file).security.get("sasl.password")
        except ClientConfigError:
            password = None
    security = ClusterSecurity(tls, admin, str(password) if password else secrets.token_urlsafe(32))
    cluster = KafkaCluster(nodes, directory, security=security, **options)
    cluster.owns_directory(owned)
    write_client_config(admin_file, cluster.admin_settings)
    return cluster
