"""Handover on a real broker: an above-threshold case is assessed, approved, transferred and filed with
the right due times; in a second case nobody acts, and the breach with its escalation appears once,
also across a restart of the handover worker (that part in `make test-faults`: tests/faults/test_handover_breach.py)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadbus.avro import decode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.deadlines import CST
from leadbus.processors.core.thresholds import assess_case, should_transfer
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import HANDOVER, LEADS_REJECTED
from tests.kafka_helpers import live_case_of, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
# A statutory day passes in 20 real seconds: 24 hours to transfer are 20 s, 3 days 60-80 s.
TIME_SCALE = "4320"


def _above_threshold(count: int) -> list[CaseLead]:
    """Simulated leads of administrative agencies whose facts meet a criminal threshold, new suspects each."""
    gen = TrafficGenerator(seed=77, same_suspect_share=0.0)
    start = datetime.now(UTC) - timedelta(minutes=10)
    found: list[CaseLead] = []
    for lead in gen.leads(2000, start, timedelta(milliseconds=10)):
        if lead.publisher.agency in {"MPS", "SPP", "SPC"}:
            continue
        facts = lead.facts.model_dump()
        if should_transfer(assess_case([str(lead.violation)], facts, lead.reported_at.date())):
            found.append(lead)
            if len(found) == count:
                return found
    raise AssertionError("the simulator made too few above-threshold leads")


def _steps(bootstrap: str, case_id: str) -> list[dict]:
    steps = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, HANDOVER)]
    return sorted((s for s in steps if s["case_id"] == case_id), key=lambda s: s["seq"])


def _end_of_day(at: datetime, days: int) -> datetime:
    day = at.astimezone(CST).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999000, tzinfo=CST)


def test_handover_steps_due_times_and_refusals(cluster, tmp_path: Path) -> None:
    """The breach of the second case, once across a restart, waits three statutory days (~75 s): it is in
    `make test-faults` (tests/faults/test_handover_breach.py); `make test` sees breaches in the audit day's traffic."""
    run_handover(cluster.bootstrap_servers, tmp_path, breach=False)


