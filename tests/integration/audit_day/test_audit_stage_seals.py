"""The bus's own records, sealed by the stages that write them, verified by `leadbus replay --verify` (issue #14).

A stretch of simulated traffic goes through the real stages as OS processes, each with its seal key
(`leadbus keys provision-stages` does what `tests.audit_helpers.stages` does: make and register them). After a
normal run a verified replay of `leadbus.cases`, `leadbus.handover`, a routed topic and `leadbus.leads.accepted`
passes. Then, as someone with administrative access could, derived records are altered with their version kept,
forged, dropped, swapped and replayed: each is caught with its topic, partition and offset, exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.stage_seals import (
    CHAIN_HEADER,
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    STAGE_SEAL_NAMES,
    StageSeal,
    StageSealer,
)
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED
from tests.audit_helpers import Copy, append, records_of, rewrite_topic

if TYPE_CHECKING:
    from tests.integration.audit_day.conftest import Day

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


@dataclass
class Recorded:
    bootstrap: str
    routed: str  # the routed topic with the most records


@pytest.fixture(scope="module")
def recorded(day: Day) -> Recorded:
    """The package's day (its tampering undone after each test)."""
    sizes = {t: len(copies) for t, copies in day.pristine.items() if t.startswith("leadbus.region.")}
    return Recorded(day.bootstrap, max(sizes, key=lambda t: sizes[t]))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadbus.cli", *args], capture_output=True, text=True, timeout=600)


