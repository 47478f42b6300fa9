"""Identifier checks: published test vectors, hand-computed negatives and properties."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadbus.geography import PROVINCES, county_codes
from leadbus.identifiers import (
    USCC_CHARSET,
    IdentifierError,
    check_uscc,
    clean_text,
    is_bank_card_like,
    luhn_check_digit,
    luhn_ok,
    make_bank_card,
    make_resident_id,
    make_uscc,
    normalize_bank_card,
    normalize_mobile,
    normalize_resident_id,
    organization_code_check_char,
    resident_id_check_char,
    to_halfwidth,
    uscc_check_char,
)

ALL_COUNTY_CODES = sorted({code for province in PROVINCES for code in county_codes(province)})


def error_code(call: object, *args: str) -> str:
    assert callable(call)
    with pytest.raises(IdentifierError) as caught:
        call(*args)
    return caught.value.code


# --- text -------------------------------------------------------------------------------------


def test_to_halfwidth_maps_fullwidth_ascii_and_ideographic_space() -> None:
    assert to_halfwidth("ＡＢＣ１２３！～") == "ABC123!~"
    assert to_halfwidth("北京\u3000朝阳") == "北京 朝阳"
    assert to_halfwidth("中文，") == "中文,"  # U+FF0C is a full-width comma
    assert to_halfwidth("、。「」") == "、。「」"  # CJK punctuation (U+3001…) is not


def test_clean_text_collapses_and_strips() -> None:
    assert clean_text("  ａｂｃ\u3000\u3000公司\n\t有限 ") == "abc 公司 有限"
    assert clean_text("\u3000") == ""


def test_identifier_error_carries_code_and_message() -> None:
    with pytest.raises(IdentifierError) as caught:
        normalize_mobile("12345")
    assert caught.value.code == "PHONE_FORMAT"
    assert caught.value.message == str(caught.value)
    assert isinstance(caught.value, ValueError)


# --- resident ID --------------------------------------------------------------------------------

RESIDENT_ID_VECTORS = [
    "11010519491231002X",
    "440524188001010014",
    "34052419800101001X",
    "810000199408230021",
    "830000199201300022",
]


@pytest.mark.parametrize("value", RESIDENT_ID_VECTORS)
def test_resident_id_vectors_pass(value: str) -> None:
    assert normalize_resident_id(value) == value
    assert resident_id_check_char(value[:17]) == value[17]


def test_resident_id_check_char_by_hand() -> None:
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167; 167 mod 11 = 2 -> X
    assert resident_id_check_char("11010519491231002") == "X"


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002x",
        " 110105 19491231 002X ",
        "１１０１０５１９４９１２３１００２Ｘ",
        "110105\u300019491231002ｘ",
    ],
)
def test_resident_id_normalises_case_spaces_and_fullwidth(raw: str) -> None:
    assert normalize_resident_id(raw) == "11010519491231002X"


def test_legacy_15_digit_id_is_upgraded() -> None:
    assert normalize_resident_id("110105491231002") == "11010519491231002X"
    # 4*7+4*9+0+5*5+2*8+4*4+1*2+9*1+8*6+0+0+1*9+0+1*5+0+0+1*2 = 196; 196 mod 11 = 9 -> "3"
    assert normalize_resident_id("440524800101001") == "440524198001010013"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("110105194912310021", "RESIDENT_ID_CHECKSUM"),  # correct check is X
        ("440524188001010015", "RESIDENT_ID_CHECKSUM"),  # correct check is 4
        ("11010519491231002", "RESIDENT_ID_FORMAT"),  # 17 characters
        ("11010519491231002XX", "RESIDENT_ID_FORMAT"),
        ("1101051949123100X2", "RESIDENT_ID_FORMAT"),  # X only as the check
        ("11010519491231002Y", "RESIDENT_ID_FORMAT"),
        ("11010549123100A", "RESIDENT_ID_FORMAT"),  # 15 characters, not digits
        ("", "RESIDENT_ID_FORMAT"),
        ("110105490231002", "RESIDENT_ID_DATE"),  # 1949-02-31 in the legacy form
    ],
)
def test_resident_id_rejections(value: str, code: str) -> None:
    assert error_code(normalize_resident_id, value) == code


@pytest.mark.parametrize("birth", ["19490231", "19491301", "19490000", "17991231", "21010101", "20230229"])
def test_resident_id_impossible_birth_date(birth: str) -> None:
    first17 = "110105" + birth + "002"
    assert error_code(normalize_resident_id, first17 + resident_id_check_char(first17)) == "RESIDENT_ID_DATE"


def test_resident_id_leap_day_is_a_date() -> None:
    first17 = "11010520000229002"
    assert normalize_resident_id(first17 + resident_id_check_char(first17)).startswith("11010520000229")


def test_resident_id_future_birth_rejected_only_when_today_given() -> None:
    value = make_resident_id("110105", datetime.date(2030, 1, 1), 7)
    assert normalize_resident_id(value) == value
    with pytest.raises(IdentifierError) as caught:
        normalize_resident_id(value, today=datetime.date(2025, 6, 1))
    assert caught.value.code == "RESIDENT_ID_DATE"


@pytest.mark.parametrize("region", ["000000", "990101", "720000", "910000"])
def test_resident_id_unknown_province_rejected(region: str) -> None:
    first17 = region + "19800101001"
    assert error_code(normalize_resident_id, first17 + resident_id_check_char(first17)) == "RESIDENT_ID_REGION"


def test_make_resident_id_reproduces_the_standard_example() -> None:
    assert make_resident_id("110105", datetime.date(1949, 12, 31), 2) == "11010519491231002X"
    assert make_resident_id("440524", datetime.date(1880, 1, 1), 1) == "440524188001010014"


@pytest.mark.parametrize(
    ("region", "sequence"),
    [("11010", 1), ("11010A", 1), ("110105", -1), ("110105", 1000), ("990101", 1)],
)
def test_make_resident_id_rejects_bad_arguments(region: str, sequence: int) -> None:
    with pytest.raises(IdentifierError):
        make_resident_id(region, datetime.date(1990, 1, 1), sequence)


resident_ids = st.builds(
    make_resident_id,
    st.sampled_from(ALL_COUNTY_CODES),
    st.dates(datetime.date(1900, 1, 1), datetime.date(2025, 12, 31)),
    st.integers(0, 999),
)


@given(resident_ids)
def test_made_resident_ids_validate(value: str) -> None:
    assert normalize_resident_id(value) == value


@given(resident_ids, st.integers(0, 17), st.data())
def test_any_single_changed_character_is_detected(value: str, position: int, data: st.DataObject) -> None:
    alphabet = "0123456789X" if position == 17 else "0123456789"
    replacement = data.draw(st.sampled_from([char for char in alphabet if char != value[position]]))
    changed = value[:position] + replacement + value[position + 1 :]
    with pytest.raises(IdentifierError):
        normalize_resident_id(changed)


@given(resident_ids, st.integers(0, 16), st.integers(1, 9))
def test_single_digit_change_fails_the_checksum_itself(value: str, position: int, shift: int) -> None:
    # Whatever else catches it, MOD 11-2 alone detects every single substitution.
    changed = value[:position] + str((int(value[position]) + shift) % 10) + value[position + 1 :]
    assert resident_id_check_char(changed[:17]) != changed[17]


# --- USCC and organisation code ----------------------------------------------------------------


def test_uscc_vector_is_valid() -> None:
    assert check_uscc("91350100M000100Y43").checksum_ok
    assert uscc_check_char("91350100M000100Y4") == "3"


def test_pilot_uscc_failing_checksum_is_not_an_error() -> None:
    result = check_uscc("91350211M0000XUF46")
    assert result.value == "91350211M0000XUF46"
    assert result.checksum_ok is False


@pytest.mark.parametrize(
    "raw", ["91350100m000100y43", " 9135 0100 M000 100Y 43 ", "９１３５０１００Ｍ０００１００Ｙ４３"]
)
def test_uscc_is_normalised(raw: str) -> None:
    assert check_uscc(raw).value == "91350100M000100Y43"
    assert check_uscc(raw).checksum_ok


@pytest.mark.parametrize(
    "value",
    [
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y433",  # 19 characters
        "91350100M000100I43",  # I is not in the code set
        "91350100M000100O43",
        "91350100M000100S43",
        "91350100M000100V43",
        "91350100M000100Z43",
        "913501A0M000100Y43",  # the division code must be digits
        "",
    ],
)
def test_uscc_format_errors(value: str) -> None:
    assert error_code(check_uscc, value) == "USCC_FORMAT"


def test_uscc_wrong_check_char_is_flagged() -> None:
    assert check_uscc("91350100M000100Y44").checksum_ok is False


def test_organization_code_check_char_by_hand() -> None:
    # M=22: 22*3 + 1*5 + Y(34)*2 = 139; 139 mod 11 = 7; 11 - 7 = 4
    assert organization_code_check_char("M000100Y") == "4"
    assert organization_code_check_char("00000006") == "X"  # 6*2 = 12 -> 11 - 1 = 10
    assert organization_code_check_char("00000000") == "0"  # 11 - 0 = 11
    assert error_code(organization_code_check_char, "m000100y") == "ORG_CODE_FORMAT"
    assert error_code(organization_code_check_char, "M000100") == "ORG_CODE_FORMAT"


def test_make_uscc_builds_the_vector() -> None:
    assert make_uscc("91", "350100", "M000100Y4") == "91350100M000100Y43"
    assert error_code(make_uscc, "91", "35010A", "M000100Y4") == "USCC_FORMAT"
    assert error_code(make_uscc, "9I", "350100", "M000100Y4") == "USCC_FORMAT"


org_bodies = st.text(alphabet=USCC_CHARSET, min_size=8, max_size=8)
usccs = st.builds(
    lambda kind, region, body: make_uscc(kind, region, body + organization_code_check_char(body)),
    st.sampled_from(["11", "12", "51", "52", "53", "91", "92", "93", "Y1"]),
    st.sampled_from(ALL_COUNTY_CODES),
    org_bodies,
)


@given(usccs)
def test_made_usccs_validate(value: str) -> None:
    result = check_uscc(value)
    assert result.value == value
    assert result.checksum_ok


@given(usccs, st.integers(0, 17), st.data())
def test_uscc_single_substitution_fails_checksum(value: str, position: int, data: st.DataObject) -> None:
    alphabet = "0123456789" if 2 <= position < 8 else USCC_CHARSET
    replacement = data.draw(st.sampled_from([char for char in alphabet if char != value[position]]))
    changed = value[:position] + replacement + value[position + 1 :]
    assert check_uscc(changed).checksum_ok is False


# --- bank cards -------------------------------------------------------------------------------


def test_luhn_classic_vectors() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert luhn_ok("4111111111111111")
    assert luhn_check_digit("7992739871") == "3"
    assert not luhn_ok("")
    assert not luhn_ok("4111 1111 1111 1111")  # separators are the normaliser's job


def test_luhn_check_digit_by_hand() -> None:
    # 621226123456789: doubled 9,7,5,3,1,2,1,6 -> 9+5+1+6+2+4+2+3 = 32; others 8+6+4+2+6+2+2 = 30; 62 -> 8
    assert luhn_check_digit("621226123456789") == "8"
    assert error_code(luhn_check_digit, "6212a") == "BANK_CARD_FORMAT"


@pytest.mark.parametrize(
    "raw",
    ["6212261234567898", "6212 2612 3456 7898", "6212-2612-3456-7898", "６２１２\u3000２６１２－３４５６ ７８９８"],
)
def test_normalize_bank_card_strips_separators(raw: str) -> None:
    assert normalize_bank_card(raw) == "6212261234567898"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("6212261234567890", "BANK_CARD_LUHN"),
        ("6212 2612 3456 7899", "BANK_CARD_LUHN"),
        ("621226123456789", "BANK_CARD_FORMAT"),  # 15 digits
        ("62122612345678980000", "BANK_CARD_FORMAT"),  # 20 digits
        ("6212261234567898a", "BANK_CARD_FORMAT"),
        ("zhang.san@example.com", "BANK_CARD_FORMAT"),
    ],
)
def test_normalize_bank_card_rejections(value: str, code: str) -> None:
    assert error_code(normalize_bank_card, value) == code


def test_is_bank_card_like_separates_cards_from_other_accounts() -> None:
    assert is_bank_card_like("6212 2612 3456 7890")  # card-shaped even though Luhn fails
    assert is_bank_card_like("6228480402564890018")
    assert not is_bank_card_like("zhang.san@example.com")  # an Alipay login
    assert not is_bank_card_like("13800138000")  # a phone number used as an account
    assert not is_bank_card_like("")


def test_make_bank_card_rejects_inconsistent_length() -> None:
    assert make_bank_card("62", 16, "1226123456789") == "6212261234567898"
    with pytest.raises(IdentifierError):
        make_bank_card("62", 16, "12261234567")
    with pytest.raises(IdentifierError):
        make_bank_card("62", 15, "122612345678")
    with pytest.raises(IdentifierError):
        make_bank_card("62", 16, "12261234567X9")


@given(
    st.sampled_from(["62", "622202", "621700", "4", "51"]),
    st.integers(16, 19),
    st.data(),
)
def test_made_bank_cards_validate(prefix: str, length: int, data: st.DataObject) -> None:
    body = data.draw(
        st.text(alphabet="0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    card = make_bank_card(prefix, length, body)
    assert len(card) == length
    assert luhn_ok(card)
    assert normalize_bank_card(" ".join(card[i : i + 4] for i in range(0, length, 4))) == card


# --- mobile phones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+8613800138000",
        "+86 138 0013 8000",
        "0086 138 0013 8000",
        "0086-138-0013-8000",
        "8613800138000",
        "86 138-0013-8000",
        "(+86) 138 0013 8000",
        "+86 (138) 0013-8000",
        "138.0013.8000",
        "＋８６\u3000１３８００１３８０００",
        "１３８－００１３－８０００",
    ],
)
def test_normalize_mobile_accepts_common_forms(raw: str) -> None:
    assert normalize_mobile(raw) == "+8613800138000"


@pytest.mark.parametrize("first_three", ["130", "145", "166", "177", "188", "199"])
def test_normalize_mobile_accepts_every_network_digit(first_three: str) -> None:
    assert normalize_mobile(first_three + "12345678") == "+86" + first_three + "12345678"


@pytest.mark.parametrize(
    "raw",
    [
        "12800138000",  # second digit 2
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "23800138000",
        "010-12345678",  # Beijing landline
        "+1 415 555 0100",
        "+852 9123 4567",
        "1440012345678",  # 13-digit IoT number
        "86138001380001",
        "+86 138 0013 800O",
        "",
    ],
)
def test_normalize_mobile_rejections(raw: str) -> None:
    assert error_code(normalize_mobile, raw) == "PHONE_FORMAT"


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.sampled_from(["", "+86", "0086", "86", "+86 "]))
def test_normalize_mobile_is_idempotent(number: str, prefix: str) -> None:
    normalised = normalize_mobile(prefix + number)
    assert normalised == "+86" + number
    assert normalize_mobile(normalised) == normalised
