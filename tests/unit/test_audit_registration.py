"""A key registered later and back-dated (issue #14's outside check, round 3): someone who can write
`leadbus.publishers` registers a key today claiming it valid (and registered) since last month, and signs last month's
records with it. Every seal held and the replay passed; the key's first record on the registry's log shows when it was
written (`KeyWritten`, `leadbus.audit.registration`): each record signed before is `KEY_REGISTERED_LATER`, at the
record, naming the registration's coordinates. A key registered before what it signs, revoked or rotated later (its
latest record written after what it signed), still passes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import ReplayRecord
from leadbus.publisher_keys import KeyFeed
from leadbus.signing import KeyRegistry, KeyWritten, PublisherKey
from tests.unit.test_audit_seals import NOW, PUB, _record, _registry
from tests.unit.test_stage_seals import CATALOG, KEY, T0, day, registry, sealer

MS = 1000


def _ms(when: object) -> int:
    return int(when.timestamp() * 1000)  # type: ignore[attr-defined]


def _written(reg: KeyRegistry, at_ms: int, *, as_registered: bool = True, offset: int = 7) -> KeyRegistry:
    for publisher in reg.publishers():
        for key in reg.keys_of(publisher):
            reg.written[(key.publisher, key.key_id)] = KeyWritten(offset, at_ms, as_registered)
    return reg


def test_agency_records_signed_before_their_key_was_written_to_the_registry_fail_at_each_record() -> None:
    # The key claims to be valid and registered 30 days before NOW; its record was written an hour after NOW.
    reg = _written(_registry(), _ms(NOW + timedelta(hours=1)))
    verifier = BusSealVerifier(reg)
    found = [f for r in (_record(0, 1), _record(1, 2), _record(2, 3, at=NOW + timedelta(hours=2)))
             for f in verifier.check(r)] + list(verifier.finish())
    # (the lane's numbers 1 and 2 refused: the valid record after them follows a gap)
    assert sorted((f.check, f.offset) for f in found) == [("KEY_REGISTERED_LATER", 0), ("KEY_REGISTERED_LATER", 1),
                                                           ("SEQUENCE_GAP", 2)]
    assert "leadbus.publishers[0]@7" in found[0].message and found[0].topic == "leadbus.intake.SAMR"
    # before: the same records, the registry without the log's account, pass
    plain = BusSealVerifier(_registry())
    assert [f for r in (_record(0, 1), _record(1, 2)) for f in plain.check(r)] + list(plain.finish()) == []


def test_a_registered_at_later_than_the_record_fails_without_the_log_too() -> None:
    verifier = BusSealVerifier(_registry(registered_at=NOW + timedelta(days=1)))
    (found,) = verifier.check(_record(0, 1))
    assert found.check == "KEY_REGISTERED_LATER" and found.offset == 0


def test_a_key_revoked_or_rotated_later_is_judged_by_its_registration_not_its_latest_record() -> None:
    # Its first record read is the revocation, written after what it signed: a later change, not the registration.
    reg = _written(_registry(revoked_at=NOW + timedelta(days=1)), _ms(NOW + timedelta(days=1)), as_registered=False)
    verifier = BusSealVerifier(reg)
    assert [f for r in (_record(0, 1), _record(1, 2)) for f in verifier.check(r)] + list(verifier.finish()) == []
    # within the clock skew of the registration: passes
    reg = _written(_registry(), _ms(NOW) + 10 * MS)
    verifier = BusSealVerifier(reg)
    assert list(verifier.check(_record(0, 1))) == []


def test_stage_records_sealed_before_their_key_was_written_fail_at_each_signed_and_linked_record() -> None:
    written = [w for w in day(sealer(), transactions=3, per=4, partitions=1)]
    reg = _written(registry(KEY), _ms(T0 + timedelta(days=2)))
    verifier = StageSealVerifier(reg)
    ms = _ms(T0 + timedelta(hours=1))
    found = [f for offset, w in enumerate(written)
             for f in verifier.check(ReplayRecord(w.topic, 0, offset, ms, w.key, w.value, w.headers, CATALOG))]
    found += list(verifier.finish())
    assert {f.check for f in found} == {"KEY_REGISTERED_LATER"} and len(found) == len(written), found
    assert "leadbus.publishers[0]@7" in found[0].message
    # before: registry without the log's account, the same records pass
    verifier = StageSealVerifier(registry(KEY))
    assert not [f for offset, w in enumerate(written)
                for f in verifier.check(ReplayRecord(w.topic, 0, offset, ms, w.key, w.value, w.headers, CATALOG))]


def test_the_feed_notes_each_keys_first_record_and_a_back_stamped_one_no_earlier_than_the_records_before_it() -> None:
    from leadbus.publisher_keys import key_record

    feed = KeyFeed("localhost:1")
    first = next(iter(_registry().keys_of(PUB)))
    other = replace(first, key_id="other", publisher="SAMR.34")

    def msg(key: PublisherKey, offset: int, ms: int) -> SimpleNamespace:
        k, v = key_record(key)
        return SimpleNamespace(error=lambda: None, offset=lambda: offset, key=lambda: k, value=lambda: v,
                               timestamp=lambda: (1, ms))

    revoked = first.revoked(NOW, "left")
    feed._apply([msg(first, 0, 5_000), msg(other, 1, 1_000), msg(revoked, 2, 9_000)])
    assert feed.registry.written[(PUB, first.key_id)] == KeyWritten(0, 5_000, True)
    # stamped back by its writer: it cannot have been written before offset 0's record
    assert feed.registry.written[("SAMR.34", "other")] == KeyWritten(1, 5_000, True)
    assert feed.registry.get(PUB, first.key_id) == revoked


def test_a_revocation_undone_by_a_later_record_of_the_key_is_not_followed() -> None:
    """The key revoked (its record on the log), then written again without the revocation: what it signed after the
    revocation passed (the registry holds the latest record alone); now KEY_REVOKED naming the revoking record."""
    from leadbus.publisher_keys import key_record

    key = next(iter(_registry().keys_of(PUB)))
    revoked = key.revoked(NOW - timedelta(hours=1), "compromised")

    def msg(k: PublisherKey, offset: int) -> SimpleNamespace:
        raw_key, value = key_record(k)
        return SimpleNamespace(error=lambda: None, offset=lambda: offset, key=lambda: raw_key, value=lambda: value,
                               timestamp=lambda: (1, _ms(NOW) - 86_400_000 + offset))

    feed = KeyFeed("localhost:1")
    feed._apply([msg(key, 0), msg(revoked, 1), msg(key, 2)])  # the revocation undone at offset 2
    assert feed.registry.get(PUB, key.key_id) == key
    verifier = BusSealVerifier(feed.registry)
    (found,) = verifier.check(_record(0, 1))
    assert found.check == "KEY_REVOKED" and "leadbus.publishers[0]@1" in found.message and "undone" in found.message
    # the same registry as its latest records alone: passes (as before)
    assert list(BusSealVerifier(_registry()).check(_record(0, 1))) == []


def test_a_stage_key_revocation_undone_is_not_followed() -> None:
    reg = registry(KEY)
    (key,) = reg.keys_of("LEADBUS-linking")
    from leadbus.signing import KeyEnded

    reg.ended[(key.publisher, key.key_id)] = KeyEnded(revoked=(T0 + timedelta(minutes=30), "stolen", 4))
    written = day(sealer(), transactions=2, per=3, partitions=1)
    verifier = StageSealVerifier(reg)
    ms = _ms(T0 + timedelta(hours=1))
    found = [f for offset, w in enumerate(written)
             for f in verifier.check(ReplayRecord(w.topic, 0, offset, ms, w.key, w.value, w.headers, CATALOG))]
    assert found and {f.check for f in found} == {"KEY_REVOKED"} and "leadbus.publishers[0]@4" in found[0].message


def test_a_registry_rewritten_or_with_records_missing_is_named_at_its_first_trace() -> None:
    """Round 3's residual: a rewritten or compacted `leadbus.publishers` made any order and dated any key. Declared
    kept whole and broker-stamped, its log shows both: records missing (offsets 0-1, 4) and records whose time their
    writer chose (CreateTime, kind 1)."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    from leadbus.audit.registration import registry_traces
    from leadbus.publisher_keys import key_record

    key = next(iter(_registry().keys_of(PUB)))

    def msg(offset: int, kind: int) -> SimpleNamespace:
        k, v = key_record(key)
        return SimpleNamespace(error=lambda: None, offset=lambda: offset, key=lambda: k, value=lambda: v,
                               timestamp=lambda: (kind, 5_000 + offset))

    feed = KeyFeed("localhost:1")
    feed._apply([msg(2, TIMESTAMP_LOG_APPEND_TIME), msg(3, TIMESTAMP_LOG_APPEND_TIME), msg(5, TIMESTAMP_CREATE_TIME),
                 msg(6, TIMESTAMP_CREATE_TIME)])
    found = registry_traces(feed.registry)
    assert sorted((f.check, f.topic, f.partition, f.offset) for f in found) == [
        ("RECORDS_DELETED", "leadbus.publishers", 0, 2), ("RECORDS_DELETED", "leadbus.publishers", 0, 5),
        ("REGISTRY_REWRITTEN", "leadbus.publishers", 0, 5)]
    assert all(f.failure for f in found) and "2 key record(s) from offset 5" in found[-1].message
    # kept whole and broker-stamped: nothing; a registry declared compacted, stamped by its writers: nothing (as before)
    feed = KeyFeed("localhost:1")
    feed._apply([msg(0, TIMESTAMP_LOG_APPEND_TIME), msg(1, TIMESTAMP_LOG_APPEND_TIME)])
    assert registry_traces(feed.registry) == []
    feed = KeyFeed("localhost:1")
    feed._apply([msg(2, TIMESTAMP_CREATE_TIME)])
    assert registry_traces(feed.registry, {"cleanup.policy": "compact", "retention.ms": "-1"}) == []
    assert registry_traces(_registry()) == []  # not read from the topic