def verify(bootstrap: str, topic: str, report: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    done = cli("replay", "--topic", topic, "--verify", "-b", bootstrap, "--report", str(report))
    return done, [f for f in json.loads(report.read_text())["findings"] if f["failure"]]


def at(found: list[dict[str, Any]], *checks: str) -> set[tuple[str, int, int]]:
    return {(f["topic"], f["partition"], f["offset"]) for f in found if f["check"] in checks}


def busiest(copies: list[Copy]) -> tuple[int, list[int]]:
    """The partition with most records, and the indexes of its records in `copies`."""
    counts: dict[int, list[int]] = {}
    for i, c in enumerate(copies):
        counts.setdefault(c.partition, []).append(i)
    partition = max(counts, key=lambda p: len(counts[p]))
    return partition, counts[partition]


def altered(copy: Copy) -> Copy:
    """The record's body with one free text changed, re-encoded with its own writer schema (its version kept)."""
    schema, event = decode(CATALOG, copy.value)
    paths: list[tuple[Any, Any]] = []

    def texts(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str) and k not in ("case_id", "lead_id") and len(v) > 3:
                    paths.append((node, k))
                texts(v)
        elif isinstance(node, list):
            for v in node:
                texts(v)

    texts(event)
    for node, k in paths:  # the first whose change still encodes (an enum's symbol reversed does not)
        before = node[k]
        node[k] = before + "篡改"
        try:
            return replace(copy, value=encode(schema, event))
        except Exception:  # noqa: BLE001 - not free text: try the next
            node[k] = before
    raise AssertionError("no text field to alter")


def test_a_normal_run_verifies_from_sealed_derived_topics(recorded: Recorded, tmp_path: Path) -> None:
    for topic in (CASES, HANDOVER, recorded.routed, LEADS_ACCEPTED):
        copies = records_of(recorded.bootstrap, topic)
        assert copies and all(any(n == CHAIN_HEADER for n, _ in c.headers) for c in copies), f"{topic} is sealed"
        signed = sum(1 for c in copies if any(n == SIGNATURE_HEADER for n, _ in c.headers))
        assert 0 < signed <= len(copies)
        done, found = verify(recorded.bootstrap, topic, tmp_path / "r.json")
        assert done.returncode == 0 and not found, done.stdout + done.stderr


def test_a_derived_record_altered_dropped_swapped_or_replayed_is_located(recorded: Recorded, tmp_path: Path) -> None:
    expected: dict[str, tuple[int, int]] = {}

    def tamper(copies: list[Copy]) -> list[Copy]:
        partition, idx = busiest(copies)
        assert len(idx) >= 30, "enough versions of cases in one partition"
        out = list(copies)
        out[idx[5]] = altered(out[idx[5]])  # a body altered, its version kept
        first = idx[0]
        swap_a, swap_b, again = idx[20], idx[21], idx[28]
        out[swap_a], out[swap_b] = out[swap_b], out[swap_a]
        out.insert(again + 1, out[again])  # replayed right after itself
        del out[idx[12]]  # dropped (before the others: their places move up by one)
        expected.update(altered=(partition, 5), dropped=(partition, 12), swapped=(partition, 19),
                        swapped_back=(partition, 20), replayed=(partition, 28))
        assert first == idx[0]
        return out

    rewrite_topic(recorded.bootstrap, CASES, tamper)
    done, found = verify(recorded.bootstrap, CASES, tmp_path / "cases.json")
    assert done.returncode == 1, done.stdout + done.stderr

    def place(name: str) -> tuple[str, int, int]:
        return (CASES, *expected[name])

    assert place("altered") in at(found, "STAGE_CHAIN_BROKEN", "STAGE_BAD_SIGNATURE"), found
    assert place("dropped") in at(found, "STAGE_SEQUENCE_GAP"), found
    assert place("swapped") in at(found, "STAGE_SEQUENCE_GAP"), found
    assert place("swapped_back") in at(found, "STAGE_SEQUENCE_REPLAYED"), found
    assert place("replayed") in at(found, "STAGE_SEQUENCE_REPLAYED"), found
    assert f"leadbus.cases[{expected['altered'][0]}]@5" in done.stdout


def test_forged_derived_records_are_located(recorded: Recorded, tmp_path: Path) -> None:
    bootstrap = recorded.bootstrap
    copies = records_of(bootstrap, HANDOVER)
    partition, idx = busiest(copies)
    last = copies[idx[-1]]
    seal = StageSeal.from_headers(last.headers)
    assert seal is not None and seal.signature is not None
    # The next number, linked to the real head, its body a step nobody took; no signature can be made for it.
    head = seal.link(HANDOVER, partition, last.key, last.value, last.headers)
    body = altered(last)
    chained = replace(body, headers=[
        *[(n, v) for n, v in last.headers if n not in (SEQUENCE_HEADER, PREV_HEADER, SIGNATURE_HEADER)],
        (SEQUENCE_HEADER, str(seal.sequence + 1).encode()), (PREV_HEADER, head)])
    append(bootstrap, HANDOVER, [chained])
    done, found = verify(bootstrap, HANDOVER, tmp_path / "h1.json")
    forged_at = max(c.offset for c in records_of(bootstrap, HANDOVER) if c.partition == partition)
    assert done.returncode == 1 and (HANDOVER, partition, forged_at) in at(found, "STAGE_UNSIGNED_TAIL"), found

    # A routed record signed as the routing stage with a key of the forger's making.
    routed = records_of(bootstrap, recorded.routed)
    sample = routed[-1]
    forger = StageSealer("LEADBUS-routing", Ed25519PrivateKey.generate(), "00000000deadbeef")
    plain = [(n, v) for n, v in sample.headers if n not in STAGE_SEAL_NAMES]
    headers = forger.seal([(recorded.routed, sample.partition, sample.key, altered(sample).value, plain)])[0]
    append(bootstrap, recorded.routed, [replace(altered(sample), headers=headers)])
    # and a routed record replayed: a copy of one written earlier
    append(bootstrap, recorded.routed, [routed[len(routed) // 2]])
    done, found = verify(bootstrap, recorded.routed, tmp_path / "r.json")
    assert done.returncode == 1
    now = records_of(bootstrap, recorded.routed)
    forged_at = next(c for c in now if (CHAIN_HEADER, b"00000000deadbeef") in c.headers)
    assert (recorded.routed, forged_at.partition, forged_at.offset) in at(found, "UNKNOWN_KEY"), found
    copy_partition = routed[len(routed) // 2].partition
    copy_at = max(c.offset for c in now if c.partition == copy_partition)
    assert (recorded.routed, copy_partition, copy_at) in at(found, "STAGE_SEQUENCE_REPLAYED"), found


def test_an_accepted_lead_altered_where_only_normalising_again_would_see_it_is_caught_by_its_seal(
        recorded: Recorded, tmp_path: Path) -> None:
    def alter_original(copies: list[Copy]) -> list[Copy]:
        out = list(copies)
        event = decode(CATALOG, out[7].value)[1]
        event["original"] = bytes(event["original"]) + b" "  # what the agency published, altered
        out[7] = replace(out[7], value=encode(CATALOG.latest("cn.leadbus.LeadAccepted"), event))
        return out

    rewrite_topic(recorded.bootstrap, LEADS_ACCEPTED, alter_original)
    done, found = verify(recorded.bootstrap, LEADS_ACCEPTED, tmp_path / "a.json")
    assert done.returncode == 1
    assert (LEADS_ACCEPTED, 0, 7) in at(found, "STAGE_CHAIN_BROKEN", "STAGE_BAD_SIGNATURE"), found


def test_keys_provision_stages_makes_and_registers_a_stage_key_once(recorded: Recorded, tmp_path: Path) -> None:
    from leadbus.publisher_keys import read_registry
    from leadbus.signing import key_id_of, public_bytes
    from leadbus.stage_keys import load_stage_key

    done = cli("keys", "provision-stages", "--dir", str(tmp_path), "--stage", "routing", "-b", recorded.bootstrap)
    assert done.returncode == 0, done.stdout + done.stderr
    key = load_stage_key(tmp_path, "routing")
    assert (tmp_path / "LEADBUS-routing.key").stat().st_mode & 0o077 == 0
    key_id = key_id_of(public_bytes(key.public_key()))
    assert read_registry(recorded.bootstrap).get("LEADBUS-routing", key_id) is not None
    again = cli("keys", "provision-stages", "--dir", str(tmp_path), "--stage", "routing", "-b", recorded.bootstrap)
    assert again.returncode == 0 and key_id not in again.stdout, "registered once, the same key kept"
    refused = cli("process", "--stage", "linking", "-b", recorded.bootstrap, "--seal-keys", str(tmp_path),
                  "--max-seconds", "1", "--state-dir", str(tmp_path / "state"))
    assert refused.returncode == 2 and "no seal key" in refused.stdout + refused.stderr
