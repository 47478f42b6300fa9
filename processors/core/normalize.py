"""Normalising an accepted lead: canonical identifiers, URLs and IPs, name parts.

Nothing is thrown away. Identifiers (phones, accounts, ID numbers, URLs, IPs, waybills, country
codes) take their canonical form; free text an agency reported — names, the description, the
unit, the address — is evidence and stays exactly as written: matching uses the copies beside
it (`NameParts`, registrable domains), never instead of it. The accepted event also carries the
published bytes whole.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tldextract
from pydantic import BaseModel

from leadbus.geography import PROVINCES
from leadbus.identifiers import (
    IdentifierError,
    check_uscc,
    clean_text,
    is_bank_card_like,
    normalize_bank_card,
    normalize_icp_filing,
    normalize_mobile,
    normalize_resident_id,
    to_halfwidth,
)
from leadbus.models import CaseLead
from leadbus.processors.core import ipv4
from leadbus.processors.core.contacts import with_canonical_contacts

_M = TypeVar("_M", bound=BaseModel)

# The public-suffix snapshot bundled with tldextract: nothing is fetched at run time.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

LEGAL_FORMS = (
    "股份有限公司", "有限责任公司", "集团有限公司", "有限公司", "合伙企业", "个人独资企业",
    "商贸行", "经营部", "贸易商行", "商行", "工作室", "门市部", "分公司",
)  # fmt: skip
_PROVINCE_NAMES = sorted(
    {p.name_zh for p in PROVINCES.values()}
    | {re.sub(r"(省|市|自治区|特别行政区|壮族|回族|维吾尔)+$", "", p.name_zh) for p in PROVINCES.values()},
    key=len,
    reverse=True,
)
# Prefecture-level cities most often named without 市 in trade names.
_CITIES = (
    "石家庄", "哈尔滨", "乌鲁木齐", "呼和浩特", "齐齐哈尔",
    "杭州", "宁波", "温州", "金华", "义乌", "台州", "绍兴", "嘉兴",
    "湖州", "南京", "苏州", "无锡", "常州", "南通", "徐州", "扬州", "广州", "深圳", "东莞", "佛山", "汕头", "揭阳",
    "中山", "珠海", "惠州", "福州", "厦门", "泉州", "莆田", "晋江", "合肥", "芜湖", "济南", "青岛", "临沂", "郑州",
    "洛阳", "武汉", "长沙", "成都", "西安", "沈阳", "大连", "长春", "太原", "南昌", "南宁", "桂林", "海口", "三亚",
    "贵阳", "昆明", "兰州", "西宁", "银川", "拉萨", "保定", "廊坊", "唐山",
)  # fmt: skip
_CITY = re.compile(r"^([\u4e00-\u9fff]{2,4}?)(市|县|区)")
_PAREN_PLACE = re.compile(r"[（(]([\u4e00-\u9fff]{2,6})[)）]")
_TRACKING = re.compile(r"^(utm_.*|spm|scm|from|share.*|src|ref|tracking.*|ali_.*|_.*)$", re.IGNORECASE)
_LANDLINE_DIGITS = re.compile(r"^(?:0086|86)?0?(\d{2,3})(\d{7,8})$")


@dataclass(frozen=True)
class Warning_:
    code: str
    field: str
    message: str


@dataclass(frozen=True)
class NameParts:
    core: str
    prefix: str | None
    legal_form: str | None


# One place name leading a trade name, as one match: the first of the list (longest first) that leaves at least
# two characters after it, found by the regex engine's backtracking instead of ~120 startswith calls per step.
_LEADING_PROVINCE = re.compile("(?s)(?:" + "|".join(map(re.escape, _PROVINCE_NAMES)) + ")(?=..)")
# A city bare of 市 (杭州美丽, not 杭州市…: that one is the 市|县|区 rule's).
_LEADING_CITY = re.compile("(?s)(?:" + "|".join(map(re.escape, _CITIES)) + ")(?!市)(?=..)")


@lru_cache(maxsize=65536)
def split_name(name: str) -> NameParts:
    """浙江杭州美丽日化有限公司 → prefix 浙江杭州, core 美丽日化, legal form 有限公司.

    Leading places are peeled one at a time, each time a province first, else a city named without 市, else
    any 2–4 character name ending in 市, 县 or 区; the core keeps at least two characters.
    """
    text = clean_text(name).replace(" ", "")
    # one C call tells the many names without a legal form (the first form that fits, in order, for the others)
    legal = (next((form for form in LEGAL_FORMS if text.endswith(form) and len(text) > len(form)), None)
             if text.endswith(LEGAL_FORMS) else None)
    if legal:
        text = text[: -len(legal)]
    prefixes: list[str] = []
    paren = _PAREN_PLACE.search(text)
    if paren:
        prefixes.append(paren.group(1))
        text = (text[: paren.start()] + text[paren.end() :]).strip()
    while len(text) > 2:
        place = _LEADING_PROVINCE.match(text) or _LEADING_CITY.match(text)
        if place is None:
            place = _CITY.match(text)
            if place is None or len(text) - place.end() < 2:
                break
        prefixes.append(place.group(0))
        text = text[place.end() :]
    return NameParts(text, "".join(prefixes) or None, legal)  # positional: a frozen dataclass's keywords cost


@lru_cache(maxsize=65536)
def canonical_url(url: str) -> str:
    """Lower-case scheme and host, https, no www./m., no default port, fragment or tracking query."""
    text = clean_text(url)
    if "://" not in text:
        text = "https://" + text
    plain = PLAIN_URL.fullmatch(text) if text.isascii() else None
    if plain is None:
        return _parsed_canonical_url(text)
    host, port, path, query = plain.groups()
    host = host.lower().rstrip(".")
    if not host or (port and int(port) > 65535):
        return _parsed_canonical_url(text)  # urlunsplit's form of an empty netloc, urlsplit's error
    for prefix in ("www.", "m.", "wap."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    netloc = host if not port or int(port) in (80, 443) else f"{host}:{int(port)}"
    path = path.rstrip("/") if path else ""
    query = query and _canonical_query(query)
    return f"https://{netloc}{path}?{query}" if query else f"https://{netloc}{path}"


# A URL as urlsplit reads it without its generic steps (first sight of a URL costs ~2 µs less, issue #16): ASCII,
# a scheme, a plain host (no user, brackets or zone), a port, then the path up to "?" or "#", the query up to "#".
PLAIN_URL = re.compile(r"(?s)[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9._-]+)(?::([0-9]*))?(/[^?#]*)?(?:\?([^#]*))?(?:#.*)?")
# A query whose pairs parse_qsl reads as they are and urlencode writes back as they are: "k=v" with characters
# neither unquotes nor quotes, no empty value (parse_qsl drops those).
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]+(?:&[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]+)*")


def _canonical_query(query: str) -> str:
    """The query without tracking parameters, its pairs sorted, as urlencode writes them."""
    if _PLAIN_QUERY.fullmatch(query):
        pairs = sorted(tuple(pair.split("=", 1)) for pair in query.split("&"))
        return "&".join(f"{k}={v}" for k, v in pairs if not _TRACKING.match(k))
    return urlencode(sorted((k, v) for k, v in parse_qsl(query) if not _TRACKING.match(k)))


def _parsed_canonical_url(text: str) -> str:
    """`canonical_url` of any cleaned text with a scheme, as urllib reads it."""
    parts = urlsplit(text)
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in ("www.", "m.", "wap."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = parts.query and urlencode(sorted((k, v) for k, v in parse_qsl(parts.query) if not _TRACKING.match(k)))
    path = parts.path.rstrip("/")
    return urlunsplit(("https", netloc, path, query, ""))


@lru_cache(maxsize=65536)
def registrable_domain(url: str) -> str | None:
    """The registrable domain (eTLD+1) of a URL: shop123.taobao.com → taobao.com, a.b.co.uk → b.co.uk."""
    canonical = canonical_url(url)
    plain = _PLAIN_NETLOC.match(canonical)
    # the host as `urlsplit(canonical).hostname` reads it, without parsing again where the host is plain ASCII
    return _domain_of_host(plain.group(1) if plain else urlsplit(canonical).hostname or "")


# A canonical URL's netloc that urlsplit reads as it is: a lower-case ASCII host (no user, brackets or zone), a port.
_PLAIN_NETLOC = re.compile(r"https://([a-z0-9._-]*)(?::[0-9]*)?(?:[/?#]|\Z)")


@lru_cache(maxsize=65536)
def _domain_of_host(host: str) -> str | None:
    ext = _EXTRACT(host)
    # tldextract 5.3 renamed registered_domain (now deprecated, with a warning) to top_domain_under_public_suffix
    if hasattr(ext, "top_domain_under_public_suffix"):
        return str(ext.top_domain_under_public_suffix or "") or None
    return str(ext.registered_domain or "") or None


@lru_cache(maxsize=65536)
def canonical_ip(value: str) -> str:
    text = to_halfwidth(value).strip()
    if ipv4.dotted(text) is not None:
        return text  # as `ipaddress` prints it already
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


@lru_cache(maxsize=65536)
def canonical_phone(value: str) -> str:
    try:
        return normalize_mobile(value)
    except IdentifierError:
        digits = re.sub(r"[^\d]", "", clean_text(value))
        match = _LANDLINE_DIGITS.match(digits)
        return f"+86{match.group(1)}{match.group(2)}" if match else digits


@lru_cache(maxsize=65536)
def canonical_account(value: str) -> str:
    if is_bank_card_like(value):
        return normalize_bank_card(value)
    text = clean_text(value).replace(" ", "")
    try:
        return normalize_mobile(text)
    except IdentifierError:
        return text.lower()


@dataclass(frozen=True, init=False)
class Normalised:
    lead: CaseLead
    name: NameParts
    domains: tuple[str, ...]
    warnings: tuple[Warning_, ...]

    def __init__(self, lead: CaseLead, name: NameParts, domains: tuple[str, ...],
                 warnings: tuple[Warning_, ...]) -> None:
        # the instance's dict stored at once, not a frozen dataclass's setattr per field (per lead, issue #16)
        _set(self, "__dict__", {"lead": lead, "name": name, "domains": domains, "warnings": warnings})


def normalise(lead: CaseLead) -> Normalised:
    """The canonical form of a valid lead. Identifier errors cannot happen here: validation ran first.

    A part already in its canonical form is kept as it is (no copy): most published leads are.
    """
    warnings: list[Warning_] = []
    subject = lead.subject
    uscc = None
    if subject.uscc is not None:
        check = check_uscc(subject.uscc)
        uscc = check.value
        if not check.checksum_ok:
            warnings.append(Warning_("USCC_CHECKSUM", "subject.uscc",
                                     f"{uscc} fails the GB 32100 check character (early pilot codes do)"))
    id_number = None
    if subject.id_number is not None:
        id_number = normalize_resident_id(subject.id_number)
        if len(clean_text(subject.id_number).replace(" ", "")) == 15:
            warnings.append(Warning_("LEGACY_RESIDENT_ID", "subject.id_number", "15-digit ID upgraded to 18 digits"))
    # `_canonical` only where there is something: most leads have no IP, filing, account, waybill or country
    phones = _canonical(subject.phones, canonical_phone) if subject.phones else subject.phones
    if uscc != subject.uscc or id_number != subject.id_number or phones != subject.phones:
        subject = _replaced(subject, {"uscc": uscc, "id_number": id_number, "phones": phones})
    online = lead.online
    urls = _canonical(online.urls, canonical_url) if online.urls else online.urls
    platform = _clean_platform(online.platform) if online.platform else None
    shop_id = _clean_shop_id(online.shop_id) if online.shop_id else None
    ips = _canonical(online.ips, canonical_ip) if online.ips else online.ips
    filings = _canonical(online.icp_filings, _canonical_filing) if online.icp_filings else online.icp_filings
    if (urls != online.urls or platform != online.platform or shop_id != online.shop_id or ips != online.ips
            or filings != online.icp_filings):
        online = _replaced(online, {"platform": platform, "shop_id": shop_id, "urls": urls, "ips": ips,
                                    "icp_filings": filings})
    accounts = _canonical(lead.payment_accounts, canonical_account) if lead.payment_accounts else lead.payment_accounts
    waybills = _canonical(lead.waybills, _canonical_waybill) if lead.waybills else lead.waybills
    countries = _canonical(lead.countries, _canonical_country) if lead.countries else lead.countries
    if (subject is not lead.subject or online is not lead.online or accounts != lead.payment_accounts
            or waybills != lead.waybills or countries != lead.countries):
        lead = _replaced(lead, {"subject": subject, "online": online, "payment_accounts": accounts,
                                "waybills": waybills, "countries": countries})
    if lead.senders or lead.operator is not None:  # CaseLead v3 contacts; absent on most leads
        lead = with_canonical_contacts(lead)
    if not urls:
        domains: tuple[str, ...] = ()
    else:
        domains = tuple(sorted({d for d in (registrable_domain(u) for u in urls) if d}))
    return Normalised(lead, split_name(subject.name), domains, tuple(warnings))


_set = object.__setattr__


def _replaced(model: _M, update: dict[str, Any]) -> _M:
    """`model.model_copy(update=update)`, the same state, without its generic steps (a copy costs ~3 µs less).

    The contract's models forbid extras and hold no private attributes (a unit test checks both).
    """
    cls = type(model)
    copied = cls.__new__(cls)
    _set(copied, "__dict__", {**model.__dict__, **update})
    _set(copied, "__pydantic_extra__", None)
    _set(copied, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set(copied, "__pydantic_private__", None)
    return copied


def _canonical(values: list[str], canonical: Callable[[str], str]) -> list[str]:
    """The canonical forms of `values`, non-empty, each once, in first order; an empty list as it is."""
    if not values:
        return values
    forms = [canonical(v) for v in values]
    if len(forms) == 1:  # most lists hold one value
        return forms if forms[0] else []
    return _unique(forms)


@lru_cache(maxsize=1024)
def _clean_platform(value: str) -> str:
    # a few dozen platforms, written a few ways each
    return clean_text(value)


@lru_cache(maxsize=65536)
def _clean_shop_id(value: str) -> str:
    # a shop recurs in every report of it, as its URLs and names do
    return clean_text(value).replace(" ", "")


@lru_cache(maxsize=65536)
def _canonical_filing(value: str) -> str:
    return normalize_icp_filing(value)[0]


def _canonical_waybill(value: str) -> str:
    return clean_text(value).replace(" ", "").upper()


def _canonical_country(value: str) -> str:
    return to_halfwidth(value).strip().upper()


def _unique(values: list[str]) -> list[str]:
    """The non-empty values in their first order, each once."""
    unique = list(dict.fromkeys(values))
    if "" in unique:
        unique.remove("")
    return unique
