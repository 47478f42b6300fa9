"""Labelled traffic for link quality: valid, reproducible, varied, with hard negatives, and linkable in principle."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

import pytest

from leadbus.models import CaseLead
from leadbus.processors.core.normalize import Normalised, normalise, split_name
from leadbus.producers.labelled import START, STEP, hard_negative_signals, labelled_leads
from leadbus.producers.simulator import TrafficGenerator

N = 2000
SEED = 11
SHARE = 0.45
MARKETPLACES = {"taobao.com", "jd.com", "yangkeduo.com", "jinritemai.com", "kwaixiaodian.com", "goofish.com",
                "weidian.com"}  # fmt: skip
MOBILE = re.compile(r"^\+861[3-9]\d{9}$")
FULL_WIDTH = re.compile("[\uff01-\uff5e]")


def strong(norm: Normalised) -> set[tuple[str, str]]:
    """Strong identifiers after normalisation, computed here independently of the generator."""
    lead = norm.lead
    keys = {("uscc", lead.subject.uscc), ("id", lead.subject.id_number)} - {("uscc", None), ("id", None)}
    keys |= {("phone", phone) for phone in lead.subject.phones if MOBILE.match(phone)}
    keys |= {("account", account) for account in lead.payment_accounts}
    keys |= {("domain", domain) for domain in norm.domains if domain not in MARKETPLACES}
    if lead.online.platform and lead.online.shop_id:
        keys.add(("shop", f"{lead.online.platform}:{lead.online.shop_id}"))
    return {(kind, str(value)) for kind, value in keys}


@pytest.fixture(scope="module")
def labelled() -> list[tuple[CaseLead, int]]:
    return labelled_leads(N, seed=SEED, same_suspect_share=SHARE)


@pytest.fixture(scope="module")
def raw() -> list[tuple[CaseLead, int]]:
    generator = TrafficGenerator(seed=SEED, same_suspect_share=SHARE)
    return [(lead, generator.last_suspect) for lead in generator.leads(N, START, STEP)]


@pytest.fixture(scope="module")
def normalised(labelled: list[tuple[CaseLead, int]]) -> list[tuple[Normalised, int]]:
    return [(normalise(lead), suspect) for lead, suspect in labelled]


def test_same_seed_same_leads() -> None:
    first = [(lead.to_json(), suspect) for lead, suspect in labelled_leads(300, seed=3)]
    again = [(lead.to_json(), suspect) for lead, suspect in labelled_leads(300, seed=3)]
    other = [(lead.to_json(), suspect) for lead, suspect in labelled_leads(300, seed=4)]
    assert first == again
    assert first != other


def test_every_lead_validates_and_keeps_the_simulators_truth(labelled: list[tuple[CaseLead, int]],
                                                             raw: list[tuple[CaseLead, int]]) -> None:  # fmt: skip
    assert len(labelled) == N
    assert len({lead.lead_id for lead, _ in labelled}) == N
    for lead, _ in labelled:
        assert CaseLead.from_json(lead.to_json(), now=lead.reported_at) == lead
    assert [suspect for _, suspect in labelled] == [suspect for _, suspect in raw]
    assert [lead.lead_id for lead, _ in labelled] == [lead.lead_id for lead, _ in raw]
    repeated = N - len({suspect for _, suspect in labelled})
    assert 0.3 * N < repeated < 0.6 * N


def _components(leads: list[set[tuple[str, str]]]) -> int:
    """Connected components of leads joined by a shared strong identifier."""
    parent = list(range(len(leads)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, keys in enumerate(leads):
        for key in keys:
            parent[find(i)] = find(first.setdefault(key, i))
    return len({find(i) for i in range(len(leads))})


def test_perfect_linking_is_possible(normalised: list[tuple[Normalised, int]]) -> None:
    """Each suspect's leads are connected by normalised strong identifiers, and none spans two suspects."""
    by_suspect: dict[int, list[set[tuple[str, str]]]] = defaultdict(list)
    owners: dict[tuple[str, str], set[int]] = defaultdict(set)
    for norm, suspect in normalised:
        keys = strong(norm)
        assert keys, norm.lead.lead_id
        by_suspect[suspect].append(keys)
        for key in keys:
            owners[key].add(suspect)
    assert not {key: who for key, who in owners.items() if len(who) > 1}
    multi = {suspect: leads for suspect, leads in by_suspect.items() if len(leads) >= 2}
    assert len(multi) > 200
    assert [suspect for suspect, leads in multi.items() if _components(leads) != 1] == []


