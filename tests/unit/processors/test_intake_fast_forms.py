"""The hand-made forms behind the intake core's speed (#16) equal the generic ones they replace."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from leadbus.identifiers import clean_text
from leadbus.models import CaseLead
from leadbus.processors.core.intake import Acceptance, Examined, Seen
from leadbus.processors.core.normalize import _clean_platform, _clean_shop_id, _replaced, normalise
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator


@pytest.mark.parametrize(("revision", "digest"), [(0, "ab" * 32), (7, 'é"\\\n中'), (2**31 - 1, "")])
def test_seen_bytes_are_what_json_dumps_writes(revision: int, digest: str) -> None:
    seen = Seen(revision, digest)
    assert seen.to_bytes() == json.dumps({"revision": revision, "digest": digest}).encode()
    assert Seen.from_bytes(seen.to_bytes()) == seen


def test_a_replaced_model_is_model_copy_in_every_part() -> None:
    lead = next(iter(TrafficGenerator(seed=3).leads(1, datetime(2026, 11, 1, tzinfo=UTC), timedelta(seconds=1))))
    for model, update in ((lead, {"waybills": ["SF1"], "countries": []}),
                          (lead.subject, {"phones": ["+8613812345678"], "uscc": None}),
                          (lead.online, {"urls": ["https://a.cn"]})):
        ours, theirs = _replaced(model, update), model.model_copy(update=update)
        assert type(ours) is type(theirs)
        assert ours.__dict__ == theirs.__dict__
        assert ours.__pydantic_fields_set__ == theirs.__pydantic_fields_set__
        assert ours.__pydantic_extra__ is None and theirs.__pydantic_extra__ is None
        assert ours.__pydantic_private__ is None and theirs.__pydantic_private__ is None
        assert ours == theirs and ours.model_dump_json() == theirs.model_dump_json()
    # the contract's models forbid extras and hold no private attributes, which `_replaced` relies on
    for cls in (CaseLead, type(lead.subject), type(lead.online)):
        assert cls.model_config.get("extra") == "forbid" and not cls.__private_attributes__


def test_examined_headers_of_an_acceptance_are_those_of_its_examined() -> None:
    """`Examined.headers_of` (the handler's, without an `Examined` per lead) gives `Examined.of(...).headers()`, which
    the judge reads back, on simulated leads and odd revisions and digests."""
    now = datetime(2026, 11, 20, tzinfo=UTC)
    leads = [lead.to_avro() for lead in TrafficGenerator(seed=5).leads(200, now - timedelta(hours=1),
                                                                     timedelta(seconds=1))]
    odd = [{**leads[0], "revision": 2**31 - 1}, {**leads[1], "revision": 0}]
    for index, record in enumerate(leads + odd):
        normalised = normalise(CaseLead.model_validate(record, context={"now": now}))
        digest = ("ab" * 32, 'é"\\\n中', "")[index % 3]
        acceptance = Acceptance(normalised.lead, normalised, digest, Source("leadbus.intake.SAMR", 0, index), b"")
        examined = Examined.of(acceptance)
        assert Examined.headers_of(acceptance) == examined.headers()
        assert Examined.from_headers(Examined.headers_of(acceptance)) == examined


@pytest.mark.parametrize("text", ["淘宝", " 京东 ", "Ｔａｏｂａｏ", "TB 525 465 088", "tb\u3000525465088",
                                  "shop-１２３", "a\tb\nc", "  ", "x" * 300, "😀 店"])
def test_remembered_platform_and_shop_id_cleaning_is_clean_text(text: str) -> None:
    for _ in range(2):  # computed, then remembered
        assert _clean_platform(text) == clean_text(text)
        assert _clean_shop_id(text) == clean_text(text).replace(" ", "")


def test_a_normalised_lead_without_lists_keeps_them_and_with_them_canonicalises_them() -> None:
    """`normalise` skips the canonical forms of empty lists: they stay as they are; filled ones are still made
    canonical (the intake golden tests hold the whole outcome over simulated traffic)."""
    now = datetime(2026, 11, 20, tzinfo=UTC)
    record = next(iter(TrafficGenerator(seed=6).leads(1, now - timedelta(hours=1), timedelta(seconds=1)))).to_avro()
    bare = {**record, "payment_accounts": [], "waybills": [], "countries": [],
            "subject": {**record["subject"], "phones": []},
            "online": {**record["online"], "urls": [], "ips": [], "icp_filings": [], "platform": None, "shop_id": None}}
    lead = normalise(CaseLead.model_validate(bare, context={"now": now})).lead
    assert (lead.payment_accounts, lead.waybills, lead.countries, lead.subject.phones) == ([], [], [], [])
    assert (lead.online.urls, lead.online.ips, lead.online.icp_filings) == ([], [], [])
    assert lead.online.platform is None and lead.online.shop_id is None
    full = {**bare, "payment_accounts": ["13800138000", "13800138000"], "waybills": [" sf 123 "], "countries": ["us"],
            "subject": {**bare["subject"], "phones": ["１３９１２３４５６７８"]},
            "online": {**bare["online"], "ips": ["::ffff:1.2.3.4"], "platform": " 淘宝 ", "shop_id": "TB 525"}}
    lead = normalise(CaseLead.model_validate(full, context={"now": now})).lead
    assert lead.payment_accounts == ["+8613800138000"] and lead.waybills == ["SF123"] and lead.countries == ["US"]
    assert lead.subject.phones == ["+8613912345678"] and lead.online.ips == ["1.2.3.4"]
    assert lead.online.platform == "淘宝" and lead.online.shop_id == "TB525"
