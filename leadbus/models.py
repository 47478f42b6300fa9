"""Pydantic models of the event contract (DESIGN §3), mirroring `schemas/`.

The field names are the contract: the JSON form used by the gateway, `leadbus link` and
fixtures, and the Avro records, carry exactly these names. Validation errors carry stable
reason codes (the pydantic error `type`) so intake can dead-letter with a reason.
Validation needs no clock: "not in the future" is checked only when the caller passes
`context={"now": datetime}`.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from leadbus.agencies import AGENCIES, is_agency_code
from leadbus.contact_phones import contact_phone_ok
from leadbus.geography import REGIONS, is_province_code, is_publisher_province
from leadbus.identifiers import (
    IdentifierError,
    check_uscc,
    is_bank_card_like,
    normalize_bank_card,
    normalize_icp_filing,
    normalize_mobile,
    normalize_resident_id,
    to_halfwidth,
)

FUTURE_TOLERANCE = timedelta(minutes=5)
_BEIJING = timezone(timedelta(hours=8))
_LANDLINE = re.compile(r"^(?:\+?86[- ]?)?0\d{2,3}[- ]?\d{7,8}(?:[- ]?\d{1,5})?$")
# The E.164 form intake normalises landlines to: +86, area code without its 0, number.
_LANDLINE_E164 = re.compile(r"^\+86(?:10|2\d|[3-9]\d{2})\d{7,8}$")
_LANDLINE_COMPACT = re.compile(r"^(?:\+86|0086|86)?0\d{9,11}$")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212().]+")
_CASE_ID = re.compile(r"^CASE-[0-9A-F]{16}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_URL = re.compile(r"^(?i:https?://)?[^\s/:?#]+\.[^\s/:?#]+(?::\d+)?(?:[/?#]\S*)?$")
# The text form str(uuid.UUID(x)) gives: such a value is its own canonical form.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Channel(StrEnum):
    """How the lead reached the reporting agency (线索来源): a complaint, an inspection, a platform's report…"""

    COMPLAINT = "COMPLAINT"
    INSPECTION = "INSPECTION"
    PLATFORM_REPORT = "PLATFORM_REPORT"
    MONITORING = "MONITORING"
    SEIZURE = "SEIZURE"
    CROSS_BORDER = "CROSS_BORDER"
    REFERRAL = "REFERRAL"
    OTHER = "OTHER"


class Category(StrEnum):
    """The priority goods and works of 国办发〔2015〕77号."""

    AGRI_INPUTS = "AGRI_INPUTS"
    FOOD = "FOOD"
    DRUGS = "DRUGS"
    COSMETICS = "COSMETICS"
    MEDICAL_DEVICES = "MEDICAL_DEVICES"
    ELECTRONICS = "ELECTRONICS"
    AUTO_PARTS = "AUTO_PARTS"
    BUILDING_MATERIALS = "BUILDING_MATERIALS"
    HAZARDOUS_CHEMICALS = "HAZARDOUS_CHEMICALS"
    CHILDREN_PRODUCTS = "CHILDREN_PRODUCTS"
    APPAREL_FOOTWEAR = "APPAREL_FOOTWEAR"
    LITERATURE = "LITERATURE"
    MUSIC = "MUSIC"
    FILM_TV = "FILM_TV"
    GAMES = "GAMES"
    ANIMATION = "ANIMATION"
    SOFTWARE = "SOFTWARE"
    STANDARDS = "STANDARDS"
    PATENTED_PRODUCTS = "PATENTED_PRODUCTS"
    OTHER = "OTHER"


class Violation(StrEnum):
    """The Criminal Law (刑法) article the conduct may amount to."""

    ART_140 = "ART_140"
    ART_141 = "ART_141"
    ART_142 = "ART_142"
    ART_142_1 = "ART_142_1"
    ART_143 = "ART_143"
    ART_144 = "ART_144"
    ART_145 = "ART_145"
    ART_146 = "ART_146"
    ART_147 = "ART_147"
    ART_148 = "ART_148"
    ART_213 = "ART_213"
    ART_214 = "ART_214"
    ART_215 = "ART_215"
    ART_216 = "ART_216"
    ART_217 = "ART_217"
    ART_218 = "ART_218"
    ART_219 = "ART_219"
    ART_219_1 = "ART_219_1"
    OTHER = "OTHER"


