"""Suggested links, pure: pairs of cases that weak signals say may be one suspect, for an analyst to decide.

Nothing here links anything. Strong identifiers link automatically (`linking.Linker`); the weak signals
below — a shared address or building, a company or shop name core (字号), a person's name or surname, an
IP address or its /24, a product category — only ever produce a *suggestion* with a score and an
explanation, and an analyst confirms, rejects or splits (`LinkDecision`).

Model: Fellegi–Sunter match weights with term-frequency adjustment (as in Splink). For each field f
(``FIELDS``) and two cases that both carry it:

* agreement on value t weighs ``log2(m_f / u_t)`` bits, where ``u_t = df(t) / N_f`` is the chance that
  an unrelated case carrying field f carries t (df = cases carrying t, N_f = cases carrying f) — a wholesale market
  or the surname 王 weighs little, a flat's full address a lot;
* disagreement weighs ``log2((1 - m_f) / (1 - u_f))`` with ``u_f`` a small field-level chance of chance
  agreement — two cases with different company cores are *less* likely one suspect.

Several fields share a *group* (address ⊃ building, IP ⊃ IP/24, person ⊃ surname, core ⊃ 字号) and only the
strongest agreement of a group counts, so that one fact is not counted twice; for the same reason the city's
agreement counts only where no address or building agrees (``implied_by``). The prior odds are those of two
random cases being one suspect, ``1 / (N - 1)``; the score is the posterior probability
``1 / (1 + 2^-(prior + Σ weights))``, in [0, 1].

m_f (the chance a field agrees when both cases are truly one suspect) comes from labelled data: the
values in ``FIELDS`` were measured with ``bench/link_quality.py --weak`` (it prints the label-estimated m
beside the ones in use, ``estimate_m``) on the labelled generator's rotating suspects, then rounded. They
can be re-estimated from analysts' decisions (confirmed pairs are labelled positives) with the same
function.

Blocking: a pair is compared only when both cases share at least one *blocking value* held by at most
``max_block`` cases (a rare address, a rare name, an IP, a surname or 字号 within one city); values
shared by more cases (a CDN address, a big
market, a common 字号) still weigh in the score but never create candidate pairs, so the work is at
most ``Σ df(t)²`` over rare values, never all pairs. Deterministic: the same cases give the same
suggestions in the same order.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from leadbus.contact_phones import phone_tail
from leadbus.geography import PROVINCES
from leadbus.identifiers import to_halfwidth
from leadbus.models import Address, CaseLead, Contact
from leadbus.processors.core.normalize import split_name


@dataclass(frozen=True)
class Field:
    name: str
    group: str
    m: float  # P(agree | one suspect, both carry it), from labels (see the module docstring)
    u: float  # field-level P(agree | different suspects), for the disagreement weight only
    block: bool  # whether rare values of this field create candidate pairs
    disagree: bool  # whether disagreement counts against (only where a suspect rarely varies it)
    agree: bool = True  # whether agreement counts for (not where a finer field already says it)
    # How much likelier an unrelated case carries a value than its share of cases says (κ): below 1 for fields whose
    # values come from a wide space (a surname + phone tail, a flat's address: two cases sharing a rare one are
    # rarely a coincidence), above 1 where a small space repeats by chance (a rights holder, a 字号 + trade word, a
    # phone tail alone). Calibrated on labels (docs/suggested-links.md); u_t = (df(t) + 2(κ - 1)) / N_f: κ times
    # the share for a value only the pair carries (df = 2), about the share for a common one.
    tf: float = 1.0
    # The group whose agreement already says this field's (a shared address is in one city): this field's
    # agreement counts only where that group has none, so that one fact is not counted twice.
    implied_by: str = ""


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("addr", "address", 0.47, 0.001, True, False, tf=0.1),
    Field("bldg", "address", 0.69, 0.003, True, True, tf=0.3),
    Field("core", "name", 0.17, 0.01, True, False, tf=4.0),
    Field("trade", "name", 0.40, 0.05, False, True, tf=4.0),
    Field("person", "person", 0.02, 0.001, True, False),
    Field("surname", "person", 0.95, 0.05, False, True),
    Field("ip", "ip", 0.20, 0.001, True, False),
    Field("ip24", "ip", 0.40, 0.005, True, False, tf=0.1),
    Field("brand", "brand", 0.62, 0.01, True, False),
    # CaseLead v3 (what a waybill, a shop page or a seizure record shows; see docs/suggested-links.md)
    Field("product", "product", 0.67, 0.01, True, False, tf=1.5),  # product, model or title, as normalised text
    Field("pbrand", "brand", 0.59, 0.05, False, False, tf=4.0),  # the brand the goods bear
    Field("stail", "phone", 0.41, 0.001, True, False, tf=0.05),  # a contact's surname and phone tail (王|5678)
    Field("tail", "phone", 0.58, 0.001, True, False, tf=2.0),  # a contact phone's last four digits
    # a full name seen as a waybill sender, a shop operator or an individual suspect
    Field("sender", "person", 0.30, 0.001, True, False, tf=0.5),
    Field("cat", "category", 0.99, 0.10, False, True, agree=False),  # implied by the trade word of a name
    # a ring's other guise trades in its town: the city agrees (weighed by how common it is) where no address does
    Field("city", "city", 0.98, 0.05, False, True, implied_by="address"),
)}  # fmt: skip
_SHOP_SUFFIXES = ("旗舰店", "专营店", "官方店", "专卖店", "折扣店", "小店", "工厂店", "精品店", "店")
# Premises that many unrelated traders share (wholesale markets, trade centres, office towers, e-commerce
# parks): sharing one says little, however few of them the data happens to hold.
SHARED_PREMISES = re.compile(r"(市场|商贸城|商城|大厦|广场|中心|产业园|园区|写字楼|批发|物流园|云仓|分拨|代发)")
SHARED_PREMISES_U = 0.02
# The building of an address: up to a shared premises' name (a market, a trade centre, a park), else up to the
# street number (文三路100号); never up to a road's own name (环城路, 城南路).
_PREMISES = re.compile(r"^(.*?(?:市场|广场|大厦|商贸城|商城|购物中心|中心|产业园|物流园|园区|云仓))")
_NUMBER = re.compile(r"^(.*?\d+号)")
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒")


_STAFF = frozenset({"仓库", "客服", "发货部", "售后", "店主", "老板", "掌柜", "发货", "商家", "本人"})
_MASKED_NAME = re.compile(r"^([\u4e00-\u9fff]{1,2}?)(?:\*+|某+|先生|女士|小姐|总|老板|经理|师傅)$")
_PUNCT = re.compile(r"[\s,，.。:：;；、\-—_#/\\()（）\[\]【】\"'“”‘’]+")


def _cleaned(text: str) -> str:
    return _PUNCT.sub("", to_halfwidth(text)).lower()


def _place(address: Address) -> tuple[str, str]:
    """(city key, address detail key) of an address as agencies write it: half-width, no spaces or punctuation,
    the province, city and district the detail may repeat taken off (杭州市西湖区文三路1号 = 文三路1号 in 杭州)."""
    city = _cleaned(address.city or "").removesuffix("市")
    detail = _cleaned(address.detail or "")
    province = PROVINCES.get(address.province)
    if province is not None:
        for prefix in (province.name_zh, province.name_zh.removesuffix("省").removesuffix("市")):
            if prefix and detail.startswith(prefix):
                detail = detail[len(prefix) :]
                break
    if city:
        detail = detail.removeprefix(city + "市").removeprefix(city)
    detail = _DISTRICT.sub("", detail, count=1)
    return f"{address.province}{city}", detail


_DISTRICT = re.compile(r"^[\u4e00-\u9fff]{1,4}?(?:区|县)(?=[\u4e00-\u9fff\d])")


def _address_signals(found: set[str], address: Address, *, with_city: bool) -> None:
    city, detail = _place(address)
    if with_city:
        found.add(f"city:{city}")
    if len(detail) >= 3:
        found.add(f"addr:{city}|{detail}")
        building = _PREMISES.match(detail) or _NUMBER.match(detail)
        if building:
            found.add(f"bldg:{city}|{building.group(1)}")


def _contact_signals(found: set[str], contact: Contact) -> None:
    """A waybill sender or shop operator: full name, surname, surname + phone tail, phone tail (CaseLead v3)."""
    tail = phone_tail(contact.phone) if contact.phone else None
    surname = None
    if contact.name:
        name = _cleaned(contact.name)
        if _CJK.match(name) and name not in _STAFF:
            found.add(f"sender:{name}")
            surname = next((s for s in COMPOUND_SURNAMES if name.startswith(s)), name[0])
        elif masked := _MASKED_NAME.match(name):
            surname = masked.group(1)
    if surname:  # a ring's waybills and shop pages name its boss or a relative: the surname the family shares
        found.add(f"surname:{surname}")
    if tail:
        found.add(f"tail:{tail}")
        if surname:
            found.add(f"stail:{surname}|{tail}")


def address_signals(address: Address) -> tuple[str, ...]:
    """The signals of a suspect's address: its city, the address, its building."""
    found: set[str] = set()
    _address_signals(found, address, with_city=True)
    return tuple(found)


