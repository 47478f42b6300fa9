"""Applying topic declarations to a real cluster with confluent-kafka's AdminClient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from leadbus.clients import KafkaSettings, settings_for
from leadbus.topics import ExistingTopic, TopicPlan, TopicSpec, plan


def admin_client(bootstrap: str | KafkaSettings, extra: Mapping[str, Any] | None = None) -> AdminClient:
    return settings_for(bootstrap).admin(**{"log_level": 3, **(extra or {})})


def describe_existing(admin: AdminClient, names: Iterable[str]) -> dict[str, ExistingTopic]:
    meta = admin.list_topics(timeout=15)
    wanted = [n for n in names if n in meta.topics]
    configs: dict[str, dict[str, str]] = {}
    if wanted:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in wanted]
        for res, fut in admin.describe_configs(resources).items():
            configs[res.name] = {k: str(v.value) for k, v in fut.result(timeout=15).items()}
    existing = {}
    for name, topic in meta.topics.items():
        parts = topic.partitions
        rf = len(next(iter(parts.values())).replicas) if parts else 0
        existing[name] = ExistingTopic(name, len(parts), rf, configs.get(name, {}))
    return existing


def apply_topics(
    bootstrap: str | KafkaSettings, specs: list[TopicSpec], *, fix_config: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> TopicPlan:
    """Create missing topics, add partitions, and (with fix_config) correct drifted configs.

    Returns the plan that was found before acting, so callers can report it.
    """
    admin = admin_client(bootstrap, extra)
    brokers = len(admin.list_topics(timeout=15).brokers)
    specs = [s.for_cluster(brokers) for s in specs]
    todo = plan(specs, describe_existing(admin, [s.name for s in specs]))
    if todo.create:
        new = [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor,
                     config=s.effective_config())
            for s in todo.create
        ]
        for fut in admin.create_topics(new, operation_timeout=30).values():
            try:
                fut.result(timeout=60)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
    if todo.add_partitions:
        parts = [NewPartitions(spec.name, spec.partitions) for spec, _ in todo.add_partitions]
        for fut in admin.create_partitions(parts).values():
            fut.result(timeout=60)
    if fix_config and todo.config_drift:
        by_topic: dict[str, list[ConfigEntry]] = {}
        for name, key, _, want in todo.config_drift:
            by_topic.setdefault(name, []).append(
                ConfigEntry(key, want, incremental_operation=AlterConfigOpType.SET)
            )
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n, incremental_configs=e) for n, e in by_topic.items()]
        for fut in admin.incremental_alter_configs(resources).values():
            fut.result(timeout=30)
    _wait_for_leaders(admin, [s.name for s in todo.create] + [spec.name for spec, _ in todo.add_partitions])
    return todo


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float = 60.0) -> None:
    """Until every partition of `names` has a leader that serves it (or `timeout`).

    The metadata names a partition's leader before that broker has taken the partition up (KRaft publishes the new
    image first, then creates the logs: hundreds at once for the bus's topics, seconds on a loaded machine), and
    produce requests in between are refused NOT_LEADER_OR_FOLLOWER. That refusal can lose records silently: an
    idempotent producer's first batch to a partition refused so, while its next batch (already in flight) lands,
    is counted as delivered by librdkafka ("implicitly acked by subsequent batch success"), since Kafka accepts any
    first sequence number from a producer it holds no state for. bench/replay.py's fill lost the first records of
    partitions so (99,997 of 100,000): a partition counts as ready only once its leader answers a ListOffsets.
    """
    import time

    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        for name in list(pending):
            topic = meta.topics.get(name)
            if topic is not None and topic.error is None and topic.partitions and all(
                p.leader >= 0 for p in topic.partitions.values()
            ):
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if not names:
        return
    meta = admin.list_topics(timeout=10)
    unserved = {TopicPartition(name, p) for name in names if name in meta.topics for p in meta.topics[name].partitions}
    while unserved and time.monotonic() < deadline:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        asked = admin.list_offsets({tp: latest for tp in unserved}, request_timeout=10)
        for tp, fut in asked.items():
            try:
                fut.result()
            except KafkaException:
                continue
            unserved.discard(tp)
        if unserved:
            time.sleep(0.2)
