"""Checks and normal forms of the identifiers that link case leads.

* 公民身份号码, the resident ID number: GB 11643-1999, 18 characters, ISO 7064 MOD 11-2 check;
  the legacy 15-digit form of GB 11643-1989 is upgraded to 18.
* 统一社会信用代码 (USCC), the unified social credit code: GB 32100-2015, MOD 31 check, embedding
  the 9-character 组织机构代码 (organisation code, GB 11714, MOD 11 check).
* Bank card numbers (ISO/IEC 7812, Luhn) and mainland mobile numbers (to E.164).

Pure functions without I/O. Every rejection is an :class:`IdentifierError` whose ``code`` is a
short reason that intake copies into ``LeadRejected``. The ``make_*`` helpers build valid values
for generators and tests.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import lru_cache
from operator import mul
from typing import Final

from leadbus.geography import province_of_division


class IdentifierError(ValueError):
    """An identifier that cannot be accepted; ``code`` is an UPPER_SNAKE reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Identifiers recur (a suspect is reported again and again) and intake checks each one twice (validation,
# then normalisation): the pure checks below remember their answers. Errors are not remembered.
_CACHED: Final = 65536

# --- text -------------------------------------------------------------------------------------

# Chinese input methods emit full-width ASCII (ＡＢＣ１２３＋－) and the ideographic space.
_HALFWIDTH: Final[dict[int, int]] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


# Whether there is anything to map: a search is ~4x cheaper than `translate` over text with none (most Chinese
# names and addresses), which looks every character up in the table (issue #16).
_FULLWIDTH: Final = re.compile("[\u3000\uff01-\uff5e]")


def to_halfwidth(text: str) -> str:
    """Map full-width ASCII (U+FF01–U+FF5E) to ASCII and U+3000 to a space."""
    return text if text.isascii() or _FULLWIDTH.search(text) is None else text.translate(_HALFWIDTH)


def clean_text(text: str) -> str:
    """Half-width, every run of whitespace collapsed to one space, stripped."""
    return " ".join(to_halfwidth(text).split())


def _compact(value: str) -> str:
    return "".join(to_halfwidth(value).split())


def _is_digits(value: str) -> bool:
    # str.isdigit alone accepts other scripts' digits and superscripts.
    return value.isascii() and value.isdigit()


# --- resident ID, GB 11643 --------------------------------------------------------------------

_RID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(18-i) mod 11
_RID_CHECK_CHARS: Final = "10X98765432"
_RID_18: Final = re.compile(r"[0-9]{17}[0-9X]")
# GB 11643-1999's own example holder was born in 1880 (440524188001010014), so 1900 is too late.
EARLIEST_BIRTH: Final = datetime.date(1800, 1, 1)
LATEST_BIRTH: Final = datetime.date(2100, 12, 31)


def resident_id_check_char(first17: str) -> str:
    """The MOD 11-2 check character ("0"–"9" or "X") for the first 17 digits."""
    if len(first17) != 17 or not _is_digits(first17):
        raise IdentifierError("RESIDENT_ID_FORMAT", "need 17 ASCII digits before the check character")
    return _RID_CHECK_CHARS[sum(map(mul, map(int, first17), _RID_WEIGHTS)) % 11]  # C loops, not a generator


def _birth_date(yyyymmdd: str, today: datetime.date | None) -> datetime.date:
    try:
        birth = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        raise IdentifierError("RESIDENT_ID_DATE", f"no such birth date {yyyymmdd}") from None
    if not EARLIEST_BIRTH <= birth <= LATEST_BIRTH:
        raise IdentifierError("RESIDENT_ID_DATE", f"birth date {birth} out of range")
    if today is not None and birth > today:
        raise IdentifierError("RESIDENT_ID_DATE", f"birth date {birth} is in the future")
    return birth


def _check_region(region6: str) -> None:
    # Historical address codes stay valid in old numbers, so only the province is checked.
    if province_of_division(region6) is None:
        raise IdentifierError("RESIDENT_ID_REGION", f"unknown province in address code {region6}")


@lru_cache(maxsize=_CACHED)
def normalize_resident_id(value: str, *, today: datetime.date | None = None) -> str:
    """The 18-character form of a resident ID number, or IdentifierError.

    Accepts full-width characters, spaces, a lowercase ``x`` and the legacy 15-digit form
    (century 19, no check character). ``today``, when given, also rejects future birth dates.
    """
    text = _compact(value).upper()
    if len(text) == 15 and _is_digits(text):
        first17 = text[:6] + "19" + text[6:]
        text = first17 + resident_id_check_char(first17)
    elif not _RID_18.fullmatch(text):
        raise IdentifierError("RESIDENT_ID_FORMAT", "need 18 characters (17 digits and a digit or X) or 15 digits")
    _birth_date(text[6:14], today)
    _check_region(text[:6])
    expected = resident_id_check_char(text[:17])
    if text[17] != expected:
        raise IdentifierError("RESIDENT_ID_CHECKSUM", f"check character is {text[17]}, expected {expected}")
    return text


def make_resident_id(region6: str, birth: datetime.date, sequence: int) -> str:
    """A valid 18-character ID number; ``sequence`` is 0–999 (odd last digit = male)."""
    if len(region6) != 6 or not _is_digits(region6):
        raise IdentifierError("RESIDENT_ID_FORMAT", f"address code must be 6 digits, got {region6!r}")
    if not 0 <= sequence <= 999:
        raise IdentifierError("RESIDENT_ID_FORMAT", f"sequence must be 0-999, got {sequence}")
    _check_region(region6)
    first17 = f"{region6}{birth:%Y%m%d}{sequence:03d}"
    _birth_date(first17[6:14], None)
    return first17 + resident_id_check_char(first17)


# --- USCC, GB 32100, and organisation code, GB 11714 --------------------------------------------

USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, Z, S, V
_USCC_VALUES: Final = {char: index for index, char in enumerate(USCC_CHARSET)}
_USCC_CHARS: Final = frozenset(USCC_CHARSET)
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # 3^(i-1) mod 31
_USCC: Final = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_8: Final = re.compile(r"[0-9A-Z]{8}")


@dataclass(frozen=True)
class UsccCheck:
    """A well-formed USCC; ``checksum_ok`` is false for codes that fail MOD 31."""

    value: str
    checksum_ok: bool


def uscc_check_char(first17: str) -> str:
    """The MOD 31 check character for the first 17 USCC characters."""
    if len(first17) != 17 or not _USCC_CHARS.issuperset(first17):
        raise IdentifierError("USCC_FORMAT", f"need 17 characters of {USCC_CHARSET}, got {first17!r}")
    total = sum(map(mul, map(_USCC_VALUES.__getitem__, first17), _USCC_WEIGHTS))  # C loops, not a generator
    return USCC_CHARSET[(31 - total % 31) % 31]


@lru_cache(maxsize=_CACHED)
def check_uscc(value: str) -> UsccCheck:
    """Normalise (half-width, no spaces, upper case) and check a USCC.

    A wrong length or character is an IdentifierError. A failing check character is not: early
    pilot codes such as 91350211M0000XUF46 are legal yet fail it, so callers warn instead.
    """
    text = _compact(value).upper()
    if not _USCC.fullmatch(text):
        raise IdentifierError(
            "USCC_FORMAT", "need 18 characters: 2 of the code set, a 6-digit division code, 10 of the code set"
        )
    return UsccCheck(value=text, checksum_ok=text[17] == uscc_check_char(text[:17]))


def organization_code_check_char(first8: str) -> str:
    """The GB 11714 check character ("0"–"9" or "X") of a 9-character organisation code."""
    if not _ORG_CODE_8.fullmatch(first8):
        raise IdentifierError("ORG_CODE_FORMAT", f"need 8 characters of 0-9 A-Z, got {first8!r}")
    total = sum(int(char, 36) * weight for char, weight in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else str(check % 11)


def make_uscc(dept_and_kind: str, region6: str, org_code9: str) -> str:
    """A USCC with a correct check character, e.g. ("91", "350100", "M000100Y4") for an enterprise."""
    first17 = dept_and_kind + region6 + org_code9
    if not _USCC.fullmatch(first17 + "0"):
        raise IdentifierError("USCC_FORMAT", f"need 2 + 6 digits + 9 characters of {USCC_CHARSET}, got {first17!r}")
    return first17 + uscc_check_char(first17)


# --- bank cards -------------------------------------------------------------------------------

# Dashes as pasted from office documents, besides ASCII "-" and whitespace.
_CARD_SEPARATORS: Final = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
_CARD: Final = re.compile(r"[0-9]{16,19}")


# Every second digit from the right counts doubled, less 9 past 9: 0-9 count as 0 2 4 6 8 1 3 5 7 9.
_LUHN_DOUBLED: Final = str.maketrans("0123456789", "0246813579")


def _luhn_sum(digits: str) -> int:
    """The Luhn sum of ASCII digits (callers check them), in C loops: a Python loop per digit cost ~2 µs a card."""
    backwards = digits[::-1]
    return sum(map(int, backwards[::2])) + sum(map(int, backwards[1::2].translate(_LUHN_DOUBLED)))


def luhn_ok(digits: str) -> bool:
    """True if ``digits`` (ASCII digits only) passes the Luhn mod 10 check."""
    return bool(digits) and _is_digits(digits) and _luhn_sum(digits) % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit to append to ``partial`` so that the whole passes Luhn."""
    if partial and not _is_digits(partial):
        raise IdentifierError("BANK_CARD_FORMAT", f"need digits, got {partial!r}")
    return str(-_luhn_sum(partial + "0") % 10)


def _strip_card(value: str) -> str:
    return _CARD_SEPARATORS.sub("", to_halfwidth(value))


@lru_cache(maxsize=_CACHED)
def is_bank_card_like(value: str) -> bool:
    """True if ``value`` is 16–19 digits once separators go, whatever its Luhn check.

    Payment accounts that are not card numbers (an Alipay login, a WeChat ID) answer False.
    """
    return _CARD.fullmatch(_strip_card(value)) is not None


@lru_cache(maxsize=_CACHED)
def normalize_bank_card(value: str) -> str:
    """The bare digits of a bank card number; IdentifierError unless 16–19 digits passing Luhn.

    Some legacy domestic debit cards reportedly fail Luhn; callers that want to keep them catch
    ``BANK_CARD_LUHN`` and warn.
    """
    digits = _strip_card(value)
    if not _CARD.fullmatch(digits):
        raise IdentifierError("BANK_CARD_FORMAT", "need 16-19 digits")
    if not luhn_ok(digits):
        raise IdentifierError("BANK_CARD_LUHN", "Luhn check failed")
    return digits


def make_bank_card(prefix: str, length: int, body: str) -> str:
    """``prefix + body`` plus its Luhn digit; ``length`` (16–19) must equal the total length."""
    partial = prefix + body
    if not 16 <= length <= 19 or len(partial) != length - 1 or not _is_digits(partial):
        raise IdentifierError(
            "BANK_CARD_FORMAT", f"prefix + body must be {length - 1} digits for a {length}-digit card (16-19)"
        )
    return partial + luhn_check_digit(partial)


# --- mobile phones ------------------------------------------------------------------------------

_PHONE_SEPARATORS: Final = re.compile(r"[\s\-\u2010-\u2015\u2212().]+")
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")


@lru_cache(maxsize=_CACHED)
def normalize_mobile(value: str) -> str:
    """A mainland mobile number in E.164 (``+8613800138000``), or IdentifierError.

    Accepts the ``+86``, ``0086`` and ``86`` prefixes, spaces, dashes, dots, parentheses and
    full-width characters. Landlines, foreign numbers and 13-digit IoT numbers are rejected.
    """
    text = _PHONE_SEPARATORS.sub("", to_halfwidth(value))
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    if not _MOBILE.fullmatch(text):
        raise IdentifierError("PHONE_FORMAT", "not a mainland mobile number (1[3-9] and 9 more digits)")
    return "+86" + text


# --- ICP filing numbers (网站备案号) --------------------------------------------------------------

# The province abbreviation of the filing's communications administration (通信管理局), "ICP备" (filing) or "ICP证"
# (operating licence), the number and 号, optionally "-n" for the n-th site of the filing subject. Source: the
# MIIT filing system 网站备案管理 (beian.miit.gov.cn), e.g. 京ICP备05070286号-1, 沪ICP证B2-20050020 is not a filing.
ICP_PROVINCES = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川蜀贵黔云滇藏陕秦甘陇青宁新"
_ICP = re.compile(rf"^([{ICP_PROVINCES}])ICP(备|证)(\d{{6,10}})号(?:-(\d{{1,4}}))?$")


@lru_cache(maxsize=_CACHED)
def normalize_icp_filing(value: str) -> tuple[str, str]:
    """(the filing as written canonically, the filing subject's number without the site suffix) or
    IdentifierError ICP_FILING_FORMAT. Full-width characters, spaces and a lower-case "icp" are accepted."""
    text = re.sub(r"\s+", "", to_halfwidth(value)).replace("icp", "ICP").replace("Icp", "ICP")
    match = _ICP.match(text)
    if match is None:
        raise IdentifierError("ICP_FILING_FORMAT", f"{value!r} is not an ICP filing number (e.g. 京ICP备05070286号-1:"
                                                   " province abbreviation, ICP备 or ICP证, 6–10 digits, 号, -n)")
    province, kind, number, site = match.groups()
    subject = f"{province}ICP{kind}{number}号"
    return (subject + (f"-{int(site)}" if site else "")), subject