def name_signals(kind: str, name: str, city: str | None) -> tuple[tuple[str, ...], str | None]:
    """The signals of a suspect's name (stripped) as its kind reads it, the city of its address helping, and an
    individual's surname (which the phone tails pair with)."""
    if kind in ("ENTERPRISE", "ONLINE_SHOP", "APP"):
        core = split_name(name).core
        if city and len(place := _cleaned(city).removesuffix("市")) >= 2:
            core = core.removeprefix(place)  # a place prefix split_name does not know (株洲恒通电器 → 恒通电器)
        for suffix in _SHOP_SUFFIXES:
            if core.endswith(suffix) and len(core) > len(suffix) + 1:
                core = core[: -len(suffix)]
                break
        return ((f"core:{core}", f"trade:{core[:2]}") if len(core) >= 2 else ()), None
    if kind == "INDIVIDUAL" and _CJK.match(name := _cleaned(name)):  # as written: "王 小明", "王\u3000小明"
        surname = next((s for s in COMPOUND_SURNAMES if name.startswith(s)), name[0])
        # the person may send the parcels or run the shop of another report
        return (f"person:{name}", f"surname:{surname}", f"sender:{name}"), surname
    return (), None


def ip_signals(ip: str) -> tuple[str, ...]:
    """The signals of an IP address: itself and its /24 (/48), when it is a global one."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ()
    if not address.is_global:
        return ()
    prefix = 24 if address.version == 4 else 48
    return f"ip:{address.compressed}", f"ip24:{ipaddress.ip_network(f'{address}/{prefix}', strict=False).compressed}"


def subject_signals(kind: str, name: str, address: Address | None) -> tuple[tuple[str, ...], str | None]:
    """The signals of a suspect's address and name together, and the surname the name gives (if a person's)."""
    found = set(address_signals(address)) if address is not None else set()
    named, surname = name_signals(kind, name.strip(), address.city if address is not None else None)
    found.update(named)
    return tuple(found), surname


def brand_signal(rights_holder: str) -> str | None:
    """The ``brand:`` signal of a rights holder's name (its core, as `split_name` gives it)."""
    return f"brand:{split_name(rights_holder).core}" if rights_holder.strip() else None


