from collections.abc import Callable
from typing import Any

class Picker:
    fallback: Callable[[bytes], tuple[Any, ...]]
    def __init__(self, ops: tuple[int, ...], consts: tuple[tuple[str, ...], ...], values: int,
                 fallback: Callable[[bytes], tuple[Any, ...]]) -> None: ...
    def __call__(self, data: bytes, /) -> tuple[Any, ...]: ...
