"""Agency events other than leads and handover decisions, pure: their models and where intake sends them.

    CourierReply      SPB relays a courier's answer to a trace request (寄递渠道) → leadbus.courier.replies
    ConsumerWarning   an agency's online-shopping consumer warning (网络购物消费警示) → leadbus.warnings.consumer
    OperationDecision a joint operation (集群战役) opened, joined by a case, closed → leadbus.operations

Each arrives on its publisher's intake topic, signed like a handover decision when its publisher signs,
and is verified (seal, sequence), validated here and checked against the topic it came on; intake then
forwards it as published, keyed as `KINDS` says. A bad one is dead-lettered with a reason, like a lead.

A consumer warning is public. Nothing in it comes from case data unless its agency decides to publish it:
the bus never fills it from a case, and intake refuses one whose text carries what looks like personal
data (an ID number, a mobile number, a card number) or names a case id the agency did not list in
`disclosed_cases`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from leadbus.agencies import is_category_code
from leadbus.models import Actor, _check_case_id, _check_case_ids, _checked, _event_time, _fail, _Model, _uuid_text

COURIER_REPLIES = "leadbus.courier.replies"
CONSUMER_WARNINGS = "leadbus.warnings.consumer"
OPERATIONS = "leadbus.operations"

_CASE_ID_IN_TEXT = re.compile(r"CASE-[0-9A-Fa-f]{16}")
# 15 or more digits in a row (ID numbers, card numbers) or an 11-digit mainland mobile number.
_PERSONAL_IN_TEXT = re.compile(r"\d{15,}|\d{17}[\dXx]|(?<!\d)1[3-9]\d{9}(?!\d)")


class EventActor(Actor):
    """An agency publishing or relaying an event; its unit, if named, is at most 200 characters."""

    unit: Annotated[str, Field(max_length=200)] | None = None


# -- the courier channel ------------------------------------------------------------------------------

class CourierReply(_Model):
    """A courier's answer about one parcel, relayed by the State Post Bureau (国家邮政局)."""

    reply_id: str
    case_id: str
    waybill: Annotated[str, Field(min_length=1, max_length=64)]
    courier: Annotated[str, Field(min_length=1, max_length=32)]
    outcome: Literal["TRACED", "INTERCEPTED", "ALREADY_DELIVERED", "NOT_FOUND", "REFUSED"]
    detail: Annotated[str, Field(max_length=2000)] = ""
    actor: EventActor
    replied_at: datetime

    _reply_id = field_validator("reply_id", mode="before")(lambda v: _uuid_text(v, "REPLY_ID_FORMAT"))
    _case = field_validator("case_id")(_check_case_id)

    _replied_at = field_validator("replied_at")(lambda v, info: _event_time(v, info, "replied_at"))


# -- consumer warnings --------------------------------------------------------------------------------

RISKS = ("LOW", "MEDIUM", "HIGH", "SEVERE")


class WarningSource(_Model):
    title: Annotated[str, Field(min_length=1, max_length=300)]
    url: Annotated[str, Field(max_length=2000)]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/[^\s<>\"]*)?$", value):
            raise _fail("SOURCE_URL", f"{value[:80]!r} is not a public https URL")
        return value


