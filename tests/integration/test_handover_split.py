"""A split after a handover started, on a real broker (issue #19), and its replay.

Intake, linking and handover run as workers. Two NCAC Shanghai reports about one pirate video shop (one phone: one
case) reach the threshold of 立案追诉标准 I2025 together (12万 of illegal gains), so the handover opens and the head
approves the transfer report. An analyst then splits the second report off (another shop): the handover stays with
the case it was opened on (same phase, same deadline: the transfer duty concerns the facts as assessed) and records
the split; the new case, 6万 of gains alone, is assessed on its own and opens its own handover; the agency then
transfers the original case as before. Replaying the recorded inputs through the same handlers gives the same cases
and the same handover steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from leadbus.audit.rebuild import DictState
from leadbus.avro import decode, packaged_catalog
from leadbus.cli import app
from leadbus.localbroker import KafkaCluster
from leadbus.models import CaseLead
from leadbus.processors.core.records import Record
from leadbus.processors.handover import HandoverHandler
from leadbus.processors.linking import LinkingHandler
from leadbus.producers import Publisher
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import (
    CASES,
    HANDOVER,
    HANDOVER_DECISIONS,
    LEADS_ACCEPTED,
    LEADS_REJECTED,
    LINK_DECISIONS,
    load_declarations,
)
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
runner = CliRunner()
WAN = 1_000_000


@pytest.fixture(scope="module")
def bus(tmp_path_factory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("handover-split")
    with KafkaCluster(1, work / "kafka") as kc:
        bootstrap = kc.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        key = work / "samr31.key"
        for args in (["keys", "generate", "--out", str(key)],
                     ["keys", "register", "SAMR.31", "--public-key", f"{key}.pub", "-b", bootstrap]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
        procs = [start_worker(bootstrap, work / "state", f"split-{stage}", work / "logs", stage=stage)
                 for stage in ("intake", "linking", "handover")]
        analysts = Publisher("SAMR", "31", bootstrap_servers=bootstrap,
                             sealer=SigningSealer("SAMR.31", load_private_key(key.read_bytes()), MemorySequences()))
        agency = Publisher("NCAC", "31", bootstrap_servers=bootstrap)
        try:
            yield {"bootstrap": bootstrap, "analysts": analysts, "agency": agency}
        finally:
            analysts.close()
            agency.close()
            for proc in procs:
                stop(proc)


def _lead(phone: str, gains: int) -> CaseLead:
    doc = next(iter(TrafficGenerator(seed=5).leads(1, datetime.now(UTC) - timedelta(hours=1),
                                                    timedelta(seconds=1)))).model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), category="FILM_TV", violation="ART_218", payment_accounts=[], waybills=[],
               publisher={"agency": "NCAC", "province": "31", "unit": None}, handling="OPEN", share_with=[],
               cross_border=False, countries=[], conduct_from=date(2025, 6, 1).isoformat(), conduct_to=None,
               prior_penalties=[],
               subject={"name": "上海某音像店", "kind": "INDIVIDUAL", "uscc": None, "id_number": None,
                        "phones": [phone],
                        "address": {"province": "31", "city": "上海市", "detail": "黄浦区福州路400号"}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": [], "icp_filings": []},
               facts={"illegal_gains_fen": gains})
    return CaseLead.model_validate(doc)


def _decoded(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, topic)]


def _steps(bootstrap: str, case_id: str) -> list[dict[str, Any]]:
    return sorted((s for s in _decoded(bootstrap, HANDOVER) if s["case_id"] == case_id), key=lambda s: s["seq"])


def _case_of(bootstrap: str, lead_id: str) -> str | None:
    """The case the lead is in now: the case version written last that names it (partitions read one by one)."""
    versions = [(m.timestamp()[1], decode(CATALOG, m.value())[1]) for m in read_all(bootstrap, CASES)]
    current: dict[str, tuple[int, dict[str, Any]]] = {}
    for at, case in versions:
        if case["case_id"] not in current or case["version"] > current[case["case_id"]][1]["version"]:
            current[case["case_id"]] = (at, case)
    found = sorted((at, c["case_id"]) for at, c in current.values() if lead_id in c["members"] and not c["merged_into"])
    return found[-1][1] if found else None


def _handover_decision(case_id: str, kind: str, role: str) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "case_id": case_id, "kind": kind, "reasons": "",
            "decided_at": datetime.now(UTC) - timedelta(seconds=2), "documents": [],
            "actor": {"agency": "NCAC", "province": "31", "unit": None, "role": role}}


def test_a_split_after_the_head_approved_leaves_the_duty_and_replays_the_same(bus) -> None:
    bootstrap, agency = bus["bootstrap"], bus["agency"]
    first, second = _lead("13812345670", 6 * WAN), _lead("13812345670", 6 * WAN)
    agency.wait([agency.publish(first)])
    wait_until(lambda: _case_of(bootstrap, first.lead_id), 180, "the first report's case")
    agency.wait([agency.publish(second)])
    wait_until(lambda: _case_of(bootstrap, second.lead_id) == _case_of(bootstrap, first.lead_id), 120,
               "one case for both reports")
    case_id = str(_case_of(bootstrap, first.lead_id))
    wait_until(lambda: _steps(bootstrap, case_id), 120, "the handover to open on 12万 of gains")
    agency.wait([agency.publish_decision(_handover_decision(case_id, "HEAD_APPROVE", "HEAD"))])
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["to_phase"] == "APPROVED", 120, "the head's approval")
    approved = _steps(bootstrap, case_id)[-1]

    split = {"decision_id": str(uuid.uuid4()), "action": "SPLIT", "case_a": case_id, "case_b": None,
             "lead_ids": [second.lead_id], "suggestion_id": None, "reason": "第二份报告是同一电话的另一家店",
             "analyst": {"agency": "SAMR", "province": "31", "user": "li.na", "role": "ANALYST"},
             "decided_at": datetime.now(UTC) - timedelta(seconds=2)}
    bus["analysts"].wait([bus["analysts"].publish_link_decision(split)])
    wait_until(lambda: _case_of(bootstrap, second.lead_id) not in (None, case_id), 120, "the split")
    new = str(_case_of(bootstrap, second.lead_id))
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["decision"] == "SPLIT", 120, "the split on the handover")
    noted = _steps(bootstrap, case_id)[-1]
    assert (noted["to_phase"], noted["due_at"], noted["next_action"]) == (
        "APPROVED", approved["due_at"], approved["next_action"]), "the duty and its clock stay"
    assert second.lead_id in noted["reasons"] and new in noted["reasons"] and noted["decision_id"] == split[
        "decision_id"]
    wait_until(lambda: _steps(bootstrap, new), 120, "the new case's own assessment")
    assert [(s["event"], s["to_phase"]) for s in _steps(bootstrap, new)] == [("OPENED", "ASSESSED")]

    agency.wait([agency.publish_decision(_handover_decision(case_id, "TRANSFER", "OFFICER"))])
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["to_phase"] == "TRANSFERRED", 120, "the transfer")
    steps = _steps(bootstrap, case_id)
    assert [s["decision"] for s in steps] == [None, "HEAD_APPROVE", "SPLIT", "TRANSFER"]
    assert [s["seq"] for s in steps] == [1, 2, 3, 4]
    assert not _decoded(bootstrap, LEADS_REJECTED)

    # Replay: the recorded inputs through the same handlers give the same cases and the same handover steps.
    cases = _replay_cases(bootstrap)
    recorded = [_case_key(c) for c in _decoded(bootstrap, CASES)]
    assert sorted(cases) == sorted(recorded)  # partitions are read one after another: compare as sets of versions
    # each case's steps in the same order; steps of different cases interleave as the stage's batches fell
    assert _by_case(_replay_handover(bootstrap)) == _by_case([_step_key(s) for s in _decoded(bootstrap, HANDOVER)])


def _case_key(case: dict[str, Any]) -> tuple[Any, ...]:
    history = [(h["action"], h["decision_id"], tuple(h["leads"]), h["split_from"], h["split_to"])
               for h in case["link_history"]]
    return case["case_id"], case["version"], tuple(case["members"]), case["merged_into"], tuple(history)


def _by_case(steps: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for step in steps:
        grouped.setdefault(dict(step)["case_id"], []).append(step)
    return grouped


def _step_key(step: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((k, v) for k, v in sorted(step.items()) if k != "recorded_at")


def _records(bootstrap: str, *topics: str) -> list[Record]:
    """The topics' records in the order the stage met them (by log append time across topics)."""
    found = [(m.timestamp()[1], t, m) for t in topics for m in read_all(bootstrap, t)]
    return [Record(t, m.partition(), m.offset(), m.key(), m.value())
            for _, t, m in sorted(found, key=lambda x: (x[0], x[1] != topics[0], x[2].offset()))]


def _replay_cases(bootstrap: str) -> list[tuple[Any, ...]]:
    handler, state, out = LinkingHandler(CATALOG), DictState(), []
    for record in _records(bootstrap, LEADS_ACCEPTED, LINK_DECISIONS):
        result = handler.handle(record, state, datetime.now(UTC))
        state.apply(result.state)
        out += [_case_key(decode(CATALOG, o.value)[1]) for o in result.outputs if o.topic == CASES]
    return out


def _replay_handover(bootstrap: str) -> list[tuple[Any, ...]]:
    handler, state, out = HandoverHandler(CATALOG), DictState(), []
    for record in _records(bootstrap, CASES, HANDOVER_DECISIONS):
        now = decode(CATALOG, record.value)[1].get("updated_at") or datetime.now(UTC)
        result = handler.handle(record, state, now)
        state.apply(result.state)
        out += [_step_key(decode(CATALOG, o.value)[1]) for o in result.outputs if o.topic == HANDOVER]
    return out
