"""The `CaseUpdated` writer of the linking stage (`CaseUpdatedWriter`) writes, byte for byte, what the compiled
writer makes of `case_updated_record`: on every case the handler publishes over the golden corpus (merges, revisions,
older writers, analysts' decisions, a stage restarted on the state layout before issue #16) and over the digest's
bulk traffic, and on cases built to reach the parts simulated traffic rarely does (unicode, long texts and lists,
prior penalties, large facts, a version past one byte, members stored before a field existed)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from leadbus.avro import encode
from leadbus.processors.case_record import CaseUpdatedWriter, case_updated_record
from leadbus.processors.core.linking import FACT_FIELDS, Case
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler
from leadbus.topics import LEADS_ACCEPTED
from tests.unit.processors import linking_golden
from tests.unit.processors.linking_golden import CASE, NOW, MemoryState
from tests.unit.processors.test_linking_digest import _corpus


class _Checked:
    """The handler's writer, each record it writes compared with the reference's (and counted)."""

    def __init__(self, writer: CaseUpdatedWriter) -> None:
        self.writer = writer
        self.direct = 0
        self.history = 0

    def __call__(self, case: Case, now: datetime, merged_into: str | None = None) -> bytes:
        written = self.writer(case, now, merged_into)
        assert written == encode(CASE, case_updated_record(case, now, merged_into)), case.case_id
        if case.history:
            self.history += 1
        else:
            self.direct += 1
        return written


@contextmanager
def _checking(handler: LinkingHandler) -> Iterator[_Checked]:
    checked = _Checked(handler.case_updated)
    handler.case_updated = checked  # type: ignore[assignment]
    yield checked


def test_the_writer_takes_the_direct_path_for_the_latest_case_updated() -> None:
    assert CaseUpdatedWriter(CASE).direct


def test_every_case_of_the_golden_corpus_is_written_as_the_reference_writes_it() -> None:
    handler = LinkingHandler()
    with _checking(handler) as checked:
        linking_golden.run(handler)
    assert checked.direct > 700 and checked.history > 0
    handler = LinkingHandler()
    with _checking(handler) as checked:  # continued from the state the stage wrote before issue #16
        linking_golden.run(handler, swap=linking_golden.old_state())
    assert checked.direct > 700


def test_every_case_of_bulk_traffic_is_written_as_the_reference_writes_it() -> None:
    handler, state = LinkingHandler(), MemoryState()
    with _checking(handler) as checked:
        for offset, value in enumerate(_corpus()[:1500]):
            result = handler.handle(Record(LEADS_ACCEPTED, 0, offset, None, value), state, NOW)
            state.pending.update(result.state)
            state.commit()
    assert checked.direct > 1500


def _member(n: int, **changes: Any) -> dict[str, Any]:
    member: dict[str, Any] = {
        "revision": 0, "agency": f"机构{n % 3}", "province": ("44", "11", "31")[n % 3],
        "reported_at": (NOW - timedelta(minutes=n % 7)).isoformat(), "category": ("TRADEMARK", "COPYRIGHT")[n % 2],
        "violation": "COUNTERFEIT", "name": f"深圳市某某商贸有限公司{'🙂' * (n % 2)}", "suspect_province": None,
        "facts": {}, "handling": ("OPEN", "RESTRICTED", "CONFIDENTIAL", "SECRET")[n % 4], "share_with": [],
        "cross_border": False, "countries": [], "conduct_from": None, "conduct_to": None, "prior_penalties": [],
        "police_measures_needed": False, "weak": [], "waybills": [], "keys": [],
    }
    member.update(changes)
    return member


def _cases() -> Iterator[Case]:
    yield Case("CASE-ONE", 1, {"a": _member(0)}, ["uscc:91440300MA5XXXXX0X"], version=1)
    big_facts = {name: 2**40 + i for i, name in enumerate(FACT_FIELDS)}
    members = {
        f"lead-{n:03}": _member(
            n, suspect_province=("44", "11", None)[n % 3], share_with=["11", "31"][: n % 3],
            countries=["US", "越南"][: n % 3], cross_border=n % 5 == 0,
            conduct_from=f"2025-0{1 + n % 9}-1{n % 10}", conduct_to=f"2026-0{1 + n % 9}-2{n % 10}",
            prior_penalties=[{"kind": ("ADMINISTRATIVE", "CRIMINAL")[n % 2], "decided_on": f"2024-0{1 + n % 9}-01",
                              "decided_by": f"市场监督管理局{n % 4}", "violation": "COUNTERFEIT"}],
            police_measures_needed=n == 40, weak=[f"core:{'名' * (n % 40)}", "cat:TRADEMARK"],
            waybills=[f"SF{n:04}{w:04}" for w in range(30)],
            facts={**({name: n * 100 for name in FACT_FIELDS[: n % 15]}),
                   **({"rights_holder_bankrupt": n % 2 == 0} if n % 3 == 0 else {}),
                   **({"labels_made_by": ("SELF", "OTHERS", "UNKNOWN")[n % 3]} if n % 4 == 0 else {}),
                   **({"mark_use": ("GOODS", "SERVICES", "UNKNOWN")[n % 3]} if n % 5 == 0 else {})})
        for n in range(70)
    }
    long_ids = [f"shop:taobao:{n:0>80}" for n in range(70)] + ["domain:例子.中国"]
    yield Case("CASE-MANY", 3, members, sorted(long_ids), merged_from=[f"CASE-{n}" for n in range(70)], version=300)
    yield Case("CASE-FACTS", 4, {"x": _member(1, facts=big_facts), "y": _member(2, facts={"mark_use": "GOODS"})})
    old = _member(5)
    for name in ("conduct_from", "conduct_to", "prior_penalties", "police_measures_needed", "weak", "waybills"):
        del old[name]  # a member stored before these existed
    yield Case("CASE-OLD", 5, {"o": old, "p": _member(6, weak=["ip:1.2.3.4"])}, [], version=2)
    history = [{"decision_id": "d1", "action": "CONFIRM", "agency": "机构", "province": "44", "user": "分析员",
                "role": "ANALYST", "reason": "同一店铺", "decided_at": NOW.isoformat(), "merged": "CASE-X"}]
    yield Case("CASE-HISTORY", 6, {"a": _member(0), "b": _member(1)}, [], history=copy.deepcopy(history), version=2)


def test_built_cases_are_written_as_the_reference_writes_them() -> None:
    writer = CaseUpdatedWriter(CASE)
    for case in _cases():
        for merged_into in (None, "CASE-合并"):
            assert writer(case, NOW, merged_into) == encode(CASE, case_updated_record(case, NOW, merged_into))
