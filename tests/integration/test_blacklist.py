"""The blacklist on a real broker (issue #18): the stage proposes on a filed criminal case, lists only on an
agency's signed decision through intake, refuses a listing without a final decision, expires and delists,
survives losing its local state, and a replay of its inputs gives the same blacklist. Then the platform check
API over real HTTP: each identifier kind, unknown sellers, the minimal signed answer, the rate limit, the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from leadbus.access_log import read_access_log
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.cli import app
from leadbus.identifiers import make_resident_id, make_uscc
from leadbus.processors.blacklist import BlacklistHandler, entry_record
from leadbus.processors.core.blacklist import Decision, Entry, decide, entry_id_of, propose
from leadbus.processors.core.records import Record
from leadbus.processors.core.seller_check import verify_answer
from leadbus.producers import Publisher
from leadbus.producers.gateway.auth import add_token
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.sinks.platform_check import TOKENS_OWNER, create_app
from leadbus.topics import BLACKLIST, BLACKLIST_DECISIONS, CASES, HANDOVER, LEADS_REJECTED
from tests.kafka_helpers import latest_records, produce, read_all
from tests.memory_state import MemoryState
from tests.processes import start_worker, stop, wait_until
from tests.servers import AppServer

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
runner = CliRunner()
CASE_SCHEMA = CATALOG.latest("cn.leadbus.CaseUpdated")
STEP_SCHEMA = CATALOG.latest("cn.leadbus.HandoverStep")
ENTRY_SCHEMA = CATALOG.latest("cn.leadbus.BlacklistEntry")


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def case_record(case_id: str, identifiers: list[str], name: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "case_id": case_id, "version": 1, "members": [f"lead-{case_id}"],
        "reporters": [{"agency": "SAMR", "province": "33"}],
        "identifiers": [{"kind": i.split(":", 1)[0], "value": i.split(":", 1)[1]} for i in identifiers],
        "suspect_name": name, "suspect_province": "33", "categories": ["CLOTHING"], "violations": ["ART_213"],
        "facts": {}, "first_reported_at": at, "last_reported_at": at, "handling": "OPEN", "share_with": [],
        "cross_border": False, "countries": [], "merged_from": [], "merged_into": None, "updated_at": at,
        "conduct_from": None, "conduct_to": None, "prior_penalties": [], "police_measures_needed": False, **extra}


def step_record(case_id: str, seq: int, phase: str, at: datetime) -> dict[str, Any]:
    return {"case_id": case_id, "seq": seq, "event": "DECISION", "from_phase": None, "to_phase": phase, "at": at,
            "actor_agency": "MPS", "actor_province": "33", "actor_role": "POLICE", "decision": "POLICE_FILE",
            "decision_id": str(uuid.uuid4()), "reasons": "", "due_at": None, "next_action": None, "next_actor": None,
            "rule": None, "late": False, "escalated_to": None, "assessment": "", "recorded_at": at}


def _entries(bootstrap: str) -> dict[str, dict[str, Any]]:
    return latest_records(bootstrap, BLACKLIST, "entry_id")


def _rejected(bootstrap: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_REJECTED)]


def _without_recorded_at(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "recorded_at"}


def test_proposal_listing_refusal_expiry_delisting_restart_and_replay(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    now = datetime.now(UTC).replace(microsecond=0)
    key = tmp_path / "samr33.key"
    _cli("keys", "generate", "--out", str(key))
    _cli("keys", "register", "SAMR.33", "--public-key", str(key) + ".pub", "-b", bootstrap)
    sealer = SigningSealer("SAMR.33", load_private_key(key.read_bytes()), MemorySequences())
    publisher = Publisher("SAMR", "33", bootstrap_servers=bootstrap, sealer=sealer)

    uscc_a = f"uscc:{make_uscc('91', '330100', 'M000100Y4')}"
    ids_a = [uscc_a, "shop:taobao:880001", "phone:+8613800138000"]
    ids_b = [f"uscc:{make_uscc('91', '330200', 'M000200Y9')}"]  # only opened, never filed
    ids_c = [f"rid:{make_resident_id('330106', datetime(1980, 1, 1).date(), 12)}"]  # filed two days ago
    a, b, c = "CASE-00000000000a0001", "CASE-00000000000b0002", "CASE-00000000000c0003"
    produce(bootstrap, [
        (CASES, a, encode(CASE_SCHEMA, case_record(a, ids_a, "杭州某某服饰有限公司", now - timedelta(days=3)))),
        (CASES, b, encode(CASE_SCHEMA, case_record(b, ids_b, "宁波某某贸易有限公司", now - timedelta(days=3)))),
        (HANDOVER, c, encode(STEP_SCHEMA, step_record(c, 4, "FILED", now - timedelta(days=2)))),  # before its case
        (CASES, c, encode(CASE_SCHEMA, case_record(c, ids_c, "王某", now - timedelta(days=3)))),
        (HANDOVER, a, encode(STEP_SCHEMA, step_record(a, 4, "FILED", now - timedelta(minutes=5)))),
        (HANDOVER, b, encode(STEP_SCHEMA, step_record(b, 1, "ASSESSED", now - timedelta(minutes=5)))),
    ])
    entry_a, entry_b, entry_c = entry_id_of(ids_a), entry_id_of(ids_b), entry_id_of(ids_c)
    assert entry_a and entry_b and entry_c
    logs, state = tmp_path / "logs", tmp_path / "state"
    workers = {"intake": start_worker(bootstrap, tmp_path / "intake-state", "intake-1", logs),
               "blacklist": start_worker(bootstrap, state, "blacklist-1", logs, stage="blacklist")}

    def decide_(entry_id: str, kind: str, at: datetime, period: int | None = None) -> str:
        decision_id = str(uuid.uuid4())
        publisher.wait([publisher.publish_blacklist_decision({
            "decision_id": decision_id, "entry_id": entry_id, "kind": kind, "decided_at": at,
            "actor": {"agency": "SAMR", "province": "33"}, "period_days": period, "reasons": "依法认定"})])
        return decision_id

    def status(entry_id: str) -> str | None:
        entry = _entries(bootstrap).get(entry_id)
        return str(entry["status"]) if entry else None

    try:
        wait_until(lambda: status(entry_a) == "PROPOSED" and status(entry_c) == "PROPOSED", 120,
                   "proposals for the filed cases", interval=0.5)
        entries = _entries(bootstrap)
        assert entry_b not in entries  # ASSESSED is no final decision
        proposed = entries[entry_a]
        assert proposed["identifiers"] == [uscc_a, "shop:taobao:880001"] and proposed["cases"] == [a]
        assert proposed["reason"] == "CRIMINAL_CASE_FILED" and proposed["enterprise_name"] == "杭州某某服饰有限公司"
        assert entries[entry_c]["enterprise_name"] is None  # a natural person's name never goes on the entry

        decide_(entry_b, "LIST", now)  # no final decision behind it
        listed_id = decide_(entry_a, "LIST", now)
        decide_(entry_c, "LIST", now - timedelta(days=1, seconds=30), period=1)  # its period is already over
        wait_until(lambda: status(entry_a) == "LISTED" and status(entry_c) == "EXPIRED", 120,
                   "A listed, C listed then expired", interval=0.5)
        listed = _entries(bootstrap)[entry_a]
        assert listed["deciding_agency"] == "SAMR" and listed["decision_id"] == listed_id
        assert listed["listed_until"] == now + timedelta(days=3 * 365)
        expired = _entries(bootstrap)[entry_c]
        assert [h["what"] for h in expired["history"]] == ["PROPOSED", "LISTED", "EXPIRED"]
        wait_until(lambda: any(r["reason"] == "BLACKLIST_NO_FINAL_DECISION" for r in _rejected(bootstrap)), 60,
                   "the listing without a final decision refused", interval=0.5)
        refusal = next(r for r in _rejected(bootstrap) if r["reason"] == "BLACKLIST_NO_FINAL_DECISION")
        assert refusal["source"]["topic"] == BLACKLIST_DECISIONS
        assert entry_b not in _entries(bootstrap)
        decisions = [m for m in read_all(bootstrap, BLACKLIST_DECISIONS)]
        assert any(dict(m.headers() or [])["leadbus-publisher"] == b"SAMR.33" for m in decisions)  # signed, kept

        # the blacklist worker loses its disk: its state comes back from the changelog
        stop(workers["blacklist"])
        shutil.rmtree(state)
        workers["blacklist"] = start_worker(bootstrap, state, "blacklist-2", logs, stage="blacklist")
        decide_(entry_a, "DELIST", now + timedelta(seconds=1))
        wait_until(lambda: status(entry_a) == "DELISTED", 120, "A delisted after the restart", interval=0.5)
        delisted = _entries(bootstrap)[entry_a]
        assert [h["what"] for h in delisted["history"]] == ["PROPOSED", "LISTED", "DELISTED"]
        assert delisted["cases"] == [a] and delisted["listed_at"] == now
    finally:
        publisher.close()
        for proc in workers.values():
            stop(proc)

    # replay: the inputs folded again through the same handler give the same blacklist
    handler, memory = BlacklistHandler(), MemoryState()
    inputs = [(m.timestamp()[1], m) for topic in (CASES, HANDOVER, BLACKLIST_DECISIONS)
              for m in read_all(bootstrap, topic)]
    latest: dict[str, dict[str, Any]] = {}
    for _, msg in sorted(inputs, key=lambda pair: pair[0]):
        record = Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), (), msg.timestamp()[1])
        result = handler.handle(record, memory, datetime.now(UTC))
        memory.apply(result)
        ticked = handler.tick(memory, datetime.now(UTC))
        memory.apply(ticked)
        for out in [*result.outputs, *ticked.outputs]:
            if out.topic == BLACKLIST:
                value = decode(CATALOG, out.value)[1]
                latest[value["entry_id"]] = value
    assert {k: _without_recorded_at(v) for k, v in latest.items()} == \
        {k: _without_recorded_at(v) for k, v in _entries(bootstrap).items()}


# -- the platform check API ------------------------------------------------------------------------

def _listed(ids: list[str], case_id: str, at: datetime) -> Entry:
    entry = propose(None, case_id, ids, "FILED", at)
    assert entry is not None
    listed = decide(entry, Decision(str(uuid.uuid4()), entry.entry_id, "LIST", "SAMR", at + timedelta(hours=1)))
    assert isinstance(listed, Entry)
    return listed


def test_platform_check_api(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    at = datetime.now(UTC) - timedelta(days=1)
    uscc = make_uscc("91", "440300", "M000300Y3")
    rid = make_resident_id("440305", datetime(1975, 5, 5).date(), 21)
    open_uscc = make_uscc("91", "440100", "M000400Y8")
    listed_company = _listed([f"uscc:{uscc}", "shop:jd:7700123", "domain:fake-brand-outlet.cn"],
                             "CASE-0000000000d00001", at)
    listed_person = _listed([f"rid:{rid}"], "CASE-0000000000d00002", at)
    delisted = _listed(["domain:was-listed.cn"], "CASE-0000000000d00003", at)
    gone = decide(delisted, Decision(str(uuid.uuid4()), delisted.entry_id, "DELIST", "SAMR", at + timedelta(hours=2)))
    assert isinstance(gone, Entry)
    now = datetime.now(UTC)
    produce(bootstrap, [(BLACKLIST, e.entry_id, encode(ENTRY_SCHEMA, entry_record(e, now)))
                         for e in (listed_company, listed_person, delisted, gone)] + [
        (CASES, "CASE-0000000000d00009", encode(CASE_SCHEMA, case_record(
            "CASE-0000000000d00009", [f"uscc:{open_uscc}", "phone:+8613900139000"], "广州某某电子商务有限公司", at))),
        (CASES, "CASE-0000000000d00010", encode(CASE_SCHEMA, case_record(
            "CASE-0000000000d00010", ["domain:closed-case.cn"], "某某", at))),
        (HANDOVER, "CASE-0000000000d00010", encode(STEP_SCHEMA, step_record(
            "CASE-0000000000d00010", 5, "CLOSED_NOT_FILED", at + timedelta(hours=1)))),
    ])
    key_path = tmp_path / "bus.key"
    _cli("keys", "generate", "--out", str(key_path))
    key = load_private_key(key_path.read_bytes())
    tokens, audit = tmp_path / "tokens.json", tmp_path / "audit.jsonl"
    taobao, jd = add_token(tokens, "taobao", TOKENS_OWNER), add_token(tokens, "jd", TOKENS_OWNER)
    pdd = add_token(tokens, "pinduoduo", TOKENS_OWNER)
    application = create_app(bootstrap, key, tokens, audit, rate=2.0, burst=30.0)
    with AppServer(application) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_until(lambda: client.get("/healthz").json()["caught_up"], 60, "the index to catch up", interval=0.2)
        public = base64.b64decode(client.get("/v1/key").json()["public_key"])

        def ask(query: dict[str, Any], token: str = taobao) -> httpx.Response:
            return client.post("/v1/check", json=query, headers={"Authorization": f"Bearer {token}"})

        # the entries are read asynchronously: wait until the first listed one is visible
        wait_until(lambda: ask({"kind": "uscc", "value": uscc}).json().get("blacklisted"), 60, "the listing",
                   interval=0.3)
        queries = [
            ({"kind": "uscc", "value": uscc.lower()}, True, False),
            ({"kind": "rid", "value": rid}, True, False),
            ({"kind": "shop", "value": "7700123", "platform": "jd"}, True, False),
            ({"kind": "domain", "value": "https://www.fake-brand-outlet.cn/item/1"}, True, False),
            ({"kind": "domain", "value": "was-listed.cn"}, False, False),  # delisted
            ({"kind": "uscc", "value": open_uscc}, False, True),  # under an open case
            ({"kind": "domain", "value": "closed-case.cn"}, False, False),  # its case is closed
            ({"kind": "uscc", "value": make_uscc("91", "110105", "M000500Y2")}, False, False),  # unknown
            ({"kind": "shop", "value": "7700123", "platform": "taobao"}, False, False),  # same id, other platform
        ]
        answers = []
        for query, blacklisted, open_case in queries:
            resp = ask(query)
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            answers.append(answer)
            assert set(answer) == {"answer_id", "query", "blacklisted", "open_case", "checked_at", "key_id",
                                   "algorithm", "signature"}, answer
            assert answer["query"] == query  # the query as sent, nothing more
            assert (answer["blacklisted"], answer["open_case"]) == (blacklisted, open_case), query
            assert verify_answer(answer, public)
            text = resp.text
            for secret in ("CASE-", "杭州", "广州", listed_company.entry_id, "+8613900139000", "SAMR"):
                assert secret not in text
        forged = {**answers[0], "blacklisted": False}
        assert not verify_answer(forged, public)

        for bad in ({"kind": "rid", "value": "110105199001011234"}, {"kind": "phone", "value": "13800138000"},
                    {"kind": "shop", "value": "1"}, {"kind": "uscc", "value": "x" * 5000},
                    {"kind": "uscc", "value": uscc, "name": "extra"}, ["not", "an", "object"]):
            resp = client.post("/v1/check", json=bad, headers={"Authorization": f"Bearer {jd}"})
            assert resp.status_code in (413, 422), (bad, resp.text)
            assert "error" in resp.json() and "blacklisted" not in resp.json()
        assert client.post("/v1/check", content=b"{not json", headers={"Authorization": f"Bearer {jd}"}
                           ).status_code == 422
        assert client.post("/v1/check", json=queries[0][0]).status_code == 401
        assert client.post("/v1/check", json=queries[0][0], headers={"Authorization": "Bearer lbt_nope"}
                           ).status_code == 401

        # the rate limit: a burst of 30 per platform, then 2 per second; jd's calls do not use taobao's allowance
        began_burst = time.monotonic()
        burst = [ask({"kind": "uscc", "value": uscc}) for _ in range(40)]
        spent = time.monotonic() - began_burst
        statuses = [resp.status_code for resp in burst]
        assert 429 in statuses
        # however slow the machine, never more than the bucket holds plus what refilled while asking
        assert statuses.count(200) <= 30 + 2 * spent + 1, (statuses, spent)
        limited = next(resp for resp in burst if resp.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1 and "blacklisted" not in limited.json()
        assert ask({"kind": "uscc", "value": uscc}, token=jd).status_code == 200

        # concurrent callers of one platform share its bucket: no race lets more through than it holds
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            burst_statuses = list(pool.map(lambda _: ask({"kind": "rid", "value": rid}, token=pdd).status_code,
                                           range(60)))
        elapsed = time.monotonic() - began
        assert set(burst_statuses) <= {200, 429}
        assert 0 < burst_statuses.count(200) <= 30 + 2 * elapsed + 1

    lines = read_access_log(audit)
    checks = [line for line in lines if line["event"] == "check"]
    answered = [line for line in checks if line["outcome"] == "ANSWERED"]
    assert {a["answer_id"] for a in answers} <= {line["answer_id"] for line in answered}
    assert sum(line["outcome"] == "RATE_LIMITED" for line in checks) >= 2
    assert sum(line["outcome"] == "UNAUTHENTICATED" for line in checks) == 2
    assert {line["platform"] for line in answered} == {"taobao", "jd", "pinduoduo"}
    total_calls = 1 + len(queries) + 6 + 1 + 2 + 40 + 1 + 60  # the wait's calls are extra, hence >=
    assert len(checks) >= total_calls
    raw = audit.read_text(encoding="utf-8")
    assert rid not in raw and uscc not in raw  # the audit log keeps digests of the values, not the values
    assert hashlib.sha256(rid.encode()).hexdigest()[:16] in raw