class ConsumerWarning(_Model):
    """网络购物消费警示: what to look out for when buying a kind of goods online, and what to do."""

    warning_id: str
    revision: Annotated[int, Field(ge=1)] = 1
    title: Annotated[str, Field(min_length=1, max_length=200)]
    goods_category: str
    risk: Literal["LOW", "MEDIUM", "HIGH", "SEVERE"]
    summary: Annotated[str, Field(min_length=1, max_length=2000)]
    advice: Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(min_length=1, max_length=20)]
    sources: Annotated[list[WarningSource], Field(min_length=1, max_length=20)]
    disclosed_cases: Annotated[list[str], Field(max_length=50)] = Field(default_factory=list)
    withdrawn: bool = False
    publisher: EventActor
    published_at: datetime

    _warning_id = field_validator("warning_id", mode="before")(lambda v: _uuid_text(v, "WARNING_ID_FORMAT"))

    _category = field_validator("goods_category")(
        _checked(is_category_code, "UNKNOWN_CATEGORY", "{value!r} is not a goods category code"))

    _disclosed = field_validator("disclosed_cases")(_check_case_ids)
    _published_at = field_validator("published_at")(lambda v, info: _event_time(v, info, "published_at"))

    @model_validator(mode="after")
    def _no_case_data(self) -> ConsumerWarning:
        texts = [self.title, self.summary, *self.advice, *(s.title for s in self.sources)]
        for text in texts:
            if _PERSONAL_IN_TEXT.search(text):
                raise _fail("PERSONAL_DATA_IN_WARNING",
                            "a public warning carries no ID, mobile or card number (case data stays in the case)")
            for found in _CASE_ID_IN_TEXT.findall(text):
                if found.upper() not in self.disclosed_cases:
                    raise _fail("UNDISCLOSED_CASE",
                                f"{found} is named but not in disclosed_cases: an agency decides what it publishes")
        return self


def public_warning(warning: Mapping[str, Any]) -> dict[str, Any]:
    """What the public page and feed show of a (validated) warning: its own fields, the publisher agency only."""
    return {
        "warning_id": str(warning["warning_id"]),
        "revision": int(warning.get("revision") or 1),
        "title": str(warning["title"]),
        "goods_category": str(warning["goods_category"]),
        "risk": str(warning["risk"]),
        "summary": str(warning["summary"]),
        "advice": [str(a) for a in warning["advice"]],
        "sources": [{"title": str(s["title"]), "url": str(s["url"])} for s in warning["sources"]],
        "disclosed_cases": [str(c) for c in warning.get("disclosed_cases") or []],
        "agency": str(warning["publisher"]["agency"]),
        "province": str(warning["publisher"]["province"]),
        "published_at": warning["published_at"],
        "withdrawn": bool(warning.get("withdrawn")),
    }


def fold_warnings(current: Mapping[str, dict[str, Any]], warning: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The public board after one more accepted warning: the highest revision of each wins; withdrawn ones go."""
    shown = public_warning(warning)
    board = dict(current)
    known = board.get(shown["warning_id"])
    if known is not None and known["revision"] >= shown["revision"]:
        return board  # a replay or an older revision
    board[shown["warning_id"]] = shown
    return board


def visible_warnings(board: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What the page and feeds show: warnings not withdrawn, newest first."""
    return sorted((w for w in board.values() if not w["withdrawn"]), key=lambda w: w["published_at"], reverse=True)


# -- dispatch -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventKind:
    """How intake treats one kind of agency event."""

    schema: str
    model: type[BaseModel]
    topic: str
    actor_field: str  # the field naming the publishing agency and province
    key: Callable[[Any], str]
    agencies: frozenset[str] | None = None  # who may publish it; None: any agency
    #: Refused unless signed, even from a publisher not otherwise required to sign (it changes cases).
    signed_only: bool = False
    #: A further rule of the kind, on a valid event: a refusal (reason, message, field), or None.
    check: Callable[[Any], tuple[str, str, str] | None] | None = None


#: The kinds defined here; `event_kinds.KINDS` adds operation decisions (processors/core/operations.py).
KINDS: dict[str, EventKind] = {
    "cn.leadbus.CourierReply": EventKind("cn.leadbus.CourierReply", CourierReply, COURIER_REPLIES, "actor",
                                         lambda e: e.case_id, frozenset({"SPB"})),
    "cn.leadbus.ConsumerWarning": EventKind("cn.leadbus.ConsumerWarning", ConsumerWarning, CONSUMER_WARNINGS,
                                            "publisher", lambda e: e.warning_id),
}
