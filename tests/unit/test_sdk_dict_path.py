"""The SDK's dict path (#16: validated straight to the Avro datum) refuses and writes exactly what CaseLead does.

The reference is the path before #16, written out here: `CaseLead.model_validate` with the same clock, the
publisher's agency check, the encoding from the model's attributes, the size limit. Every lead of a corpus
of valid, messy and hostile dicts goes through `Publisher.publish` (a recording producer stands in for
librdkafka, which only moves the bytes) and must give the same outcome: the same key, value bytes and
headers, or the same errors (field, code and message), or the same exception.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from leadbus.avro import encode_object
from leadbus.datum_validator import DatumValidator
from leadbus.limits import MAX_EVENT_BYTES
from leadbus.models import CaseLead, Subject
from leadbus.producers import InvalidLead, Publisher
from leadbus.producers.errors import FieldError
from leadbus.producers.publisher import largest_field
from leadbus.producers.simulator import TrafficGenerator

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
AGENCY = "SAMR"


class Confirmed:
    """A delivery report's message: where the broker put the record."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class RecordingProducer:
    """Records what the SDK produces and confirms it at the next poll, as librdkafka reports deliveries."""

    def __init__(self, partitions: int = 12) -> None:
        self.partitions = partitions
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        self.unconfirmed: list[tuple[Callable[..., None], Confirmed]] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]],
                on_delivery: Callable[..., None], partition: int = -1, **kwargs: Any) -> None:
        self.records.append((key, value, headers))
        self.unconfirmed.append((on_delivery, Confirmed(topic, partition, len(self.records) - 1)))

    def poll(self, timeout: float) -> int:
        reports, self.unconfirmed = self.unconfirmed, []
        for on_delivery, msg in reports:
            on_delivery(None, msg)
        return len(reports)

    def flush(self, timeout: float) -> int:
        while self.unconfirmed:
            self.poll(0)
        return 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(
            range(self.partitions)))})


def _publisher() -> tuple[Publisher, RecordingProducer]:
    pub = Publisher(AGENCY, "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW)
    producer = RecordingProducer()
    pub._producer = producer
    return pub, producer


def _errors(errors: list[FieldError]) -> list[tuple[str, str, str]]:
    return [(e.field, e.code, e.message) for e in errors]


def reference(pub: Publisher, lead: Any) -> tuple[Any, ...]:
    """What the SDK did before #16: the model decides, the model's attributes are encoded."""
    try:
        try:
            model = lead if isinstance(lead, CaseLead) else CaseLead.model_validate(lead, context={"now": NOW})
        except ValidationError as exc:
            return ("refused", _errors(InvalidLead.from_validation(exc).errors))
        if model.publisher.agency != AGENCY:
            return ("refused", [("publisher.agency", "WRONG_PUBLISHER",
                                 f"this publisher writes for {AGENCY}, not {model.publisher.agency}")])
        value = encode_object(pub._schema, model)
        headers = [("content-type", b"application/vnd.leadbus.avro")]
        key = model.lead_id.encode()
        if len(key) + len(value) + sum(len(k) + len(v) for k, v in headers) > MAX_EVENT_BYTES:
            return ("refused", [(largest_field(model.model_dump(mode="json")), "OVERSIZED", "")])
        return ("published", key, value, headers)
    except Exception as exc:  # noqa: BLE001 - the outcome compared, whatever it is
        return ("raised", type(exc).__name__)


def published(pub: Publisher, producer: RecordingProducer, lead: Any) -> tuple[Any, ...]:
    try:
        pub.publish(lead)
    except InvalidLead as exc:
        errors = _errors(exc.errors)
        if errors and errors[0][1] == "OVERSIZED":
            errors = [(errors[0][0], "OVERSIZED", "")]
        return ("refused", errors)
    except Exception as exc:  # noqa: BLE001
        return ("raised", type(exc).__name__)
    return ("published", *producer.records.pop())


def _base_leads() -> list[dict[str, Any]]:
    gen = TrafficGenerator(seed=16)
    leads = []
    for lead in gen.leads(400, NOW - timedelta(days=2), timedelta(seconds=30)):
        if lead.publisher.agency != AGENCY:
            lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": AGENCY})})
        leads.append(json.loads(lead.to_json()))
        if len(leads) == 60:
            break
    return leads


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):  # a mutation before replaced the record: start it again
            node[part] = {}
        node = node[part]
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return doc


