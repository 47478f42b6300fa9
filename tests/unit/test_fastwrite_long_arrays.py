"""Long arrays of strings, and of records of strings, are written through remembered encodings (issue #16: a big
case's `CaseUpdated` repeats its members, identifiers and weak signals for every lead): byte for byte what fastavro
writes, the first time and when remembered, and a value that does not fit is refused as before."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pytest

from leadbus.avro import encode, packaged_catalog
from leadbus.avro.codec import EncodeError
from leadbus.avro.fastwrite import LONG_ARRAY

CATALOG = packaged_catalog()
CASE = CATALOG.latest("cn.leadbus.CaseUpdated")
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _case(n: int) -> dict:
    long_text = "商标" * 40  # 240 bytes: a two-byte length
    strings = [f"member-{i:05d}" for i in range(n)] + [long_text, "", "假冒注册商标"]
    return {
        "case_id": "CASE-0123456789ABCDEF", "version": n, "members": strings,
        "reporters": [{"agency": f"AMR-{i}", "province": "33" if i % 2 else "浙江"} for i in range(n)],
        "identifiers": [{"kind": "phone", "value": f"+86138{i:08d}"} for i in range(n)] + [
            {"kind": "domain", "value": long_text}],
        "suspect_name": "某某", "suspect_province": None, "categories": ["TRADEMARK"], "violations": ["X"],
        "facts": {}, "first_reported_at": NOW, "last_reported_at": NOW, "handling": "OPEN", "share_with": [],
        "cross_border": False, "countries": [], "merged_from": [], "merged_into": None, "updated_at": NOW,
        "conduct_from": None, "conduct_to": None, "prior_penalties": [], "police_measures_needed": False,
        "link_history": [], "waybills": strings[: n // 2], "weak_signals": strings[::-1], "provinces": ["33"],
    }


def _fastavro(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CASE.parsed, record)
    return out.getvalue()


@pytest.mark.parametrize("n", [0, 1, LONG_ARRAY - 1, LONG_ARRAY, 3000])
def test_long_arrays_are_written_as_fastavro_writes_them(n: int) -> None:
    record = _case(n)
    for _ in range(2):  # the second time from the remembered encodings
        assert encode(CASE, record)[10:] == _fastavro(record)


@pytest.mark.parametrize("bad", [
    {"members": [f"m{i}" for i in range(LONG_ARRAY)] + [7]},
    {"weak_signals": [f"m{i}" for i in range(LONG_ARRAY)] + [b"bytes"]},
    {"identifiers": [{"kind": "phone", "value": str(i)} for i in range(LONG_ARRAY)] + [{"kind": "phone"}]},
    {"identifiers": [{"kind": "phone", "value": str(i)} for i in range(LONG_ARRAY)] + [{"kind": 1, "value": "x"}]},
    {"reporters": [["AMR", "33"]] * LONG_ARRAY},
])
def test_a_long_array_that_does_not_fit_is_refused(bad: dict) -> None:
    with pytest.raises(EncodeError):
        encode(CASE, {**_case(5), **bad})
