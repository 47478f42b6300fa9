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
strongest agreement of a group counts, so that one fact is not counted twice. The prior odds are those of two
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from leadbus.models import CaseLead
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


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("addr", "address", 0.55, 0.001, True, False),
    Field("bldg", "address", 0.83, 0.003, True, True),
    Field("core", "name", 0.16, 0.01, True, False),
    Field("trade", "name", 0.40, 0.05, False, True),
    Field("person", "person", 0.02, 0.001, True, False),
    Field("surname", "person", 0.95, 0.05, False, True),
    Field("ip", "ip", 0.22, 0.001, True, False),
    Field("ip24", "ip", 0.43, 0.005, True, False),
    Field("brand", "brand", 0.64, 0.01, True, False),
    Field("cat", "category", 0.99, 0.10, False, True, agree=False),  # implied by the trade word of a name
    Field("city", "city", 0.98, 0.05, False, True, agree=False),  # implied by bldg/addr; only its absence says
)}  # fmt: skip
_SHOP_SUFFIXES = ("旗舰店", "专营店", "官方店", "专卖店", "折扣店", "小店", "工厂店", "精品店", "店")
# Premises that many unrelated traders share (wholesale markets, trade centres, office towers, e-commerce
# parks): sharing one says little, however few of them the data happens to hold.
SHARED_PREMISES = re.compile(r"(市场|商贸城|商城|大厦|广场|中心|产业园|园区|写字楼|批发)")
SHARED_PREMISES_U = 0.02
_ROOM = re.compile(r"^(.*?(?:号|市场|广场|大厦|商城|中心|城))")
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒")


def weak_signals(lead: CaseLead) -> list[str]:
    """The weak signals of a *normalised* lead, as ``field:value`` strings (stored with the case's members)."""
    found: set[str] = set()
    subject = lead.subject
    kind = str(subject.kind)
    address = subject.address
    if address is not None:
        found.add(f"city:{address.province}{address.city or ''}")
        if address.detail:
            detail = re.sub(r"\s+", "", address.detail)
            place = f"{address.province}|{address.city or ''}|"
            found.add(f"addr:{place}{detail}")
            building = _ROOM.match(detail)
            if building:
                found.add(f"bldg:{place}{building.group(1)}")
    name = subject.name.strip()
    if kind in ("ENTERPRISE", "ONLINE_SHOP", "APP"):
        core = split_name(name).core
        for suffix in _SHOP_SUFFIXES:
            if core.endswith(suffix) and len(core) > len(suffix) + 1:
                core = core[: -len(suffix)]
                break
        if len(core) >= 2:
            found.add(f"core:{core}")
            found.add(f"trade:{core[:2]}")
    elif kind == "INDIVIDUAL" and _CJK.match(name):
        found.add(f"person:{name}")
        surname = next((s for s in COMPOUND_SURNAMES if name.startswith(s)), name[0])
        found.add(f"surname:{surname}")
    for ip in lead.online.ips:
        try:
            address_ = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if not address_.is_global:
            continue
        found.add(f"ip:{address_.compressed}")
        prefix = 24 if address_.version == 4 else 48
        found.add(f"ip24:{ipaddress.ip_network(f'{address_}/{prefix}', strict=False).compressed}")
    if lead.rights_holder is not None and lead.rights_holder.name.strip():
        found.add(f"brand:{split_name(lead.rights_holder.name).core}")
    found.add(f"cat:{lead.category}")
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
    for name, spec in fields.items():
        left, right = a.get(name), b.get(name)
        if not left or not right:
            continue
        shared = left & right
        if shared and not spec.agree:
            continue
        if shared:
            value = min(shared, key=lambda v: (df.get(f"{name}:{v}", 1), v))
            u = max(df.get(f"{name}:{value}", 1), 1) / max(carrying.get(name, 1), 2)
            if name == "bldg" and SHARED_PREMISES.search(value):
                u = max(u, SHARED_PREMISES_U)
            term = (name, value, math.log2(spec.m / u) if spec.m > u else 0.0)
        elif spec.disagree:
            term = (name, "", math.log2((1 - spec.m) / (1 - spec.u)))
        else:
            continue
        current = best.get(spec.group)
        if current is None or _better(term, current):
            best[spec.group] = term
    return tuple(sorted(best.values(), key=lambda t: (-abs(t[2]), t[0], t[1])))


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
