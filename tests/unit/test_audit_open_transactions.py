"""`held_open`: a partition's stable offset held behind its high watermark longer than a stage's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from leadbus.audit import open_transactions
from leadbus.clients import settings_for

T = "leadbus.cases"


class Bus:
    """High watermarks, and the stable offsets one read after another gives."""

    def __init__(self, high: dict[tuple[str, int], int], stable: list[dict[tuple[str, int], int]]) -> None:
        self.high, self.stable, self.asked = high, stable, 0

    def latest(self, _settings: Any, parts: Iterable[tuple[str, int]], isolation: str,
               _timeout: float) -> dict[tuple[str, int], int]:
        if isolation == "read_uncommitted":
            return {tp: self.high[tp] for tp in parts}
        now = self.stable[min(self.asked, len(self.stable) - 1)]
        self.asked += 1
        return {tp: now[tp] for tp in parts}


def run(monkeypatch: pytest.MonkeyPatch, bus: Bus, stable: dict[tuple[str, int], int]) -> list[Any]:
    monkeypatch.setattr(open_transactions, "_latest", bus.latest)
    clock = [100.0]
    return open_transactions.held_open(settings_for("localhost:1"), stable, list(stable), 100.0, wait_s=5.0,
                                       clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))


def test_a_stable_offset_held_past_the_wait_is_named_there(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = Bus({(T, 0): 12, (T, 1): 7}, [{(T, 0): 9, (T, 1): 7}])
    found = run(monkeypatch, bus, {(T, 0): 9, (T, 1): 7})
    assert [(f.check, f.partition, f.offset, f.failure) for f in found] == [("TRANSACTION_HELD_OPEN", 0, 9, True)]
    assert "records up to offset 11" in found[0].message
    assert bus.asked == 10  # watched every half second for the wait


def test_a_transaction_that_ends_within_the_wait_is_no_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = Bus({(T, 0): 12}, [{(T, 0): 9}, {(T, 0): 9}, {(T, 0): 12}])
    assert run(monkeypatch, bus, {(T, 0): 9}) == []
    assert bus.asked == 3


def test_a_bus_without_open_transactions_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = Bus({(T, 0): 9}, [])
    assert run(monkeypatch, bus, {(T, 0): 9}) == [] and bus.asked == 0
    assert open_transactions.held_open(settings_for("localhost:1"), {}, [], 0.0) == []
