"""The case registry (案件登记库): leads, cases and their members, handover steps, withdrawals, analysts' merges
and splits (`case_link_history`, issue #19) — in SQL.

SQLite by default (embedded, nothing to install), PostgreSQL in production; the same SQLAlchemy
Core code runs on both. Every write is an idempotent upsert, and the Kafka offsets consumed are
stored in the same database transaction as the rows they produced, so a crash or a redelivery
never doubles or loses a row: on restart the sink seeks to the offsets the database holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

metadata = MetaData()


def _v2_columns() -> list[Column[Any]]:
    """CaseLead v2 (migration 0003): null for v1 leads and cases."""
    return [Column("conduct_from", Date), Column("conduct_to", Date), Column("prior_penalties", Text),
            Column("icp_filings", Text), Column("labels_sold", BigInteger), Column("labels_held", BigInteger),
            Column("labels_made_by", String(8)), Column("mark_use", String(8))]  # fmt: skip


leads = Table(
    "leads", metadata,
    Column("lead_id", String(36), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("agency", String(16), nullable=False),
    Column("province", String(2), nullable=False),
    Column("category", String(32), nullable=False),
    Column("violation", String(16), nullable=False),
    Column("subject_name", Text, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("digest", String(64), nullable=False),
    *_v2_columns(),
)
cases = Table(
    "cases", metadata,
    Column("case_id", String(21), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("suspect_name", Text, nullable=False),
    Column("suspect_province", String(2)),
    Column("handling", String(16), nullable=False),
    Column("members", Integer, nullable=False),
    Column("merged_into", String(21)),
    Column("facts", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    *_v2_columns(),
)
case_members = Table(
    "case_members", metadata,
    Column("case_id", String(21), primary_key=True),
    Column("lead_id", String(36), primary_key=True),
)
handover_steps = Table(
    "handover_steps", metadata,
    Column("case_id", String(21), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event", String(24), nullable=False),
    Column("to_phase", String(24), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("rule", String(48)),
    Column("late", Boolean, nullable=False),
    Column("escalated_to", String(16)),
)
case_withdrawals = Table(
    "case_withdrawals", metadata,
    Column("case_id", String(21), primary_key=True),
    Column("topic", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("merged_into", String(21)),
    Column("withdrawn_at", DateTime(timezone=True), nullable=False),
)
courier_replies = Table(  # issue #18: a courier's answer about a parcel, relayed by SPB, on the case
    "courier_replies", metadata,
    Column("reply_id", String(36), primary_key=True),
    Column("case_id", String(21), nullable=False, index=True),
    Column("waybill", String(64), nullable=False),
    Column("courier", String(32), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("detail", Text, nullable=False),
    Column("agency", String(16), nullable=False),
    Column("province", String(2), nullable=False),
    Column("replied_at", DateTime(timezone=True), nullable=False),
)
case_link_history = Table(  # issue #19: each analyst's merge (CONFIRM) or split a case's CaseUpdated v3 carries
    "case_link_history", metadata,
    Column("case_id", String(21), primary_key=True),
    Column("decision_id", String(36), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("analyst", String(128), nullable=False),
    Column("agency", String(16), nullable=False),
    Column("province", String(2), nullable=False),
    Column("role", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False, index=True),
    Column("suggestion_id", String(32)),
    Column("merged", String(21)),
    Column("leads", Text),  # SPLIT: the lead ids that left, a JSON list
    Column("split_from", String(21)),
    Column("split_to", String(21)),
)
consumed = Table(
    "consumed_offsets", metadata,
    Column("topic", String(128), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", Integer, nullable=False),
)


def registry_engine(url: str) -> Engine:
    """`sqlite:///var/registry.db` or `postgresql+psycopg://user@127.0.0.1:5432/leadbus`, migrated to head."""
    engine = create_engine(url, pool_pre_ping=True, future=True)
    migrate(engine)
    return engine


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to `revision` with the Alembic migrations shipped in the package."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    with resources.as_file(resources.files("leadbus.sinks").joinpath("migrations")) as folder:
        config = Config()
        config.set_main_option("script_location", str(folder))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
            only_if_newer: str | None = None) -> None:
    """One statement of one row, executed for all of them (executemany).

    The same statement every batch, so SQLAlchemy compiles it once; a multi-row VALUES of a batch's rows was
    compiled anew for every batch (its size changes), which took most of the sink's CPU (bench/latency.py).
    """
    if not rows:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(keys), only_if_newer), list(rows))


_STATEMENTS: dict[tuple[str, str, tuple[str, ...], str | None], Any] = {}


def _upsert_statement(dialect_name: str, table: Table, keys: tuple[str, ...], only_if_newer: str | None) -> Any:
    cache_key = (dialect_name, table.name, keys, only_if_newer)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is not None:
        return stmt
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(table)
    update = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
    where = None
    if only_if_newer is not None:
        where = table.c[only_if_newer] <= insert.excluded[only_if_newer]
    if update:
        stmt = insert.on_conflict_do_update(index_elements=list(keys), set_=update, where=where)
    else:
        stmt = insert.on_conflict_do_nothing(index_elements=list(keys))
    _STATEMENTS[cache_key] = stmt
    return stmt


def _enum(value: Any) -> str | None:
    """An enum symbol, with UNKNOWN (the v2 default) stored as null."""
    return None if value in (None, "", "UNKNOWN") else str(value)


def _penalties(raw: Any) -> str | None:
    if not raw:
        return None
    return json.dumps([{"kind": p.get("kind"), "decided_on": str(p.get("decided_on")),
                        "decided_by": p.get("decided_by"), "violation": p.get("violation")} for p in raw],
                      ensure_ascii=False)  # fmt: skip


def v2_fields(record: dict[str, Any], facts: dict[str, Any], icp: list[str]) -> dict[str, Any]:
    """The CaseLead v2 columns of a lead or a case (null where a v1 record has nothing)."""
    return {"conduct_from": record.get("conduct_from"), "conduct_to": record.get("conduct_to"),
            "prior_penalties": _penalties(record.get("prior_penalties")),
            "icp_filings": json.dumps(icp, ensure_ascii=False) if icp else None,
            "labels_sold": facts.get("labels_sold"), "labels_held": facts.get("labels_held"),
            "labels_made_by": _enum(facts.get("labels_made_by")), "mark_use": _enum(facts.get("mark_use"))}


def lead_row(record: dict[str, Any]) -> dict[str, Any]:
    lead = record["lead"]
    icp = list((lead.get("online") or {}).get("icp_filings") or [])
    return {"lead_id": str(lead["lead_id"]), "revision": lead["revision"], "agency": lead["publisher"]["agency"],
            "province": lead["publisher"]["province"], "category": lead["category"],
            "violation": lead["violation"], "subject_name": lead["subject"]["name"],
            "reported_at": lead["reported_at"], "accepted_at": record["accepted_at"], "digest": record["digest"],
            **v2_fields(lead, lead.get("facts") or {}, icp)}


def case_rows(record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    icp = [i["value"] for i in record.get("identifiers") or [] if i.get("kind") == "icp"]
    row = {"case_id": record["case_id"], "version": record["version"], "suspect_name": record["suspect_name"],
           "suspect_province": record["suspect_province"], "handling": record["handling"],
           "members": len(record["members"]), "merged_into": record["merged_into"],
           "facts": json.dumps(record["facts"], sort_keys=True), "updated_at": record["updated_at"],
           **v2_fields(record, record.get("facts") or {}, icp)}
    return row, [{"case_id": record["case_id"], "lead_id": m} for m in record["members"]]


def link_history_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysts' decisions a CaseUpdated (v3 on) carries, one row each; an older version carries none."""
    return [{"case_id": record["case_id"], "decision_id": str(entry["decision_id"]), "action": entry["action"],
             "analyst": entry["user"], "agency": entry["agency"], "province": entry["province"],
             "role": entry["role"], "reason": entry["reason"], "decided_at": entry["decided_at"],
             "suggestion_id": entry.get("suggestion_id"), "merged": entry.get("merged"),
             "leads": json.dumps(list(entry["leads"])) if entry.get("leads") else None,
             "split_from": entry.get("split_from"), "split_to": entry.get("split_to")}
            for entry in record.get("link_history") or ()]


