"""A record whose headers are not (name, value) pairs (an archive of someone else's making, a source read otherwise):
the replay's loop asks every record whether it is sealed, and that question raised out of the replay (a traceback,
no coordinates). Now MALFORMED_HEADERS located at the record, and the replay goes on to the next one."""

from __future__ import annotations

from typing import Any

import pytest

from leadbus.audit import replay as replay_module
from leadbus.audit.verification import ReplayRecord, standard_verifiers
from leadbus.avro import packaged_catalog
from leadbus.topics import CASES

CATALOG = packaged_catalog()


@pytest.mark.parametrize("headers", [[("leadbus-publisher",)], [("a", b"1", b"2")], [7], [None]])
@pytest.mark.parametrize("verify", [True, False])
def test_headers_not_pairs_are_a_located_failure(headers: list[Any], verify: bool) -> None:
    records = [ReplayRecord(CASES, 2, 0, 1_700_000_000_000, b"k", b"\x00", headers, CATALOG, file="f.avro", index=0),
               ReplayRecord(CASES, 2, 1, 1_700_000_000_001, b"k", b"\x00", (), CATALOG, file="f.avro", index=1)]
    verifiers = standard_verifiers(now_ms=1_700_000_100_000) if verify else []
    report = replay_module.ReplayReport("test")
    replay_module._loop(records, verifiers, None, None, None, report, None, None)
    found = [(f.check, f.topic, f.partition, f.offset) for f in report.findings if f.failure]
    assert ("MALFORMED_HEADERS", CASES, 2, 0) in found
    assert sum(report.by_type_publisher.values()) == 2  # both read on, counted