class SubjectKind(StrEnum):
    ENTERPRISE = "ENTERPRISE"
    INDIVIDUAL = "INDIVIDUAL"
    ONLINE_SHOP = "ONLINE_SHOP"
    WEBSITE = "WEBSITE"
    APP = "APP"


class Handling(StrEnum):
    """OPEN: anyone on the bus; RESTRICTED: only `share_with`; CONFIDENTIAL: only named agencies."""

    OPEN = "OPEN"
    RESTRICTED = "RESTRICTED"
    CONFIDENTIAL = "CONFIDENTIAL"


_BUILTIN_CODES = {
    "missing": "MISSING_FIELD",
    "extra_forbidden": "UNKNOWN_FIELD",
    "greater_than_equal": "OUT_OF_RANGE",
    "less_than_equal": "OUT_OF_RANGE",
    "greater_than": "OUT_OF_RANGE",
    "less_than": "OUT_OF_RANGE",
    "too_long": "TOO_LONG",
    "string_too_long": "TOO_LONG",
    "string_too_short": "TOO_SHORT",
    "enum": "UNKNOWN_ENUM",
    "literal_error": "UNKNOWN_ENUM",
}


def reason_code(error_type: str) -> str:
    """The stable reason code of a validation error: ours as is, pydantic's mapped, else INVALID_FIELD."""
    if error_type.isupper():
        return error_type
    return _BUILTIN_CODES.get(error_type, "INVALID_FIELD")


