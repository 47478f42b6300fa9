"""Cases and decisions written as linking and intake write them, for tests of the suggesting stage (issue #16)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.avro import encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.linking import DictStore, Linker
from leadbus.processors.core.normalize import normalise
from leadbus.processors.linking import case_updated_record
from tests.conftest import _BASE_LEAD

CATALOG = packaged_catalog()
CASE = CATALOG.latest("cn.leadbus.CaseUpdated")
DECISION = CATALOG.latest("cn.leadbus.LinkDecision")
NOW = datetime.now(UTC) - timedelta(minutes=5)
SHARED = ("addr:上海市浦东新区张杨路1188号3栋502室", "ip24:61.152.1", "trade:锐丰", "city:上海市")
A, B, C, D = (f"CASE-{x * 16}" for x in "ABCD")  # case ids of the bus (CASE- and 16 hex digits)
BG0, BG1 = (f"CASE-{i:016X}" for i in (0, 1))
OTHER = ("addr:上海市闵行区七莘路300号12室", "ip24:61.152.9", "trade:宏泰", "city:上海市")


def case_template() -> dict[str, Any]:
    """A real case's CaseUpdated fields, to which each case here gives its id, version and weak signals."""
    lead = CaseLead.model_validate({**_BASE_LEAD, "lead_id": str(uuid.uuid4())})
    norm = normalise(lead)
    return case_updated_record(Linker(DictStore()).link(norm.lead, norm.domains).case, NOW)


def case_record(template: dict[str, Any], case_id: str, version: int, signals: tuple[str, ...], province: str,
          merged_into: str | None = None, merged_from: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    record = {**template, "case_id": case_id, "version": version, "weak_signals": sorted(signals),
              "provinces": [province], "merged_into": merged_into, "merged_from": list(merged_from),
              "members": [f"lead-{case_id}-{version}"], "updated_at": datetime.now(UTC)}
    return case_id.encode(), encode(CASE, record)


def reject_record(case_a: str, case_b: str) -> tuple[bytes, bytes]:
    return case_a.encode(), encode(DECISION, {
        "decision_id": str(uuid.uuid4()), "action": "REJECT", "case_a": case_a, "case_b": case_b, "lead_ids": [],
        "analyst": {"agency": "SAMR", "province": "31", "user": "zhang.wei", "role": "ANALYST"},
        "reason": "two tenants of one building, different owners", "decided_at": NOW, "suggestion_id": None})
