"""The blacklist policy (失信企业黑名单): proposals, listing, delisting, expiry, refusals, replay."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from leadbus.identifiers import make_resident_id, make_uscc
from leadbus.processors.core.blacklist import (
    Decision,
    Entry,
    FinalDecision,
    Policy,
    Refusal,
    Status,
    canonical,
    decide,
    entity_identifiers,
    entry_id_of,
    expire,
    propose,
    replay,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
USCC = f"uscc:{make_uscc('91', '330100', 'M000100Y4')}"
RID = f"rid:{make_resident_id('330106', date(1980, 1, 1), 12)}"
SHOP = "shop:taobao:12345"
IDS = (SHOP, USCC, "phone:+8613800138000", "acct:6222020200112233445")


def _proposed(phase: str = "FILED", at: datetime = T0) -> Entry:
    entry = propose(None, "CASE-00000000000000a1", IDS, phase, at, enterprise_name="杭州某某贸易有限公司")
    assert entry is not None
    return entry


def _decision(entry_id: str, kind: str, at: datetime, n: int = 1, period: int | None = None) -> Decision:
    return Decision(f"00000000-0000-4000-8000-{n:012d}", entry_id, kind, "SAMR", at, "", period)  # type: ignore[arg-type]


def test_a_filed_criminal_case_proposes_an_entry_named_by_strong_identifiers_only() -> None:
    entry = _proposed()
    assert entry.status == Status.PROPOSED and not entry.listed
    assert entry.identifiers == (USCC, SHOP)  # strongest first; phones and accounts never name an entity
    assert entry.reason == "CRIMINAL_CASE_FILED" and entry.cases == ("CASE-00000000000000a1",)
    assert entry.entry_id == entry_id_of(IDS) and entry.entry_id.startswith("BL-")
    assert USCC.split(":")[1] not in entry.entry_id  # the key is a digest, no identifier in it
    assert entry.enterprise_name == "杭州某某贸易有限公司"
    assert [e.what for e in entry.history] == ["PROPOSED"]


@pytest.mark.parametrize("phase", ["ASSESSED", "APPROVED", "TRANSFERRED", "NOT_FILED", "CLOSED_NOT_FILED",
                                   "RETURNED", "NOT_FILED_FINAL"])
def test_phases_that_are_not_a_listable_final_decision_propose_nothing(phase: str) -> None:
    assert propose(None, "CASE-00000000000000a1", IDS, phase, T0) is None


def test_a_natural_person_is_named_by_resident_id_and_never_by_name() -> None:
    entry = propose(None, "CASE-00000000000000a2", (RID,), "COMPLETED", T0, enterprise_name="张三")
    assert entry is not None and entry.identifiers == (RID,) and entry.enterprise_name is None


def test_a_case_naming_no_entity_is_not_proposed() -> None:
    assert propose(None, "CASE-00000000000000a3", ("phone:+8613800138000",), "FILED", T0) is None
    assert entity_identifiers(["phone:+8613800138000", "acct:1"]) == ()


def test_listing_on_an_agency_decision_with_the_policy_period() -> None:
    entry = _proposed()
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0 + timedelta(days=2)))
    assert isinstance(listed, Entry) and listed.status == Status.LISTED and listed.listed
    assert listed.deciding_agency == "SAMR" and listed.listed_at == (T0 + timedelta(days=2)).isoformat()
    assert listed.listed_until == (T0 + timedelta(days=2 + 3 * 365)).isoformat()
    custom = decide(entry, _decision(entry.entry_id, "LIST", T0 + timedelta(days=2), period=30))
    assert isinstance(custom, Entry) and custom.listed_until == (T0 + timedelta(days=32)).isoformat()


def test_a_listing_without_a_final_decision_is_refused() -> None:
    refused = decide(None, _decision("BL-0123456789abcdef0123", "LIST", T0))
    assert isinstance(refused, Refusal) and refused.reason == "BLACKLIST_NO_FINAL_DECISION"


def test_a_listing_dated_before_the_final_decision_or_with_a_bad_period_is_refused() -> None:
    entry = _proposed()
    early = decide(entry, _decision(entry.entry_id, "LIST", T0 - timedelta(hours=1)))
    assert isinstance(early, Refusal) and early.reason == "BLACKLIST_BEFORE_PROPOSAL"
    long = decide(entry, _decision(entry.entry_id, "LIST", T0, period=100_000))
    assert isinstance(long, Refusal) and long.reason == "BLACKLIST_PERIOD"


def test_delisting_by_decision_is_dated_and_relisting_needs_a_new_final_decision() -> None:
    entry = _proposed()
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0 + timedelta(days=1)))
    assert isinstance(listed, Entry)
    delisted = decide(listed, _decision(entry.entry_id, "DELIST", T0 + timedelta(days=40), n=2))
    assert isinstance(delisted, Entry) and delisted.status == Status.DELISTED and not delisted.listed
    assert delisted.delisted_at == (T0 + timedelta(days=40)).isoformat()
    again = decide(delisted, _decision(entry.entry_id, "LIST", T0 + timedelta(days=41), n=3))
    assert isinstance(again, Refusal) and again.reason == "BLACKLIST_NO_FINAL_DECISION"
    # the same case again (a replayed step) does not reopen it; a new case's final decision does
    assert propose(delisted, "CASE-00000000000000a1", IDS, "FILED", T0 + timedelta(days=50)) is None
    reopened = propose(delisted, "CASE-00000000000000b9", (USCC,), "FILED", T0 + timedelta(days=50))
    assert reopened is not None and reopened.status == Status.PROPOSED
    assert reopened.cases == ("CASE-00000000000000a1", "CASE-00000000000000b9")
    assert [e.what for e in reopened.history] == ["PROPOSED", "LISTED", "DELISTED", "PROPOSED"]


def test_delisting_what_is_not_listed_and_declining_what_is_listed_are_refused() -> None:
    entry = _proposed()
    refused = decide(entry, _decision(entry.entry_id, "DELIST", T0 + timedelta(days=1)))
    assert isinstance(refused, Refusal) and refused.reason == "BLACKLIST_WRONG_STATE"
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0 + timedelta(days=1)))
    assert isinstance(listed, Entry)
    declined = decide(listed, _decision(entry.entry_id, "DECLINE", T0 + timedelta(days=2), n=2))
    assert isinstance(declined, Refusal) and declined.reason == "BLACKLIST_WRONG_STATE"


def test_a_declined_proposal_is_not_listed() -> None:
    entry = _proposed()
    declined = decide(entry, _decision(entry.entry_id, "DECLINE", T0 + timedelta(days=1)))
    assert isinstance(declined, Entry) and declined.status == Status.DECLINED and not declined.listed


def test_the_same_decision_twice_is_idempotent() -> None:
    entry = _proposed()
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0 + timedelta(days=1)))
    assert isinstance(listed, Entry)
    assert decide(listed, _decision(entry.entry_id, "LIST", T0 + timedelta(days=1))) == listed


def test_expiry_of_the_listing_period() -> None:
    entry = _proposed()
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0, period=30))
    assert isinstance(listed, Entry)
    assert expire(listed, T0 + timedelta(days=29, hours=23)) is None
    expired = expire(listed, T0 + timedelta(days=31))
    assert expired is not None and expired.status == Status.EXPIRED and not expired.listed
    assert expired.delisted_at == (T0 + timedelta(days=30)).isoformat()  # dated by the period's end, not the tick
    assert expire(expired, T0 + timedelta(days=400)) is None
    assert expire(entry, T0 + timedelta(days=4000)) is None  # a proposal never expires into anything


def test_a_second_case_of_the_same_entity_joins_the_entry() -> None:
    entry = _proposed()
    more = propose(entry, "CASE-00000000000000c4", (USCC, "domain:fake-shoes.cn"), "COMPLETED",
                   T0 + timedelta(days=3))
    assert more is not None and more.cases == ("CASE-00000000000000a1", "CASE-00000000000000c4")
    assert more.identifiers == (USCC, SHOP, "domain:fake-shoes.cn")
    assert more.status == Status.PROPOSED


def test_times_without_a_timezone_are_refused() -> None:
    with pytest.raises(ValueError):
        propose(None, "CASE-00000000000000a1", IDS, "FILED", datetime(2026, 3, 1))


def test_replay_gives_the_same_blacklist_and_is_dated_by_events_not_by_replay_time() -> None:
    rng = random.Random(18)
    events: list[FinalDecision | Decision | datetime] = []
    entities = [(f"uscc:{make_uscc('91', f'3301{i:02d}', 'M000100Y4')}",) for i in range(1, 9)]
    for i, ids in enumerate(entities):
        at = T0 + timedelta(days=i)
        events.append(FinalDecision(f"CASE-{i:016x}", ids, rng.choice(["FILED", "COMPLETED"]), at, f"企业{i}"))
        entry_id = entry_id_of(ids)
        assert entry_id is not None
        kind = rng.choice(["LIST", "LIST", "DECLINE"])
        events.append(_decision(entry_id, kind, at + timedelta(hours=5), n=i * 10, period=rng.choice([20, 60, 400])))
        if rng.random() < 0.4:
            events.append(_decision(entry_id, "DELIST", at + timedelta(days=10), n=i * 10 + 1))
        events.append(T0 + timedelta(days=i * 15))
    events.append(_decision("BL-0123456789abcdef0123", "LIST", T0, n=999))  # refused, changes nothing
    first = replay(events)
    second = replay(list(events))
    assert canonical(first) == canonical(second)
    statuses = {e.status for e in first.values()}
    assert Status.LISTED in statuses or Status.EXPIRED in statuses
    assert "BL-0123456789abcdef0123" not in first
    # the policy is an argument: one that treats no phase as listable gives an empty blacklist
    assert replay(events, Policy(listable={})) == {}


def test_entries_round_trip_through_json() -> None:
    entry = _proposed()
    listed = decide(entry, _decision(entry.entry_id, "LIST", T0))
    assert isinstance(listed, Entry)
    assert Entry.from_json(listed.to_json()) == listed
