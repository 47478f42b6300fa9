"""A stage's state store in memory, for driving handlers without a broker (the `RangeView` of the stages)."""

from __future__ import annotations

from leadbus.processors.core.records import Result


class MemoryState:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if start <= k < stop)

    def apply(self, result: Result) -> None:
        """What the stage commits with a result: its state changes (None deletes)."""
        for key, value in result.state.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
