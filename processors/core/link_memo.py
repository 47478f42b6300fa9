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
from functools import lru_cache
from typing import Any

from leadbus.models import Address, CaseLead
from leadbus.processors.core import ipv4
from leadbus.processors.core.linking import (
    LINK_VIEW_VERSION,
    KeySources,
    Sources,
    domain_keys,
    dumps,
    icp_key,
    member_values,
    phone_key,
    shop_from_parts,
    shop_key,
    shop_key_of_page,
    strong_identifiers,
    url_shop_key,
)
from leadbus.processors.core.normalize import PLAIN_URL, Normalised, _replaced
from leadbus.processors.core.suggest import (
    SignalSources,
    address_signals,
    brand_signal,
    ip_signals,
    name_signals,
    weak_signals,
)

_SIZE = 65536  # per kind of value, as normalise's caches


@lru_cache(maxsize=_SIZE)
def _address_signals(province: str, city: str | None, detail: str | None) -> tuple[str, ...]:
    # keyed by the fields (an Address's own equality costs ~1 µs, a hit of this cache ~0.2); the Address rebuilt as
    # normalise copies models: `model_construct` cost ~4 µs of an address's first sight (issue #16)
    return address_signals(_replaced(_ADDRESS, {"province": province, "city": city, "detail": detail}))


_ADDRESS = Address.model_construct(province="", city=None, detail=None)


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


@lru_cache(maxsize=_SIZE)
def _subject_signals(kind: str, name: str, addressed: bool, province: str, city: str | None,
                     detail: str | None) -> tuple[tuple[str, ...], str | None]:
    """`subject_signals` keyed by the address's fields: a suspect's address and name in one look-up, not two."""
    found = set(_address_signals(province, city, detail)) if addressed else set()
    named, surname = name_signals_of(kind, name.strip(), city if addressed else None)
    found.update(named)
    return tuple(found), surname


def _subject(kind: str, name: str, address: Address | None) -> tuple[tuple[str, ...], str | None]:
    if address is None:
        return _subject_signals(kind, name, False, "", None, None)
    return _subject_signals(kind, name, True, address.province, address.city, address.detail)


REMEMBERED = Sources(
    KeySources(shop_key_of, url_shop_key_of, icp_key_of, lru_cache(maxsize=_SIZE)(domain_keys),
               lru_cache(maxsize=_SIZE)(phone_key)),
    SignalSources(_subject, ip_signals_of, lru_cache(maxsize=_SIZE)(brand_signal)),
)


def intake_link_view(normalised: Normalised) -> dict[str, Any]:
    """`link_view(lead, domains)` of a normalised lead, its values' derivations remembered."""
    lead = normalised.lead
    keys = strong_identifiers(lead, normalised.domains, REMEMBERED.keys)
    return {"version": LINK_VIEW_VERSION, "lead_id": lead.lead_id, "keys": keys,
            "member": intake_member_json(lead, keys, weak_signals(lead, REMEMBERED.signals))}


def intake_member_json(lead: CaseLead, keys: list[str], weak: list[str]) -> str:
    """`dumps(_member(lead, domains, keys, weak))`, written from the values as the model holds them
    (`linking.member_values`, issue #16)."""
    return dumps(member_values(lead, keys, weak))
