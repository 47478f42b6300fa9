"""The publisher SDK against a real broker: thousands of leads out and back, and a broker kill -9."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadbus.avro import decode, packaged_catalog
from leadbus.avro.codec import writer_of
from leadbus.localbroker import KafkaCluster
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import intake_topic, load_declarations
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)


def _publish_all(bootstrap: str, leads: list[CaseLead]) -> dict[str, Publisher]:
    publishers: dict[str, Publisher] = {}
    futures = {}
    for lead in leads:
        agency = lead.publisher.agency
        pub = publishers.setdefault(agency, Publisher(agency, "00", bootstrap_servers=bootstrap))
        futures.setdefault(agency, []).append(pub.publish(lead))
    for agency, pub in publishers.items():
        deliveries = pub.wait(futures[agency], timeout=120)
        assert all(d.offset >= 0 for d in deliveries)
    return publishers


def _read_leads(bootstrap: str, topics: set[str]) -> dict[str, CaseLead]:
    catalog = packaged_catalog()
    reader = catalog.latest("cn.leadbus.CaseLead")
    out: dict[str, CaseLead] = {}
    for topic in topics:
        for msg in read_all(bootstrap, topic):
            if writer_of(catalog, msg.value()).name != "cn.leadbus.CaseLead":
                continue  # the shared broker's intake topics also carry other agency events (a courier reply)
            _, record = decode(catalog, msg.value(), reader)
            lead = CaseLead.from_avro(record)
            assert msg.key() == lead.lead_id.encode()
            assert lead.lead_id not in out, "a lead was delivered twice"
            out[lead.lead_id] = lead
    return out


def test_thousands_of_simulated_leads_read_back_equal(bootstrap: str) -> None:
    leads = list(TrafficGenerator(seed=11).leads(3000, START, timedelta(milliseconds=50)))
    _publish_all(bootstrap, leads)
    topics = {intake_topic(lead.publisher.agency) for lead in leads}
    assert len(topics) >= 5, "the simulator should speak for many agencies"
    back = _read_leads(bootstrap, topics)
    sent = {lead.lead_id: lead for lead in leads}
    assert set(sent) <= set(back)
    for lead_id, lead in sent.items():
        assert back[lead_id] == lead


def test_broker_kill_9_loses_no_confirmed_lead(tmp_path) -> None:
    with KafkaCluster(1, tmp_path / "kafka") as cluster:
        apply_topics(cluster.bootstrap_servers, load_declarations())
        gen = TrafficGenerator(seed=5)
        first = [lead for lead in gen.leads(800, START, timedelta(seconds=1)) if lead.publisher.agency == "SAMR"]
        pub = Publisher("SAMR", "00", bootstrap_servers=cluster.bootstrap_servers)
        confirmed = pub.wait([pub.publish(lead) for lead in first], timeout=60)
        cluster.kill_node(1)
        cluster.start_node(1)
        second = [lead for lead in gen.leads(800, START, timedelta(seconds=1)) if lead.publisher.agency == "SAMR"]
        confirmed += pub.wait([pub.publish(lead) for lead in second], timeout=120)
        pub.close()
        back = _read_leads(cluster.bootstrap_servers, {intake_topic("SAMR")})
        assert {d.lead_id for d in confirmed} <= set(back)
        assert len(back) == len(first) + len(second)
