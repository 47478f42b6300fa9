"""The rebuild on a bus where analysts merged and split cases (issues #14 and #19), on a real broker.

Every stage runs as an OS process. An agency publishes leads (unsigned); an analyst's agency registers a key and
publishes signed `LinkDecision`s through the SDK: a confirm that merges a weak pair, a split that takes a lead out
of a case built on a shared phone, and a lead arriving after the split that joins the case kept. `leadbus audit
rebuild` must re-derive exactly what the stages recorded (cases, handover, routes): exit 0, identical.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from leadbus.avro import decode, packaged_catalog
from leadbus.cli import app
from leadbus.localbroker import KafkaCluster
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import CASES, LINK_DECISIONS, load_declarations
from tests.audit_helpers import stages, wait_settled
from tests.kafka_helpers import read_all
from tests.processes import wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
runner = CliRunner()
START = datetime.now(UTC) - timedelta(hours=2)
DAY_SECONDS = 3600.0  # no deadline passes during the test: what is compared is what linking did


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("audit-links")
    with KafkaCluster(1, work / "kafka") as kc:
        bootstrap = kc.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        key = work / "samr31.key"
        for args in (["keys", "generate", "--out", str(key)],
                     ["keys", "register", "SAMR.31", "--public-key", f"{key}.pub", "-b", bootstrap]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
        sealer = SigningSealer("SAMR.31", load_private_key(key.read_bytes()), MemorySequences())
        analysts = Publisher("SAMR", "31", bootstrap_servers=bootstrap, sealer=sealer)
        leads = Publisher("NCAC", "31", bootstrap_servers=bootstrap)
        try:
            with stages(bootstrap, work, day_seconds=DAY_SECONDS):
                yield {"bootstrap": bootstrap, "analysts": analysts, "leads": leads}
        finally:
            analysts.close()
            leads.close()


def _background(n: int) -> list[CaseLead]:
    out = []
    for lead in TrafficGenerator(seed=91).leads(n, START, timedelta(seconds=1)):
        doc = lead.model_dump(mode="json")
        doc["publisher"] = {"agency": "NCAC", "province": "31", "unit": None}
        out.append(CaseLead.model_validate(doc))
    return out


def _lead(name: str, detail: str, phones: tuple[str, ...] = ()) -> CaseLead:
    doc = _background(1)[0].model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), payment_accounts=[], waybills=[], rights_holder=None,
               subject={"name": name, "kind": "ENTERPRISE", "uscc": None, "id_number": None, "phones": list(phones),
                        "address": {"province": "31", "city": "上海市", "detail": detail}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": [], "icp_filings": []})
    return CaseLead.model_validate(doc)


def _cases(bootstrap: str) -> dict[str, dict[str, Any]]:
    return {c["case_id"]: c for c in (decode(CATALOG, m.value())[1] for m in read_all(bootstrap, CASES))}


def _case_of(bootstrap: str, lead_id: str) -> str | None:
    found = [c for c in _cases(bootstrap).values() if lead_id in c["members"] and not c["merged_into"]]
    return found[-1]["case_id"] if found else None


def _publish(bus: dict[str, Any], *leads: CaseLead) -> list[str]:
    bus["leads"].wait([bus["leads"].publish(lead) for lead in leads])
    wait_until(lambda: all(_case_of(bus["bootstrap"], lead.lead_id) for lead in leads), 180, "the leads' cases")
    return [str(_case_of(bus["bootstrap"], lead.lead_id)) for lead in leads]


def _decide(bus: dict[str, Any], action: str, a: str, b: str | None = None, leads: list[str] | None = None) -> None:
    decision = {"decision_id": str(uuid.uuid4()), "action": action, "case_a": a, "case_b": b,
                "lead_ids": leads or [],
                "analyst": {"agency": "SAMR", "province": "31", "user": "zhang.wei", "role": "ANALYST"},
                "reason": "the same flat on both reports", "decided_at": datetime.now(UTC) - timedelta(seconds=5),
                "suggestion_id": None}
    bus["analysts"].wait([bus["analysts"].publish_link_decision(decision)])


def test_rebuild_after_a_confirm_and_a_split_is_identical(bus: dict[str, Any]) -> None:
    bootstrap = bus["bootstrap"]
    _publish(bus, *_background(20))
    a1, a2 = (_lead("上海锐丰贸易有限公司", "浦东新区张杨路1188号3栋502室"),
              _lead("上海锐丰贸易商行", "浦东新区张杨路1188号3栋502室"))
    b1, b2 = (_lead("上海永盛商贸有限公司", "徐汇区漕溪北路1号", phones=("13912345678",)),
              _lead("上海永盛商贸商行", "徐汇区漕溪北路1号", phones=("13912345678",)))
    case1, case2, case_b, case_b2 = _publish(bus, a1, a2, b1, b2)
    assert case1 != case2 and case_b == case_b2

    _decide(bus, "CONFIRM", case2, case1)
    wait_until(lambda: {_cases(bootstrap)[c]["merged_into"] for c in (case1, case2)} - {None}, 120,
               "the confirmed merge")
    _decide(bus, "SPLIT", case_b, leads=[b2.lead_id])
    wait_until(lambda: _case_of(bootstrap, b2.lead_id) not in (None, case_b), 120, "the split")
    (case_b3,) = _publish(bus, _lead("上海永盛商贸", "徐汇区漕溪北路1号", phones=("13912345678",)))
    assert case_b3 == case_b, "the phone stayed with the case kept"
    _publish(bus, *_background(25)[20:])  # leads after the decisions
    wait_settled(bootstrap)
    assert len(read_all(bootstrap, LINK_DECISIONS)) == 2

    done = subprocess.run([sys.executable, "-m", "leadbus.cli", "audit", "rebuild", "-b", bootstrap,
                           "--day-seconds", str(DAY_SECONDS)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical" in done.stdout


def test_rebuild_names_the_case_when_the_decisions_are_taken_away(bus: dict[str, Any]) -> None:
    """The decisions' record taken away (the links decisions topic emptied, after the test above): the merged
    and split cases no longer follow, each named."""
    bootstrap = bus["bootstrap"]
    from tests.audit_helpers import rewrite_topic

    wait_settled(bootstrap)
    before = _cases(bootstrap)
    rewrite_topic(bootstrap, LINK_DECISIONS, lambda copies: [])
    done = subprocess.run([sys.executable, "-m", "leadbus.cli", "audit", "rebuild", "-b", bootstrap,
                           "--day-seconds", str(DAY_SECONDS)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    merged = [c for c, e in before.items() if e["merged_into"]]
    assert merged and any(c in done.stdout for c in merged), done.stdout
