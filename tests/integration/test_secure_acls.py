"""On a secured broker (TLS, SCRAM-SHA-512, StandardAuthorizer deny by default, deploy/acl-policy.yaml applied):
each principal can do exactly what the policy grants, and each refusal of issue #12 holds — nothing is
written or read.

The cluster is this module's own; the principals' client files are the ones `leadbus acl apply` wrote
(`<tmp>/secure/clients/<principal>.json`), used as they are.
"""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from leadbus.acl import Grant, Principal
from leadbus.clients import KafkaSettings
from leadbus.provisioning.acls import NotAdmin, apply_policy, to_binding
from leadbus.topics import load_declarations
from tests.secure import Errors, SecureBus, eventually, secured

pytestmark = pytest.mark.integration

TOPICS = sorted(s.name for s in load_declarations())
PROBE = b"acl-probe"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBus]:
    with secured(1, tmp_path_factory.mktemp("secure-acls")) as secure:
        # one record on partition 0 of every topic, so that a read that is allowed has something to get
        producer = secure.admin.producer(acks="all")
        for topic in TOPICS:
            producer.produce(topic, key=b"seed", value=PROBE, partition=0)
        assert producer.flush(60) == 0
        yield secure


def _ends(bus: SecureBus, topic: str) -> int:
    consumer = bus.admin.consumer(f"leadbus-audit-{uuid.uuid4()}")  # the admin is a super user
    try:
        meta = consumer.list_topics(topic, timeout=20).topics[topic]
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in meta.partitions)
    finally:
        consumer.close()


def _produce(settings: KafkaSettings, topic: str, **config: object) -> tuple[KafkaError | None, Errors]:
    errors = Errors()
    producer = settings.producer(**{"message.timeout.ms": 15000, "error_cb": errors, **config})
    results: list[KafkaError | None] = []
    producer.produce(topic, key=b"refused?", value=PROBE, on_delivery=lambda err, _msg: results.append(err))
    producer.flush(20)
    return (results[0] if results else KafkaError(KafkaError._MSG_TIMED_OUT)), errors


def _group_for(principal: Principal) -> str:
    """A consumer group this principal may use (a literal grant, or a name under a granted prefix)."""
    for g in principal.grants:
        if g.kind == "group" and g.operation == "read":
            return g.name if g.pattern == "literal" else f"{g.name}probe-{uuid.uuid4().hex[:8]}"
    return f"no-group-granted-{uuid.uuid4().hex[:8]}"


# -- the whole policy, principal by principal ---------------------------------------------------------

def _probe(bus: SecureBus, principal: Principal) -> dict[str, set[str]]:
    """What this principal can actually do on every declared topic: describe, write, read."""
    settings = bus.as_(principal.user)
    found: dict[str, set[str]] = {"describe": set(), "write": set(), "read": set()}

    admin = settings.admin(log_level=0)
    found["describe"] = {t for t, meta in admin.list_topics(timeout=30).topics.items() if meta.error is None} & set(
        TOPICS)

    producer = settings.producer(**{"message.timeout.ms": 20000, "acks": "all", "enable.idempotence": False})
    outcome: dict[str, KafkaError | None] = {}
    for topic in TOPICS:
        producer.produce(topic, key=b"probe", value=PROBE, partition=0,
                         on_delivery=lambda err, msg, t=topic: outcome.__setitem__(t, err))
    producer.flush(40)
    found["write"] = {t for t, err in outcome.items() if err is None}

    consumer = settings.consumer(_group_for(principal), **{"error_cb": lambda _e: None})
    try:
        consumer.assign([TopicPartition(t, 0, 0) for t in TOPICS])
        may_read = {t for t in TOPICS if principal.allows("topic", t, "read")}
        deadline = time.monotonic() + 25
        quiet_until = None
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    found["read"].add(msg.topic() or "")
            if found["read"] >= may_read:  # all it may read arrived: give forbidden ones a chance to show up
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return found


def test_each_principal_can_do_exactly_what_the_policy_grants(bus: SecureBus) -> None:
    def one(principal: Principal) -> list[str]:
        found = _probe(bus, principal)
        problems = []
        for op in ("describe", "write", "read"):
            expected = {t for t in TOPICS if principal.allows("topic", t, op)}
            for topic in sorted(expected - found[op]):
                problems.append(f"{principal.user} could not {op} {topic}, which the policy grants")
            for topic in sorted(found[op] - expected):
                problems.append(f"{principal.user} could {op} {topic}, which the policy does not grant")
        return problems

    with ThreadPoolExecutor(max_workers=6) as pool:
        problems = [p for found in pool.map(one, bus.policy.principals) for p in found]
    assert problems == []


