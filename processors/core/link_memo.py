"""Linking's view of a lead as intake derives it, with what it derives from single values remembered (issue #16).

`linking.link_view` derives a lead's strong identifiers and weak signals value by value: a shop page's URL gives its
shop, an address its city, address and building signals, an IP its /24... Most of the view's cost is there, and the
values recur: a suspect's shop, address and IPs come back in every report of it (other agencies', revisions), as
the names and URLs `normalise` remembers do. Intake derives the view of every lead it accepts (`LeadAccepted` v7
``linking``), so it remembers these per value (bounded caches of the same functions), as `normalise` does its
canonical forms; the view is byte for byte `link_view(lead, domains)` (a unit test holds them equal on simulated
and hostile traffic). The Linker's own path (`derive`, for offline linking and records without a view) computes
each time.
"""

from __future__ import annotations

import re
from datetime import UTC
from functools import lru_cache
from itertools import compress, repeat
from operator import is_not
from typing import Any

from leadbus.models import Address, CaseLead
from leadbus.processors.core import ipv4
from leadbus.processors.core.linking import (
    _MOBILE,
    LINK_VIEW_VERSION,
    MARKETPLACE_DOMAINS,
    KeySources,
    Sources,
    _member,
    dumps,
    icp_key,
    shop_from_parts,
    shop_key,
    shop_key_of_page,
    url_shop_key,
)
from leadbus.processors.core.normalize import PLAIN_URL, Normalised, _replaced, split_name
from leadbus.processors.core.suggest import SignalSources, address_signals, ip_signals, name_signals, weak_signals

_SIZE = 65536  # per kind of value, as normalise's caches


@lru_cache(maxsize=_SIZE)
def _address_signals(province: str, city: str | None, detail: str | None) -> tuple[str, ...]:
    # keyed by the fields (an Address's own equality costs ~1 µs, a hit of this cache ~0.2); the Address rebuilt as
    # normalise copies models: `model_construct` cost ~4 µs of an address's first sight (issue #16)
    return address_signals(_replaced(_ADDRESS, {"province": province, "city": city, "detail": detail}))


_ADDRESS = Address.model_construct(province="", city=None, detail=None)


def _address(address: Address) -> tuple[str, ...]:
    return _address_signals(address.province, address.city, address.detail)


shop_key_of = lru_cache(maxsize=_SIZE)(shop_key)


# A literal each of linking's shop page patterns needs in the URL's host or path (none holds a "/", so none spans
# the two); a unit test holds each pattern to one of them.
SHOP_URL_LITERALS = ("taobao.com", "mall.jd.com", "yangkeduo.com", "jinritemai.com", "kwaixiaodian.com", "goofish.com",
                     "weidian.com")


@lru_cache(maxsize=_SIZE)
def url_shop_key_of(url: str) -> str | None:
    """`url_shop_key(url)`, a plain URL read without urllib (~3 µs less at first sight, issue #16): most are no
    marketplace's shop page, told without parsing them. In ASCII without brackets or the tabs and line breaks urlsplit
    drops, urlsplit cannot refuse, and its host and path lie in the URL as written, lower-cased."""
    if url.isascii() and not _UNPLAIN.search(url):
        lowered = url.lower()
        if not any(literal in lowered for literal in SHOP_URL_LITERALS):
            return None
        plain = PLAIN_URL.fullmatch(url)
        if plain is not None:  # urlsplit's parts, as canonical_url reads them
            host, _, path, query = plain.groups()
            return shop_key_of_page(shop_from_parts(host.lower(), path or "", query or ""))
    return url_shop_key(url)


_UNPLAIN = re.compile(r"[\[\]\t\r\n]")


icp_key_of = lru_cache(maxsize=_SIZE)(icp_key)
name_signals_of = lru_cache(maxsize=_SIZE)(name_signals)


@lru_cache(maxsize=_SIZE)
def ip_signals_of(ip: str) -> tuple[str, ...]:
    """`ip_signals(ip)`; an IPv4 address in its canonical form (as normalise leaves it) without `ipaddress` objects."""
    octets = ipv4.dotted(ip)
    if octets is None:
        return ip_signals(ip)
    if not ipv4.is_global(octets):
        return ()
    return f"ip:{ip}", f"ip24:{octets[0]}.{octets[1]}.{octets[2]}.0/24"

REMEMBERED = Sources(KeySources(shop_key_of, url_shop_key_of, icp_key_of),
                     SignalSources(_address, name_signals_of, ip_signals_of))


def intake_link_view(normalised: Normalised) -> dict[str, Any]:
    """`link_view(lead, domains)` of a normalised lead, its values' derivations remembered."""
    lead = normalised.lead
    keys = intake_keys(lead, normalised.domains)
    return {"version": LINK_VIEW_VERSION, "lead_id": lead.lead_id, "keys": keys,
            "member": intake_member_json(lead, keys, intake_weak(lead))}


# Intake's own copies of `strong_identifiers` and `weak_signals` with `REMEMBERED` (unit tests hold them equal): the
# per-value derivations called directly and mapped in C, not through a sources tuple and a generator per kind of
# value (~2.5 µs of the ~10 the two took per lead warm, issue #16). The Linker's path keeps the generic ones.

