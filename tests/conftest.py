"""Shared fixtures: lead factories and real Kafka brokers started by the test session."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from leadbus.localbroker import KafkaCluster
from tests.kafka_helpers import topics_cluster

LeadFactory = Callable[..., dict[str, Any]]

_BASE_LEAD: dict[str, Any] = {
    "lead_id": "00000000-0000-4000-8000-000000000000",
    "revision": 0,
    "reported_at": "2026-11-01T08:00:00.123Z",
    "publisher": {"agency": "SAMR", "province": "33", "unit": "杭州市市场监督管理局"},
    "channel": "INSPECTION",
    "category": "COSMETICS",
    "violation": "ART_148",
    "subject": {
        "name": "杭州美丽日化有限公司",
        "kind": "ENTERPRISE",
        "uscc": "91350100M000100Y43",
        "id_number": "11010519491231002X",
        "phones": ["+86 138-1234-5678"],
        "address": {"province": "33", "city": "杭州市", "detail": "西湖区文三路1号"},
    },
    "online": {"platform": "淘宝", "shop_id": "123456", "urls": ["https://shop123456.taobao.com/"], "ips": ["1.2.3.4"]},
    "payment_accounts": ["6222 0212 3456 7890 128"],
    "waybills": ["SF1234567890123"],
    "facts": {"sales_amount_fen": 6_000_000, "goods_value_fen": 100},
    "cross_border": False,
    "countries": [],
    "rights_holder": {"name": "某国际化妆品公司", "registration": "第1234567号"},
    "handling": "OPEN",
    "share_with": [],
    "grading": {"source": "B", "accuracy": 2},
    "description": "网店销售假冒注册商标的化妆品",
    "evidence": [{"kind": "photo", "uri": "https://evidence.example/1.jpg", "sha256": "a" * 64}],
}


def _set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        doc = doc[part]
    if value is _DELETE:
        doc.pop(parts[-1], None)
    else:
        doc[parts[-1]] = value


_DELETE = object()


@pytest.fixture
def make_lead() -> LeadFactory:
    """`make_lead(**{"subject.id_number": "...", "facts.sales_amount_fen": -1})` → a lead dict.

    Dotted keys reach nested fields; the value `make_lead.DELETE` removes the field.
    """

    def factory(**overrides: Any) -> dict[str, Any]:
        lead = copy.deepcopy(_BASE_LEAD)
        lead["lead_id"] = str(uuid.uuid4())
        for key, value in overrides.items():
            _set_path(lead, key, value)
        return lead

    factory.DELETE = _DELETE  # type: ignore[attr-defined]
    return factory


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """One real KRaft broker for the whole session, with every declared topic."""
    if os.environ.get("LEADBUS_TEST_BOOTSTRAP"):
        pytest.fail("LEADBUS_TEST_BOOTSTRAP is not supported: tests start their own brokers")
    with topics_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A one-broker cluster of the test module's own, with every declared topic: its stages see no other traffic."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with topics_cluster(tmp_path_factory.mktemp(f"{name}-kafka")) as kc:
        yield kc


@pytest.fixture
def bootstrap(kafka: KafkaCluster) -> str:
    return kafka.bootstrap_servers