def run_handover(bootstrap: str, tmp_path: Path, *, breach: bool) -> None:
    """Case 1 assessed, approved, transferred and filed with the right due times; wrong steps refused; with `breach`,
    case 2 (nobody acts) breaches its deadline once, also across a restart of the handover worker."""
    first, second = _above_threshold(2)
    logs, state = tmp_path / "logs", tmp_path / "state"
    workers = {name: start_worker(bootstrap, state, f"{name}-1", logs, stage=name,
                                  extra=["--time-scale", TIME_SCALE] if name == "handover" else [])
               for name in ("intake", "linking", "handover")}
    try:
        for lead in (first, second):
            pub = Publisher(lead.publisher.agency, lead.publisher.province, bootstrap_servers=bootstrap)
            pub.wait([pub.publish(lead)])
            pub.close()
        wait_until(lambda: live_case_of(bootstrap, first.lead_id) and live_case_of(bootstrap, second.lead_id), 90,
                   "both leads to become cases", interval=0.5)
        case1, case2 = live_case_of(bootstrap, first.lead_id), live_case_of(bootstrap, second.lead_id)
        assert case1 and case2 and case1 != case2
        wait_until(lambda: _steps(bootstrap, case1) and _steps(bootstrap, case2), 60, "both handovers to open",
                   interval=0.5)
        opened = _steps(bootstrap, case1)[0]
        assert opened["event"] == "OPENED" and opened["to_phase"] == "ASSESSED"
        assert opened["due_at"] == _end_of_day(opened["at"], 3)
        assert opened["rule"] == "R310 Art.5(2)" and opened["assessment"]

        agency, province = first.publisher.agency, first.publisher.province

        def decide(actor: str, actor_province: str, role: str, kind: str, case: str = case1) -> datetime:
            at = datetime.now(UTC)
            pub = Publisher(actor, actor_province, bootstrap_servers=bootstrap)
            pub.wait([pub.publish_decision({
                "decision_id": str(uuid.uuid4()), "case_id": case, "kind": kind, "decided_at": at,
                "actor": {"agency": actor, "province": actor_province, "role": role}, "reasons": "理由"})])
            pub.close()
            return at

        def step_count(n: int) -> bool:
            return len(_steps(bootstrap, case1)) >= n

        approved_at = decide(agency, province, "HEAD", "HEAD_APPROVE")
        wait_until(lambda: step_count(2), 30, "approval", interval=0.3)
        transferred_at = decide(agency, province, "OFFICER", "TRANSFER")
        wait_until(lambda: step_count(3), 30, "transfer", interval=0.3)
        filed_at = decide("MPS", province, "POLICE", "POLICE_FILE")
        wait_until(lambda: step_count(4), 30, "filing", interval=0.3)
        decide(agency, province, "OFFICER", "MATERIALS_HANDED")
        wait_until(lambda: step_count(5), 30, "materials", interval=0.3)

        steps = _steps(bootstrap, case1)
        assert [s["to_phase"] for s in steps] == ["ASSESSED", "APPROVED", "TRANSFERRED", "FILED", "COMPLETED"]
        assert [s["event"] for s in steps] == ["OPENED"] + ["DECISION"] * 4
        ms = timedelta(milliseconds=1)
        assert abs(steps[1]["due_at"] - (approved_at + timedelta(hours=24))) <= ms
        assert steps[2]["due_at"] == _end_of_day(transferred_at, 3) and steps[2]["rule"] == "R310 Art.8"
        assert steps[3]["due_at"] == _end_of_day(filed_at, 3) and steps[3]["rule"] == "R310 Art.12"
        assert steps[3]["actor_agency"] == "MPS" and steps[4]["due_at"] is None
        assert not any(s["late"] for s in steps)

        # Wrong steps are refused with a reason: the procuratorate cannot approve for the agency's head,
        # and nothing can be approved once the handover is complete.
        decide("SPP", second.publisher.province, "PROCURATOR", "HEAD_APPROVE", case=case2)
        decide(agency, province, "HEAD", "HEAD_APPROVE")

        def refusals() -> list[str]:
            return [decode(CATALOG, m.value())[1]["reason"] for m in read_all(bootstrap, LEADS_REJECTED)]

        wait_until(lambda: len(refusals()) >= 2, 30, "two refusals", interval=0.5)
        assert sorted(refusals()) == ["HANDOVER_ILLEGAL_STEP", "HANDOVER_WRONG_ACTOR"]

        if not breach:
            assert all(w.poll() is None for w in workers.values())
            return
        # Case 2: nobody acts. Its 3-day deadline passes on the accelerated clock.
        def breaches() -> list[dict]:
            return [s for s in _steps(bootstrap, case2) if s["event"] == "DEADLINE_BREACHED"]

        wait_until(lambda: breaches(), 150, "the breach of case 2", interval=1.0)
        workers["handover"].kill()  # and a restart must not breach again
        workers["handover"].wait(10)
        workers["handover"] = start_worker(bootstrap, state, "handover-1", logs, stage="handover",
                                           extra=["--time-scale", TIME_SCALE])
        wait_until(lambda: len(read_all(bootstrap, HANDOVER)) > 0, 30, "restart")
        time.sleep(15)
        found = breaches()
        assert len(found) == 1
        assert found[0]["escalated_to"] == f"SPP/{second.publisher.province}"
        assert found[0]["rule"] == "R310 Art.5(2)"
        assert len([s for s in _steps(bootstrap, case1) if s["event"] == "DEADLINE_BREACHED"]) == 0
        assert all(w.poll() is None for w in workers.values())
    finally:
        for worker in workers.values():
            stop(worker)
