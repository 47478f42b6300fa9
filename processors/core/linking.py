"""Linking, pure: leads about the same suspect become one case (并案).

Strong identifiers link: 统一社会信用代码, resident ID number, (platform, shop id) — also read
from a marketplace shop URL —, the registrable domain of an independent shop or site, the
ICP filing number (网站备案号) of its filing subject, payment accounts, mobile phones.
Weak signals — IP address, name alone, address, waybill —
never link: a CDN, a courier or a common trade name is shared by thousands. Merging keeps
the older case (created first) and records the absorbed ids in `merged_from`. Case ids
derive from the first lead of a case, so the same input order always gives the same ids.

The linker keeps its memory in a `LinkStore` (key → text): a dict offline, the stage's
RocksDB state in the stream, so both run this same code. Its layout (each key is also a changelog
record in the stream, so a lead should write few and small ones):

* ``l:<lead>`` → the lead's case; ``i:<identifier>`` → the case holding it; ``seq`` → cases made so far;
* ``m:<lead>`` → the lead's member record (`_member`), written when the lead (or a revision) arrives and never
  again: merges and splits move leads between cases without rewriting them;
* ``c:<case>`` → the case without its members' records (`Case.header_json`): its lead ids, identifiers, merges,
  version, history. Before issue #16 ``c:`` held the whole case, members included (layout 1), so every lead
  rewrote every member of its case; `load_case` still reads that form, and the next write of such a case stores
  it in today's layout (its members under ``m:``), so a stage upgraded over an old changelog goes on without a
  rebuild and without loss.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from itertools import compress, repeat
from operator import is_not
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

import orjson

from leadbus.identifiers import IdentifierError, normalize_icp_filing
from leadbus.models import CaseLead
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.suggest import COMPUTED_SIGNALS, SignalSources, Suggestion, suggest, weak_signals

MARKETPLACE_DOMAINS = frozenset({
    "taobao.com", "tmall.com", "jd.com", "yangkeduo.com", "pinduoduo.com", "jinritemai.com", "douyin.com",
    "kwaixiaodian.com", "kuaishou.com", "goofish.com", "weidian.com", "1688.com", "alibaba.com", "aliexpress.com",
    "amazon.com", "ebay.com", "suning.com", "vip.com", "dangdang.com", "xiaohongshu.com", "weixin.qq.com", "qq.com",
    "baidu.com", "weibo.com", "bilibili.com",
})  # fmt: skip
PLATFORM_ALIASES = {
    "淘宝": "taobao", "淘宝网": "taobao", "天猫": "tmall", "京东": "jd", "拼多多": "pinduoduo", "抖音": "douyin",
    "抖店": "douyin", "抖音小店": "douyin", "快手": "kuaishou", "快手小店": "kuaishou", "闲鱼": "xianyu",
    "微店": "weidian",
    "阿里巴巴": "1688", "1688": "1688", "小红书": "xiaohongshu",
}  # fmt: skip
_SHOP_URLS: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    ("taobao", re.compile(r"^shop(\d+)\.taobao\.com$"), None),
    ("jd", re.compile(r"^mall\.jd\.com/index-(\d+)\.html$"), None),
    ("pinduoduo", re.compile(r"yangkeduo\.com/mall_page\.html$"), "mall_id"),
    ("douyin", re.compile(r"jinritemai\.com/views/shop/index$"), "id"),
    ("kuaishou", re.compile(r"kwaixiaodian\.com/merchant/shop/detail$"), "id"),
    ("xianyu", re.compile(r"goofish\.com/personal$"), "userId"),
    ("weidian", re.compile(r"^weidian\.com$"), "userid"),
)
_MOBILE = re.compile(r"^\+861[3-9]\d{9}$")
# Marketplaces whose shop ids are numbers (as in their shop URLs), and the prefixes agencies write before them
# ("TB525465088", "tb-525465088", "shop525465088" are taobao shop 525465088).
_NUMERIC_SHOP_IDS: dict[str, tuple[str, ...]] = {
    "taobao": ("TAOBAO", "TB"), "tmall": ("TMALL", "TM"), "jd": ("JD",), "pinduoduo": ("PINDUODUO", "PDD"),
    "weidian": ("WEIDIAN", "WD"), "xianyu": ("XIANYU", "XY"),
}  # fmt: skip


_T = TypeVar("_T")


def dumps(value: Any) -> str:
    """JSON of a stored value, keys sorted, UTF-8 as it is (orjson: about a fifth of `json.dumps`'s time with
    ``ensure_ascii=False``, the most of the store's cost per lead; `json.loads` reads both)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class LinkStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class DictStore:
    """The offline store: a plain dict."""

    def __init__(self, data: MutableMapping[str, str] | None = None) -> None:
        self.data: MutableMapping[str, str] = {} if data is None else data

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def platform_code(platform: str | None) -> str | None:
    if not platform:
        return None
    text = platform.strip()
    return PLATFORM_ALIASES.get(text, text.lower())


def canonical_shop_id(platform: str, shop_id: str) -> str:
    """One form per shop, whatever the lead wrote: `taobao`, `TB525465088` → `525465088`.

    Used for the `shop:<platform>:<id>` identifier that links leads and that routing and the pages show.
    Ids of platforms not known to be numeric are kept as written (they may be case-sensitive).
    """
    text = shop_id.strip()
    prefixes = _NUMERIC_SHOP_IDS.get(platform)
    if prefixes is None:
        return text
    match = re.fullmatch(rf"(?:{'|'.join(prefixes)}|SHOP)?[-_:#]?(\d+)", text, re.IGNORECASE)
    return match.group(1) if match else text


def shop_from_url(canonical: str) -> tuple[str, str] | None:
    """(platform, shop id) of a marketplace shop page, e.g. https://shop123.taobao.com → (taobao, 123)."""
    parts = urlsplit(canonical)
    return shop_from_parts(parts.hostname or "", parts.path, parts.query)


def shop_from_parts(hostname: str, path: str, query: str) -> tuple[str, str] | None:
    """`shop_from_url` of a URL split already (intake's link view splits plain URLs without urllib)."""
    host_path = f"{hostname}{path}"
    for platform, pattern, param in _SHOP_URLS:
        match = pattern.search(host_path) or pattern.search(hostname)
        if match is None:
            continue
        if param is None:
            return platform, canonical_shop_id(platform, match.group(1))
        value = dict(parse_qsl(query)).get(param)
        if value:
            return platform, canonical_shop_id(platform, value)
    return None


def shop_key(platform: str | None, shop_id: str | None) -> str | None:
    """The ``shop:`` key of a lead's (platform, shop id), as written; None without both."""
    code = platform_code(platform)
    return f"shop:{code}:{canonical_shop_id(code, shop_id)}" if code and shop_id else None


def url_shop_key(url: str) -> str | None:
    """The ``shop:`` key of a marketplace shop page's canonical URL; None for any other URL."""
    return shop_key_of_page(shop_from_url(url))


def shop_key_of_page(shop: tuple[str, str] | None) -> str | None:
    """The ``shop:`` key of a shop page's (platform, shop id)."""
    return f"shop:{shop[0]}:{shop[1]}" if shop else None


def icp_key(filing: str) -> str | None:
    """The ``icp:`` key of an ICP filing: its filing subject's (one subject runs every site "-n" of it)."""
    try:
        return f"icp:{normalize_icp_filing(filing)[1]}"
    except IdentifierError:
        return None  # validation refuses these; a lead built without it links on nothing here


def domain_keys(domains: Sequence[str]) -> tuple[str, ...]:
    """The ``domain:`` keys of a lead's registrable domains (a marketplace's domain links nobody)."""
    return tuple(f"domain:{d}" for d in domains if d not in MARKETPLACE_DOMAINS)


def phone_key(phone: str) -> str | None:
    """The ``phone:`` key of a mainland mobile number; None for any other number (only mobiles link)."""
    return f"phone:{phone}" if _MOBILE.match(phone) else None


class KeySources(NamedTuple):
    """Where `strong_identifiers` takes the key of one value from: computed each time (the default, the Linker's),
    or remembered per value (intake's, `link_memo`): the same functions of the same values."""

    shop: Callable[[str | None, str | None], str | None] = shop_key
    url: Callable[[str], str | None] = url_shop_key
    icp: Callable[[str], str | None] = icp_key
    domains: Callable[[Sequence[str]], Iterable[str]] = domain_keys
    phone: Callable[[str], str | None] = phone_key


COMPUTED_KEYS = KeySources()


def strong_identifiers(lead: CaseLead, domains: Sequence[str], sources: KeySources = COMPUTED_KEYS) -> list[str]:
    """The keys that link, from a *normalised* lead and the registrable domains of its URLs."""
    keys: set[str] = set()
    subject = lead.subject
    if subject.uscc:
        keys.add(f"uscc:{subject.uscc}")
    if subject.id_number:
        keys.add(f"rid:{subject.id_number}")
    online = lead.online
    if online.platform and (shop := sources.shop(online.platform, online.shop_id)):
        keys.add(shop)
    # each kind mapped in C, skipped when empty (most are): ~2.5 µs per lead less than a loop each (issue #16)
    if online.urls:
        keys.update(filter(None, map(sources.url, online.urls)))
    if domains:
        keys.update(sources.domains(domains))
    if online.icp_filings:
        keys.update(filter(None, map(sources.icp, online.icp_filings)))
    if lead.payment_accounts:
        keys.update(map("acct:".__add__, lead.payment_accounts))
    if subject.phones:
        keys.update(filter(None, map(sources.phone, subject.phones)))
    return sorted(keys)


@dataclass
class Case:
    case_id: str
    seq: int
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    version: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # analysts' decisions: confirm, split
    separated: list[str] = field(default_factory=list)  # cases an analyst split off or rejected: never auto-merged
    # Members whose ``m:`` record is not written yet (new, revised, or read from a layout-1 case).
    unsaved: set[str] = field(default_factory=set, repr=False, compare=False)
    # A big case the stream summarises from its totals (`case_totals.CaseTotals`) instead of its members, which it
    # then leaves unloaded (``members`` empty): the totals hold the member ids.
    totals: Any = field(default=None, repr=False, compare=False)

    def _doc(self) -> dict[str, Any]:
        doc = dict(self.__dict__)
        del doc["unsaved"], doc["totals"]
        return doc

    def to_json(self) -> str:
        """The whole case, members included (the layout before issue #16; `header_json` is what is stored)."""
        return json.dumps(self._doc(), ensure_ascii=False, sort_keys=True)

    def header_json(self) -> str:
        """The case as stored under ``c:``: its members by lead id only (their records are under ``m:``)."""
        doc = self._doc()
        doc["members"] = sorted(self.members) if self.totals is None else self.totals.ids
        return dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> Case:
        """A whole case (`to_json`)."""
        return cls(**json.loads(text))


def read_parsed(store: LinkStore, key: str, parse: Callable[[str], _T]) -> _T | None:
    """``parse`` of the key's text, or None when there is none. A store may keep what it parsed while the text stays
    the same (``read_parsed(key, parse)``, e.g. the stream's): what it returns is then shared, never to be changed."""
    read = getattr(store, "read_parsed", None)
    if read is not None:
        return read(key, parse)  # type: ignore[no-any-return]
    text = store.get(key)
    return None if text is None else parse(text)


def load_case(store: LinkStore, case_id: str) -> Case | None:
    """The case from the store, in either layout (see the module docstring); None when there is no such case."""
    parsed = read_parsed(store, f"c:{case_id}", json.loads)
    if parsed is None:
        return None
    doc = dict(parsed)  # the Case's lists are replaced, never changed in place, so a shallow copy suffices
    members = doc["members"]
    if isinstance(members, dict):  # layout 1: the whole case in one record; written in today's when next saved
        doc["members"] = dict(members)
        return Case(**doc, unsaved=set(members))
    # A store may keep members it has parsed (`read_member(lead_id)`, e.g. the stage's): a member record never
    # changes once written (a revision writes a new one), and a lead joining a case of hundreds would otherwise
    # parse them all again. What it returns is shared: member records are read-only.
    read = getattr(store, "read_member", None)
    loaded: dict[str, dict[str, Any]] = {}
    for lead_id in members:
        if read is not None:
            member = read(lead_id)
        else:
            text = store.get(f"m:{lead_id}")
            member = json.loads(text) if text is not None else None
        if member is None:
            raise KeyError(f"member {lead_id} of case {case_id} missing from the link store")
        loaded[lead_id] = member
    doc["members"] = loaded
    return Case(**doc)


@dataclass(frozen=True)
class LinkOutcome:
    case: Case
    absorbed: tuple[Case, ...]


def case_id_for(lead_id: str) -> str:
    return "CASE-" + hashlib.sha256(lead_id.encode()).hexdigest()[:16].upper()


def member_values(lead: CaseLead, keys: list[str], weak: list[str]) -> dict[str, Any]:
    """A lead's member record with its values as the model holds them, for orjson to write (`dumps`): it writes a
    date as `isoformat` does, a UTC time as well (validation keeps every time in UTC; any other is made text here),
    an enum as its value, a tuple as a list. The facts are read from the model's attributes, not dumped (their fields
    are scalars, which `model_dump` gives as they are). `dumps` of it is `dumps(_member(...))` (a unit test holds them
    equal); intake writes it so (issue #16: the facts' attributes ~1.5 µs, the values as held ~2 µs less per lead
    than `_member`'s forms)."""
    address = lead.subject.address
    reported = lead.reported_at
    first = lead.conduct_from
    facts = lead.facts.__dict__
    return {
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
        "weak": weak,  # compared by the suggestion scorer, never linked on
        "waybills": lead.waybills,  # for the courier channel (寄递渠道), never linked on
        "keys": keys,
    }


def _member(lead: CaseLead, domains: Sequence[str] = (), keys: list[str] | None = None,
            weak: list[str] | None = None) -> dict[str, Any]:
    """The member record as `json.loads` of the stored one gives it back: `member_values`, its dates, times, enums
    and tuples made text and lists here (its facts are already: scalars, `model_dump(exclude_none=True)`'s)."""
    member = member_values(lead, strong_identifiers(lead, domains) if keys is None else keys,
                           weak_signals(lead) if weak is None else weak)
    first, last = lead.conduct_from, lead.conduct_to or lead.conduct_from
    member.update(
        reported_at=lead.reported_at.isoformat(),
        category=str(lead.category),
        violation=str(lead.violation),
        handling=str(lead.handling),
        share_with=list(lead.share_with),
        countries=list(lead.countries),
        conduct_from=first.isoformat() if first else None,
        conduct_to=last.isoformat() if last else None,
        prior_penalties=[{"kind": p.kind, "decided_on": p.decided_on.isoformat(), "decided_by": p.decided_by,
                          "violation": str(p.violation)} for p in lead.prior_penalties],
        waybills=list(lead.waybills),
    )
    return member


#: The version of what `link_view` derives from a lead (`strong_identifiers`, `_member`, the weak signals): bump it
#: with any change to what they give, so that linking re-derives views intake computed with the code before.
LINK_VIEW_VERSION = 1


def derive(lead: CaseLead, domains: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """What linking derives from a normalised lead alone: its strong identifiers and its member record."""
    keys = strong_identifiers(lead, domains)
    return keys, _member(lead, domains, keys)


class Sources(NamedTuple):
    """Where `link_view` takes what it derives from single values (a URL's shop, an address's signals...) from."""

    keys: KeySources = COMPUTED_KEYS
    signals: SignalSources = COMPUTED_SIGNALS


def link_view(lead: CaseLead, domains: Sequence[str], sources: Sources | None = None) -> dict[str, Any]:
    """`derive` as `LeadAccepted` v7 carries it (``linking``, the member record as stored): intake computes it, in
    parallel over its workers, so that linking's one worker does not (issue #16). ``sources``: intake's values
    remembered (`link_memo`); the view is the same whatever they are."""
    if sources is None:
        keys, member = derive(lead, domains)
    else:
        keys = strong_identifiers(lead, domains, sources.keys)
        member = _member(lead, domains, keys, weak_signals(lead, sources.signals))
    return {"version": LINK_VIEW_VERSION, "lead_id": lead.lead_id, "keys": keys, "member": dumps(member)}


#: The fields of a member record (`_member`): a view whose member has others is not used.
MEMBER_FIELDS = frozenset({
    "revision", "agency", "province", "reported_at", "category", "violation", "name", "suspect_province", "facts",
    "handling", "share_with", "cross_border", "countries", "conduct_from", "conduct_to", "prior_penalties",
    "police_measures_needed", "weak", "waybills", "keys",
})  # fmt: skip


class Linker:
    def __init__(self, store: LinkStore) -> None:
        self.store = store

    def _case(self, case_id: str) -> Case:
        case = load_case(self.store, case_id)
        if case is None:
            raise KeyError(f"case {case_id} missing from the link store")
        return case

    def _save(self, case: Case) -> None:
        """Write the case's header and the records of its members not stored yet."""
        for lead_id in sorted(case.unsaved):
            member = case.members.get(lead_id)
            if member is not None:
                self.store.set(f"m:{lead_id}", dumps(member))
        case.unsaved = set()
        self.store.set(f"c:{case.case_id}", case.header_json())

    def _next_seq(self) -> int:
        seq = int(self.store.get("seq") or "0") + 1
        self.store.set("seq", str(seq))
        return seq

    def link(self, lead: CaseLead, domains: Sequence[str]) -> LinkOutcome:
        """Add a normalised lead; return its (possibly merged) case and the ids of cases absorbed."""
        return self.link_member(lead.lead_id, *derive(lead, domains))

    def found(self, lead_id: str, keys: list[str]) -> tuple[str | None, set[str]]:
        """The case the lead is in when it is a revision, and the cases holding any of its keys (that one too)."""
        known = self.store.get(f"l:{lead_id}")  # a revision of a lead already linked
        found = {cid for cid in (self.store.get(f"i:{k}") for k in keys) if cid}
        if known:
            found.add(known)
        return known, found

    def link_member(self, lead_id: str, keys: list[str], member: dict[str, Any],
                    seen: tuple[str | None, set[str]] | None = None) -> LinkOutcome:
        """`link` of a lead already derived: its strong identifiers and member record (`link_view`'s); ``seen``:
        `found` of them, when known."""
        known, found = self.found(lead_id, keys) if seen is None else seen
        if found:
            cases = sorted((self._case(cid) for cid in found), key=lambda c: (c.seq, c.case_id))
            if known:  # a revision stays in the case an analyst may have moved it to
                cases.sort(key=lambda c: c.case_id != known)
            case = cases[0]
            absorbed = [c for c in cases[1:] if c.case_id not in case.separated and case.case_id not in c.separated]
        else:
            case, absorbed = Case(case_id_for(lead_id), self._next_seq()), []
        for other in absorbed:
            case.members.update(other.members)
            case.unsaved |= other.unsaved
            case.identifiers = sorted(set(case.identifiers) | set(other.identifiers))
            case.merged_from = sorted(set(case.merged_from) | {other.case_id} | set(other.merged_from))
            for key in other.identifiers:
                self.store.set(f"i:{key}", case.case_id)
            for moved in other.members:
                self.store.set(f"l:{moved}", case.case_id)
            self.store.delete(f"c:{other.case_id}")
        case.members[lead_id] = member
        case.unsaved.add(lead_id)
        case.identifiers = sorted(set(case.identifiers) | set(keys))
        case.version += 1
        for key in keys:
            if self.store.get(f"i:{key}") in (None, *(c.case_id for c in absorbed)):
                self.store.set(f"i:{key}", case.case_id)
        self.store.set(f"l:{lead_id}", case.case_id)
        self._save(case)
        return LinkOutcome(case, tuple(absorbed))

    # -- analysts' decisions (LinkDecision): never automatic, always recorded -------------------------

    def confirm(self, case_a: str, case_b: str, entry: dict[str, Any]) -> LinkOutcome:
        """Merge two cases an analyst says are one; the older id stays. ``entry``: who, why, when (history)."""
        first, second = sorted((self._case(case_a), self._case(case_b)), key=lambda c: (c.seq, c.case_id))
        first.members.update(second.members)
        first.unsaved |= second.unsaved
        first.identifiers = sorted(set(first.identifiers) | set(second.identifiers))
        first.merged_from = sorted(set(first.merged_from) | {second.case_id} | set(second.merged_from))
        first.separated = sorted((set(first.separated) | set(second.separated)) - {first.case_id, second.case_id})
        first.history = [*first.history, *second.history, {**entry, "action": "CONFIRM", "merged": second.case_id}]
        first.version += 1
        for key in second.identifiers:
            self.store.set(f"i:{key}", first.case_id)
        for lead_id in second.members:
            self.store.set(f"l:{lead_id}", first.case_id)
        self.store.delete(f"c:{second.case_id}")
        self._save(first)
        self._carry_rejections(second.case_id, first.case_id)
        return LinkOutcome(first, (second,))

    def reject(self, case_a: str, case_b: str) -> None:
        """The pair is never suggested again (nor auto-merged through a later lead)."""
        for one, other in ((case_a, case_b), (case_b, case_a)):
            text = self.store.get(f"c:{one}")
            if text is not None:  # only the header changes (in either layout): the members are not read
                doc = json.loads(text)
                doc["separated"] = sorted(set(doc["separated"]) | {other})
                self.store.set(f"c:{one}", dumps(doc))
        self._add_rejection(case_a, case_b)

    def split(self, case_id: str, lead_ids: Sequence[str], entry: dict[str, Any]) -> tuple[Case, Case]:
        """Move ``lead_ids`` out of ``case_id`` into a new case; (remaining case, new case). The new id derives
        from the first moved lead (sorted), so a replay gives the same id; the two never merge automatically."""
        case = self._case(case_id)
        moving = sorted(set(lead_ids) & set(case.members))
        if not moving or len(moving) == len(case.members):
            raise ValueError("a split moves some, not all, of a case's leads")
        new_id = case_id_for(moving[0])
        if new_id == case.case_id or new_id in case.merged_from or self.store.get(f"c:{new_id}") is not None:
            # The moved lead founded this case or one it absorbed: that id is taken (downstream knows it).
            new_id = case_id_for(f"split:{case.case_id}:{'|'.join(moving)}")
        new = Case(new_id, self._next_seq())
        for lead_id in moving:
            new.members[lead_id] = case.members.pop(lead_id)
            if lead_id in case.unsaved:
                case.unsaved.discard(lead_id)
                new.unsaved.add(lead_id)
            self.store.set(f"l:{lead_id}", new.case_id)
        kept_keys = {k for m in case.members.values() for k in m.get("keys", ())}
        moved_keys = {k for m in new.members.values() for k in m.get("keys", ())}
        new.identifiers = sorted(moved_keys)
        case.identifiers = sorted(kept_keys or set(case.identifiers) - moved_keys)
        for key in moved_keys - kept_keys:  # a key both sides carry stays with the case it was in
            self.store.set(f"i:{key}", new.case_id)
        new.separated, case.separated = [case.case_id], sorted(set(case.separated) | {new.case_id})
        record = {**entry, "action": "SPLIT", "leads": moving, "from": case.case_id, "to": new.case_id}
        case.history = [*case.history, record]
        new.history = [record]
        case.version += 1
        new.version = 1
        self._save(case)
        self._save(new)
        self._add_rejection(case.case_id, new.case_id)
        return case, new

    def rejected_pairs(self) -> list[tuple[str, str]]:
        return [(p.split("|", 1)[0], p.split("|", 1)[1]) for p in json.loads(self.store.get("rejected") or "[]")]

    def _add_rejection(self, a: str, b: str) -> None:
        pairs = set(json.loads(self.store.get("rejected") or "[]"))
        pairs.add("|".join(sorted((a, b))))
        self.store.set("rejected", json.dumps(sorted(pairs)))

    def _carry_rejections(self, old: str, new: str) -> None:
        pairs = json.loads(self.store.get("rejected") or "[]")
        carried = {"|".join(sorted(new if c == old else c for c in p.split("|", 1))) for p in pairs}
        self.store.set("rejected", json.dumps(sorted(p for p in carried if len(set(p.split("|"))) == 2)))

    def case_of(self, lead_id: str) -> str | None:
        return self.store.get(f"l:{lead_id}")


# -- what a case says, for CaseUpdated ----------------------------------------------------------

# Quantities of distinct acts add up (I2004 Art.12(2), I2001 Art.2(4): repeated acts not yet
# handled are summed); the number of trademark kinds is a count of distinct marks, so the
# largest report stands. A higher revision of a lead replaces its facts, never adds to them.
_MAXED = frozenset({"trademark_kinds", "patents"})
FACT_FIELDS = (
    "illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen", "goods_value_fen", "copies", "works",
    "clicks", "members", "trademark_kinds", "labels", "loss_fen",
    "labels_sold", "labels_held", "copies_held", "patents",
)  # fmt: skip


#: The totals before any member (a copy of a built dict: a third of building it for a case of one or two leads).
_NO_FACTS: dict[str, Any] = {**dict.fromkeys(FACT_FIELDS), "rights_holder_bankrupt": None, "labels_made_by": None,
                             "mark_use": None}


def aggregate_facts(members: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Summed quantities (counts of distinct kinds: the largest); v2 flags: bankrupt if any lead says so, who made
    the labels only when the leads that say agree, marks on GOODS / SERVICES / ANY (both)."""
    totals: dict[str, Any] = _NO_FACTS.copy()
    makers: set[str] = set()
    uses: set[str] = set()
    for member in members:
        for name, value in member.get("facts", {}).items():
            if name == "rights_holder_bankrupt":
                totals[name] = bool(totals[name]) or bool(value)
                continue
            if name == "labels_made_by":
                makers.add(str(value)) if value != "UNKNOWN" else None
                continue
            if name == "mark_use":
                uses.add(str(value)) if value != "UNKNOWN" else None
                continue
            current = totals.get(name)
            if current is None:
                totals[name] = int(value)
            elif name in _MAXED:
                totals[name] = max(current, int(value))
            else:
                totals[name] = current + int(value)
    totals["labels_made_by"] = makers.pop() if len(makers) == 1 else None
    totals["mark_use"] = uses.pop() if len(uses) == 1 else ("ANY" if uses else None)
    return totals


_HANDLING_ORDER = {"OPEN": 0, "RESTRICTED": 1, "CONFIDENTIAL": 2}
#: A case's waybills kept on its CaseUpdated (a lead has at most 200; a case of many leads is capped).
MAX_CASE_WAYBILLS = 1000


def _reported_at(member: dict[str, Any]) -> str:
    return member["reported_at"]  # type: ignore[no-any-return]


def case_summary(case: Case, signals: set[str] | None = None, places: set[str] | None = None) -> dict[str, Any]:
    """The facts a `CaseUpdated` event carries (plain values; the edge adds times and encodes).

    One pass over the members (the stream summarises a case for every lead that joins it: issue #16); ties are
    broken as ``min``, ``max``, ``Counter.most_common`` and ``dict.fromkeys`` break them, the first seen wins.
    ``signals`` and ``places``, when given, gather the members' weak signals and provinces (reporting and suspect)
    in the same pass: what `CaseUpdated` v5 adds for the suggesting stage.
    """
    if case.totals is not None:
        summary, weak, seen_in = case.totals.summary(case)
        if signals is not None and places is not None:
            signals.update(weak)
            places.update(seen_in)
        return summary  # type: ignore[no-any-return]
    values = case.members.values()
    # the members' order, stable: as sorting their ids; a case of one lead (most of them) needs no sort
    members = list(values) if len(values) == 1 else sorted(values, key=_reported_at)
    if not members:
        raise ValueError(f"case {case.case_id} has no members")
    gather = signals is not None and places is not None
    provinces: dict[str, int] = {}
    reporters: dict[tuple[str, str], None] = {}  # in order of first report
    categories: set[str] = set()
    violations: set[str] = set()
    share_with: set[str] = set()
    countries: set[str] = set()
    penalties: set[tuple[tuple[str, Any], ...]] = set()
    waybills: dict[str, None] = {}
    handling, rank = None, -1
    conduct_from = conduct_to = None
    cross_border = police = False
    for m in members:
        province = m["suspect_province"]
        if province:
            provinces[province] = provinces.get(province, 0) + 1
        this = m["handling"]
        this_rank = _HANDLING_ORDER.get(this, 2)
        if this_rank > rank:
            handling, rank = this, this_rank
        reporters[(m["agency"], m["province"])] = None
        categories.add(m["category"])
        violations.add(m["violation"])
        share_with.update(m["share_with"])
        countries.update(m["countries"])
        if m["cross_border"]:
            cross_border = True
        first = m.get("conduct_from")
        if first and (conduct_from is None or first < conduct_from):
            conduct_from = first
        last = m.get("conduct_to")
        if last and (conduct_to is None or last > conduct_to):
            conduct_to = last
        for p in m.get("prior_penalties", ()):
            penalties.add(tuple(sorted(p.items())))
        if m.get("police_measures_needed"):
            police = True
        for waybill in m.get("waybills", ()):
            waybills[waybill] = None
        if gather:
            signals.update(m.get("weak", ()))  # type: ignore[union-attr]
            if reporting := m.get("province"):
                places.add(reporting)  # type: ignore[union-attr]
            if province:
                places.add(province)  # type: ignore[union-attr]
    identifiers = []
    for key in case.identifiers:
        kind, value = key.split(":", 1)
        identifiers.append({"kind": kind, "value": value})
    return {
        "case_id": case.case_id,
        "version": case.version,
        "members": sorted(case.members),
        "reporters": [{"agency": a, "province": p} for a, p in reporters],
        "identifiers": identifiers,
        "suspect_name": members[0]["name"],
        "suspect_province": max(provinces, key=provinces.__getitem__) if provinces else None,
        "categories": sorted(categories),
        "violations": sorted(violations),
        "facts": aggregate_facts(members),
        "first_reported_at": members[0]["reported_at"],
        "last_reported_at": members[-1]["reported_at"],
        "handling": handling,
        "share_with": sorted(share_with),
        "cross_border": cross_border,
        "countries": sorted(countries),
        "merged_from": list(case.merged_from),
        "conduct_from": conduct_from,
        "conduct_to": conduct_to,
        "prior_penalties": [dict(p) for p in sorted(penalties)],
        "police_measures_needed": police,
        "waybills": list(waybills)[:MAX_CASE_WAYBILLS],
    }


def _link_all(leads: Iterable[CaseLead]) -> tuple[dict[str, str], DictStore]:
    """Link leads in order with the same code as the stream: lead_id → its final case id, and the linker's store."""
    store = DictStore()
    linker = Linker(store)
    order: list[str] = []
    for lead in leads:
        normalised = normalise(lead)
        linker.link(normalised.lead, normalised.domains)
        order.append(lead.lead_id)
    result: dict[str, str] = {}
    for lead_id in order:
        case_id = linker.case_of(lead_id)
        assert case_id is not None
        result[lead_id] = case_id
    return result, store


def link_offline(leads: Iterable[CaseLead]) -> dict[str, str]:
    """Link leads in order with the same code as the stream; lead_id → its final case id."""
    return _link_all(leads)[0]


def case_weak_signals(store: DictStore) -> dict[str, list[str]]:
    """case id → the union of its members' weak signals, from a linker's offline store."""
    out: dict[str, list[str]] = {}
    for key in list(store.data):
        if key.startswith("c:"):
            case = load_case(store, key[2:])
            assert case is not None
            out[case.case_id] = sorted({s for m in case.members.values() for s in m.get("weak", ())})
    return out


def link_and_suggest(
    leads: Iterable[CaseLead], *, min_score: float = 0.05, rejected: Iterable[tuple[str, str]] = ()
) -> tuple[dict[str, str], list[Suggestion]]:
    """`link_offline`, then the suggested links between the resulting cases (best first)."""
    result, store = _link_all(leads)
    return result, suggest(case_weak_signals(store), min_score=min_score, rejected=rejected)
