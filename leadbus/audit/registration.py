"""When a key can first have verified anything: its registration as `leadbus.publishers` recorded it, not as it claims.

A key's record says from when it is valid (`valid_from`) and when it was registered (`registered_at`), both written by
whoever wrote the record. Someone who can write the registry (the admin principal, or whoever took it) registers a key
of their own today with both dated last month and re-signs (or forges) last month's records with it: every seal holds,
every key is valid at every record's time, and a replay used to pass (issue #14's outside check, round 3).

What the writer of a record cannot choose is where the broker put it: the offset on `leadbus.publishers`. Its broker
timestamp is the writer's too (CreateTime), but the log is in offset order, so a record cannot have been written before
any record at a lower offset was: `KeyFeed` notes, per key, its first record's offset and the latest broker timestamp
at or below it (`KeyWritten.written_ms`). A key cannot have verified, at intake or at a stage, a record written before
it was registered; so a key is honoured from the latest of `valid_from`, `registered_at` and — when its first record
reads as a registration (no end of validity, no revocation: nothing a later change of the key writes) — that record's
time, each less the clock skew allowed between writers. A record signed before is `KEY_REGISTERED_LATER`, located at
the record, naming the registration record's coordinates.

The same registry's log shows a revocation undone: the admin only ever revokes a key or ends it sooner (`leadbus
keys revoke`, `rotate`), and a compacted topic keeps a key's latest record alone. Someone who writes the key's record
again without its revocation (or with a later one) makes what the stolen key signed since pass. While the revocation's
record is still on the log (`KeyRegistry.ended`, noted by the feed), a key is judged by the earliest revocation and end
of validity any of its records said (`as_judged`), and the failure names that record.

A rewrite of `leadbus.publishers` (deleted and written again in another order, or compacted so that a key's
registration is gone and a later record of it is judged by `registered_at` alone) made any order, round 3's residual.
The registry is declared kept whole and stamped by the broker (`deploy/topics.yaml`: `cleanup.policy delete`,
`retention.ms -1`, `message.timestamp.type LogAppendTime`), and the feed notes what its log shows (`RegistryLog`):
`registry_traces` names each record missing from it (its start past 0, a hole: deleted or compacted) and the first
record whose time its writer chose (written while the topic was not as declared). A registry written again as declared
is stamped with the time of the rewrite: every key's registration then reads later than what it signed
(`KEY_REGISTERED_LATER` at each record). The seal verifiers use `honoured_from` where they judge a key's validity (once
per key, cached), so the per-record paths are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from leadbus.audit.verification import Finding, ms_of
from leadbus.signing import KeyRegistry, PublisherKey, RegistryLog
from leadbus.topics import PUBLISHERS, declarations

#: How far a record's broker time may be before its key's registration (writers' clocks differ; 15 s is the replay's
#: default skew between producers, above the stages' 10 s transaction timeout).
SKEW_MS = 15_000
REGISTERED_LATER = "KEY_REGISTERED_LATER"


def honoured_from(registry: KeyRegistry, key: PublisherKey) -> tuple[int | None, bool]:
    """The first millisecond a record under `key` may carry, and whether that is its registration (not `valid_from`)."""
    start = ms_of(key.valid_from)
    registered = _registered_ms(registry, key)
    if registered is not None and (start is None or registered - SKEW_MS > start):
        return registered - SKEW_MS, True
    return start, False


def _registered_ms(registry: KeyRegistry, key: PublisherKey) -> int | None:
    claimed = ms_of(key.registered_at)
    written = registry.written.get((key.publisher, key.key_id))
    if written is None or not written.as_registered or written.written_ms <= 0:
        return claimed
    return written.written_ms if claimed is None else max(claimed, written.written_ms)


def registered_later(registry: KeyRegistry, key: PublisherKey, ms: int) -> str | None:
    """Why a record at broker time `ms` cannot have been signed with `key` (None when it can, as far as registration
    tells): the message of a `KEY_REGISTERED_LATER` failure."""
    start, by_registration = honoured_from(registry, key)
    if not by_registration or start is None or ms <= 0 or ms >= start:
        return None
    written = registry.written.get((key.publisher, key.key_id))
    at = f" ({PUBLISHERS}[0]@{written.offset})" if written is not None else ""
    return (f"key {key.key_id} of {key.publisher} was registered{at} at {_iso(start + SKEW_MS)}, after this record "
            f"({_iso(ms)}), though it claims to be valid from {_iso(ms_of(key.valid_from))}: a key registered later "
            "and back-dated, and this record signed with it afterwards (forged or re-signed)")


def _iso(ms: int | None) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_judged(registry: KeyRegistry, key: PublisherKey) -> PublisherKey:
    """`key` revoked and ended as early as any of its records on the registry's log said (a revocation undone by a later
    record is not followed)."""
    ended = registry.ended.get((key.publisher, key.key_id))
    if ended is None:
        return key
    judged = key
    if ended.revoked is not None and (key.revoked_at is None or ended.revoked[0] < key.revoked_at):
        judged = replace(judged, revoked_at=ended.revoked[0], revocation_reason=ended.revoked[1])
    if ended.until is not None and (key.valid_until is None or ended.until[0] < key.valid_until):
        judged = replace(judged, valid_until=ended.until[0])
    return judged


def undone(registry: KeyRegistry, key: PublisherKey, status: str) -> str:
    """What a `KEY_REVOKED` or `KEY_EXPIRED` failure adds when the key's latest record no longer says it."""
    ended = registry.ended.get((key.publisher, key.key_id))
    if ended is None:
        return ""
    if status == "KEY_REVOKED" and ended.revoked is not None and (key.revoked_at is None
                                                                  or ended.revoked[0] < key.revoked_at):
        return (f" (as {PUBLISHERS}[0]@{ended.revoked[2]} said; the key's latest record "
                f"{'no longer revokes it' if key.revoked_at is None else 'revokes it later'}: a revocation undone)")
    if status == "KEY_EXPIRED" and ended.until is not None and (key.valid_until is None
                                                                or ended.until[0] < key.valid_until):
        return (f" (as {PUBLISHERS}[0]@{ended.until[1]} said; the key's latest record ends it later or never: its end "
                "undone)")
    return ""