def step_row(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("case_id", "seq", "event", "to_phase", "at", "due_at", "rule", "late",
                                   "escalated_to")}


def withdrawal_row(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("case_id", "topic", "version", "reason", "channel", "recipient", "merged_into",
                                   "withdrawn_at")}


def courier_reply_row(record: dict[str, Any]) -> dict[str, Any]:
    return {"reply_id": str(record["reply_id"]), "case_id": record["case_id"], "waybill": record["waybill"],
            "courier": record["courier"], "outcome": record["outcome"], "detail": record.get("detail") or "",
            "agency": record["actor"]["agency"], "province": record["actor"]["province"],
            "replied_at": record["replied_at"]}


def write_batch(engine: Engine, rows: dict[str, list[dict[str, Any]]],
                offsets: Iterable[tuple[str, int, int]]) -> None:
    """One transaction: the rows, and the offsets after them. Re-running it changes nothing."""
    with engine.begin() as conn:
        _upsert(conn, leads, rows.get("leads", []), ["lead_id"], only_if_newer="revision")
        _upsert(conn, cases, rows.get("cases", []), ["case_id"], only_if_newer="version")
        _upsert(conn, case_members, rows.get("case_members", []), ["case_id", "lead_id"])
        _prune_members(conn, rows.get("cases", []), rows.get("case_membership", []))
        _upsert(conn, handover_steps, rows.get("handover_steps", []), ["case_id", "seq"])
        _upsert(conn, case_withdrawals, rows.get("case_withdrawals", []), ["case_id", "topic", "version"])
        _upsert(conn, courier_replies, rows.get("courier_replies", []), ["reply_id"])
        _upsert(conn, case_link_history, rows.get("case_link_history", []), ["case_id", "decision_id"])
        _upsert(conn, consumed, [{"topic": t, "partition": p, "next_offset": o} for t, p, o in offsets],
                ["topic", "partition"], only_if_newer="next_offset")


