"""The hand-made forms behind the intake core's speed (#16) equal the generic ones they replace."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from leadbus.models import CaseLead
from leadbus.processors.core.intake import Acceptance, Examined, Seen
from leadbus.processors.core.normalize import _replaced, normalise
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