class SignalSources(NamedTuple):
    """Where `weak_signals` takes the signals of one value from: computed each time (the default), or remembered per
    value (intake's, `link_memo`): the same functions of the same values."""

    subject: Callable[[str, str, Address | None], tuple[tuple[str, ...], str | None]] = subject_signals
    ip: Callable[[str], tuple[str, ...]] = ip_signals
    brand: Callable[[str], str | None] = brand_signal


COMPUTED_SIGNALS = SignalSources()


def weak_signals(lead: CaseLead, sources: SignalSources = COMPUTED_SIGNALS) -> list[str]:
    """The weak signals of a *normalised* lead, as ``field:value`` strings (stored with the case's members)."""
    subject = lead.subject
    signals, surname = sources.subject(str(subject.kind), subject.name, subject.address)
    found = set(signals)
    if surname is not None:
        found.update(f"stail:{surname}|{p[-4:]}" for p in subject.phones if p.startswith("+861"))
    for ip in lead.online.ips:
        found.update(sources.ip(ip))
    if lead.rights_holder is not None and (brand := sources.brand(lead.rights_holder.name)):
        found.add(brand)
    found.add(f"cat:{lead.category}")
    # CaseLead v3: absent on v1/v2 leads, and then nothing below runs.
    for place in lead.return_addresses:  # a warehouse or return address compares with any address
        _address_signals(found, place, with_city=False)
    for contact in lead.senders:
        _contact_signals(found, contact)
    if lead.operator is not None:
        _contact_signals(found, lead.operator)
    if lead.senders or lead.operator is not None:  # a masked phone elsewhere may be this full one
        found.update(f"tail:{p[-4:]}" for p in subject.phones if p.startswith("+861"))
    for product in lead.products:
        if len(key := _cleaned(product.name)) >= 2:
            found.add(f"product:{key}")
        if product.brand and len(brand := _cleaned(product.brand)) >= 2:
            found.add(f"pbrand:{brand}")
    return sorted(found)


