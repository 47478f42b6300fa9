from collections.abc import Callable
from typing import Any

class Picker:
    fallback: Callable[[bytes], tuple[Any, ...]]
    def __init__(self, ops: tuple[int, ...], consts: tuple[tuple[str, ...], ...], values: int,
                 fallback: Callable[[bytes], Any]) -> None: ...
    def __call__(self, data: bytes, /) -> tuple[Any, ...]: ...

def end_of(picker: Picker, data: bytes, /) -> int: ...
