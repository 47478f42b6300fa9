"""The registry follows an analyst's split (#19): leads that left a case leave its member rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from leadbus.sinks.registry import case_members, registry_engine, rows_for, write_batch

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _case(case_id: str, version: int, members: list[str], merged_into: str | None = None) -> dict[str, Any]:
    return {"case_id": case_id, "version": version, "suspect_name": "上海锐丰贸易有限公司", "suspect_province": "31",
            "handling": "OPEN", "members": members, "merged_into": merged_into, "facts": {}, "updated_at": AT}


def _members(engine: Any) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {(r.case_id, r.lead_id) for r in conn.execute(select(case_members))}


def test_a_split_removes_the_moved_leads_and_an_old_version_never_prunes(tmp_path: Path) -> None:
    engine = registry_engine(f"sqlite:///{tmp_path / 'r.db'}")
    a, new = "CASE-00000000000000AA", "CASE-00000000000000BB"
    write_batch(engine, rows_for([("case", _case(a, 1, ["l1"])), ("case", _case(a, 2, ["l1", "l2", "l3"]))]), [])
    assert _members(engine) == {(a, "l1"), (a, "l2"), (a, "l3")}
    write_batch(engine, rows_for([("case", _case(a, 3, ["l1"])), ("case", _case(new, 1, ["l2", "l3"]))]), [])
    assert _members(engine) == {(a, "l1"), (new, "l2"), (new, "l3")}
    write_batch(engine, rows_for([("case", _case(a, 2, ["l1", "l2", "l3"]))]), [])  # a redelivered old version
    assert (a, "l1") in _members(engine) and (a, "l2") in _members(engine), "old rows may come back harmlessly"
    write_batch(engine, rows_for([("case", _case(a, 3, ["l1"]))]), [])  # … and the newest prunes them again
    assert _members(engine) == {(a, "l1"), (new, "l2"), (new, "l3")}
    engine.dispose()
