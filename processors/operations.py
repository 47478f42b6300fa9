"""The joint-operations controller (集群战役): decisions in, each operation's topic and access kept right.

It reads `leadbus.operations` (decisions accepted by intake) and `leadbus.cases` from the beginning (assigned,
never joined), folds the decisions (`core/operations.decide`), and for each change:

- makes the cluster match (`provisioning.operations.reconcile_operations`, as the admin): the operation's
  topic, its members' principals and grants while it is open, none once it is closed;
- writes to the open operation's topic `leadbus.operation.<id>`, as the `operations` principal, the decision
  as published, then the latest version of each target case. Only an OPEN-handled case goes there whole: a
  RESTRICTED or CONFIDENTIAL one is listed by its id in the decisions and its data stays where handling says.

A decision that does not apply (a member closing, a join after the close, …) is dead-lettered to
`leadbus.leads.rejected` with its reason. Delivery into an operation's topic is at least once (a restart
replays both topics and writes again what it wrote before): readers keep the latest (case id, version).
Without admin settings (a development broker with no authorizer) only topics are made.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from leadbus.avro import DecodeError, decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.processors.core.agency_events import OPERATIONS
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.operations import Operation, Refusal, decide, operation_topic
from leadbus.processors.core.records import Source
from leadbus.provisioning.operations import TOPIC_CONFIG, reconcile_operations
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import CASES, LEADS_REJECTED, TopicSpec

log = logging.getLogger("leadbus.processors.operations")


class OperationsController:
    def __init__(self, kafka: KafkaSettings, *, admin: KafkaSettings | None = None, clients_dir: Path | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.kafka = kafka
        self.admin = admin
        self.clients_dir = clients_dir or Path("var/secure/clients")
        self.clock = clock
        self.catalog = packaged_catalog()
        self.decision_schema = self.catalog.latest("cn.leadbus.OperationDecision")
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self.operations: dict[str, Operation] = {}
        self.cases: dict[str, tuple[int, str, bytes]] = {}  # case id → (version, handling, CaseUpdated as published)
        self.forwarded: dict[tuple[str, str], int] = {}  # (operation, case) → version written there
        self.producer = kafka.producer(**{"enable.idempotence": True, "acks": "all"})

    # -- one record ----------------------------------------------------------------------------------

    def on_decision(self, value: bytes, source: Source) -> Operation | Refusal | None:
        try:
            _, record = decode(self.catalog, value, self.decision_schema)
            outcome = decide(self.operations.get(str(record["operation_id"])), record)
        except (DecodeError, ValueError, KeyError) as exc:  # intake validated it: a defect or tampering
            self._dead_letter("OPERATIONS_UNDECODABLE", str(exc), value, source)
            return None
        if isinstance(outcome, Refusal):
            self._dead_letter(outcome.reason, outcome.message, value, source, agency=record["actor"]["agency"])
            return outcome
        before = self.operations.get(outcome.operation_id)
        if before == outcome:
            return outcome  # a replayed decision
        self.operations[outcome.operation_id] = outcome
        self._reconcile()
        if outcome.status == "OPEN":
            self._write(outcome.operation_id, outcome.operation_id.encode(), value)
            for case_id in outcome.targets:
                self._forward(outcome, case_id)
        self.producer.flush(30)
        return outcome

    def on_case(self, value: bytes) -> None:
        try:
            _, case = decode(self.catalog, value, self.case_schema)
        except DecodeError as exc:
            log.error("undecodable case: %s", exc)
            return
        case_id, version = str(case["case_id"]), int(case["version"])
        known = self.cases.get(case_id)
        if known is not None and known[0] > version:
            return
        self.cases[case_id] = (version, str(case["handling"]), value)
        for operation in self.operations.values():
            if operation.status == "OPEN" and case_id in operation.targets:
                self._forward(operation, case_id)

    # -- effects -----------------------------------------------------------------------------------------

    def _forward(self, operation: Operation, case_id: str) -> None:
        known = self.cases.get(case_id)
        if known is None:
            return  # comes when the case does
        version, handling, value = known
        if handling != "OPEN":  # need-to-know: an operation's members are not the publisher's listed recipients
            log.info("case %s (%s) stays out of operation %s", case_id, handling, operation.operation_id)
            return
        if self.forwarded.get((operation.operation_id, case_id), 0) >= version:
            return
        self._write(operation.operation_id, case_id.encode(), value)
        self.forwarded[(operation.operation_id, case_id)] = version

    def _write(self, operation_id: str, key: bytes, value: bytes) -> None:
        self.producer.produce(operation_topic(operation_id), key=key, value=value)
        self.producer.poll(0)

    def _reconcile(self) -> None:
        known = list(self.operations.values())
        if self.admin is not None:
            reconcile_operations(self.admin, known, self.clients_dir)
        else:
            apply_topics(self.kafka, [TopicSpec(operation_topic(op.operation_id), 1, 3, 2, TOPIC_CONFIG)
                                      for op in known], fix_config=False)

    def _dead_letter(self, reason: str, message: str, value: bytes, source: Source, agency: str | None = None) -> None:
        log.warning("operation decision refused: %s %s", reason, message)
        letter = dead_letter_record(reason=reason, message=message, original=value, source=source, now=self.clock(),
                                    agency=agency)
        self.producer.produce(LEADS_REJECTED, key=f"{source.topic}:{source.partition}:{source.offset}".encode(),
                              value=encode(self.rejected_schema, letter))
        self.producer.poll(0)

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, stop: Callable[[], bool] = lambda: False, max_seconds: float | None = None) -> None:
        consumer = self.kafka.consumer(f"leadbus-operations-{uuid.uuid4()}")
        started = time.monotonic()
        try:
            assignment = []
            for topic in (OPERATIONS, CASES):
                meta = consumer.list_topics(topic, timeout=30).topics[topic]
                assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(assignment)
            while not stop() and (max_seconds is None or time.monotonic() - started < max_seconds):
                for msg in consumer.consume(500, 0.5):
                    if msg.error():
                        continue
                    value = msg.value() or b""
                    if msg.topic() == OPERATIONS:
                        self.on_decision(value, Source(OPERATIONS, msg.partition() or 0, msg.offset() or 0))
                    else:
                        self.on_case(value)
                self.producer.flush(30)
        finally:
            consumer.close()
            self.producer.flush(30)


def state_of(controller: OperationsController) -> dict[str, Any]:
    """The operations as the controller knows them (for the CLI and the demo)."""
    return {op_id: op.to_json() for op_id, op in sorted(controller.operations.items())}