@dataclass(frozen=True)
class Suggestion:
    case_a: str
    case_b: str
    score: float
    weight: float  # posterior log2 odds
    evidence: tuple[tuple[str, str, float], ...]  # (field, value, bits), strongest first

    def explain(self) -> str:
        """``addr=…(+12.3); core=…(+7.1); cat≠(-1.2)`` — which signals, how much each weighed."""
        return "; ".join(f"{f}{'=' + v if v else '≠'}({w:+.1f})" for f, v, w in self.evidence)


def _split(signal: str) -> tuple[str, str]:
    name, _, value = signal.partition(":")
    return name, value


def profile_of(signals: Iterable[str], fields: Mapping[str, Field] = FIELDS) -> dict[str, set[str]]:
    """field → the values a case carries, from its ``field:value`` signals (fields not in ``fields`` ignored)."""
    profile: dict[str, set[str]] = defaultdict(set)
    for signal in signals:
        name, value = _split(signal)
        if name in fields:
            profile[name].add(value)
    return profile


def posterior(weight_bits: float) -> float:
    """The probability of log2 odds ``weight_bits``."""
    return 1.0 / (1.0 + 2.0 ** (-weight_bits)) if weight_bits > -60 else 0.0


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def suggest(
    cases: Mapping[str, Iterable[str]],
    *,
    min_score: float = 0.05,
    max_block: int = 40,
    rejected: Iterable[tuple[str, str]] = (),
    fields: Mapping[str, Field] = FIELDS,
) -> list[Suggestion]:
    """Scored pairs of distinct cases (case id → its weak signals), best first, score ≥ ``min_score``.

    ``rejected`` pairs (an analyst said no) are never suggested again.
    """
    profiles: dict[str, dict[str, set[str]]] = {}
    df: dict[str, int] = defaultdict(int)
    carrying: dict[str, int] = defaultdict(int)  # cases carrying each field
    for case_id in sorted(cases):
        profile = profile_of(cases[case_id], fields)
        profiles[case_id] = profile
        for name, values in profile.items():
            carrying[name] += 1
            for value in values:
                df[f"{name}:{value}"] += 1
    n = len(profiles)
    if n < 2:
        return []
    blocks: dict[str, list[str]] = defaultdict(list)
    for case_id, profile in profiles.items():
        for key in block_keys(profile, fields):
            blocks[key].append(case_id)
    blocks = {key: members for key, members in blocks.items() if 1 < len(members) <= max_block}
    candidates: set[tuple[str, str]] = set()
    for members in blocks.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                candidates.add(_pair(a, b))
    candidates -= {_pair(a, b) for a, b in rejected}
    prior = -math.log2(n - 1)
    out: list[Suggestion] = []
    for a, b in candidates:
        scored = score_pair(profiles[a], profiles[b], df, carrying, fields)
        total = prior + sum(w for _, _, w in scored)
        score = posterior(total)
        if score >= min_score:
            out.append(Suggestion(a, b, round(score, 6), round(total, 3), scored))
    out.sort(key=lambda s: (-s.score, -s.weight, s.case_a, s.case_b))
    return out


def block_keys(profile: Mapping[str, set[str]], fields: Mapping[str, Field]) -> set[str]:
    """A case's blocking values: its values of blocking fields, and (surname | 字号) within its city — a
    relative's or a sister firm's other guise in the same town."""
    keys = {f"{name}:{value}" for name, values in profile.items() if fields[name].block for value in values}
    for city in profile.get("city", ()):
        keys.update(f"surname@{city}:{s}" for s in profile.get("surname", ()))
        keys.update(f"trade@{city}:{t}" for t in profile.get("trade", ()))
    return keys


def score_pair(
    a: Mapping[str, set[str]], b: Mapping[str, set[str]], df: Mapping[str, int], carrying: Mapping[str, int],
    fields: Mapping[str, Field] = FIELDS,
) -> tuple[tuple[str, str, float], ...]:
    """The (field, value, bits) terms of two case profiles, the strongest of each group, strongest first."""
    best: dict[str, tuple[str, str, float]] = {}
    # Only the fields both carry give a term (in `fields`' order: ties within a group go to the first).
    common = a.keys() & b.keys()
    for name, spec in fields.items():
        if name not in common:
            continue
        left, right = a[name], b[name]
        if not left or not right:
            continue
        shared = left & right
        if shared and not spec.agree:
            continue
        if shared:
            value = min(shared, key=lambda v: (df.get(f"{name}:{v}", 1), v))
            # κ calibrates the rarest values (df = 2: the pair itself); a common value's share stands as it is.
            count = max(df.get(f"{name}:{value}", 1), 1)
            u = max(count + 2 * (spec.tf - 1), spec.tf) / max(carrying.get(name, 1), 2)
            # A case carrying k values of a field has k chances of agreeing by chance (a ring's leads name several
            # brands, products, phones): the smaller side's count multiplies u.
            u = min(1.0, u * min(len(left), len(right)))
            if name in ("bldg", "addr") and _whole_premises(name, value):
                u = max(u, SHARED_PREMISES_U)
            term = (name, value, math.log2(spec.m / u) if spec.m > u else 0.0)
        elif spec.disagree:
            term = (name, "", math.log2((1 - spec.m) / (1 - spec.u)))
        else:
            continue
        current = best.get(spec.group)
        if current is None or _better(term, current):
            best[spec.group] = term
    return tuple(sorted(_without_implied(best, fields), key=lambda t: (-abs(t[2]), t[0], t[1])))


