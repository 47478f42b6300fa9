"""The traffic simulator: reproducible, always valid, realistic, with a controlled share of repeat suspects."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadbus.geography import NATIONAL
from leadbus.identifiers import (
    check_uscc,
    is_bank_card_like,
    normalize_bank_card,
    normalize_mobile,
    normalize_resident_id,
)
from leadbus.models import CaseLead, Handling, SubjectKind
from leadbus.producers.simulator import TrafficGenerator

START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=3, microseconds=1500)
N = 2000
SHARE = 0.25
MARKETPLACE_HOSTS = {"淘宝": "taobao.com", "京东": "jd.com", "拼多多": "yangkeduo.com", "抖音": "jinritemai.com",
                     "快手": "kwaixiaodian.com", "闲鱼": "goofish.com", "微店": "weidian.com"}  # fmt: skip


def strong_identifiers(lead: CaseLead) -> set[tuple[str, str]]:
    """Identifiers that tie a lead to a suspect, in normal form, computed independently of the simulator."""
    found: set[tuple[str, str]] = set()
    if lead.subject.uscc:
        found.add(("uscc", check_uscc(lead.subject.uscc).value))
    if lead.subject.id_number:
        found.add(("id", normalize_resident_id(lead.subject.id_number)))
    found |= {("phone", normalize_mobile(phone)) for phone in lead.subject.phones if not phone.startswith("0")}
    for account in lead.payment_accounts:
        found.add(("account", normalize_bank_card(account) if is_bank_card_like(account) else account))
    if lead.online.shop_id:
        found.add(("shop", f"{lead.online.platform}:{lead.online.shop_id}"))
    return found


@pytest.fixture(scope="module")
def traffic() -> list[tuple[CaseLead, int]]:
    generator = TrafficGenerator(seed=2024, same_suspect_share=SHARE)
    return [(lead, generator.last_suspect) for lead in generator.leads(N, START, STEP)]


@pytest.fixture(scope="module")
def leads(traffic: list[tuple[CaseLead, int]]) -> list[CaseLead]:
    return [lead for lead, _ in traffic]


def test_same_seed_same_leads() -> None:
    first = [lead.to_json() for lead in TrafficGenerator(seed=7).leads(300, START, STEP)]
    again = [lead.to_json() for lead in TrafficGenerator(seed=7).leads(300, START, STEP)]
    other = [lead.to_json() for lead in TrafficGenerator(seed=8).leads(300, START, STEP)]
    assert first == again
    assert first != other
    assert len({lead.lead_id for lead in TrafficGenerator(seed=7).leads(300, START, STEP)}) == 300


def test_all_valid_and_round_trip(leads: list[CaseLead]) -> None:
    assert len(leads) == N
    for index, lead in enumerate(leads):
        now = START + index * STEP
        assert isinstance(lead, CaseLead)
        assert CaseLead.model_validate_json(lead.to_json()) == lead
        assert CaseLead.from_json(lead.to_json(), now=now) == lead
        assert lead.reported_at == now.replace(microsecond=now.microsecond // 1000 * 1000)
        assert lead.reported_at.utcoffset() == timedelta(0)
        assert lead.revision == 0
        assert lead.description and re.search(r"[\u4e00-\u9fff]", lead.description)
        assert all(re.fullmatch(r"[0-9a-f]{64}", evidence.sha256) for evidence in lead.evidence)


def test_lead_ids_unique_uuid4(leads: list[CaseLead]) -> None:
    assert len({lead.lead_id for lead in leads}) == N
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", lead.lead_id)
               for lead in leads)  # fmt: skip


def test_now_is_an_argument() -> None:
    generator = TrafficGenerator(seed=1)
    shanghai = timezone(timedelta(hours=8))
    lead = generator.lead(datetime(2024, 1, 1, 8, 0, 0, 123456, tzinfo=shanghai))
    assert lead.reported_at == datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    with pytest.raises(ValueError):
        generator.lead(datetime(2024, 1, 1))


def test_repeat_share_and_shared_identifiers(traffic: list[tuple[CaseLead, int]]) -> None:
    seen_suspects: dict[int, list[CaseLead]] = {}
    earlier_identifiers: set[tuple[str, str]] = set()
    repeats = linked = new_linked = same_reporter = 0
    for lead, suspect in traffic:
        identifiers = strong_identifiers(lead)
        assert identifiers, f"lead {lead.lead_id} carries no strong identifier"
        if suspect in seen_suspects:
            repeats += 1
            previous = seen_suspects[suspect]
            assert identifiers & set().union(*(strong_identifiers(p) for p in previous)), lead.to_json()
            same_reporter += (lead.publisher.agency, lead.publisher.province) in {
                (p.publisher.agency, p.publisher.province) for p in previous
            }
        else:
            new_linked += bool(identifiers & earlier_identifiers)
        linked += bool(identifiers & earlier_identifiers)
        earlier_identifiers |= identifiers
        seen_suspects.setdefault(suspect, []).append(lead)
    assert abs(repeats / N - SHARE) < 0.04
    assert abs(linked / N - SHARE) < 0.04  # visible from the leads alone
    assert new_linked == 0  # fresh suspects do not collide with earlier ones
    assert same_reporter <= repeats * 0.02  # a repeat comes from another agency and/or province


@pytest.mark.parametrize("share", [0.0, 0.6])
def test_other_shares(share: float) -> None:
    generator = TrafficGenerator(seed=5, same_suspect_share=share)
    suspects = []
    for _ in generator.leads(1000, START, STEP):
        suspects.append(generator.last_suspect)
    repeat_share = 1 - len(set(suspects)) / len(suspects)
    assert abs(repeat_share - share) < 0.05


def test_repeats_are_partial(traffic: list[tuple[CaseLead, int]]) -> None:
    """A repeat reuses some identifiers of the suspect, not always all of them."""
    first: dict[int, set[tuple[str, str]]] = {}
    partial = 0
    for lead, suspect in traffic:
        identifiers = strong_identifiers(lead)
        if suspect in first and identifiers != first[suspect]:
            partial += 1
        first.setdefault(suspect, identifiers)
    assert partial > 100


def test_variety(leads: list[CaseLead]) -> None:
    assert len({lead.category for lead in leads}) >= 18
    assert len({lead.violation for lead in leads}) >= 12
    agencies = Counter(lead.publisher.agency for lead in leads)
    assert {"SAMR", "NCAC", "GACC", "CAC", "MPS", "NMPA", "CNIPA", "MARA"} <= set(agencies)
    assert agencies.most_common(1)[0][1] < N * 0.5
    provinces = {lead.publisher.province for lead in leads}
    assert NATIONAL in provinces and len(provinces) >= 25
    assert len({lead.subject.address.province for lead in leads if lead.subject.address}) >= 25
    assert {lead.subject.kind for lead in leads} == set(SubjectKind)
    assert len({lead.channel for lead in leads}) >= 7
    handling = Counter(lead.handling for lead in leads)
    assert handling[Handling.OPEN] > handling[Handling.RESTRICTED] > handling[Handling.CONFIDENTIAL] > 0
    assert all(lead.share_with for lead in leads if lead.handling != Handling.OPEN)
    assert not any(lead.share_with for lead in leads if lead.handling == Handling.OPEN)
    assert {lead.grading.source for lead in leads} == {"A", "B", "C", "X"}
    assert any(lead.rights_holder for lead in leads) and any(lead.waybills for lead in leads)


def test_cross_border(leads: list[CaseLead]) -> None:
    cross = [lead for lead in leads if lead.cross_border]
    assert 0.05 * N < len(cross) < 0.3 * N
    assert all(lead.countries for lead in cross)
    assert not any(lead.countries for lead in leads if not lead.cross_border)
    assert all(lead.cross_border for lead in leads if lead.publisher.agency == "GACC")


ALLOWED = {
    "DRUGS": {"ART_141", "ART_142", "ART_140"}, "FOOD": {"ART_143", "ART_144", "ART_140"},
    "COSMETICS": {"ART_148", "ART_140", "ART_214"}, "AGRI_INPUTS": {"ART_147", "ART_140"},
    "APPAREL_FOOTWEAR": {"ART_213", "ART_214", "ART_215"}, "SOFTWARE": {"ART_217", "ART_218"},
    "MUSIC": {"ART_217", "ART_218"}, "FILM_TV": {"ART_217", "ART_218"}, "GAMES": {"ART_217", "ART_218"},
    "PATENTED_PRODUCTS": {"ART_216"},
}  # fmt: skip


def test_violation_matches_category(leads: list[CaseLead]) -> None:
    for lead in leads:
        if lead.category in ALLOWED:
            assert lead.violation in ALLOWED[lead.category], (lead.category, lead.violation)


def test_amounts_around_thresholds(leads: list[CaseLead]) -> None:
    sales = [lead.facts.sales_amount_fen for lead in leads if lead.violation in ("ART_140", "ART_214")]
    assert all(isinstance(value, int) for value in sales)
    threshold = 5_000_000  # Art.140 / Art.214: sales of CNY 50,000, in fen
    assert any(v is not None and v < threshold for v in sales)
    assert any(v == threshold for v in sales)
    assert any(v is not None and v > threshold for v in sales)
    copies = [lead.facts.copies for lead in leads if lead.violation == "ART_217" and lead.facts.copies is not None]
    assert min(copies) < 500 < max(copies) and 500 in copies
    marks = [lead.facts.illegal_business_amount_fen for lead in leads
             if lead.violation == "ART_213" and lead.facts.trademark_kinds == 1]  # fmt: skip
    assert min(v for v in marks if v is not None) < threshold < max(v for v in marks if v is not None)
    loss = [lead.facts.loss_fen for lead in leads if lead.violation == "ART_147" and lead.facts.loss_fen is not None]
    assert min(loss) < 2_000_000 < max(loss)


def test_identifiers_valid(leads: list[CaseLead]) -> None:
    ids = [lead.subject.id_number for lead in leads if lead.subject.id_number]
    usccs = [lead.subject.uscc for lead in leads if lead.subject.uscc]
    assert len(ids) > 200 and len(usccs) > 200
    for value in ids:
        assert normalize_resident_id(value, today=START.date()) == value
    for value in usccs:
        checked = check_uscc(value)
        assert checked.checksum_ok and checked.value == value and value[:2] in ("91", "92")
    cards = [account for lead in leads for account in lead.payment_accounts if is_bank_card_like(account)]
    assert len(cards) > 200
    for card in cards:
        assert normalize_bank_card(card).startswith("62")
    for lead in leads:
        for phone in lead.subject.phones:
            if not phone.startswith("0"):
                assert re.fullmatch(r"\+861[3-9]\d{9}", normalize_mobile(phone))


def test_online_presence(leads: list[CaseLead]) -> None:
    shops = [lead for lead in leads if lead.online.shop_id]
    assert len({lead.online.platform for lead in shops}) >= 6
    for lead in shops:
        assert lead.online.platform in MARKETPLACE_HOSTS and lead.online.shop_id.isdigit()
        host = MARKETPLACE_HOSTS[lead.online.platform]
        assert any(host in url and lead.online.shop_id in url for url in lead.online.urls) or not lead.online.urls
    sites = [url for lead in leads for url in lead.online.urls if not any(h in url for h in MARKETPLACE_HOSTS.values())]
    assert len(sites) > 100 and all(url.startswith("https://www.") for url in sites)
    assert sum(bool(lead.online.ips) for lead in leads) > 100
    assert any(":" in ip for lead in leads for ip in lead.online.ips)
