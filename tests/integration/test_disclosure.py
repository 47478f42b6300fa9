"""Public disclosure on a real broker (issue #18): a day of simulated leads becomes cases (real intake and linking);
closing steps for most of them (standing in for the handover stage's) make the disclosure stage publish their
anonymised records; the export writes JSON and CSV. No resident ID, phone, account number or natural person's
name appears in the feed or the export; an enterprise is named only while a listing names it; the statistics
add up to the closed cases."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.cli import app
from leadbus.processors.blacklist import entry_record
from leadbus.processors.core.blacklist import Decision, Entry, decide, propose
from leadbus.processors.core.disclosure import ip_rights, subject_type
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import BLACKLIST, CASES, DISCLOSURE, HANDOVER
from tests.kafka_helpers import latest_records, produce, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
runner = CliRunner()
STEP_SCHEMA = CATALOG.latest("cn.leadbus.HandoverStep")
ENTRY_SCHEMA = CATALOG.latest("cn.leadbus.BlacklistEntry")
LEADS = 240


def _closing_step(case_id: str, phase: str, at: datetime) -> bytes:
    return encode(STEP_SCHEMA, {
        "case_id": case_id, "seq": 9, "event": "DECISION", "from_phase": "FILED", "to_phase": phase, "at": at,
        "actor_agency": "SAMR", "actor_province": "33", "actor_role": "OFFICER", "decision": "MATERIALS_HANDED",
        "decision_id": None, "reasons": "", "due_at": None, "next_action": None, "next_actor": None, "rule": None,
        "late": False, "escalated_to": None, "assessment": "", "recorded_at": at})


def _latest_cases(bootstrap: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_all(bootstrap, CASES):
        case = decode(CATALOG, msg.value())[1]
        if case["case_id"] not in latest or case["version"] >= latest[case["case_id"]]["version"]:
            latest[case["case_id"]] = case
    return latest


def _feed(bootstrap: str) -> dict[str, dict[str, Any]]:
    return latest_records(bootstrap, DISCLOSURE, "disclosure_id")


def test_a_day_of_traffic_disclosed_without_personal_data(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    start = datetime.now(UTC) - timedelta(days=1)
    leads = list(TrafficGenerator(seed=1818).leads(LEADS, start, timedelta(days=1) / LEADS))
    secrets: set[str] = set()
    for lead in leads:
        subject = lead.subject
        secrets.update(subject.phones)
        secrets.update(lead.payment_accounts)
        if subject.id_number:
            secrets.add(subject.id_number)
        if str(subject.kind) == "INDIVIDUAL":
            secrets.add(subject.name)
    logs = tmp_path / "logs"
    workers = [start_worker(bootstrap, tmp_path / "intake", "intake-1", logs),
               start_worker(bootstrap, tmp_path / "linking", "linking-1", logs, stage="linking"),
               start_worker(bootstrap, tmp_path / "disclosure", "disclosure-1", logs, stage="disclosure")]
    try:
        publishers: dict[tuple[str, str], Publisher] = {}
        pending = []
        for lead in leads:
            pair = (str(lead.publisher.agency), str(lead.publisher.province))
            if pair not in publishers:
                publishers[pair] = Publisher(*pair, bootstrap_servers=bootstrap)
            pending.append((publishers[pair], publishers[pair].publish(lead)))
        for pub, _ in pending:
            pub.flush()
        for pub in publishers.values():
            pub.close()

        def members() -> int:
            return sum(len(c["members"]) for c in _latest_cases(bootstrap).values() if c["merged_into"] is None)

        wait_until(lambda: members() >= LEADS * 0.9, 180, "the day's leads to become cases", interval=1.0)
        cases = {k: c for k, c in _latest_cases(bootstrap).items() if c["merged_into"] is None}
        for case in cases.values():  # the cases' own personal data, in the normal forms linking keeps
            secrets.update(i["value"] for i in case["identifiers"] if i["kind"] in ("rid", "phone", "acct"))
            if subject_type(f"{i['kind']}:{i['value']}" for i in case["identifiers"]) != "ENTERPRISE":
                secrets.add(case["suspect_name"])
        people = {c["suspect_name"] for c in cases.values() if any(i["kind"] == "rid" for i in c["identifiers"])}
        assert len(secrets) > LEADS and people  # the traffic does carry personal data to leak
        rng = random.Random(18)
        closing = {case_id: rng.choice(["COMPLETED", "CLOSED_NOT_FILED", "RETURN_ANSWERED"])
                   for case_id in sorted(cases) if rng.random() < 0.7}
        # an enterprise listed by a public decision: its name may appear, and only while it is listed
        enterprise = next(c for k, c in sorted(cases.items()) if k in closing and c["handling"] == "OPEN" and any(
            i["kind"] == "uscc" for i in c["identifiers"]))
        ids = [f"{i['kind']}:{i['value']}" for i in enterprise["identifiers"]]
        proposal = propose(None, enterprise["case_id"], ids, "FILED", start)
        assert proposal is not None
        listed = decide(proposal, Decision("00000000-0000-4000-8000-000000000018", proposal.entry_id, "LIST", "SAMR",
                                           start + timedelta(hours=1)))
        assert isinstance(listed, Entry)
        entry = encode(ENTRY_SCHEMA, entry_record(listed, datetime.now(UTC)))
        produce(bootstrap, [(BLACKLIST, listed.entry_id, entry)])
        produce(bootstrap, [(HANDOVER, case_id, _closing_step(case_id, phase, datetime.now(UTC)))
                             for case_id, phase in closing.items()])
        wait_until(lambda: len(_feed(bootstrap)) >= len(closing), 120, "every closed case disclosed", interval=1.0)
        assert len(_feed(bootstrap)) == len(closing)
        wait_until(lambda: any(r["enterprise_name"] for r in _feed(bootstrap).values()), 60, "the listed name")
        named = [r for r in _feed(bootstrap).values() if r["enterprise_name"]]
        assert {r["enterprise_name"] for r in named} == {enterprise["suspect_name"]}

        out = tmp_path / "export"
        result = runner.invoke(app, ["disclosure-export", "--out", str(out), "-b", bootstrap])
        assert result.exit_code == 0, result.output
        texts = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
        assert set(texts) == {"disclosure.json", "disclosure.csv", "statistics.json", "statistics.csv",
                              "statistics.html"}
        feed_text = "\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in _feed(bootstrap).values())
        found = {s for s in secrets if s and any(s in t for t in [feed_text, *texts.values()])}
        assert not found, f"personal data in the public feed or export: {sorted(found)[:5]}"
        assert not any(case_id in feed_text or case_id in texts["disclosure.csv"] for case_id in cases)

        exported = json.loads(texts["disclosure.json"])
        stats = json.loads(texts["statistics.json"])
        assert len(exported) == len(closing) == sum(row["cases"] for row in stats)
        expected = Counter()
        for case_id in closing:
            case = cases[case_id]
            expected[(case["suspect_province"] or "00", ip_rights(case["violations"])[0],
                      (sorted(case["categories"]) or ["OTHER"])[0])] += 1
        got = Counter()
        for row in stats:
            got[(row["province"], row["ip_right"], row["goods_category"])] += row["cases"]
        assert got == expected
        assert texts["statistics.csv"].splitlines()[0] == "period,province,ip_right,goods_category,cases"
        assert len(texts["disclosure.csv"].splitlines()) == len(closing) + 1

        # delisting takes the name out again
        delisted = decide(listed, Decision("00000000-0000-4000-8000-000000000019", listed.entry_id, "DELIST",
                                           "SAMR", start + timedelta(hours=2)))
        assert isinstance(delisted, Entry)
        produce(bootstrap, [(BLACKLIST, listed.entry_id, encode(ENTRY_SCHEMA, entry_record(delisted,
                                                                                             datetime.now(UTC))))])
        wait_until(lambda: not any(r["enterprise_name"] for r in _feed(bootstrap).values()), 60, "the name removed")
    finally:
        for proc in workers:
            stop(proc)