@pytest.mark.parametrize("stage", ["intake", "linking", "handover", "routing"])
def test_each_stage_has_its_own_transactional_ids_only(bus: SecureBus, stage: str) -> None:
    settings = bus.as_(stage)
    producer = settings.transactional_producer(f"leadbus-{stage}-probe-{uuid.uuid4().hex[:6]}")
    producer.init_transactions(30)  # granted
    other = "routing" if stage != "routing" else "intake"
    with pytest.raises(KafkaException) as refused:
        settings.transactional_producer(f"leadbus-{other}-probe").init_transactions(20)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


# -- the refusals of issue #12 -------------------------------------------------------------------------

def test_a_publisher_cannot_write_another_agencys_intake_topic(bus: SecureBus) -> None:
    before = _ends(bus, "leadbus.intake.MPS")
    err, _ = _produce(bus.as_("publisher-SAMR"), "leadbus.intake.MPS", **{"enable.idempotence": True})
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    ok, _ = _produce(bus.as_("publisher-SAMR"), "leadbus.intake.SAMR", **{"enable.idempotence": True})
    assert ok is None, "its own intake topic takes an idempotent write with no cluster-wide right"
    assert _ends(bus, "leadbus.intake.MPS") == before


def test_a_dashboard_cannot_read_another_regions_topic(bus: SecureBus) -> None:
    consumer = bus.as_("dashboard-yrd").consumer(f"leadbus-dashboard-yrd-{uuid.uuid4()}")
    try:
        meta = consumer.list_topics("leadbus.region.jjj", timeout=20).topics["leadbus.region.jjj"]
        assert meta.error is not None and meta.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        consumer.subscribe(["leadbus.region.jjj"])
        seen, errors = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not errors:
            for msg in consumer.consume(100, 0.5):
                (errors if msg.error() else seen).append(msg)
        assert seen == []
        assert errors and errors[0].error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        consumer.close()


