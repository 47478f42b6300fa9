"""The compacted `leadbus.schemas` topic: a reader built before a schema change still reads new writers."""

from __future__ import annotations

import copy

import pytest

from leadbus.avro import SchemaCatalog, decode, encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.schema_topic import load_schemas, publish_schemas

pytestmark = pytest.mark.integration


def test_schemas_round_trip_through_the_topic(bootstrap: str, make_lead) -> None:
    packaged = list(packaged_catalog())
    publish_schemas(bootstrap, packaged)
    fresh = SchemaCatalog()
    load_schemas(bootstrap, fresh)
    assert {e.fingerprint for e in packaged} <= {e.fingerprint for e in fresh}

    # A newer writer (v2 adds an optional field) registers its schema; an old reader resolves it.
    v1 = packaged_catalog().latest("cn.leadbus.CaseLead")
    v2_source = copy.deepcopy(dict(v1.expanded))
    v2_source["fields"].append({"name": "hotline_ticket", "type": ["null", "string"], "default": None})
    v2 = SchemaCatalog().add(v2_source, 2)
    publish_schemas(bootstrap, [v2])
    data = encode(v2, {**CaseLead.model_validate(make_lead()).to_avro(), "hotline_ticket": "12315-1"})

    reader = packaged_catalog()
    with pytest.raises(Exception, match="unknown writer schema"):
        decode(reader, data, v1)
    load_schemas(bootstrap, reader)
    _, record = decode(reader, data, v1)
    assert "hotline_ticket" not in record
    assert CaseLead.from_avro(record).subject.name == make_lead()["subject"]["name"]