def _fail(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def _identifier(exc: IdentifierError) -> PydanticCustomError:
    return _fail(exc.code, str(exc))


def _identifiers(check: Callable[[str], object]) -> Callable[[Any], Any]:
    """A validator running an identifier check on a value, or on each of a list; None passes."""

    def validate(value: Any) -> Any:
        for item in value if isinstance(value, list) else () if value is None else (value,):
            try:
                check(item)
            except IdentifierError as exc:
                raise _identifier(exc) from None
        return value

    return validate


def _checked(test: Callable[[str], object], code: str, message: str) -> Callable[[str], str]:
    """A validator: the value as it is where `test` holds, else refused with `code` (`{value!r}` in the message)."""

    def check(value: str) -> str:
        if not test(value):
            raise _fail(code, message.format(value=value))
        return value

    return check


_check_agency = _checked(is_agency_code, "UNKNOWN_AGENCY", "{value!r} is not a current agency code")
_check_publisher_province = _checked(is_publisher_province, "UNKNOWN_PROVINCE",
                                     "{value!r} is not a GB/T 2260 province code or 00 (national)")


def _uuid_text(value: object, code: str) -> str:
    """A UUID in its canonical text form; fastavro may hand one over as a `uuid.UUID`."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        raise _fail(code, f"{value!r} is not a UUID") from None


def _event_time(value: datetime, info: ValidationInfo, name: str) -> datetime:
    """UTC at millisecond precision (timestamp-millis); not in the future when the caller passes `now`."""
    if value.tzinfo is None:
        raise _fail("TIME_NAIVE", f"{name} needs a time zone (UTC)")
    if value.tzinfo is not UTC or value.microsecond % 1000:  # as read from Avro it is already both
        value = value.astimezone(UTC)
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    now = (info.context or {}).get("now") if info.context else None
    if now is not None and value > now + FUTURE_TOLERANCE:
        raise _fail("TIME_IN_FUTURE", f"{name} {value.isoformat()} is in the future")
    return value


_check_case_id = _checked(_CASE_ID.match, "UNKNOWN_CASE",
                          "{value!r} is not a case id of the bus (CASE- and 16 hex digits)")


def _check_case_ids(values: list[str]) -> list[str]:
    return [_check_case_id(v) for v in values]


def _decision_id_text(value: object) -> str:
    return _uuid_text(value, "DECISION_ID_FORMAT")


def _decided_at_time(value: datetime, info: ValidationInfo) -> datetime:
    return _event_time(value, info, "decided_at")


@lru_cache(maxsize=65536)
def _phone_ok(value: str) -> bool:
    """A mainland mobile number or a landline, in any of the forms agencies write them."""
    text = to_halfwidth(value).strip()  # normalise, then check: ０１０－６２７５１２３４ is a landline
    compact = _SEPARATORS.sub("", text)
    if _LANDLINE.match(text) or _LANDLINE_E164.match(text) or _LANDLINE_COMPACT.match(compact):
        return True
    try:
        normalize_mobile(text)
    except IdentifierError:
        return False
    return True


@lru_cache(maxsize=65536)
def _ip_ok(value: str) -> bool:
    try:
        ipaddress.ip_address(to_halfwidth(value).strip())
    except ValueError:
        return False
    return True


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Actor(_Model):
    """An agency acting on the bus (publishing, deciding, relaying): its code, its province (GB/T 2260, 00 for
    national) and, if it says so, its unit. The Avro records keep their own names for it."""

    agency: str
    province: str
    unit: str | None = None

    _agency = field_validator("agency")(_check_agency)
    _province = field_validator("province")(_check_publisher_province)


class Publisher(Actor):
    pass  # the agency that publishes a lead; the name the gateway's OpenAPI document gives it


class Address(_Model):
    province: str
    city: str | None = None
    detail: str | None = None

    _province = field_validator("province")(
        _checked(is_province_code, "UNKNOWN_PROVINCE", "{value!r} is not a GB/T 2260 province code"))


class Subject(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: SubjectKind
    uscc: str | None = None
    id_number: str | None = None
    phones: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=20)
    address: Address | None = None

    # a failing USCC check digit is a warning (early pilot codes), not an error
    _uscc = field_validator("uscc")(_identifiers(check_uscc))
    _id_number = field_validator("id_number")(_identifiers(normalize_resident_id))

    @field_validator("phones")
    @classmethod
    def _phones(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _phone_ok(value):
                raise _fail("PHONE_FORMAT", f"{value!r} is neither a mainland mobile number (1[3-9] and 9 more "
                                            "digits) nor a landline (0, a 2–3 digit area code, 7–8 digits)")
        return values


class Online(_Model):
    platform: str | None = None
    shop_id: str | None = None
    urls: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=50)
    ips: list[str] = Field(default_factory=list, max_length=50)
    icp_filings: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=20)  # v2

    _icp = field_validator("icp_filings")(_identifiers(normalize_icp_filing))

    @field_validator("urls")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _URL.match(to_halfwidth(value).strip()):
                raise _fail("URL_FORMAT", f"{value!r} is not an http(s) URL (http:// or https://, a host name "
                                          "with a dot, no spaces) or host name")
        return values

    @field_validator("ips")
    @classmethod
    def _ips(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ip_ok(value):
                raise _fail("IP_FORMAT", f"{value!r} is not an IPv4 or IPv6 address")
        return values


NonNegative = Annotated[int, Field(ge=0, le=2**63 - 1)]


class Facts(_Model):
    """Threshold quantities of domain-facts; money is an integer number of fen (分)."""

    illegal_business_amount_fen: NonNegative | None = None
    illegal_gains_fen: NonNegative | None = None
    sales_amount_fen: NonNegative | None = None
    goods_value_fen: NonNegative | None = None
    copies: NonNegative | None = None
    works: NonNegative | None = None
    clicks: NonNegative | None = None
    members: NonNegative | None = None
    trademark_kinds: NonNegative | None = None
    labels: NonNegative | None = None
    loss_fen: NonNegative | None = None
    # v2
    labels_sold: NonNegative | None = None
    labels_held: NonNegative | None = None
    labels_made_by: Literal["UNKNOWN", "SELF", "OTHERS"] | None = None
    copies_held: NonNegative | None = None
    patents: NonNegative | None = None
    rights_holder_bankrupt: bool | None = None
    mark_use: Literal["UNKNOWN", "GOODS", "SERVICES"] | None = None


class PriorPenalty(_Model):
    """An earlier penalty of the suspect (I2025: 二年内受过刑事处罚或者行政处罚后再次实施 lowers some thresholds)."""

    kind: Literal["ADMINISTRATIVE", "CRIMINAL"] = "ADMINISTRATIVE"
    decided_on: date
    decided_by: Annotated[str, Field(min_length=1, max_length=200)]
    violation: Violation  # a string in Avro (v2), checked here
    reference: str | None = None


class RightsHolder(_Model):
    name: str
    registration: str | None = None


class Grading(_Model):
    source: Literal["A", "B", "C", "X"]
    accuracy: Annotated[int, Field(ge=1, le=4)]


class Evidence(_Model):
    kind: str
    uri: str
    sha256: str

    _sha = field_validator("sha256")(
        _checked(_SHA256.match, "EVIDENCE_DIGEST", "sha256 must be 64 lower-case hex digits"))


class Product(_Model):
    """v3: goods or works a report names (型号/款式) and the brand they bear — a weak signal for suggested links."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    brand: Annotated[str, Field(max_length=200)] | None = None


class Contact(_Model):
    """v3: a waybill sender (寄件人, Avro ``WaybillSender``) or a shop operator (经营者, ``ShopOperator``) as printed:
    name and phone often masked (王**, 138****5678). Weak signals only: compared by the suggestion scorer, never
    linked on. Where the parcels leave from is in ``CaseLead.return_addresses``."""

    name: Annotated[str, Field(max_length=200)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and value and not contact_phone_ok(value):
            raise _fail("PHONE_FORMAT", f"{value!r} is neither a phone number nor a masked one (138****5678, "
                                        "尾号5678: at least the last four digits)")
        return value or None


#: The fields CaseLead v3 added; left out of the JSON form while empty, so that a lead without them keeps the
#: content digest (intake's dedupe) it had under v2.
V3_FIELDS = ("products", "senders", "return_addresses", "operator")
_EMPTY_V3 = set(V3_FIELDS)


class CaseLead(_Model):
    """A case lead (案件线索) as published by an agency."""

    lead_id: str
    revision: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    reported_at: datetime
    publisher: Publisher
    channel: Channel
    category: Category
    violation: Violation
    subject: Subject
    online: Online = Field(default_factory=Online)
    payment_accounts: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    waybills: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=200)
    facts: Facts = Field(default_factory=Facts)
    cross_border: bool = False
    countries: list[str] = Field(default_factory=list, max_length=50)
    rights_holder: RightsHolder | None = None
    handling: Handling
    share_with: list[str] = Field(default_factory=list, max_length=50)
    grading: Grading
    description: Annotated[str, Field(max_length=20000)] = ""
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    # v2: the date of the conduct (行为时) picks the threshold rule (CL Art.12), not the date of the report
    conduct_from: date | None = None
    conduct_to: date | None = None
    prior_penalties: list[PriorPenalty] = Field(default_factory=list, max_length=50)
    police_measures_needed: bool = False  # R310 Art.3 ¶2
    # v3: what analysts compare across reports (weak signals for suggested links, never linked on)
    products: list[Product] = Field(default_factory=list, max_length=50)
    senders: list[Contact] = Field(default_factory=list, max_length=50)
    return_addresses: list[Address] = Field(default_factory=list, max_length=20)  # Avro WarehouseAddress
    operator: Contact | None = None

    @model_validator(mode="after")
    def _conduct(self) -> CaseLead:
        if self.conduct_from is None and self.conduct_to is None:
            return self
        reported = self.reported_at.astimezone(_BEIJING).date()
        if self.conduct_from and self.conduct_to and self.conduct_to < self.conduct_from:
            raise _fail("CONDUCT_PERIOD", "conduct_to is before conduct_from")
        for name, day in (("conduct_from", self.conduct_from), ("conduct_to", self.conduct_to)):
            if day is not None and day > reported:
                raise _fail("CONDUCT_PERIOD", f"{name} {day.isoformat()} is after the report")
        return self

    @field_validator("lead_id", mode="before")
    @classmethod
    def _lead_id(cls, value: object) -> str:
        return _uuid_text(value, "LEAD_ID_FORMAT")

    @field_validator("reported_at")
    @classmethod
    def _reported_at(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _event_time(value, info, "reported_at")

    @field_validator("payment_accounts")
    @classmethod
    def _accounts(cls, values: list[str]) -> list[str]:
        for value in values:
            if is_bank_card_like(value):
                try:
                    normalize_bank_card(value)
                except IdentifierError as exc:
                    raise _identifier(exc) from None
        return values

    @field_validator("countries")
    @classmethod
    def _countries(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _COUNTRY.match(to_halfwidth(value).strip().upper()):
                raise _fail("COUNTRY_CODE", f"{value!r} is not an ISO 3166 alpha-2 code (two letters, e.g. HK, US)")
        return values

    @field_validator("share_with")
    @classmethod
    def _share_with(cls, values: list[str]) -> list[str]:
        for value in values:
            if value not in AGENCIES and value not in REGIONS:
                raise _fail("UNKNOWN_RECIPIENT", f"{value!r} is neither an agency nor a region code")
        return values

    # -- forms -------------------------------------------------------------------------

    def to_avro(self) -> dict[str, Any]:
        return self.model_dump(mode="python")

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> CaseLead:
        return cls.model_validate(record)

    def to_json(self) -> str:
        return self.json_bytes().decode()

    def json_bytes(self) -> bytes:
        """The JSON form as the serializer writes it (what the content digest is taken over).

        Written by orjson from the fields as they are held (about half the serializer's time, and intake
        takes it for every event): byte for byte the serializer's form (a unit test holds them equal on
        simulated and hostile leads). The empty v3 fields, the model's last, are cut off the end. What orjson
        refuses (a lone surrogate) goes to the serializer, which refuses it with its own error.
        """
        try:
            data = orjson.dumps(self.__dict__, default=_FIELDS_OF, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:
            return self.serializer_json_bytes()
        if data.endswith(_EMPTY_V3_TAIL):  # the strings in it escape their quotes: only empty v3 fields end so
            return data[: -len(_EMPTY_V3_TAIL)] + b"}"
        return data

    def serializer_json_bytes(self) -> bytes:
        """`json_bytes` by pydantic's serializer (the reference the faster form is held to)."""
        if self.products or self.senders or self.return_addresses or self.operator is not None:
            return CaseLead.__pydantic_serializer__.to_json(self)
        return CaseLead.__pydantic_serializer__.to_json(self, exclude=_EMPTY_V3)

    @classmethod
    def from_json(cls, text: str | bytes, *, now: datetime | None = None) -> CaseLead:
        return cls.model_validate_json(text, context={"now": now} if now else None)


# json_bytes: a nested model is written as its fields; the v3 fields must stay the last, in this order.
_FIELDS_OF = operator.attrgetter("__dict__")
_EMPTY_V3_TAIL = b',"products":[],"senders":[],"return_addresses":[],"operator":null}'
if tuple(CaseLead.model_fields)[-len(V3_FIELDS):] != V3_FIELDS:
    raise RuntimeError("CaseLead's v3 fields must be its last fields, in V3_FIELDS' order (json_bytes cuts them off)")


class DecisionActor(Actor):
    role: Literal["OFFICER", "HEAD", "POLICE", "PROCURATOR"] = "OFFICER"


class HandoverKind(StrEnum):
    """What a `HandoverDecision` says (the steps of 行政执法与刑事司法衔接; the schema's enum lists the same)."""

    HEAD_APPROVE = "HEAD_APPROVE"
    HEAD_REFUSE = "HEAD_REFUSE"
    TRANSFER = "TRANSFER"
    POLICE_FORWARD = "POLICE_FORWARD"
    POLICE_FILE = "POLICE_FILE"
    POLICE_NOT_FILE = "POLICE_NOT_FILE"
    MATERIALS_HANDED = "MATERIALS_HANDED"
    REQUEST_RECONSIDERATION = "REQUEST_RECONSIDERATION"
    RECONSIDERATION_FILE = "RECONSIDERATION_FILE"
    RECONSIDERATION_UPHOLD = "RECONSIDERATION_UPHOLD"
    PROPOSE_SUPERVISION = "PROPOSE_SUPERVISION"
    ACCEPT_NOT_FILING = "ACCEPT_NOT_FILING"
    REQUIRE_EXPLANATION = "REQUIRE_EXPLANATION"
    POLICE_EXPLAIN = "POLICE_EXPLAIN"
    ORDER_FILING = "ORDER_FILING"
    ACCEPT_REASONS = "ACCEPT_REASONS"
    REQUIRE_TRANSFER = "REQUIRE_TRANSFER"
    REVERSE_HANDOVER = "REVERSE_HANDOVER"
    POLICE_EXTEND = "POLICE_EXTEND"
    POLICE_REQUEST_MATERIALS = "POLICE_REQUEST_MATERIALS"
    MATERIALS_SUPPLEMENTED = "MATERIALS_SUPPLEMENTED"
    AGENCY_REPLY = "AGENCY_REPLY"


class HandoverDecision(_Model):
    """A step of the handover (行政执法与刑事司法衔接) taken by an agency, public security or the procuratorate."""

    decision_id: str
    case_id: str
    kind: HandoverKind
    actor: DecisionActor
    decided_at: datetime
    reasons: str = ""
    documents: list[Evidence] = Field(default_factory=list)

    _decision_id = field_validator("decision_id", mode="before")(_decision_id_text)

    _case_id = field_validator("case_id")(_check_case_id)

    _decided_at = field_validator("decided_at")(_decided_at_time)


# -- issue #18: the blacklist -------------------------------------------------------------------

class BlacklistDecision(_Model):
    """An agency's decision to list, decline or delist a proposed blacklist entry (失信名单列入/移出决定)."""

    decision_id: str
    entry_id: Annotated[str, Field(pattern=r"^BL-[0-9a-f]{20}$")]
    kind: Literal["LIST", "DECLINE", "DELIST"]
    actor: Actor
    decided_at: datetime
    period_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    reasons: Annotated[str, Field(max_length=2000)] = ""

    _decision_id = field_validator("decision_id", mode="before")(_decision_id_text)

    _decided_at = field_validator("decided_at")(_decided_at_time)


# -- analysts' link decisions (issue #19) --------------------------------------------------------------


class Analyst(_Model):
    """Who decided a link: an account of an agency's system or a dashboard sign-in, in a role that may decide."""

    agency: str
    province: str
    user: str
    role: Literal["ANALYST", "SUPERVISOR", "OFFICER", "VIEWER"]

    _agency = field_validator("agency")(_check_agency)
    _province = field_validator("province")(_check_publisher_province)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not value.strip() or len(value) > 128:
            raise _fail("ANALYST_UNNAMED", "a link decision names the analyst's account (1-128 characters)")
        return value.strip()


class LinkDecision(_Model):
    """An analyst's decision on case links (并案 / 拆案): CONFIRM merges two cases, REJECT says they are not one
    suspect (never suggested again), SPLIT moves named leads out of a case into a new one."""

    decision_id: str
    action: Literal["CONFIRM", "REJECT", "SPLIT"]
    case_a: str
    case_b: str | None = None
    lead_ids: list[str] = Field(default_factory=list, max_length=1000)
    suggestion_id: str | None = None
    analyst: Analyst
    reason: str
    decided_at: datetime

    _decision_id = field_validator("decision_id", mode="before")(_decision_id_text)

    @field_validator("case_a", "case_b")
    @classmethod
    def _case_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_case_id(value)

    @field_validator("lead_ids", mode="before")
    @classmethod
    def _lead_ids(cls, value: object) -> list[str]:
        if not isinstance(value, list):
            raise _fail("LEAD_ID_FORMAT", "lead_ids is a list of lead ids")
        return sorted({_uuid_text(v, "LEAD_ID_FORMAT") for v in value})

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise _fail("REASON_MISSING", "a link decision says why (reason): it goes into the case history")
        if len(value) > 4000:
            raise _fail("REASON_TOO_LONG", "a link decision's reason is at most 4000 characters")
        return value.strip()

    _decided_at = field_validator("decided_at")(_decided_at_time)

    @model_validator(mode="after")
    def _shape(self) -> LinkDecision:
        if self.action == "SPLIT":
            if self.case_b is not None or not self.lead_ids:
                raise _fail("LINK_DECISION_SHAPE", "a SPLIT names one case (case_a) and the leads that leave it")
        elif self.case_b is None or self.case_b == self.case_a or self.lead_ids:
            raise _fail("LINK_DECISION_SHAPE", f"a {self.action} names two distinct cases and no leads")
        return self