class _Delete:
    """The field removed (its repr names the test: pytest-xdist's workers must collect the same ids)."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()

#: (dotted field, value): wrong types, extra fields, bad identifiers, whitespace, oversized, missing, hostile
MUTATIONS: list[tuple[str, Any]] = [
    # wrong types and lax coercions
    ("revision", "3"), ("revision", 3.0), ("revision", 3.5), ("revision", True), ("revision", -1), ("revision", 2**31),
    ("revision", None), ("revision", [1]),
    ("reported_at", 1793000000), ("reported_at", "2026-10-31T08:00:00"), ("reported_at", "2026-10-31T16:00:00+08:00"),
    ("reported_at", "2026-10-31T08:00:00.123456Z"), ("reported_at", "2026-10-31"), ("reported_at", "yesterday"),
    ("reported_at", "2026-11-05T08:00:00Z"), ("reported_at", " 2026-10-31T08:00:00Z"), ("reported_at", None),
    ("reported_at", datetime(2026, 10, 31, 8, 0, 0, 999, tzinfo=UTC)),
    ("subject", "肖芳洋"), ("subject", []), ("subject", None), ("subject.phones", "13812345678"),
    ("subject.phones", [13812345678]), ("online.urls", None), ("online", None), ("facts", None), ("facts", []),
    ("facts.sales_amount_fen", "12"), ("facts.sales_amount_fen", -1), ("facts.sales_amount_fen", 2**63),
    ("facts.sales_amount_fen", 1.5), ("facts.sales_amount_fen", 2.0), ("facts.sales_amount_fen", True),
    ("facts.mark_use", "goods"), ("facts.labels_made_by", "SELF"), ("cross_border", "yes"), ("cross_border", 1),
    ("cross_border", "true"), ("grading.accuracy", "2"), ("grading.accuracy", 0), ("grading.source", "a"),
    ("waybills", ("SF1", "SF2")), ("waybills", {"SF1"}), ("countries", ("HK",)), ("share_with", "GACC"),
    # extra fields
    ("extra", 1), ("subject.extra", "x"), ("facts.bonus_fen", 1), ("grading.extra", None), ("online.extra", []),
    # bad and odd identifiers
    ("lead_id", "not-a-uuid"), ("lead_id", "BDD640FB-0667-4AD1-9C80-317FA3B1799D"),
    ("lead_id", "{bdd640fb-0667-4ad1-9c80-317fa3b1799d}"), ("lead_id", "bdd640fb06674ad19c80317fa3b1799d"),
    ("lead_id", " bdd640fb-0667-4ad1-9c80-317fa3b1799d "),
    ("lead_id", uuid.UUID("bdd640fb-0667-4ad1-9c80-317fa3b1799d")),
    ("lead_id", 12345), ("lead_id", None), ("lead_id", "urn:uuid:bdd640fb-0667-4ad1-9c80-317fa3b1799d"),
    ("subject.id_number", "110105194912310021"), ("subject.id_number", "11010519491231002x"),
    ("subject.id_number", " 11010519491231002X"), ("subject.uscc", "91350211M0000XUF46"), ("subject.uscc", "123"),
    ("payment_accounts", ["6222021234567890129"]), ("payment_accounts", ["6222 0212 3456 7890 128"]),
    ("online.icp_filings", ["京ICP备12345678号"]), ("online.icp_filings", ["ICP123"]),
    ("online.ips", ["1.2.3.4", "::1"]), ("online.ips", ["300.1.1.1"]), ("online.ips", ["１.２.３.４"]),
    ("online.urls", ["ftp://x.cn"]), ("online.urls", ["ｈｔｔｐｓ：／／ｘ.ｃｎ"]), ("online.urls", ["shop.taobao.com"]),
    ("subject.phones", ["12345"]), ("subject.phones", ["０１０－６２７５１２３４"]),
    ("subject.phones", ["+86 10 62751234"]),
    ("publisher.agency", "GACC"), ("publisher.agency", "SAIC"), ("publisher.agency", "samr"),
    ("publisher.province", "72"), ("publisher.province", "00"), ("subject.address.province", "99"),
    ("evidence", [{"kind": "photo", "uri": "u", "sha256": "A" * 64}]),
    ("evidence", [{"kind": "photo", "uri": "u", "sha256": "a" * 64 + "\n"}]),
    ("countries", ["usa"]), ("countries", ["hk"]), ("countries", [" HK "]), ("share_with", ["GACC", "YRD"]),
    ("share_with", ["NOBODY"]), ("handling", "open"), ("handling", " OPEN "), ("handling", 0),
    ("channel", "TELEPATHY"),
    ("violation", "ART_999"), ("category", None),
    # whitespace pydantic strips, and characters it does not
    ("publisher.agency", " SAMR "), ("subject.name", "  王某  "), ("subject.name", "\u3000王某\u3000"),
    ("subject.name", "\x1c王某\x1f"), ("subject.name", "王某\n"), ("subject.name", "   "), ("subject.name", ""),
    ("description", "\t线索描述\r\n"), ("description", "\u200b线索\u200b"), ("description", "\u00a0x"),
    ("online.platform", " 淘宝"), ("waybills", [" SF1234567890123"]), ("subject.address.city", "杭州市\u2028"),
    # oversized and overlong
    ("description", "假" * 20000), ("description", "假" * 20001), ("subject.name", "名" * 201),
    ("subject.phones", ["1" * 41]), ("subject.phones", ["13812345678"] * 21), ("waybills", ["SF1"] * 201),
    ("evidence", [{"kind": "photo", "uri": "s3://x/" + "u" * 300_000, "sha256": "a" * 64}]),
    ("evidence", [{"kind": "photo", "uri": "s3://x/" + "证" * 1000, "sha256": "a" * 64}] * 100),
    ("evidence", [{"kind": "photo", "uri": "s3://x/1", "sha256": "a" * 64}] * 101),
    ("products", [{"name": "x" * 200, "brand": "b" * 201}]),
    # missing fields
    ("lead_id", DELETE), ("grading", DELETE), ("subject.kind", DELETE), ("subject.name", DELETE),
    ("handling", DELETE), ("online", DELETE), ("facts", DELETE), ("description", DELETE), ("evidence", DELETE),
    ("publisher.province", DELETE),
    # dates of the conduct, v3 fields
    ("conduct_from", "2026-10-01"), ("conduct_from", "2026-12-01"), ("conduct_to", "2020-01-01"),
    ("conduct_from", "2026-02-30"), ("conduct_to", 20261001),
    ("products", [{"name": "美白精华", "brand": "某牌"}]), ("products", [{"name": ""}]),
    ("senders", [{"name": "王**", "phone": "138****5678"}]), ("senders", [{"name": "", "phone": ""}]),
    ("senders", [{"phone": "12"}]), ("operator", {"name": "李*"}), ("operator", "李*"),
    ("return_addresses", [{"province": "33", "city": "义乌市"}]), ("return_addresses", [{"province": "99"}]),
    ("prior_penalties", [{"decided_on": "2025-01-01", "decided_by": "某局", "violation": "ART_213"}]),
    ("prior_penalties", [{"decided_on": "2025-01-01", "decided_by": "某局", "violation": "ART_0"}]),
    # hostile text
    ("description", "\ud800"), ("subject.name", "\x00"), ("description", "💥" * 100),
]


def _corpus() -> list[tuple[str, Any]]:
    bases = _base_leads()
    corpus: list[tuple[str, Any]] = [(f"valid {i}", lead) for i, lead in enumerate(bases)]
    for i, (field, value) in enumerate(MUTATIONS):
        base = bases[i % len(bases)]
        corpus.append((f"{field}={value!r:.40}", _set(base, field, value)))
    rng = random.Random(16)
    for n in range(300):  # two or three mutations at once on a random base
        lead = rng.choice(bases)
        for field, value in rng.sample(MUTATIONS, rng.randint(2, 3)):
            lead = _set(lead, field, value)
        corpus.append((f"mixed {n}", lead))
    # not dicts, or dicts holding model objects
    base = bases[0]
    corpus += [
        ("None", None), ("a list", [base]), ("a string", json.dumps(base)), ("empty", {}),
        ("mapping proxy", MappingProxyType(base)),
        ("Subject object", {**base, "subject": Subject.model_validate(base["subject"])}),
        ("CaseLead object", CaseLead.model_validate(base, context={"now": NOW})),
    ]
    return corpus


CORPUS = _corpus()


@pytest.mark.parametrize(("name", "lead"), CORPUS, ids=[name for name, _ in CORPUS])
def test_dict_path_gives_what_the_model_path_gave(name: str, lead: Any) -> None:
    pub, producer = _publisher()
    assert published(pub, producer, lead) == reference(pub, lead)


def test_the_corpus_has_valid_and_refused_leads_of_every_kind() -> None:
    pub, _ = _publisher()
    outcomes = [reference(pub, lead) for _, lead in CORPUS]
    kinds = {o[0] for o in outcomes}
    codes = {e[1] for o in outcomes if o[0] == "refused" for e in o[1]}
    assert kinds >= {"published", "refused"}
    assert sum(o[0] == "published" for o in outcomes) > 100
    assert {"MISSING_FIELD", "UNKNOWN_FIELD", "TOO_LONG", "OVERSIZED", "WRONG_PUBLISHER", "LEAD_ID_FORMAT",
            "RESIDENT_ID_CHECKSUM", "TIME_IN_FUTURE", "UNKNOWN_ENUM", "INVALID_FIELD", "CONDUCT_PERIOD"} <= codes


def test_the_datum_path_is_taken_for_plain_leads_and_left_to_the_model_otherwise() -> None:
    validator = DatumValidator(CaseLead)
    assert validator.usable
    context = {"now": NOW}
    lead = _base_leads()[0]
    datum = validator.validate(lead, context)
    assert datum is not None and datum["lead_id"] == lead["lead_id"]
    model = CaseLead.model_validate(lead, context=context)
    assert datum == model.model_dump(mode="python")
    # strings to strip, nested model objects, invalid input: the model decides
    assert validator.validate(_set(lead, "subject.name", " 王某 "), context) is None
    assert validator.validate({**lead, "subject": model.subject}, context) is None
    assert validator.validate(_set(lead, "revision", -1), context) is None
    assert validator.validate(_set(lead, "extra", 1), context) is None


def test_publish_many_with_a_refused_dict_publishes_nothing() -> None:
    pub, producer = _publisher()
    leads = _base_leads()[:3]
    with pytest.raises(InvalidLead) as err:
        pub.publish_many([*leads, _set(leads[0], "subject.phones", ["12345"])])
    assert producer.records == [] and err.value.errors[0].code == "PHONE_FORMAT"
    pub.publish_many(leads)
    assert [r[0] for r in producer.records] == [lead["lead_id"].encode() for lead in leads]



def test_a_schema_beyond_the_derivation_is_left_to_the_model() -> None:
    from leadbus.models import BlacklistDecision  # a field with its own pattern: not derived, never guessed

    validator = DatumValidator(BlacklistDecision)
    assert not validator.usable
    assert validator.validate({"decision_id": str(uuid.uuid4())}) is None


def test_a_model_validator_reading_more_than_fields_leaves_the_value_to_the_model() -> None:
    from pydantic import BaseModel, model_validator

    class Reads(BaseModel):
        a: int

        @model_validator(mode="after")
        def _set(self) -> Reads:
            assert self.model_fields_set  # not a field: the datum path cannot answer it
            return self

    class Plain(BaseModel):
        a: int

        @model_validator(mode="after")
        def _positive(self) -> Plain:
            if self.a < 0:
                raise ValueError("negative")
            return self

    assert DatumValidator(Reads).usable and DatumValidator(Reads).validate({"a": 1}) is None
    assert DatumValidator(Plain).validate({"a": 1}) == {"a": 1}
    assert DatumValidator(Plain).validate({"a": -1}) is None
