"""What a stage hands its producer for a transaction's outputs (`ExactlyOnceStage._open`), and the sizes its limits
are judged on. A stand-in producer records the calls; the bytes on the wire are tested against a broker in
tests/integration (test_intake.py, test_stage_pipelined.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadbus.clients import KafkaSettings
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig, _Prepared

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


class _Nothing:
    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        return Result([])


class _Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.began = 0

    def begin_transaction(self) -> None:
        self.began += 1

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


def test_outputs_go_with_their_headers_and_partition_headerless_ones_without_a_header_list(tmp_path: Path) -> None:
    config = StageConfig(name="t", kafka=KafkaSettings("127.0.0.1:1"), topics=["in"], changelog_topic="t-changelog",
                         state_dir=tmp_path, group_id="g", lag_interval=0)
    stage = ExactlyOnceStage(config, _Nothing())
    outputs = [Output("by-lead", b"k1", b"v1", (("lead_id", b"k1"), ("revision", b"1"))),
               Output("accepted", b"k2", b"v2"),
               Output("chosen", b"k3", b"v3", partition=4),
               Output("chosen", b"k4", b"v4", [("h", b"x")], partition=2),
               Output("keyless", None, b"v5", [])]
    stage.state.put(3, b"seen", b"{}")
    producer = _Recording()
    stage._open(producer, _Prepared([], outputs, [], 0, NOW, 0.0, 0.0))  # type: ignore[arg-type]
    assert producer.began == 1
    assert producer.calls == [
        (("by-lead", b"v1", b"k1"), {"headers": [("lead_id", b"k1"), ("revision", b"1")]}),
        (("accepted", b"v2", b"k2"), {}),
        (("chosen", b"v3", b"k3", 4), {}),
        (("chosen", b"v4", b"k4", 2), {"headers": [("h", b"x")]}),
        (("keyless", b"v5", None), {}),
        (("t-changelog", b"{}", b"seen", 3), {}),  # the state's write, after the outputs, to its partition
    ]
    stage.state.close()


_HEADERS = [(), [("a", b"xyz")], [("", b"")], [("lead_id", b"L-1"), ("digest", b"0" * 64), ("agency", b"SAMR")]]


@pytest.mark.parametrize(("key", "headers"), list(itertools.product([None, b"", b"key"], _HEADERS)))
def test_an_outputs_size_is_its_key_value_and_headers_bytes(key: bytes | None,
                                                            headers: list[tuple[str, bytes]]) -> None:
    out = Output("t", key, b"value!", headers)
    assert out.size == len(key or b"") + 6 + sum(len(k) + len(v) for k, v in headers)


@pytest.mark.parametrize("headers", [*_HEADERS, [("seal", None), ("", None), ("x", b"")]])
def test_a_records_size_counts_absent_header_values_as_nothing(headers: list[tuple[str, bytes | None]]) -> None:
    for key, value in itertools.product([None, b"k"], [None, b"", b"value"]):
        record = Record("t", 0, 0, key, value, tuple(headers))
        assert record.size == len(key or b"") + len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers)
