from typing import Any

class Maker:
    def __init__(self, cls: type, slots: tuple[str, ...], fields: tuple[str, ...], prototype: object,
                 message_type: type, /) -> None: ...
    def build(self, batch: list[Any], start: int, open_: dict[tuple[str, int], int], fresh: set[tuple[str, int]],
              done: list[tuple[str, int]], catalog: Any, /) -> tuple[list[Any], int]: ...