def test_a_key_record_whose_key_id_is_not_of_its_key_is_named() -> None:
    """A registered key written again with another public key under its key id: whatever that key signs verified as
    the registered key's, registered when it was. Every key id is made from its key: KEY_NOT_ITS_OWN at the record."""
    from leadbus.audit.registration import registry_traces
    from leadbus.publisher_keys import key_record
    from leadbus.signing import key_id_of, public_bytes

    raw = public_bytes(KEY.public_key())
    key = PublisherKey("LEADBUS-linking", key_id_of(raw), raw, T0, T0, require_signed=False)
    other = replace(key, public_key=bytes(32))

    def msg(k: PublisherKey, offset: int) -> SimpleNamespace:
        rk, v = key_record(k)
        return SimpleNamespace(error=lambda: None, offset=lambda: offset, key=lambda: rk, value=lambda: v,
                               timestamp=lambda: (2, 5_000 + offset))

    feed = KeyFeed("localhost:1")
    feed._apply([msg(key, 0), msg(other, 1)])
    assert [(f.check, f.offset) for f in registry_traces(feed.registry)] == [("KEY_NOT_ITS_OWN", 1)]
    feed = KeyFeed("localhost:1")
    feed._apply([msg(key, 0), msg(key.revoked(NOW, "left"), 1)])
    assert registry_traces(feed.registry) == []


