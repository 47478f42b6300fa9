"""The linking stage's reader of `LeadAccepted` (`LinkingHandler.read_accepted`: today's writer read by a compiled
reader that leaves out what linking never reads, its lead built by `linked_lead`) gives, on every part linking reads,
what decoding the record whole and building its lead (`accepted_lead`) gives, types included (enumeration members, not
their texts): over simulated traffic, leads with every optional part absent and present (unicode beyond the BMP, 2^40
facts), and the record written by every released version of `LeadAccepted` (older writers are decoded whole, resolved
to today's fields). A guard for any faster reader of the stream (issue #16)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from leadbus.avro import decode, encode
from leadbus.models import CaseLead
from leadbus.processors.core.linking import _member
from leadbus.processors.linking import LINKING_UNREAD, LinkingHandler, accepted_lead
from leadbus.producers.simulator import TrafficGenerator
from tests.unit.processors.linking_golden import ACCEPTED, CATALOG, NOW, _accepted

_KEPT = [name for name in CaseLead.model_fields if name not in LINKING_UNREAD]


def _full(record: dict[str, Any], n: int) -> dict[str, Any]:
    """Every optional part of the lead present, with texts beyond the BMP where the contract lets them be."""
    full = copy.deepcopy(record)
    full["subject"]["address"] = {"province": "44", "city": "深圳市", "detail": f"南山区科技园{n}号 𠀋栋"}
    full["rights_holder"] = {"name": "𠮷野家商标持有人株式会社", "registration": f"G{n:07}"}
    full["conduct_from"] = (NOW - timedelta(days=400 + n)).date()
    full["conduct_to"] = (NOW - timedelta(days=10)).date()
    full["prior_penalties"] = [{"kind": "ADMINISTRATIVE", "decided_on": (NOW - timedelta(days=200)).date(),
                                "decided_by": "某区市场监督管理局", "violation": record["violation"],
                                "reference": f"罚字〔2025〕{n}号"}]
    full["police_measures_needed"] = True
    full["cross_border"] = True
    full["countries"] = ["VN", "US"]
    full["share_with"] = ["SAMR", "yrd"]
    full["waybills"] = [f"SF{n:010}"]
    full["payment_accounts"] = [f"alipay:{n:08}@example.com"]
    full["products"] = [{"name": "运动鞋👟", "brand": "耐克"}, {"name": "手提包", "brand": None}]
    full["senders"] = [{"name": "张三", "phone": "+8613800138000"}, {"name": None, "phone": "+86138****0000"}]
    full["return_addresses"] = [{"province": "33", "city": "义乌市", "detail": "国际商贸城"}]
    full["operator"] = {"name": "李四", "phone": None}
    full["facts"] = {**full["facts"], "sales_amount_fen": 2**40, "labels_made_by": "SELF",
                     "rights_holder_bankrupt": False, "mark_use": "GOODS"}
    return full


def _empty(record: dict[str, Any]) -> dict[str, Any]:
    """Every optional part of the lead absent or empty."""
    empty = copy.deepcopy(record)
    empty["subject"]["address"] = None
    empty["subject"]["phones"] = []
    empty["online"] = {**empty["online"], "platform": None, "shop_id": None, "urls": [], "ips": [], "icp_filings": []}
    for name in ("rights_holder", "conduct_from", "conduct_to", "operator"):
        empty[name] = None
    for name in ("payment_accounts", "waybills", "countries", "share_with", "prior_penalties", "products", "senders",
                 "return_addresses"):
        empty[name] = []
    return empty


def _values() -> Iterator[bytes]:
    generator = TrafficGenerator(seed=23, same_suspect_share=0.5)
    for offset, lead in enumerate(generator.leads(150, NOW - timedelta(hours=3), timedelta(seconds=10))):
        record = lead.to_avro()
        yield _accepted(record, offset)
        if offset % 10 == 3:
            yield _accepted(_full(record, offset), offset)
        if offset % 10 == 7:
            yield _accepted(_empty(record), offset)


def _assert_same(got: Any, expected: Any, where: str) -> None:
    """Equal, and of the same types all the way down (an enumeration's member, not its text)."""
    assert type(got) is type(expected), where
    if isinstance(expected, BaseModel):
        assert got.__dict__.keys() == expected.__dict__.keys(), where
        for name, value in expected.__dict__.items():
            _assert_same(got.__dict__[name], value, f"{where}.{name}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for n, (one, other) in enumerate(zip(got, expected, strict=True)):
            _assert_same(one, other, f"{where}[{n}]")
    else:
        assert got == expected, where


def _assert_read_as_whole(handler: LinkingHandler, value: bytes) -> None:
    event, lead = handler.read_accepted(value)
    whole_event = decode(CATALOG, value, ACCEPTED)[1]
    whole = accepted_lead(whole_event["lead"])
    assert event["identity"]["registrable_domains"] == whole_event["identity"]["registrable_domains"]
    assert type(lead) is CaseLead
    for name in _KEPT:
        _assert_same(getattr(lead, name), getattr(whole, name), name)
    domains = whole_event["identity"]["registrable_domains"]
    assert _member(lead, domains) == _member(whole, domains)


def test_the_lead_read_for_linking_equals_the_lead_decoded_whole() -> None:
    handler = LinkingHandler()
    fast = 0
    for value in _values():
        _assert_read_as_whole(handler, value)
        fast += handler.linking_reader(value, 10)[1] == len(value)  # type: ignore[misc]
    assert fast > 150  # the compiled reader read them (none fell back on the whole decode)


def test_every_released_writer_of_lead_accepted_is_read_as_decoded_whole() -> None:
    handler = LinkingHandler()
    versions = CATALOG.versions(ACCEPTED.name)
    assert len(versions) >= 6
    for n, value in enumerate(_values()):
        if n % 7:
            continue
        today = decode(CATALOG, value, ACCEPTED)[1]
        for entry in versions:
            _assert_read_as_whole(handler, encode(entry, today))