def intake_keys(lead: CaseLead, domains: tuple[str, ...]) -> list[str]:
    """`strong_identifiers(lead, domains, REMEMBERED.keys)`."""
    keys: set[str] = set()
    subject = lead.subject
    if subject.uscc:
        keys.add(f"uscc:{subject.uscc}")
    if subject.id_number:
        keys.add(f"rid:{subject.id_number}")
    online = lead.online
    if online.platform and (shop := shop_key_of(online.platform, online.shop_id)):
        keys.add(shop)
    if online.urls:
        keys.update(filter(None, map(url_shop_key_of, online.urls)))
    if domains:
        keys.update(_domain_keys(domains))
    if online.icp_filings:
        keys.update(filter(None, map(icp_key_of, online.icp_filings)))
    if lead.payment_accounts:
        keys.update(map("acct:".__add__, lead.payment_accounts))
    if subject.phones:
        keys.update(filter(None, map(_phone_key, subject.phones)))
    return sorted(keys)


@lru_cache(maxsize=_SIZE)
def _domain_keys(domains: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"domain:{d}" for d in domains if d not in MARKETPLACE_DOMAINS)


@lru_cache(maxsize=_SIZE)
def _phone_key(phone: str) -> str | None:
    return f"phone:{phone}" if _MOBILE.match(phone) else None


def intake_weak(lead: CaseLead) -> list[str]:
    """`weak_signals(lead, REMEMBERED.signals)`; a lead with CaseLead v3 parts (rare) takes that path itself."""
    if lead.return_addresses or lead.senders or lead.operator is not None or lead.products:
        return weak_signals(lead, REMEMBERED.signals)
    subject = lead.subject
    address = subject.address
    if address is None:
        signals, surname = _subject_signals(str(subject.kind), subject.name, False, "", None, None)
    else:
        signals, surname = _subject_signals(str(subject.kind), subject.name, True, address.province, address.city,
                                            address.detail)
    found = set(signals)
    if surname is not None:
        found.update(f"stail:{surname}|{p[-4:]}" for p in subject.phones if p.startswith("+861"))
    for ip in lead.online.ips:
        found.update(ip_signals_of(ip))
    if lead.rights_holder is not None and (brand := _brand_of(lead.rights_holder.name)):
        found.add(brand)
    found.add("cat:" + lead.category)  # a StrEnum: its value, as f"cat:{...}" writes it
    return sorted(found)


@lru_cache(maxsize=_SIZE)
def _subject_signals(kind: str, name: str, addressed: bool, province: str, city: str | None,
                     detail: str | None) -> tuple[tuple[str, ...], str | None]:
    """The signals of a suspect's address and name together (one look-up where there were two), and the surname."""
    found = set(_address_signals(province, city, detail)) if addressed else set()
    named, surname = name_signals_of(kind, name.strip(), city if addressed else None)
    found.update(named)
    return tuple(found), surname


@lru_cache(maxsize=_SIZE)
def _brand_of(name: str) -> str | None:
    return f"brand:{split_name(name).core}" if name.strip() else None


def intake_member(lead: CaseLead, keys: list[str], weak: list[str]) -> dict[str, Any]:
    """`linking._member(lead, domains, keys, weak)`, the same record, for intake alone (the Linker's path keeps its
    own): the facts read from the model's attributes, not dumped (~1.5 µs less per lead, issue #16); a unit test holds
    the two equal. Facts' fields are scalars (numbers, a flag, literals), which `model_dump` gives as they are."""
    facts = {name: value for name, value in lead.facts.__dict__.items() if value is not None}
    return _member(lead, (), keys, weak, facts)


def intake_member_json(lead: CaseLead, keys: list[str], weak: list[str]) -> str:
    """`dumps(intake_member(lead, keys, weak))`, the values handed to orjson as the model holds them (~2 µs less per
    lead, issue #16): it writes a date as `isoformat` does, a UTC time as well (validation keeps every time in UTC;
    any other is written by `isoformat` here), an enum as its value, a list as it is. A unit test holds them equal."""
    address = lead.subject.address
    reported = lead.reported_at
    first = lead.conduct_from
    facts = lead.facts.__dict__
    return dumps({
        "revision": lead.revision,
        "agency": lead.publisher.agency,
        "province": lead.publisher.province,
        "reported_at": reported if reported.tzinfo is UTC else reported.isoformat(),
        "category": lead.category,
        "violation": lead.violation,
        "name": lead.subject.name,
        "suspect_province": address.province if address else None,
        "facts": dict(compress(facts.items(), map(is_not, facts.values(), repeat(None)))),
        "handling": lead.handling,
        "share_with": lead.share_with,
        "cross_border": lead.cross_border,
        "countries": lead.countries,
        "conduct_from": first,
        "conduct_to": lead.conduct_to or first,
        "prior_penalties": [{"kind": p.kind, "decided_on": p.decided_on, "decided_by": p.decided_by,
                             "violation": p.violation} for p in lead.prior_penalties],
        "police_measures_needed": lead.police_measures_needed,
        "weak": weak,
        "waybills": lead.waybills,
        "keys": keys,
    })
