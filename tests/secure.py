"""Secured brokers for tests: TLS, SCRAM users and the ACL policy applied, each principal's client file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from leadbus.acl import Policy, load_policy
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.secure import secure_cluster
from leadbus.provisioning.acls import apply_policy
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import load_declarations


@dataclass
class SecureBus:
    cluster: KafkaCluster
    policy: Policy
    clients: Path

    @property
    def admin(self) -> KafkaSettings:
        return self.as_("admin")

    def as_(self, principal: str) -> KafkaSettings:
        return KafkaSettings.from_file(self.clients / f"{principal}.json")


@contextmanager
def secured(nodes: int, root: Path) -> Iterator[SecureBus]:
    with secure_cluster(nodes, root / "kafka", root / "secure") as cluster:
        apply_topics(cluster.admin_settings, load_declarations())
        policy = load_policy()
        apply_policy(cluster.admin_settings, policy, root / "secure" / "clients")
        yield SecureBus(cluster, policy, root / "secure" / "clients")


class Errors:
    """An `error_cb` that keeps what the client reported (authentication failures arrive here)."""

    def __init__(self) -> None:
        self.seen: list[KafkaError] = []

    def __call__(self, error: KafkaError) -> None:
        self.seen.append(error)

    def codes(self) -> set[int]:
        return {e.code() for e in self.seen}

    def text(self) -> str:
        return "; ".join(str(e) for e in self.seen)


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.5) -> Any:
    """ACL and credential changes travel through the metadata log: retry briefly before asserting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