def _prune_members(conn: Connection, written: list[dict[str, Any]], membership: list[dict[str, Any]]) -> None:
    """Leads that left a case (an analyst's split, #19) leave its member rows, once its newest version is stored.

    A few statements per batch, not two per case: the stored versions of the batch's cases, then the member rows
    of those whose newest version this batch wrote, then a delete of the rows no longer listed (rare: splits).
    """
    versions = {row["case_id"]: row["version"] for row in written}
    current = {m["case_id"]: m for m in membership if versions.get(m["case_id"]) == m["version"]}
    stale: list[dict[str, Any]] = []
    ids = sorted(current)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        stored = conn.execute(select(cases.c.case_id, cases.c.version).where(cases.c.case_id.in_(chunk))).all()
        newest = [case_id for case_id, version in stored if version == current[case_id]["version"]]
        if not newest:
            continue
        listed = {case_id: set(current[case_id]["members"]) for case_id in newest}
        rows = conn.execute(select(case_members.c.case_id, case_members.c.lead_id)
                            .where(case_members.c.case_id.in_(newest))).all()
        stale += [{"stale_case": case_id, "stale_lead": lead_id} for case_id, lead_id in rows
                  if lead_id not in listed[case_id]]
    if stale:
        conn.execute(delete(case_members).where(case_members.c.case_id == bindparam("stale_case"),
                                                case_members.c.lead_id == bindparam("stale_lead")), stale)


#: Case ids per `IN (…)`: well under SQLite's and PostgreSQL's limits on bound parameters.
_IN_CHUNK = 500


def stored_offsets(engine: Engine) -> dict[tuple[str, int], int]:
    with engine.connect() as conn:
        return {(r.topic, r.partition): r.next_offset for r in conn.execute(select(consumed))}


def _dedupe(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Last row per key: one INSERT … ON CONFLICT may not touch the same row twice (PostgreSQL)."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        latest[tuple(row[k] for k in keys)] = row
    return list(latest.values())


def rows_for(records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"leads": [], "cases": [], "case_members": [], "handover_steps": [],
                                            "case_withdrawals": [], "case_membership": [],
                                            "courier_replies": [], "case_link_history": []}
    for kind, record in records:
        if kind == "lead":
            out["leads"].append(lead_row(record))
        elif kind == "case":
            row, members = case_rows(record)
            out["cases"].append(row)
            out["case_members"].extend(members)
            out["case_link_history"].extend(link_history_rows(record))
            out["case_membership"].append({"case_id": row["case_id"], "version": row["version"],
                                           "members": [m["lead_id"] for m in members]})
        elif kind == "step":
            out["handover_steps"].append(step_row(record))
        elif kind == "withdrawal":
            out["case_withdrawals"].append(withdrawal_row(record))
        elif kind == "courier_reply":
            out["courier_replies"].append(courier_reply_row(record))
    out["leads"] = _dedupe(sorted(out["leads"], key=lambda r: r["revision"]), ["lead_id"])
    out["cases"] = _dedupe(sorted(out["cases"], key=lambda r: r["version"]), ["case_id"])
    out["case_members"] = _dedupe(out["case_members"], ["case_id", "lead_id"])
    out["handover_steps"] = _dedupe(out["handover_steps"], ["case_id", "seq"])
    out["case_withdrawals"] = _dedupe(out["case_withdrawals"], ["case_id", "topic", "version"])
    out["case_membership"] = _dedupe(sorted(out["case_membership"], key=lambda r: r["version"]), ["case_id"])
    out["courier_replies"] = _dedupe(out["courier_replies"], ["reply_id"])
    out["case_link_history"] = _dedupe(out["case_link_history"], ["case_id", "decision_id"])
    return out


def counts(engine: Engine) -> dict[str, int]:
    from sqlalchemy import func

    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (leads, cases, case_members, handover_steps, case_withdrawals, courier_replies,
                          case_link_history)}


__all__ = ["counts", "datetime", "registry_engine", "rows_for", "stored_offsets", "write_batch"]
