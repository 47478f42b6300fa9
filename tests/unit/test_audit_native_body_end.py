"""The pass over a whole intake body by its lengths in C (`native_picker.native_body_end`, behind `picker.body_end`)
against the Python pass it wraps: the same position, or the same exception, for whole, cut, lengthened, altered and
random bodies of every writer schema the catalog holds; the C pass answers most of them itself; and the decode check
finds the same over them with the C pass or without it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from leadbus.audit import native_picker, picker
from leadbus.audit.verification import Decodes
from tests.unit.test_audit_intake_body import _bodies, _record
from tests.unit.test_audit_peek import LEADS

pytestmark = pytest.mark.skipif(not native_picker.NATIVE, reason="leadbus.audit._picker is not built")


def _outcome(read: Any, data: bytes) -> object:
    try:
        return read(data)
    except Exception as exc:  # noqa: BLE001 - the same exception either way is part of the same outcome
        return (type(exc).__name__, str(exc))


def _variants(value: bytes, rng: random.Random) -> list[bytes]:
    data = bytearray(value)
    at = rng.randrange(10, len(value))
    altered = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        altered[rng.randrange(10, len(data))] = rng.randrange(256)
    return [value, value[:at], value + b"\x00", value + bytes(rng.randrange(256) for _ in range(rng.randint(1, 9))),
            bytes(altered), bytes(data[:at]) + b"\xff" * rng.randint(1, 12) + bytes(data[at:]),
            value[:10] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))), value[:rng.randrange(0, 11)]]


@pytest.mark.parametrize("seed", range(6))
def test_the_c_pass_ends_where_the_python_pass_ends(seed: int) -> None:
    rng = random.Random(seed)
    values = [*_bodies(30), *LEADS[:60]]
    answered = asked = 0
    calls: list[bytes] = []  # the bytes the C pass handed to the Python pass
    for value in values:
        schema = _record(value).schema
        assert schema is not None
        fast = picker.body_end(schema)
        assert fast is not None
        reference = fast.args[0].fallback if hasattr(fast, "args") else None  # type: ignore[attr-defined]
        assert reference is not None, "the C pass is built"
        def counted(data: bytes, reference: Any = reference) -> int:
            calls.append(data)
            return int(reference(data))

        counting = native_picker.native_body_end(schema.parsed, counted)
        assert counting is not None
        for data in _variants(value, rng):
            before = len(calls)
            assert _outcome(counting, data) == _outcome(reference, data) == _outcome(fast, data), data[:60]
            asked += 1
            answered += len(calls) == before
    assert answered > asked // 3  # most of the bodies are passed over in C alone


@pytest.mark.parametrize("seed", range(4))
def test_the_decode_check_finds_the_same_with_the_c_pass_or_without(seed: int, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    rng = random.Random(10 + seed)
    values = [v for value in _bodies(30) for v in _variants(value, rng)]
    fast = [list(Decodes().check(_record(v, i))) for i, v in enumerate(values)]
    monkeypatch.setattr(native_picker, "NATIVE", False)
    monkeypatch.setattr(picker, "_ENDS", {})
    assert fast == [list(Decodes().check(_record(v, i))) for i, v in enumerate(values)]
    assert any(fast) and not all(fast)
