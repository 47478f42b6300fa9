"""Platform seller checks, pure: query normalisation, the index, the signed minimal answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.processors.core.seller_check import (
    QueryError,
    SellerIndex,
    identifier_of,
    signed_answer,
    verify_answer,
)


@pytest.mark.parametrize(("kind", "value", "platform", "expected"), [
    ("uscc", "９１３３０１００ｍ０００１００ｙ４ｔ", None, "uscc:91330100M000100Y4T"),  # full-width, lower case
    ("shop", "TB525465088", "淘宝", "shop:taobao:525465088"),
    ("domain", "HTTPS://WWW.Fake-Brand.com.cn/item?id=1", None, "domain:fake-brand.com.cn"),
    ("domain", "shop.fake-brand.com.cn", None, "domain:fake-brand.com.cn"),
])
def test_queries_normalise_like_linking(kind: str, value: str, platform: str | None, expected: str) -> None:
    assert identifier_of(kind, value, platform) == expected


def test_a_legacy_15_digit_resident_id_finds_its_18_digit_form() -> None:
    assert identifier_of("rid", "330106800101012") == identifier_of("rid", "33010619800101012" + _check())


def _check() -> str:
    from leadbus.identifiers import resident_id_check_char

    return resident_id_check_char("33010619800101012")


@pytest.mark.parametrize(("kind", "value", "platform", "code"), [
    ("uscc", "123", None, "USCC_FORMAT"),
    ("rid", "110105199001011234", None, "RESIDENT_ID_CHECKSUM"),
    ("shop", "123", None, "QUERY_PLATFORM"),
    ("shop", "123", "taobao; DROP TABLE", "QUERY_PLATFORM"),
    ("domain", "localhost", None, "QUERY_DOMAIN"),
    ("phone", "13800138000", None, "QUERY_KIND"),
    ("uscc", "", None, "QUERY_VALUE"),
    ("uscc", "9" * 201, None, "QUERY_VALUE"),
])
def test_bad_queries_have_a_reason(kind: str, value: str, platform: str | None, code: str) -> None:
    with pytest.raises(QueryError) as err:
        identifier_of(kind, value, platform)
    assert err.value.code == code


def test_the_index_follows_listings_and_open_cases() -> None:
    index = SellerIndex()
    index.on_entry("BL-1", ["uscc:A", "shop:jd:1"], "PROPOSED")
    assert index.lookup("uscc:A") == (False, False)
    index.on_entry("BL-1", ["uscc:A", "shop:jd:1"], "LISTED")
    assert index.lookup("shop:jd:1") == (True, False)
    index.on_entry("BL-1", ["uscc:A", "shop:jd:1"], "EXPIRED")
    assert index.lookup("shop:jd:1") == (False, False)
    index.on_case("CASE-1", ["uscc:B", "phone:+861"], None)
    assert index.lookup("uscc:B") == (False, True) and index.lookup("phone:+861") == (False, False)
    index.on_case("CASE-2", ["uscc:B"], None)
    index.on_step("CASE-1", "COMPLETED")
    assert index.lookup("uscc:B") == (False, True)  # CASE-2 is still open
    index.on_case("CASE-2", ["uscc:B"], "CASE-3")  # merged away
    assert index.lookup("uscc:B") == (False, False)
    index.on_case("CASE-1", ["uscc:B"], None)  # a later version of a closed case does not reopen it
    assert index.lookup("uscc:B") == (False, False)


def test_answers_are_minimal_and_signed() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    query = {"kind": "uscc", "value": "91330100M000100Y4T"}
    answer = signed_answer(query, True, False, datetime(2026, 3, 1, tzinfo=UTC), "a-1", key)
    assert set(answer) == {"answer_id", "query", "blacklisted", "open_case", "checked_at", "key_id", "algorithm",
                           "signature"}
    assert verify_answer(answer, public)
    for changed in ({"blacklisted": False}, {"query": {**query, "value": "x"}}, {"checked_at": "2027-01-01"},
                    {"signature": "AAAA"}, {"signature": "not base64!"}):
        assert not verify_answer({**answer, **changed}, public)
    assert not verify_answer(answer, Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert not verify_answer({k: v for k, v in answer.items() if k != "signature"}, public)
