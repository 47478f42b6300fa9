"""The publisher SDK: validate, encode, produce to the agency's intake topic, confirm delivery.

    with Publisher("SAMR", "33", bootstrap_servers="127.0.0.1:9092") as pub:
        pending = pub.publish(lead_dict_or_CaseLead)
        delivery = pub.wait([pending])[0]      # or pub.flush() for everything

The producer is idempotent with acks=all, so a retried send never duplicates a lead and a
confirmed lead is on every in-sync replica. Signatures and sequence numbers come through the
`EventSealer` seam: it returns the headers to attach to each event. A sealer with
`per_partition = True` (`leadbus.producers.signing.SigningSealer`) numbers each partition apart:
the SDK then chooses each event's partition itself (CRC-32 of the key, like librdkafka's
`consistent` partitioner) and tells the sealer, so that the number and the signature name it.

The SDK chooses every event's partition so (the same place librdkafka would put it), and holds
the events to a partition behind the first one this producer sends there until the broker has
confirmed it (`first_delivery`: an idempotent producer can otherwise lose a new partition's first
batch without an error); `flush` and `wait` send what is held and wait for it.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import KafkaException
from pydantic import BaseModel, ValidationError

from leadbus.avro import EncodeError, SchemaCatalog, SchemaEntry, encode, encode_object, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.datum_validator import DatumValidator
from leadbus.limits import MAX_EVENT_BYTES, MAX_RECORD_BYTES
from leadbus.models import FUTURE_TOLERANCE, BlacklistDecision, CaseLead, HandoverDecision, LinkDecision
from leadbus.producers.errors import FieldError, InvalidLead, PublishError
from leadbus.producers.first_delivery import FIRST, FRESH_AFTER, NEVER, OPEN, FirstDeliveryGate
from leadbus.topics import intake_topic

CASE_LEAD = "cn.leadbus.CaseLead"

#: Built once per process: deriving the validator from CaseLead's core schema takes a few milliseconds.
_LEAD_DATUMS = DatumValidator(CaseLead)

#: The settings' own "logger" (leadbus.clients.RDKAFKA_LOG) takes librdkafka's lines to logging, not stderr.
PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "message.timeout.ms": 120_000,
    "queue.buffering.max.messages": 200_000,
    "message.max.bytes": MAX_RECORD_BYTES,
}


def largest_field(document: Any, path: str = "") -> str:
    """The dotted path of the leaf that takes most room in a lead's JSON form (where to cut an oversized lead)."""
    children: list[tuple[str, Any]] = []
    if isinstance(document, Mapping):
        children = [(f"{path}.{k}" if path else str(k), v) for k, v in document.items()]
    elif isinstance(document, list):
        children = [(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(document)]
    if not children:
        return path or "<lead>"
    name, value = max(children, key=lambda kv: len(json.dumps(kv[1], ensure_ascii=False, default=str)))
    return largest_field(value, name)


def _lone_surrogates(document: Any, path: str = "") -> Iterator[FieldError]:
    """Each string of a lead that is not Unicode text (a lone surrogate, as JSON's "\\ud800" decodes), by field."""
    if isinstance(document, str):
        try:
            document.encode("utf-8")
        except UnicodeEncodeError as exc:
            where = path or "<lead>"
            yield FieldError(where, "INVALID_FIELD", (
                f"{where} is not Unicode text: a lone surrogate (U+{ord(document[exc.start]):04X}) at character "
                f"{exc.start} cannot be written as UTF-8"))
    elif isinstance(document, Mapping):
        for key, value in document.items():
            yield from _lone_surrogates(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _lone_surrogates(value, f"{path}.{index}" if path else str(index))


def _unencodable(exc: EncodeError, document: Any) -> Exception:
    """A lead that validated but would not encode: `InvalidLead` naming each field that is not Unicode text.

    Python strings may hold lone surrogates, which pydantic accepts and UTF-8 (so Avro) cannot write; the
    SDK refuses them at its edge as a validation error. Anything else stays the `EncodeError` it is.
    """
    errors = list(_lone_surrogates(document)) if isinstance(exc.__cause__, UnicodeEncodeError) else []
    return InvalidLead(errors) if errors else exc


@dataclass(frozen=True)
class Delivery:
    lead_id: str
    topic: str
    partition: int
    offset: int


class PendingDelivery:
    """A lead handed to the producer, until the broker confirms or refuses it.

    Lighter than `concurrent.futures.Future` (no lock: callbacks run in the publishing
    thread, inside `poll`/`flush`), with the same `done` / `result` / `exception` methods.
    """

    __slots__ = ("_delivery", "_error", "_where", "lead_id", "topic")

    def __init__(self, lead_id: str, topic: str = "") -> None:
        self.lead_id = lead_id
        self.topic = topic
        self._where: tuple[int, int] | None = None  # (partition, offset) once confirmed
        self._delivery: Delivery | None = None
        self._error: PublishError | None = None

    def done(self) -> bool:
        return self._where is not None or self._error is not None

    def exception(self) -> PublishError | None:
        return self._error

    def result(self) -> Delivery:
        if self._error is not None:
            raise self._error
        if self._where is None:
            raise PublishError(f"lead {self.lead_id} is not confirmed yet")
        if self._delivery is None:  # built when asked for: the callback, run for every lead, only notes where
            self._delivery = Delivery(self.lead_id, self.topic, *self._where)
        return self._delivery

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._error = PublishError(f"lead {self.lead_id} not delivered: {err}")
        else:
            if not self.topic:
                self.topic = msg.topic()
            self._where = (msg.partition(), msg.offset())


class EventSealer(Protocol):
    """Headers for one event (`SigningSealer`: an Ed25519 signature and a sequence number in the partition's lane).

    A sealer may also have `per_partition = True` (it is then given the partition the SDK chose) and an
    `unseal(topic, partition, headers)` called when a sealed event is not sent after all.
    """

    def seal(self, topic: str, key: bytes, value: bytes) -> list[tuple[str, bytes]]: ...


class UnsealedEvents:
    """The default sealer: only says what the payload is."""

    def seal(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> list[tuple[str, bytes]]:
        return [("content-type", b"application/vnd.leadbus.avro")]


#: key, value, headers, and the partition the SDK chose (None: the producer's partitioner chooses)
Sealed = tuple[bytes, bytes, list[tuple[str, bytes]], int | None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """Publishes one agency's leads to `leadbus.intake.<agency>`, keyed by lead id."""

    #: seconds to wait for the topic's partition count (learnt once per 5 minutes)
    metadata_timeout = 30.0

    def __init__(
        self,
        agency: str,
        province: str,
        *,
        bootstrap_servers: str | KafkaSettings,
        config: Mapping[str, Any] | None = None,
        catalog: SchemaCatalog | None = None,
        sealer: EventSealer | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.agency = agency
        self.province = province
        self.topic = intake_topic(agency)
        # Where and how to connect (TLS, SASL) come from the project's one settings object.
        self._kafka = settings_for(bootstrap_servers)
        self._config = {**PRODUCER_DEFAULTS, **(config or {})}
        self._catalog = catalog or packaged_catalog()
        self._schema: SchemaEntry = self._catalog.latest(CASE_LEAD)
        self._sealer: EventSealer = sealer or UnsealedEvents()
        # the default sealer's headers are the same for every event: built once (and their size counted once)
        self._default_sealer = self._sealer if type(self._sealer) is UnsealedEvents else None
        self._fixed_headers = UnsealedEvents().seal(self.topic, b"", b"")
        self._fixed_headers_size = sum(len(k) + len(v) for k, v in self._fixed_headers)
        self._clock = clock
        self._producer: Any = None
        self._partitions: tuple[int, float] | None = None  # (count, when learnt)
        # The gate matters to an idempotent producer only, and needs the SDK to know each event's partition:
        # it does with librdkafka's default partitioner (CRC-32 of the key), which `partition_for` computes.
        guarded = self._config.get("enable.idempotence") in (True, "true") and self._config.get(
            "partitioner", "consistent_random") in ("consistent", "consistent_random")
        self._gate = FirstDeliveryGate(self._send) if guarded else None
        self._hold_limit = int(self._config.get("queue.buffering.max.messages", 100_000))
        self._unguarded_until = 0.0  # while the topic's partitions are unknown (no metadata): librdkafka places
        self._metadata_backoff = 5.0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def producer(self) -> Any:
        if self._producer is None:  # lazy: constructing a Publisher touches no network
            self._producer = self._kafka.producer(**self._config)
        return self._producer

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> None:
        if self._producer is not None:
            self.flush(timeout)
            self._producer = None
        close_sealer = getattr(self._sealer, "close", None)
        if close_sealer is not None:
            close_sealer()

    # -- publishing ---------------------------------------------------------------------

    def validate(self, lead: CaseLead | Mapping[str, Any]) -> CaseLead:
        """Return the lead as a validated `CaseLead`, or raise `InvalidLead` naming each bad field."""
        return self._validate(lead, self._clock())

    def _validate(self, lead: CaseLead | Mapping[str, Any], now: datetime) -> CaseLead:
        if isinstance(lead, CaseLead):
            if lead.reported_at > now + FUTURE_TOLERANCE:
                raise InvalidLead([FieldError("reported_at", "TIME_IN_FUTURE", "reported_at is in the future")])
            model = lead
        else:
            try:
                model = CaseLead.model_validate(lead, context={"now": now})
            except ValidationError as exc:
                raise InvalidLead.from_validation(exc) from None
        if model.publisher.agency != self.agency:
            raise InvalidLead([FieldError(
                "publisher.agency", "WRONG_PUBLISHER",
                f"this publisher writes for {self.agency}, not {model.publisher.agency}",
            )])
        return model

    def _checked(self, lead: CaseLead | Mapping[str, Any]) -> tuple[str, bytes, Callable[[], str]]:
        """The lead's id, its encoded value and where to cut it if oversized; `InvalidLead` if it is not valid.

        A dict is validated straight to its Avro datum (`leadbus.datum_validator`: the model's own rules,
        no model instances, #16); what that path does not accept as it is (invalid, whitespace to strip,
        another agency's lead, nested model objects) goes through `CaseLead`, which decides and explains.
        """
        now = self._clock()
        if not isinstance(lead, CaseLead):
            datum = _LEAD_DATUMS.validate(lead, {"now": now})
            if datum is not None and datum["publisher"]["agency"] == self.agency:
                try:
                    value = encode(self._schema, datum)
                except EncodeError as exc:
                    raise _unencodable(exc, datum) from None
                return datum["lead_id"], value, lambda: largest_field(
                    self._validate(lead, now).model_dump(mode="json"))
        model = self._validate(lead, now)
        try:
            value = self.encode(model)
        except EncodeError as exc:
            raise _unencodable(exc, model.model_dump(mode="python")) from None
        return model.lead_id, value, lambda: largest_field(model.model_dump(mode="json"))

    def encode(self, lead: CaseLead) -> bytes:
        if self._schema.object_writer is not None:
            return encode_object(self._schema, lead)
        return encode(self._schema, lead.to_avro())

    def publish(self, lead: CaseLead | Mapping[str, Any]) -> PendingDelivery:
        """Validate, encode and hand the lead to the producer; the handle resolves on broker confirmation."""
        lead_id, value, where = self._checked(lead)
        return self._produce(lead_id, *self._sealed(lead_id, value, where))

    def publish_many(self, leads: Iterable[CaseLead | Mapping[str, Any]]) -> list[PendingDelivery]:
        """All leads are validated (and sized) before any is produced: one invalid lead publishes nothing."""
        checked = [self._checked(lead) for lead in leads]
        sealed: list[tuple[str, Sealed]] = []
        try:
            for lead_id, value, where in checked:
                sealed.append((lead_id, self._sealed(lead_id, value, where)))
        except InvalidLead:
            for _, parts in reversed(sealed):  # give the numbers back, latest first: no gap for what was not sent
                self._unseal(parts)
            raise
        return [self._produce(lead_id, *parts) for lead_id, parts in sealed]

    def publish_encoded(self, key: str, value: bytes) -> PendingDelivery:
        """Publish an already encoded event under `key` (a lead id, or a case id for decisions)."""
        key_bytes = key.encode()
        parts = self._seal(key_bytes, value)
        try:
            _check_size(key_bytes, value, parts[2], lambda: "<event>")
        except InvalidLead:
            self._unseal(parts)
            raise
        return self._produce(key, *parts)

    def _seal(self, key: bytes, value: bytes) -> Sealed:
        if getattr(self._sealer, "per_partition", False):
            partition = self.partition_for(key)
            sealer: Any = self._sealer
            return key, value, sealer.seal(self.topic, key, value, partition=partition), partition
        return key, value, self._sealer.seal(self.topic, key, value), None

    def _unseal(self, parts: Sealed) -> None:
        unseal = getattr(self._sealer, "unseal", None)
        if unseal is not None:
            unseal(self.topic, parts[3], parts[2])

    def partition_for(self, key: bytes) -> int:
        """The partition of the agency's topic an event with `key` goes to (the SDK chooses it)."""
        known = self._partitions
        if known is None or time.monotonic() - known[1] > 300:
            try:
                meta = self.producer.list_topics(self.topic, timeout=self.metadata_timeout)
            except KafkaException as exc:
                meta, failure = None, str(exc)
            topic = meta.topics.get(self.topic) if meta is not None else None
            if topic is None or topic.error is not None or not topic.partitions:
                if known is not None:  # a refresh that failed: the count learnt stays, asked again in 30 s
                    self._partitions = (known[0], known[1] + 30)
                    return zlib.crc32(key) % known[0]
                reason = topic.error if topic is not None else (failure if meta is None else "no metadata")
                raise PublishError(f"{self.topic} is not available: {reason}")
            known = (len(topic.partitions), time.monotonic())
            self._partitions = known
        return zlib.crc32(key) % known[0]

    def _gated_partition(self, key: bytes) -> int | None:
        """The event's partition; None while the topic's partitions cannot be learnt (librdkafka places it)."""
        if self._unguarded_until and time.monotonic() < self._unguarded_until:
            return None
        try:
            partition = self.partition_for(key)
        except PublishError:
            # The bus does not answer (or the topic is not there yet): records queue as they always did, and
            # the look-up is tried again after a growing pause, not on every publish.
            self._unguarded_until = time.monotonic() + self._metadata_backoff
            self._metadata_backoff = min(self._metadata_backoff * 2, 300.0)
            return None
        self._unguarded_until, self._metadata_backoff = 0.0, 5.0
        return partition

    def _sealed(self, lead_id: str, value: bytes, where: Callable[[], str]) -> Sealed:
        if self._sealer is self._default_sealer:  # nothing to sign or number: the fixed headers
            key = lead_id.encode()
            if len(key) + len(value) + self._fixed_headers_size > MAX_EVENT_BYTES:
                _check_size(key, value, self._fixed_headers, where)
            return key, value, self._fixed_headers, None
        parts = self._seal(lead_id.encode(), value)
        try:
            _check_size(parts[0], parts[1], parts[2], where)
        except InvalidLead:
            self._unseal(parts)
            raise
        return parts

    def _produce(self, lead_id: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
                 partition: int | None = None) -> PendingDelivery:
        pending = PendingDelivery(lead_id, self.topic)
        producer = self.producer
        gate = self._gate
        if gate is not None:  # (`FirstDeliveryGate`'s open test, inlined: this runs for every lead)
            now = time.monotonic()
            if partition is None:
                known = self._partitions
                if known is not None and now - known[1] <= 300:
                    partition = zlib.crc32(key) % known[0]
                else:
                    partition = self._gated_partition(key)
            if partition is not None:
                if gate.stalled or partition in gate.held or now - gate.written.get(partition, NEVER) > FRESH_AFTER:
                    self._gated(partition, key, value, headers, pending._on_delivery, now)
                    producer.poll(0)
                    return pending
                gate.written[partition] = now
        while True:
            try:
                if partition is None:
                    producer.produce(self.topic, value=value, key=key, headers=headers,
                                     on_delivery=pending._on_delivery)
                else:
                    producer.produce(self.topic, value=value, key=key, headers=headers,
                                     on_delivery=pending._on_delivery, partition=partition)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: serve callbacks, then retry
        producer.poll(0)
        return pending

    def _send(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
              on_delivery: Callable[[Any, Any], None]) -> None:
        self._producer.produce(self.topic, value=value, key=key, headers=headers, on_delivery=on_delivery,
                               partition=partition)

    def _serve(self) -> None:
        self._producer.poll(0.05)

    def _gated(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
               on_delivery: Callable[[Any, Any], None], now: float) -> None:
        """A record to a partition not known open: sent, held behind the partition's first record, or that."""
        gate = self._gate
        assert gate is not None
        if gate.stalled:
            gate.resume(self._serve)
        while gate.held_count >= self._hold_limit:  # held records are queued records: the same back-pressure
            self._serve()
            gate.resume(self._serve)
        verdict = gate.admit(partition, now, key, value, headers, on_delivery)
        if verdict == OPEN:
            self._send_waiting(partition, key, value, headers, on_delivery)
        elif verdict == FIRST:
            try:
                self._send_waiting(partition, key, value, headers,
                                   gate.first_callback(partition, on_delivery, time.monotonic))
            except BaseException:
                gate.abandon(partition)
                raise

    def _send_waiting(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
                      on_delivery: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                self._send(partition, key, value, headers, on_delivery)
                return
            except BufferError:
                self._serve()  # local queue full: serve callbacks, then retry

    def publish_decision(self, decision: HandoverDecision | Mapping[str, Any]) -> PendingDelivery:
        """Publish a handover decision (head approval, police filing, …) keyed by its case id."""
        try:
            model = decision if isinstance(decision, HandoverDecision) else HandoverDecision.model_validate(
                decision, context={"now": self._clock()})
        except ValidationError as exc:
            raise InvalidLead.from_validation(exc) from None
        if model.actor.agency != self.agency:
            raise InvalidLead([FieldError("actor.agency", "WRONG_PUBLISHER",
                                          f"this publisher writes for {self.agency}, not {model.actor.agency}")])
        entry = self._catalog.latest("cn.leadbus.HandoverDecision")
        pending = self.publish_encoded(model.case_id, encode(entry, model.model_dump(mode="python")))
        pending.lead_id = model.decision_id
        return pending

    def publish_blacklist_decision(self, decision: BlacklistDecision | Mapping[str, Any]) -> PendingDelivery:
        """Publish a blacklist decision (LIST / DECLINE / DELIST a proposed entry) keyed by its entry id (#18)."""
        return self._publish_decision("cn.leadbus.BlacklistDecision", decision)

    def publish_link_decision(self, decision: LinkDecision | Mapping[str, Any]) -> PendingDelivery:
        """Publish an analyst's link decision (confirm, reject, split); intake refuses it unless it is signed."""
        return self._publish_decision("cn.leadbus.LinkDecision", decision)

    def _publish_decision(self, schema: str, decision: BaseModel | Mapping[str, Any]) -> PendingDelivery:
        record = decision.model_dump(mode="python") if isinstance(decision, BaseModel) else decision
        pending = self.publish_event(schema, record)
        pending.lead_id = str(record["decision_id"])  # confirmations name the decision
        return pending

    # -- confirmation -------------------------------------------------------------------

    def publish_event(self, schema: str, event: Mapping[str, Any]) -> PendingDelivery:
        """Publish an agency event of another kind (a courier reply, a consumer warning, an operation decision).

        Validated with the model intake uses (`processors.core.agency_events.KINDS`), keyed as intake keys it.
        """
        from leadbus.processors.core.event_kinds import KINDS

        kind = KINDS.get(schema)
        if kind is None:
            raise ValueError(f"{schema} is not an agency event kind: {sorted(KINDS)}")
        try:
            model = kind.model.model_validate(event, context={"now": self._clock()})
        except ValidationError as exc:
            raise InvalidLead.from_validation(exc) from None
        agency = getattr(model, kind.actor_field).agency
        if agency != self.agency:
            raise InvalidLead([FieldError(f"{kind.actor_field}.agency", "WRONG_PUBLISHER",
                                          f"this publisher writes for {self.agency}, not {agency}")])
        value = encode(self._catalog.latest(schema), model.model_dump(mode="python"))
        return self.publish_encoded(kind.key(model), value)

    def wait(self, futures: Iterable[PendingDelivery], timeout: float = 60.0) -> list[Delivery]:
        """Block until each lead is confirmed; raise PublishError for any that failed or timed out."""
        pending = list(futures)
        deadline = time.monotonic() + timeout
        while not all(f.done() for f in pending):
            if time.monotonic() > deadline:
                missing = sum(not f.done() for f in pending)
                raise PublishError(f"{missing} lead(s) not confirmed within {timeout}s")
            self.producer.poll(0.05)
            if self._gate is not None and self._gate.stalled:
                self._gate.resume(self._serve)
        return [f.result() for f in pending]

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every lead handed over is confirmed or refused, those held behind a first one too."""
        if self._producer is None:
            return
        deadline = time.monotonic() + timeout
        gate = self._gate
        while True:
            if gate is not None and gate.stalled:
                gate.resume(self._serve)
            # a first record's report (served inside flush) sends the records behind it, which flush then awaits
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
            held = gate.held_count if gate is not None else 0
            if not held or time.monotonic() >= deadline:
                break
        if remaining or held:
            raise PublishError(f"{remaining + held} lead(s) still undelivered after {timeout}s")


def _check_size(key: bytes, value: bytes, headers: list[tuple[str, bytes]], where: Callable[[], str]) -> None:
    size = len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)
    if size > MAX_EVENT_BYTES:
        raise InvalidLead([FieldError(
            where(), "OVERSIZED",
            f"the event would be {size} bytes; an event on the bus is at most {MAX_EVENT_BYTES} bytes "
            "(put large evidence in a store and reference it by URI and SHA-256)")])
