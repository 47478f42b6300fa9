"""The handover stage's overdue-duty gauge, computed over its state partitions."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from leadbus.processors.handover import HandoverHandler


class _View:
    def __init__(self, items: dict[bytes, bytes]) -> None:
        self.items = items

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.items.items() if start <= k < stop)


def _state(case: str, breached: bool | None, duty: bool = True, action: str = "head decides on the transfer") -> bytes:
    deadline = None if breached is None else {"due_at": "2026-01-01T00:00:00+00:00", "action": action, "who": "head",
                                               "rule": "R310 Art.5(2)", "duty": duty,
                                               "started_at": "2025-12-29T00:00:00+00:00", "breached": breached}
    return json.dumps({"case_id": case, "deadline": deadline}).encode()


def test_overdue_duties_are_counted_by_action_across_the_owned_partitions() -> None:
    one = _View({b"h:a": _state("a", True), b"h:b": _state("b", False), b"d:000000000000001:b": b"1",
                 b"h:c": _state("c", None)})
    two = _View({b"h:d": _state("d", True, action="police decide to file or not"),
                 b"h:e": _state("e", True, duty=False, action="agency may request reconsideration")})
    handler = HandoverHandler()
    overdue, waiting = handler.overdue([one, two])
    assert overdue == {"head decides on the transfer": 1, "police decide to file or not": 1}
    assert waiting == 4

    handler.report([one, two])
    assert REGISTRY.get_sample_value("leadbus_handover_overdue_duties",
                                     {"action": "police decide to file or not"}) == 1
    handler.report([one])  # the partition holding d moved to another worker: its duty is no longer counted here
    assert REGISTRY.get_sample_value("leadbus_handover_overdue_duties",
                                     {"action": "police decide to file or not"}) == 0
    assert REGISTRY.get_sample_value("leadbus_handover_open") == 2
