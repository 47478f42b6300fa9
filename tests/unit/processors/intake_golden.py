"""A fixed corpus of intake events and what the intake core made of each, for the golden-file test.

    PYTHONPATH=. python -m tests.unit.processors.intake_golden   # re-record (only for a deliberate change)

The corpus is simulated traffic (seeded `TrafficGenerator`), the same leads made messy the way
agencies write them (full-width digits, spaces, upper-case ids, tracking queries, legacy ID
numbers, landlines, mapped IPv6…), every older writer schema, invalid and hostile bytes, handover
decisions and signed events. The recorded outputs are what the first half of intake writes
(topic, key, headers, a SHA-256 of the value) and what the second half judges by (lead id,
revision, digest): a faster core must reproduce them byte for byte.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.avro import encode, packaged_catalog
from leadbus.avro.codec import MAGIC
from leadbus.processors.core.intake import Acceptance, Rejection, Source, examine
from leadbus.processors.core.records import Record, Result
from leadbus.processors.intake import IntakeHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes, sign

GOLDEN = Path(__file__).with_name("golden") / "intake_core.jsonl"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
DECISION = CATALOG.latest("cn.leadbus.HandoverDecision")
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes([16]) * 32)
SIGNER_ID = "SAMR.33"

Event = tuple[str, bytes, list[tuple[str, bytes | None]]]  # (topic, value, headers)


def registry() -> KeyRegistry:
    raw = public_bytes(SIGNER.public_key())
    return KeyRegistry([PublisherKey(SIGNER_ID, key_id_of(raw), raw, NOW - timedelta(days=30),
                                     NOW - timedelta(days=30), require_signed=False)])


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


_MESS = (
    ("lead_id", lambda v, r: v.upper()),
    ("subject.name", lambda v, r: f"  {v}\u3000"),
    ("subject.name", lambda v, r: "（深圳）" + v),
    ("subject.name", lambda v, r: "浙江省杭州" + v),
    ("subject.phones", lambda v, r: [*v, "０１０－６２７５ １２３４", "0755 8888 6666", "(010) 6275-1234",
                                     "13812345678"]),
    ("subject.phones", lambda v, r: [_fullwidth(p) for p in v] + ["+86 138 1234 5678"]),
    ("subject.uscc", lambda v, r: v.lower() if v else "91350211M0000XUF46"),
    ("subject.id_number", lambda v, r: "110105491231002"),
    ("subject.id_number", lambda v, r: "11010519491231002x"),
    ("online.urls", lambda v, r: [*v, "HTTP://WWW.Meili-Shop.CN:443/item/3/?utm_source=x&b=2&a=1#frag",
                                  "shop123.taobao.com/item?id=7&spm=a.b", "m.jd.com", "wap.sina.com.cn/news/",
                                  "ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ／ａ", "http://a.b.co.uk:8080/x", "https://例子.中国/路径"]),
    ("online.ips", lambda v, r: [*v, "::ffff:1.2.3.4", "２０２．１．１．１", " 10.0.0.1 ",
                                 "2001:0db8:0000:0000:0000:0000:0000:0001"]),
    ("online.icp_filings", lambda v, r: [*v, "浙ICP备12345678号-1", "粤ICP证123456号"]),
    ("online.platform", lambda v, r: "  淘 宝\u3000"),
    ("online.shop_id", lambda v, r: " 12 34 ５６ "),
    ("payment_accounts", lambda v, r: [*v, "6222 0212 3456 7890 128", "Alipay@Example.COM", "138-1234-5678",
                                       "6222021234567890128"]),
    ("waybills", lambda v, r: [*v, "sf 1234 5678 901", " ea123456785cn"]),
    ("countries", lambda v, r: [*v, "hk", "ｕｓ", " jp "]),
    ("description", lambda v, r: v + "\u3000\n  多余的空白  "),
)
_INVALID = (
    ("subject.phones", ["12345"]),
    ("subject.phones", ["+86 10 62751234"]),
    ("online.urls", ["not a url"]),
    ("online.ips", ["999.1.1.1"]),
    ("subject.id_number", "110105194912310021"),
    ("subject.uscc", "XYZ"),
    ("publisher.agency", "NOPE"),
    ("reported_at", NOW + timedelta(days=2)),
    ("countries", ["CHN"]),
    ("share_with", ["NOBODY"]),
    ("lead_id", "not-a-uuid"),
    ("payment_accounts", ["6222021234567890123"]),
    ("online.icp_filings", ["ICP12345"]),
    ("evidence", [{"kind": "photo", "uri": "x", "sha256": "ABC"}]),
    ("subject.name", ""),
)


def _get(doc: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        doc = doc[part]
    doc[parts[-1]] = value


def _topic(record: dict[str, Any]) -> str:
    return f"leadbus.intake.{record['publisher']['agency']}"


def corpus() -> Iterator[Event]:
    """Every event of the corpus, in a fixed order."""
    rng = random.Random(16)
    generator = TrafficGenerator(seed=16, same_suspect_share=0.3)
    start = NOW - timedelta(hours=3)
    records = [lead.to_avro() for lead in generator.leads(400, start, timedelta(seconds=7))]
    for record in records:  # simulated traffic as published
        yield _topic(record), encode(LEAD, record), []
    for index, record in enumerate(records[:240]):  # the same leads, messy (each with two or three kinds of mess)
        messy = copy.deepcopy(record)
        for field, mess in rng.sample(_MESS, 3 if index % 2 else 2):
            _set(messy, field, mess(_get(messy, field), rng))
        yield _topic(messy), encode(LEAD, messy), []
    for record in records[240:260]:  # redelivered copies of earlier leads, and higher revisions
        yield _topic(record), encode(LEAD, record), []
        revised = {**copy.deepcopy(record), "revision": 1, "description": record["description"] + "（补充）"}
        yield _topic(revised), encode(LEAD, revised), []
    old = [e for e in CATALOG.versions(LEAD.name) if e is not LEAD]
    for entry in old:  # older writers: the reader resolves them
        for record in records[260:280]:
            yield _topic(record), encode(entry, record), []
    for index, (field, bad) in enumerate(_INVALID):  # invalid content
        record = copy.deepcopy(records[280 + index])
        _set(record, field, bad)
        yield _topic(record), encode(LEAD, record), []
    sample = encode(LEAD, records[300])
    yield _topic(records[300]), sample, []
    yield "leadbus.intake.GACC" if records[301]["publisher"]["agency"] != "GACC" else "leadbus.intake.SAMR", \
        encode(LEAD, records[301]), []  # wrong topic
    for hostile in (b"", b"garbage", MAGIC + b"\x00" * 8 + b"body", sample[:40], sample + b"\x00\x01",
                    sample[:10] + bytes(rng.getrandbits(8) for _ in range(300)), b"\xff" * 2_000_000):
        yield "leadbus.intake.SAMR", hostile, []
    for index in range(6):  # handover decisions
        decision = {"decision_id": f"00000000-0000-4000-8000-{index:012d}", "case_id": f"CASE-{index:016X}",
                    "kind": ("HEAD_APPROVE", "TRANSFER", "POLICE_FILE")[index % 3],
                    "actor": {"agency": ("SAMR", "MPS")[index % 2], "province": "33", "unit": None,
                              "role": ("HEAD", "POLICE")[index % 2]},
                    "decided_at": NOW - timedelta(minutes=index), "reasons": "依法", "documents": []}
        yield f"leadbus.intake.{decision['actor']['agency']}", encode(DECISION, decision), []
    for sequence, record in enumerate(records[320:340], start=1):  # signed by SAMR.33 (and one forged)
        record = {**copy.deepcopy(record), "publisher": {"agency": "SAMR", "province": "33", "unit": None}}
        value = encode(LEAD, record)
        seal = sign(SIGNER, SIGNER_ID, "leadbus.intake.SAMR", 1, sequence, value)
        headers: list[tuple[str, bytes | None]] = list(seal.headers())
        if sequence == 20:
            value = value[:-1] + bytes([value[-1] ^ 1])
        yield "leadbus.intake.SAMR", value, headers


def outputs(handler: IntakeHandler | None = None) -> Iterator[dict[str, Any]]:
    """What intake makes of each corpus event (first half on the wire, and the judged identity)."""
    handler = handler or IntakeHandler(keys=registry())
    keys = handler.registry
    for offset, (topic, value, headers) in enumerate(corpus()):
        record = Record(topic, 1 if headers else offset % 3, offset, None, value, tuple(headers))
        outcome = examine(value, record.source, CATALOG, NOW, size=record.size, headers=headers, keys=keys)
        line: dict[str, Any] = {"offset": offset}
        if isinstance(outcome, Acceptance):
            line["accepted"] = [outcome.lead.lead_id, outcome.lead.revision, outcome.digest,
                                [w.code for w in outcome.warnings]]
        elif isinstance(outcome, Rejection):
            line["rejected"] = [outcome.reason, outcome.field, outcome.lead_id]
        else:
            line["decision"] = [outcome.case_id, outcome.kind]
        result: Result = handler.examine(record, NOW)
        line["out"] = [[o.topic, (o.key or b"").hex(), [[k, v.hex()] for k, v in o.headers],
                        hashlib.sha256(o.value).hexdigest()] for o in result.outputs]
        yield line


def lines() -> list[str]:
    return [json.dumps(line, ensure_ascii=False, sort_keys=True) for line in outputs()]


def record() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text("\n".join(lines()) + "\n", encoding="utf-8")


_ = Source  # re-exported for tests that build their own events

if __name__ == "__main__":
    record()
    print(f"recorded {GOLDEN}")
