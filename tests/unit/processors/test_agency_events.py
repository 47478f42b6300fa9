"""Courier replies and consumer warnings through the intake core: validated, checked against the topic, routed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.agency_events import CONSUMER_WARNINGS, COURIER_REPLIES, public_warning
from leadbus.processors.core.intake import EventAcceptance, Rejection, Source, examine

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 20, 8, tzinfo=UTC)


def reply(**overrides: Any) -> dict[str, Any]:
    record = {"reply_id": str(uuid.uuid4()), "case_id": "CASE-00000000000000A1", "waybill": "SF1234567890123",
              "courier": "SF", "outcome": "INTERCEPTED", "detail": "已拦截", "replied_at": NOW,
              "actor": {"agency": "SPB", "province": "00", "unit": None}}
    record.update(overrides)
    return record


def warning(**overrides: Any) -> dict[str, Any]:
    record = {"warning_id": str(uuid.uuid4()), "revision": 1, "title": "网购化妆品谨防假冒",
              "goods_category": "COSMETICS",
              "risk": "HIGH", "summary": "部分网店以明显低于市场价销售知名品牌化妆品。",
              "advice": ["选择正规渠道购买", "保留购物凭证"],
              "sources": [{"title": "国家市场监督管理总局", "url": "https://www.samr.gov.cn/"}],
              "disclosed_cases": [], "withdrawn": False,
              "publisher": {"agency": "SAMR", "province": "00", "unit": None},
              "published_at": NOW}
    record.update(overrides)
    return record


def _examine(name: str, record: dict[str, Any], topic: str) -> Any:
    return examine(encode(CATALOG.latest(name), record), Source(topic, 0, 7), CATALOG, NOW)


def test_a_courier_reply_from_spb_goes_to_the_replies_topic_keyed_by_case() -> None:
    outcome = _examine("cn.leadbus.CourierReply", reply(), "leadbus.intake.SPB")
    assert isinstance(outcome, EventAcceptance)
    assert (outcome.topic, outcome.key) == (COURIER_REPLIES, "CASE-00000000000000A1")


@pytest.mark.parametrize(("record", "topic", "reason"), [
    (reply(actor={"agency": "SAMR", "province": "00", "unit": None}), "leadbus.intake.SAMR", "WRONG_AGENCY"),
    (reply(), "leadbus.intake.SAMR", "WRONG_TOPIC"),
    (reply(case_id="CASE-x"), "leadbus.intake.SPB", "UNKNOWN_CASE"),
    (reply(reply_id="nope"), "leadbus.intake.SPB", "REPLY_ID_FORMAT"),
    (reply(outcome="UNSPECIFIED"), "leadbus.intake.SPB", "UNKNOWN_ENUM"),
    (reply(replied_at=NOW + timedelta(hours=1)), "leadbus.intake.SPB", "TIME_IN_FUTURE"),
    (reply(detail="x" * 3000), "leadbus.intake.SPB", "TOO_LONG"),
])
def test_bad_courier_replies_are_refused_with_a_reason(record: dict[str, Any], topic: str, reason: str) -> None:
    outcome = _examine("cn.leadbus.CourierReply", record, topic)
    assert isinstance(outcome, Rejection) and outcome.reason == reason, outcome


def test_a_warning_is_accepted_from_any_agency_on_its_own_topic() -> None:
    outcome = _examine("cn.leadbus.ConsumerWarning", warning(), "leadbus.intake.SAMR")
    assert isinstance(outcome, EventAcceptance) and outcome.topic == CONSUMER_WARNINGS


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"summary": "涉案人身份证号11010519491231002X"}, "PERSONAL_DATA_IN_WARNING"),
    ({"advice": ["联系13812345678"]}, "PERSONAL_DATA_IN_WARNING"),
    ({"title": "卡号6222021234567890128"}, "PERSONAL_DATA_IN_WARNING"),
    ({"summary": "见案件CASE-00000000000000A1"}, "UNDISCLOSED_CASE"),
    ({"sources": [{"title": "x", "url": "http://example.com/"}]}, "SOURCE_URL"),
    ({"sources": [{"title": "x", "url": "javascript:alert(1)"}]}, "SOURCE_URL"),
    ({"sources": []}, "INVALID_FIELD"),
    ({"goods_category": "WEAPONS"}, "UNKNOWN_CATEGORY"),
    ({"risk": "UNSPECIFIED"}, "UNKNOWN_ENUM"),
    ({"title": ""}, "TOO_SHORT"),
])
def test_a_warning_carrying_case_data_or_bad_fields_is_refused(overrides: dict[str, Any], reason: str) -> None:
    outcome = _examine("cn.leadbus.ConsumerWarning", warning(**overrides), "leadbus.intake.SAMR")
    assert isinstance(outcome, Rejection) and outcome.reason == reason, outcome


def test_a_case_the_agency_discloses_may_be_named() -> None:
    record = warning(summary="见案件CASE-00000000000000A1", disclosed_cases=["CASE-00000000000000A1"])
    outcome = _examine("cn.leadbus.ConsumerWarning", record, "leadbus.intake.SAMR")
    assert isinstance(outcome, EventAcceptance)
    assert public_warning(record)["disclosed_cases"] == ["CASE-00000000000000A1"]


def test_the_public_form_has_only_the_warnings_own_fields() -> None:
    shown = public_warning(warning(publisher={"agency": "SAMR", "province": "33", "unit": "某执法大队 张三"}))
    assert "unit" not in repr(shown) and "张三" not in repr(shown)
    assert shown["agency"] == "SAMR"


def test_the_board_keeps_the_highest_revision_and_drops_withdrawn_warnings() -> None:
    from leadbus.processors.core.agency_events import fold_warnings, visible_warnings

    first = warning()
    board = fold_warnings({}, first)
    board = fold_warnings(board, {**first, "revision": 3, "title": "更正"})
    board = fold_warnings(board, {**first, "revision": 2, "title": "旧的"})  # late: ignored
    assert [w["title"] for w in visible_warnings(board)] == ["更正"]
    board = fold_warnings(board, {**first, "revision": 4, "withdrawn": True})
    assert visible_warnings(board) == []


def test_a_signed_courier_reply_keeps_its_seal_and_an_unsigned_one_is_refused_when_spb_signs() -> None:
    from datetime import timedelta as _td

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from leadbus.processors.core.records import Record
    from leadbus.processors.intake import IntakeHandler
    from leadbus.signing import KeyRegistry, PublisherKey, Seal, key_id_of, public_bytes, sign
    from leadbus.topics import INTAKE_BY_LEAD, LEADS_REJECTED

    private = Ed25519PrivateKey.generate()
    raw = public_bytes(private.public_key())
    registry = KeyRegistry([PublisherKey("SPB.00", key_id_of(raw), raw, NOW - _td(days=1), NOW - _td(days=1))])
    handler = IntakeHandler(keys=registry)
    state: dict[bytes, bytes] = {}

    def through(value: bytes, headers: list[tuple[str, bytes]]) -> list[Any]:
        first = handler.handle(Record("leadbus.intake.SPB", 0, 7, None, value, tuple(headers)), _State(state), NOW)
        out = []
        for o in first.outputs:
            if o.topic != INTAKE_BY_LEAD:
                out.append(o)
                continue
            second = handler.handle(Record(INTAKE_BY_LEAD, 0, 9, o.key, o.value, tuple(o.headers)), _State(state),
                                    NOW)
            state.update({k: v for k, v in second.state.items() if v is not None})
            out += second.outputs
        return out

    value = encode(CATALOG.latest("cn.leadbus.CourierReply"), reply())
    seal = sign(private, "SPB.00", "leadbus.intake.SPB", 0, 1, value)
    (out,) = through(value, list(seal.headers()))
    assert out.topic == COURIER_REPLIES and out.key == b"CASE-00000000000000A1"
    kept = Seal.from_headers(out.headers)
    assert kept is not None and kept.publisher == "SPB.00"  # whoever reads the reply can re-verify it
    (refused,) = through(encode(CATALOG.latest("cn.leadbus.CourierReply"), reply()), [])
    assert refused.topic == LEADS_REJECTED
    assert decode(CATALOG, refused.value)[1]["reason"] == "UNSIGNED"


class _State:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)