def test_the_registry_judges_each_key_records_key_id_against_its_key_where_it_keeps_its_log() -> None:
    """The judgment is the registry's (pure core), not the feed's: `note_record` passes the key to its log."""
    from leadbus.signing import RegistryLog, key_id_of, public_bytes

    raw = public_bytes(KEY.public_key())
    key = PublisherKey("LEADBUS-linking", key_id_of(raw), raw, T0, T0, require_signed=False)
    other = replace(key, public_key=bytes(32))
    reg = KeyRegistry()
    reg.log = RegistryLog()
    for offset, k in enumerate((key, other, key.revoked(NOW, "left"))):
        reg.log.note(offset, True)
        reg.apply(k)
        reg.note_record(k, offset, 5_000 + offset)
    assert reg.log.foreign == [(1, f"LEADBUS-linking/{key.key_id}")]
    assert reg.written[("LEADBUS-linking", key.key_id)] == KeyWritten(0, 5_000, True)
    log = RegistryLog()
    log.note_key(4, key)
    log.note_key(5, other)
    assert log.foreign == [(5, f"LEADBUS-linking/{key.key_id}")]
    plain = KeyRegistry()  # a registry made otherwise keeps no log: the records are noted, nothing is judged
    plain.note_record(other, 0, 5_000)
    assert plain.log is None and ("LEADBUS-linking", key.key_id) in plain.written
