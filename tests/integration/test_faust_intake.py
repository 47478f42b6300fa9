"""The faust-streaming comparison engine hosts the same intake step: valid leads once, bad ones dead-lettered."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED, intake_topic
from tests.kafka_helpers import read_all
from tests.processes import stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


def test_faust_host_runs_the_same_step(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    leads = list(TrafficGenerator(seed=77).leads(60, datetime.now(UTC) - timedelta(hours=1), timedelta(seconds=1)))
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    raw = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i, lead in enumerate(leads):
        data = encode(schema, lead.to_avro())
        raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
        if i % 6 == 0:  # an exact redelivery under the same key
            raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
    for n in range(5):
        raw.produce(intake_topic("SAMR"), key=b"bad", value=b"\x00not avro %d" % n)
    assert raw.flush(30) == 0
    log = open(tmp_path / "faust.log", "wb")  # noqa: SIM115 - handed to the child
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from leadbus.processors.faust_app import "
         f"run_worker; sys.argv=['faust','worker']; run_worker({bootstrap!r}, Path({str(tmp_path / 'faust')!r}))"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(read_all(bootstrap, LEADS_ACCEPTED)) >= 60 and len(read_all(bootstrap, LEADS_REJECTED))
                   >= 5, 180, "the faust host to accept and reject")
        accepted = Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"])
                           for m in read_all(bootstrap, LEADS_ACCEPTED))
        assert set(accepted) == {lead.lead_id for lead in leads} and max(accepted.values()) == 1
        reasons = Counter(decode(CATALOG, m.value())[1]["reason"] for m in read_all(bootstrap, LEADS_REJECTED))
        assert reasons == {"DECODE_NOT_AVRO": 5}
        assert worker.poll() is None
    finally:
        stop(worker)
        log.close()