def registry_traces(registry: KeyRegistry, declared: dict[str, str] | None = None) -> list[Finding]:
    """Failures, located on `leadbus.publishers`, for what its log shows against its declaration: records missing (a
    deletion or compaction of a registry kept whole) and records not stamped by the broker (the topic rewritten while
    not as declared). Nothing for a registry not read from the topic."""
    log = registry.log
    if log is None:
        return []
    found = log_traces(log, PUBLISHERS, declared, LogWords(
        "the key registry", "a key's registration may be missing and its place on the log unknown",
        "REGISTRY_REWRITTEN", "key record(s)", "the registry", "its times and order cannot date any key"))
    for offset, which in log.foreign:
        found.append(Finding("KEY_NOT_ITS_OWN", f"key record {which} carries a public key whose id is not "
                             f"{which.partition('/')[2]} (every key id is the SHA-256 of its key): another key put in "
                             "that key's place, under which whatever it signs verifies as the registered key's",
                             PUBLISHERS, 0, offset))
    return found


@dataclass(frozen=True)
class LogWords:
    """How the findings of one kept-whole, broker-stamped log (`log_traces`) name it and what each trace costs."""

    log: str  # "the key registry"
    deleted_costs: str  # what a record gone from it leaves unknown
    rewritten_check: str  # the check's name for records stamped by their writer
    records: str  # "key record(s)"
    stamped: str  # "the registry" (… is stamped by the broker)
    rewritten_costs: str  # what records stamped by their writer leave untold


def log_traces(log: RegistryLog, topic: str, declared: dict[str, str] | None, words: LogWords) -> list[Finding]:
    """Failures, located on `topic`, for records missing from its log and records not stamped by the broker, as far as
    its declaration (`deploy/topics.yaml`, not the broker's configuration) rules them out: the key registry's and the
    schema topic's logs alike."""
    if declared is None:
        declared = next((dict(s.config) for s in declarations() if s.name == topic), {})
    found = []
    if declared.get("cleanup.policy") == "delete" and declared.get("retention.ms") == "-1":
        for first, after in log.missing:
            gone = str(first) if after == first + 1 else f"{first}–{after - 1}"
            found.append(Finding("RECORDS_DELETED", f"records {gone} of {words.log} are gone, and it is kept whole "
                                 "(cleanup.policy delete, retention.ms -1): deleted or compacted, so "
                                 f"{words.deleted_costs}", topic, 0, after))
    if declared.get("message.timestamp.type") == "LogAppendTime" and log.writer_stamped:
        first, n = log.writer_stamped[0], len(log.writer_stamped)
        found.append(Finding(words.rewritten_check, f"{n} {words.records} from offset {first} on carry a time their "
                             f"writer chose (CreateTime), and {words.stamped} is stamped by the broker "
                             "(message.timestamp.type LogAppendTime): written while the topic was not as declared "
                             f"(deleted and created again, or its configuration changed), so {words.rewritten_costs}",
                             topic, 0, first))
    return found