def agreement_ceilings(carrying: Mapping[str, int], fields: Mapping[str, Field] = FIELDS) -> dict[str, float]:
    """Per field, the most bits an agreement on it can weigh in `score_pair` with these field counts: its u at the
    smallest count a shared value can have (1), one value per side, no shared-premises floor — every one of which
    only raises u. Disagreements weigh ≤ 0 bits."""
    out: dict[str, float] = {}
    for name, spec in fields.items():
        u = min(1.0, max(2 * spec.tf - 1, spec.tf) / max(carrying.get(name, 1), 2))
        out[name] = math.log2(spec.m / u) if spec.m > u else 0.0
    return out


def weight_ceiling(a: Mapping[str, set[str]], b: Mapping[str, set[str]], ceilings: Mapping[str, float],
                   fields: Mapping[str, Field] = FIELDS) -> float:
    """An upper bound of the sum of `score_pair`'s bits for two profiles (the same field counts as ``ceilings``):
    per group, the heaviest agreement it could hold, without reading any document frequency. A pair whose prior
    plus this cannot reach the threshold cannot be suggested: scoring it is skipped (issue #16)."""
    groups: dict[str, float] = {}
    for name in a.keys() & b.keys():
        spec = fields.get(name)
        if spec is None or not spec.agree or a[name].isdisjoint(b[name]):
            continue
        bits = ceilings[name]
        if bits > groups.get(spec.group, 0.0):
            groups[spec.group] = bits
    return sum(groups.values())


def _without_implied(
    best: Mapping[str, tuple[str, str, float]], fields: Mapping[str, Field]
) -> list[tuple[str, str, float]]:
    """The terms of ``best`` (group → term) less agreements another group's agreement already says."""
    agreeing = {group for group, (_, value, _) in best.items() if value}
    return [term for term in best.values() if not (term[1] and fields[term[0]].implied_by in agreeing)]


def _whole_premises(name: str, value: str) -> bool:
    """A building that many unrelated traders share, or an address naming only such a building (no stall)."""
    found = SHARED_PREMISES.search(value)
    return found is not None and (name == "bldg" or not any(c.isdigit() for c in value[found.end() :]))


def _better(term: tuple[str, str, float], current: tuple[str, str, float]) -> bool:
    """Within a group an agreement beats a disagreement; among agreements the heavier wins."""
    if bool(term[1]) != bool(current[1]):
        return bool(term[1])
    return term[2] > current[2] if term[1] else term[2] < current[2]


def case_signals(
    members: Mapping[str, str], signals_of: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """case id → the union of its leads' weak signals, from lead id → case id and lead id → signals."""
    out: dict[str, set[str]] = defaultdict(set)
    for lead_id, case_id in members.items():
        out[case_id].update(signals_of.get(lead_id, ()))
    return {case_id: sorted(values) for case_id, values in out.items()}


def estimate_m(
    cases: Mapping[str, Iterable[str]], truly_same: Iterable[tuple[str, str]], fields: Mapping[str, Field] = FIELDS
) -> dict[str, float]:
    """m per field from labelled pairs: the share of truly-same case pairs carrying the field on both sides
    that agree on it."""
    both: dict[str, int] = defaultdict(int)
    agree: dict[str, int] = defaultdict(int)
    profiles: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for case_id, signals in cases.items():
        for signal in signals:
            name, value = _split(signal)
            profiles[case_id][name].add(value)
    for a, b in truly_same:
        for name in fields:
            left, right = profiles.get(a, {}).get(name), profiles.get(b, {}).get(name)
            if left and right:
                both[name] += 1
                agree[name] += bool(left & right)
    return {name: round(agree[name] / both[name], 3) for name in fields if both[name]}