def test_an_auditor_writes_nothing_and_joins_no_processor_group(bus: SecureBus) -> None:
    auditor = bus.as_("auditor")
    for topic in ("leadbus.cases", "leadbus.intake.SAMR", "leadbus.publishers", "leadbus.region.yrd"):
        before = _ends(bus, topic)
        err, _ = _produce(auditor, topic)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, topic
        assert _ends(bus, topic) == before
    for group in ("leadbus-linking", "leadbus-intake", "leadbus-routing", "leadbus-registry"):
        consumer = auditor.consumer(group)
        try:
            consumer.subscribe(["leadbus.cases"])
            errors = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not errors:
                errors = [m.error() for m in consumer.consume(100, 0.5) if m.error()]
            assert errors and errors[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED, group
            assert consumer.assignment() == []
        finally:
            consumer.close()
    with pytest.raises(KafkaException):  # nor can it pose as a stage's transactional producer
        auditor.transactional_producer("leadbus-linking-auditor").init_transactions(20)


@pytest.mark.parametrize("how", ["plaintext", "tls-without-sasl", "sasl-without-tls", "unknown-user"])
def test_unauthenticated_and_plaintext_clients_are_refused(bus: SecureBus, how: str) -> None:
    good = dict(bus.as_("publisher-SAMR").security)
    security = {
        "plaintext": {"security.protocol": "PLAINTEXT"},
        "tls-without-sasl": {"security.protocol": "SSL", "ssl.ca.location": good["ssl.ca.location"]},
        "sasl-without-tls": {**good, "security.protocol": "SASL_PLAINTEXT"},
        "unknown-user": {**good, "sasl.username": "nobody", "sasl.password": "guess"},
    }[how]
    _refused(bus, KafkaSettings(bus.cluster.bootstrap_servers, security=security))


def test_a_wrong_password_is_refused(bus: SecureBus) -> None:
    good = bus.as_("publisher-SAMR")
    wrong = KafkaSettings(good.bootstrap, security={**good.security, "sasl.password": "not-" + good.security[
        "sasl.password"]})
    errors = _refused(bus, wrong)
    assert KafkaError._AUTHENTICATION in errors.codes(), errors.text()


def _refused(bus: SecureBus, settings: KafkaSettings) -> Errors:
    before = _ends(bus, "leadbus.intake.SAMR")
    err, errors = _produce(settings, "leadbus.intake.SAMR", **{"message.timeout.ms": 6000})
    assert err is not None
    admin = settings.admin(log_level=0, error_cb=errors)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    assert _ends(bus, "leadbus.intake.SAMR") == before
    return errors


@pytest.mark.parametrize("principal", ["intake", "auditor", "routing", "publisher-SAMR"])
def test_a_non_admin_cannot_create_topics_change_acls_or_users_or_write_the_key_registry(
        bus: SecureBus, principal: str) -> None:
    settings = bus.as_(principal)
    admin = settings.admin(log_level=0)
    name = f"leadbus.intake.ROGUE{uuid.uuid4().hex[:6]}"
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    assert refused.value.args[0].code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                             KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    grant = AclBinding(ResourceType.TOPIC, "leadbus.", ResourcePatternType.PREFIXED, f"User:{principal}", "*",
                       AclOperation.ALL, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([grant])[grant].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    upsert = UserScramCredentialUpsertion(principal, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"x")
    with pytest.raises(KafkaException):
        admin.alter_user_scram_credentials([upsert])[principal].result(timeout=30)
    before = _ends(bus, "leadbus.publishers")
    err, _ = _produce(settings, "leadbus.publishers")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _ends(bus, "leadbus.publishers") == before
    assert name not in bus.admin.admin().list_topics(timeout=20).topics
    with pytest.raises(NotAdmin):  # nor can it even look at them through acl apply
        apply_policy(settings, bus.policy, bus.clients, check=True)
    # and nothing changed: the cluster still says exactly what the policy says
    report = apply_policy(bus.admin, bus.policy, bus.clients, check=True)
    assert report.in_sync, (report.acls, report.users)


def test_the_admin_writes_the_key_registry(bus: SecureBus) -> None:
    err, _ = _produce(bus.admin, "leadbus.publishers", **{"enable.idempotence": True})
    assert err is None


# -- acl apply: idempotent, reports and corrects drift; client files 0600 ---------------------------------

def test_acl_apply_is_idempotent_reports_drift_and_corrects_it(bus: SecureBus) -> None:
    assert apply_policy(bus.admin, bus.policy, bus.clients, check=True).in_sync
    admin = bus.admin.admin()
    foreign = Grant("User:dashboard-yrd", "topic", "leadbus.region.jjj", "literal", "read")
    dropped = Grant("User:publisher-GACC", "topic", "leadbus.intake.GACC", "literal", "write")
    for fut in admin.create_acls([to_binding(foreign)]).values():
        fut.result(timeout=30)
    from leadbus.provisioning.acls import _filter_of

    for fut in admin.delete_acls([_filter_of(dropped)]).values():
        fut.result(timeout=30)
    mallory = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"m")
    admin.alter_user_scram_credentials([mallory])["mallory"].result(timeout=30)

    def drift_seen() -> None:
        report = apply_policy(bus.admin, bus.policy, bus.clients, check=True)
        assert report.acls.missing == [dropped] and report.acls.extra == [foreign], report.acls
        assert report.users.extra == ["mallory"]

    eventually(drift_seen)
    err, _ = _produce(bus.as_("publisher-GACC"), "leadbus.intake.GACC")
    assert err is not None, "the dropped grant is really gone"

    apply_policy(bus.admin, bus.policy, bus.clients)
    eventually(lambda: _in_sync(bus))
    eventually(lambda: _produces(bus.as_("publisher-GACC"), "leadbus.intake.GACC"))
    for path in Path(bus.clients).glob("*.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert {p.stem for p in Path(bus.clients).glob("*.json")} == {"admin", *bus.policy.users}


def test_a_rotated_password_replaces_the_old_one(bus: SecureBus) -> None:
    old = bus.as_("publisher-NCAC")
    report = apply_policy(bus.admin, bus.policy, bus.clients, rotate=["publisher-NCAC"])
    assert report.rotated == ["publisher-NCAC"]
    new = bus.as_("publisher-NCAC")
    assert new.security["sasl.password"] != old.security["sasl.password"]
    eventually(lambda: _produces(new, "leadbus.intake.NCAC"))
    errors = _refused(bus, old)
    assert KafkaError._AUTHENTICATION in errors.codes(), errors.text()


def _in_sync(bus: SecureBus) -> None:
    report = apply_policy(bus.admin, bus.policy, bus.clients, check=True)
    assert report.in_sync, (report.acls, report.users, report.rewritten)


def _produces(settings: KafkaSettings, topic: str) -> None:
    err, _ = _produce(settings, topic)
    assert err is None, err


def test_the_cli_checks_the_policy_and_the_topics_with_the_admins_client_file(bus: SecureBus) -> None:
    import subprocess
    import sys

    admin_file = str(bus.clients / "admin.json")
    for args in (["acl", "apply", "--check", "--clients-dir", str(bus.clients)], ["topics", "apply", "--check"]):
        done = subprocess.run([sys.executable, "-m", "leadbus.cli", *args, "--client-config", admin_file],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    # a stage's file is not the admin's: describing ACLs is refused
    done = subprocess.run([sys.executable, "-m", "leadbus.cli", "acl", "apply", "--check", "--clients-dir",
                           str(bus.clients), "--client-config", str(bus.clients / "intake.json")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "AUTHORIZATION" in (done.stdout + done.stderr).upper()


def test_the_key_commands_reach_a_secured_bus_with_the_admins_client_folder(bus: SecureBus, tmp_path: Path) -> None:
    """`leadbus keys register/list` speak TLS + SCRAM as the admin, taken from the client folder."""
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = tmp_path / "nrta.pub"
    public.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "leadbus.cli", "keys", *args, "--client-config", str(bus.clients)],
                              capture_output=True, text=True, timeout=120, check=False)

    done = cli("register", "NRTA.51", "--public-key", str(public))
    assert done.returncode == 0, done.stdout + done.stderr
    listed = cli("list", "NRTA.51")
    assert listed.returncode == 0 and "NRTA.51" in listed.stdout, listed.stdout + listed.stderr


def test_the_archive_publishes_its_heads_which_the_auditor_reads_and_no_one_else_writes(bus: SecureBus) -> None:
    """leadbus.archive.heads (issue #14): the archive sink's idempotent producer writes it, the auditor reads it
    (replay --source archive:DIR --verify), a stage cannot write a head of its own there."""
    from leadbus.audit.archive_heads import read_heads
    from leadbus.sinks.archive import ManifestLine
    from leadbus.sinks.archive_heads import HeadPublisher
    from leadbus.topics import ARCHIVE_HEADS

    before = _ends(bus, ARCHIVE_HEADS)
    publisher = HeadPublisher(bus.as_("archive"), "leadbus-archive", None)
    assert publisher.enabled
    publisher.publish([ManifestLine(1, "leadbus.cases/2026-01-01/00-p0.avro", "leadbus.cases", 0, 1, 0, 0, "0" * 64,
                                    "0" * 64, "1" * 64)])
    assert publisher.published == 1
    heads = read_heads(bus.as_("auditor"))
    assert len(heads) == before + 1 and b'"chain":"' + b"1" * 64 in heads[-1].value and heads[-1].broker_stamped
    err, _ = _produce(bus.as_("intake"), ARCHIVE_HEADS)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_the_auditor_replays_and_rebuilds_with_its_own_credentials(bus: SecureBus) -> None:
    """The replay and the rebuild read `leadbus.schemas` with the auditor's credentials too (they passed the bare
    address, so on a secured bus the schema read failed and each ended as an access error, exit 2)."""
    import subprocess
    import sys

    from leadbus.audit.replay import ReplayOptions, replay

    auditor = bus.as_("auditor")
    report = replay(ReplayOptions(["leadbus.cases"], verify=False), auditor)
    assert sum(s.size for s in report.spans) == _ends(bus, "leadbus.cases") >= 1
    # the probe on leadbus.schemas is no schema: named at its record, the replay goes on (it raised, exit 2)
    report = replay(ReplayOptions(["leadbus.cases"], verify=True), auditor)
    assert ("SCHEMA_UNREADABLE", "leadbus.schemas", 0, 0) in {
        (f.check, f.topic, f.partition, f.offset) for f in report.findings if f.failure}
    done = subprocess.run([sys.executable, "-m", "leadbus.cli", "audit", "rebuild", "--client-config",
                           str(bus.clients / "auditor.json")], capture_output=True, text=True, timeout=600)
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "cannot read leadbus.schemas" not in said, said  # the probes differ: exit 1
    assert "leadbus.schemas[0]@0 is not a schema" in said  # the foreign record passed over, named


def test_a_replay_read_refused_by_the_acls_says_so_on_the_librdkafka_path_and_the_other(bus: SecureBus) -> None:
    """A principal that may describe a topic but not read it (a publisher, its own intake topic), nor use the replay's
    group, plans a replay of it and is refused once it reads (the group's coordinator or the fetch, whichever answers
    first): the read stops with the clear error, whether it takes librdkafka's messages itself (the path a replay
    takes, the refusal passed to the Python path) or confluent-kafka's Messages."""
    from leadbus.audit.sources import KafkaSource, SourceError
    from leadbus.avro import packaged_catalog

    publisher = bus.as_("publisher-SAMR")
    for direct in (True, False):
        source = KafkaSource(publisher, ["leadbus.intake.SAMR"], packaged_catalog(), timeout=30)
        source.from_librdkafka = direct
        assert sum(span.size for span in source.plan()) >= 1  # the seed record: there is something to refuse
        with pytest.raises(SourceError, match=r": access refused \(.*[Aa]uthorization failed"):
            list(source.records(interleave=True))
        assert source.direct == direct
