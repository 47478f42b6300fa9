"""Notice-and-takedown (通知—删除): the notice a platform receives for a case, and what its answer means.

E-Commerce Law Art.42 and the Regulation on the Protection of the Right of Dissemination via Information
Network Art.14 give the legal basis; a notice names the case, the platform's shop or URLs, the rights holder,
the measures asked (删除、屏蔽、断开链接、终止交易和服务) and when an answer is due. The notice id is derived
from its content, so a notice re-sent after a crash keeps its idempotency key. Pure: `now` is an argument;
the webhook sink (sinks/takedown_sink.py) delivers what this module builds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ECOMMERCE_ART42 = "ECOMMERCE_LAW_ART42"
COPYRIGHT_REG_ART14 = "INFO_NETWORK_DISSEMINATION_REG_ART14"
LEGAL_BASIS: dict[str, tuple[str, str]] = {
    ECOMMERCE_ART42: (
        "《中华人民共和国电子商务法》第四十二条",
        "知识产权权利人认为其知识产权受到侵害的，有权通知电子商务平台经营者采取删除、屏蔽、断开链接、"
        "终止交易和服务等必要措施。通知应当包括构成侵权的初步证据。",
    ),
    COPYRIGHT_REG_ART14: (
        "《信息网络传播权保护条例》第十四条",
        "权利人认为网络服务所涉及的作品、表演、录音录像制品侵犯自己的信息网络传播权的，可以向该网络服务提供者"
        "提交书面通知，要求删除该作品、表演、录音录像制品，或者断开与其的链接。",
    ),
}
WORK_CATEGORIES = frozenset({"LITERATURE", "MUSIC", "FILM_TV", "GAMES", "ANIMATION", "SOFTWARE"})
MEASURES = ("删除", "屏蔽", "断开链接", "终止交易和服务")
REPLY_DECISIONS = frozenset({"ACKNOWLEDGED", "REMOVED", "PARTIALLY_REMOVED", "REJECTED", "COUNTER_NOTICE"})
FINAL_DECISIONS = REPLY_DECISIONS - {"ACKNOWLEDGED"}
_NOTICE_NAMESPACE = uuid.UUID("5b0d7a52-7c1e-4f57-9a53-6c0e2f1d4a10")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str | datetime) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return parsed


def _legal_basis(case: Mapping[str, Any]) -> tuple[str, ...]:
    if case.get("legal_basis"):
        codes = tuple(case["legal_basis"])
        unknown = [c for c in codes if c not in LEGAL_BASIS]
        if unknown:
            raise ValueError(f"unknown legal basis: {unknown}")
        return codes
    categories = set(case.get("categories") or [case.get("category")])
    if categories <= WORK_CATEGORIES:
        return (COPYRIGHT_REG_ART14,)
    return (ECOMMERCE_ART42, COPYRIGHT_REG_ART14) if categories & WORK_CATEGORIES else (ECOMMERCE_ART42,)


def notice_id(case_id: str, platform: str, shop_id: str | None, urls: Iterable[str], seq: int = 0) -> str:
    """Deterministic, so a notice re-sent after a crash keeps its idempotency key."""
    name = json.dumps([case_id, platform, shop_id, sorted(set(urls)), seq], ensure_ascii=False)
    return str(uuid.uuid5(_NOTICE_NAMESPACE, name))


@dataclass(frozen=True)
class TakedownNotice:
    notice_id: str
    case_id: str
    platform: str
    shop_id: str | None
    urls: tuple[str, ...]
    rights_holder: str | None
    rights_registration: str | None
    legal_basis: tuple[str, ...]
    issued_at: datetime
    reply_due_at: datetime
    evidence: tuple[Mapping[str, str], ...] = ()
    issuer: Mapping[str, Any] | None = None
    measures: tuple[str, ...] = MEASURES

    def to_payload(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "case_id": self.case_id,
            "platform": self.platform,
            "shop_id": self.shop_id,
            "urls": list(self.urls),
            "rights_holder": {"name": self.rights_holder, "registration": self.rights_registration},
            "legal_basis": [{"code": c, "citation": LEGAL_BASIS[c][0], "text": LEGAL_BASIS[c][1]}
                            for c in self.legal_basis],
            "measures": list(self.measures),
            "evidence": [dict(e) for e in self.evidence],
            "issuer": dict(self.issuer) if self.issuer else None,
            "issued_at": _iso(self.issued_at),
            "reply_due_at": _iso(self.reply_due_at),
        }


def takedown_notice(case: Mapping[str, Any], now: datetime, reply_within: timedelta) -> dict[str, Any]:
    """The JSON payload of a takedown notice for one platform of a case.

    `case` keys: case_id, platform, shop_id?, urls, rights_holder? ({name, registration?} or a
    name), categories? / category?, legal_basis? (codes of LEGAL_BASIS), evidence?, issuer?,
    notice_seq? (bump to re-notify the same URLs).
    """
    if reply_within <= timedelta(0):
        raise ValueError("reply_within must be positive")
    platform, shop_id = case.get("platform"), case.get("shop_id")
    urls = tuple(dict.fromkeys(case.get("urls") or ()))
    if not platform or not (urls or shop_id):
        raise ValueError("a takedown notice needs a platform and URLs or a shop id")
    holder = case.get("rights_holder")
    if isinstance(holder, str):
        holder = {"name": holder}
    issued_at = _parse(now).astimezone(UTC)
    issued_at = issued_at.replace(microsecond=issued_at.microsecond // 1000 * 1000)  # timestamp-millis
    return TakedownNotice(
        notice_id=notice_id(case["case_id"], platform, shop_id, urls, case.get("notice_seq", 0)),
        case_id=case["case_id"],
        platform=platform,
        shop_id=shop_id,
        urls=urls,
        rights_holder=holder.get("name") if holder else None,
        rights_registration=holder.get("registration") if holder else None,
        legal_basis=_legal_basis(case),
        issued_at=issued_at,
        reply_due_at=issued_at + reply_within,
        evidence=tuple(case.get("evidence") or ()),
        issuer=case.get("issuer"),
    ).to_payload()


def reply_overdue(notice: Mapping[str, Any], replied_at: datetime | None, now: datetime) -> bool:
    """True when the answer came after `reply_due_at`, or has not come and `now` is past it."""
    due = _parse(notice["reply_due_at"])
    if replied_at is not None:
        return _parse(replied_at) > due
    return _parse(now) > due


def takedown_reply(notice: Mapping[str, Any], answer: Any, http_status: int | None, attempts: int,
                   recorded_at: datetime) -> dict[str, Any]:
    """A `TakedownReply` record from a delivered notice and the platform's JSON answer.

    The platform may answer `{"decision", "measures", "reference", "message"}`; a missing or
    unknown decision is ACKNOWLEDGED (received, no final answer yet, so the clock keeps running).
    """
    answer = answer if isinstance(answer, dict) else {}
    decision = str(answer.get("decision", "")).upper()
    decision = decision if decision in REPLY_DECISIONS else "ACKNOWLEDGED"
    replied_at = recorded_at if decision in FINAL_DECISIONS else None
    measures = answer.get("measures")
    return {
        "notice_id": notice["notice_id"],
        "case_id": notice["case_id"],
        "platform": notice["platform"],
        "decision": decision,
        "measures": [str(m) for m in measures] if isinstance(measures, list) else [],
        "platform_reference": _str_or_none(answer.get("reference")),
        "message": _str_or_none(answer.get("message")),
        "http_status": http_status,
        "attempts": attempts,
        "reply_due_at": _parse(notice["reply_due_at"]),
        "replied_at": replied_at,
        "overdue": reply_overdue(notice, replied_at, recorded_at),
        "recorded_at": recorded_at,
    }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
