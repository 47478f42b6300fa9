"""Notice-and-takedown end to end: routed cases → signed webhooks to a real local platform server →
TakedownReply events; a platform that never answers well ends in the dead-letter topic."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.cluster import free_port
from leadbus.sinks.takedown_sink import DEAD, NOTICES, REPLIES, run_takedown
from leadbus.sinks.webhooks import RetryPolicy, verify_request
from tests.kafka_helpers import read_all, topics_cluster

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
SECRET = b"platform-shared-secret"


class Platform:
    """A marketplace's notice endpoint: fails the first attempt of each notice, applies each key once."""

    def __init__(self, always_fail: bool = False) -> None:
        self.effects: dict[str, int] = {}
        self.bad_signatures = 0
        self.attempts: dict[str, int] = {}
        self.always_fail = always_fail
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                with platform.lock:
                    if not verify_request(SECRET, dict(self.headers), body):
                        platform.bad_signatures += 1
                    platform.attempts[key] = platform.attempts.get(key, 0) + 1
                    first = platform.attempts[key] == 1
                    if not platform.always_fail and not first:
                        # The platform applies a notice once per idempotency key and counts deliveries.
                        platform.effects[key] = platform.effects.get(key, 0) + 1
                if platform.always_fail or first:
                    self.send_response(503)
                    self.end_headers()
                    return
                answer = json.dumps({"decision": "REMOVED", "reference": f"TD-{key[:8]}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/notices"


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory) -> Iterator[KafkaCluster]:
    """A broker of this module's own: other tests route cases onto the session broker's notice topic."""
    with topics_cluster(tmp_path_factory.mktemp("takedown-kafka")) as kc:
        yield kc


@pytest.fixture
def bootstrap(own_kafka: KafkaCluster) -> str:
    return own_kafka.bootstrap_servers


@pytest.fixture
def platform() -> Iterator[tuple[Platform, str]]:
    p = Platform()
    server, url = p.serve()
    yield p, url
    server.shutdown()


def _case(n: int) -> dict:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    return {
        "case_id": f"CASE-{n:016X}", "version": 1, "members": ["l"], "suspect_name": "某店", "reporters": [],
        "identifiers": [{"kind": "shop", "value": f"taobao:{1000 + n}"}, {"kind": "domain", "value": f"fake{n}.cn"}],
        "suspect_province": "33", "categories": ["APPAREL_FOOTWEAR"], "violations": ["ART_214"],
        "facts": dict.fromkeys(["illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen",
                                "goods_value_fen", "copies", "works", "clicks", "members", "trademark_kinds",
                                "labels", "loss_fen"]),
        "first_reported_at": t, "last_reported_at": t, "handling": "OPEN", "share_with": [], "cross_border": False,
        "countries": [], "merged_from": [], "merged_into": None, "updated_at": t,
    }


def test_notices_reach_the_platform_once_and_replies_are_recorded(bootstrap: str, platform) -> None:
    plat, url = platform
    producer = Producer({"bootstrap.servers": bootstrap})
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    for n in range(10):
        value = encode(schema, _case(n))
        producer.produce(NOTICES, key=f"CASE-{n:016X}".encode(), value=value)
        if n % 3 == 0:  # a redelivered case: the same notices again
            producer.produce(NOTICES, key=f"CASE-{n:016X}".encode(), value=value)
    assert producer.flush(30) == 0
    policy = RetryPolicy(initial=0.05, factor=2.0, max_delay=0.2, budget=4, deadline=10.0)
    with httpx.Client(timeout=2.0) as client:
        run_takedown(bootstrap, {}, SECRET, default_endpoint=url, policy=policy, max_seconds=12, client=client)
    assert plat.bad_signatures == 0
    # 10 cases × (shop + site) = 20 notices, each one effect by its key; the 4 redelivered cases
    # sent their 8 notices again under the same keys, so the platform applied nothing twice.
    assert len(plat.effects) == 20
    assert sum(plat.effects.values()) == 28 and sorted(set(plat.effects.values())) == [1, 2]
    replies = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, REPLIES)]
    assert {r["notice_id"] for r in replies} == set(plat.effects)
    assert all(r["decision"] == "REMOVED" and not r["overdue"] for r in replies)
    first_replies = {}
    for r in replies:
        first_replies.setdefault(r["notice_id"], r)
    assert all(r["attempts"] == 2 for r in first_replies.values()), "a 503, then success"


def test_a_platform_that_never_succeeds_ends_in_the_dead_letter_topic(bootstrap: str) -> None:
    failing = Platform(always_fail=True)
    server, url = failing.serve()
    try:
        before = len(read_all(bootstrap, DEAD))
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(NOTICES, key=b"CASE-00000000000000FF", value=encode(CATALOG.latest("cn.leadbus.CaseUpdated"),
                                                                            _case(255)))
        assert producer.flush(30) == 0
        policy = RetryPolicy(initial=0.02, factor=2.0, max_delay=0.05, budget=3, deadline=5.0)
        with httpx.Client(timeout=1.0) as client:
            run_takedown(bootstrap, {}, SECRET, default_endpoint=url, policy=policy, max_seconds=8, client=client)
        dead = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, DEAD)][before:]
        assert len(dead) == 2 and all(d["attempts"] == 3 and d["last_status"] == 503 for d in dead)
        assert all("503" in d["last_error"] or d["outcome"] == "budget_exhausted" for d in dead)
    finally:
        server.shutdown()