def _shared(values: Iterable[tuple[str, int]]) -> set[str]:
    """Values seen with two or more suspects."""
    who: dict[str, set[int]] = defaultdict(set)
    for value, suspect in values:
        who[value].add(suspect)
    return {value for value, suspects in who.items() if len(suspects) > 1}


def test_hard_negatives_are_present(labelled: list[tuple[CaseLead, int]],
                                    normalised: list[tuple[Normalised, int]]) -> None:  # fmt: skip
    ips = _shared((ip, s) for norm, s in normalised for ip in norm.lead.online.ips)
    assert len(ips) >= 3  # a CDN
    waybills = _shared((w, s) for norm, s in normalised for w in norm.lead.waybills)
    batches = _shared((w[:6], s) for norm, s in normalised for w in norm.lead.waybills)
    assert waybills and len(batches) >= 3  # a 代发 warehouse; courier batches
    taobao = {(norm.lead.online.shop_id, s) for norm, s in normalised if "taobao.com" in norm.domains}
    assert len({shop for shop, _ in taobao if shop}) > 20 and len({s for _, s in taobao}) > 20
    companies: dict[str, set[tuple[str, str | None, int]]] = defaultdict(set)
    for norm, s in normalised:
        if norm.lead.subject.kind == "ENTERPRISE" and norm.name.legal_form and norm.lead.subject.address:
            key = norm.name.core + norm.name.legal_form
            companies[key].add((norm.lead.subject.address.province, norm.lead.subject.uscc, s))
    same_name_elsewhere = [key for key, found in companies.items()
                           if len({p for p, _, _ in found}) > 1 and len({u for _, u, _ in found if u}) > 1]  # fmt: skip
    assert len(same_name_elsewhere) >= 5
    for kind in ("cdn_ip", "waybill", "marketplace", "company_name"):
        assert _shared((v, s) for lead, s in labelled for v in hard_negative_signals(lead)[kind]), kind


def test_variations_occur(labelled: list[tuple[CaseLead, int]], raw: list[tuple[CaseLead, int]],
                          normalised: list[tuple[Normalised, int]]) -> None:  # fmt: skip
    leads = [lead for lead, _ in labelled]
    urls = [url for lead in leads for url in lead.online.urls]
    count = {name: sum(1 for url in urls if re.search(pattern, url)) for name, pattern in {
        "http": r"^http://", "no scheme": r"^(?!https?://)", "www": r"^(https?://)?www\.", "m.": r"^(https?://)?m\.",
        "spm": r"[?&]spm=", "utm": r"[?&]utm_source=", "slash": r"/(download|item)/\d+/$",
        "no slash": r"\.taobao\.com$"}.items()}  # fmt: skip
    assert all(value > 0 for value in count.values()), count
    phones = [phone for lead in leads for phone in lead.subject.phones]
    for pattern in (r"^\+86\d", r"^\+86 ", r"^0086", r"^86", r"^1\d\d-", r"^1\d\d ", FULL_WIDTH.pattern):
        assert any(re.search(pattern, phone) for phone in phones), pattern
    assert any(" " in account for lead in leads for account in lead.payment_accounts)
    assert any(FULL_WIDTH.search(account) for lead in leads for account in lead.payment_accounts)
    assert any(lead.subject.uscc and lead.subject.uscc != lead.subject.uscc.upper() for lead in leads)
    assert any(lead.subject.id_number and lead.subject.id_number.endswith("x") for lead in leads)
    assert any(lead.subject.id_number and len(lead.subject.id_number) == 15 for lead in leads)
    assert any(lead.subject.id_number and FULL_WIDTH.search(lead.subject.id_number) for lead in leads)
    assert any(FULL_WIDTH.search(lead.subject.name) for lead in leads)
    names = [(lead.subject.name, before.subject.name) for (lead, _), (before, _) in zip(labelled, raw, strict=True)]
    assert sum(name != old for name, old in names) > 0.1 * N
    provinces = ("浙江", "广东", "福建", "江苏")
    assert any(name.startswith(provinces) and not old.startswith(name[:2]) for name, old in names)
    assert any(old.endswith("有限公司") and not name.endswith("公司") for name, old in names)
    assert any(old.endswith("有限公司") and name.endswith("有限责任公司") for name, old in names)
    assert any(split_name(name).core != split_name(old).core and len(name) == len(old) for name, old in names)  # typo
    before = [strong(normalise(lead)) for lead, _ in raw]
    fewer = sum(1 for (norm, _), keys in zip(normalised, before, strict=True)
                if {k for k in keys if k[0] != "domain"} - strong(norm))  # fmt: skip
    assert fewer > 0.15 * N  # identifiers missing
