from collections.abc import Sequence
from typing import Any, overload

def quick_link(headers: Sequence[tuple[str, bytes | None]], signer: bytes | None, key_id: bytes | None,
               chain: bytes | None, link: bytes, number: int, lane: object, key: bytes | None,
               value: bytes | None, /) -> bytes | None: ...
@overload
def quick_run(records: list[Any], start: int, stop: int, topic: str, partition: int, signer: bytes | None,
              key_id: bytes | None, chain: bytes | None, link: bytes, number: int, lane: object, start_ms: int | None,
              until_ms: int | None, revoked_ms: int | None, vouching: bool, head: bytes | None,
              /) -> tuple[int, bytes]: ...
@overload
def quick_run(records: list[Any], start: int, stop: int, topic: str, partition: int, signer: bytes | None,
              key_id: bytes | None, chain: bytes | None, link: bytes, number: int, lane: object, start_ms: int | None,
              until_ms: int | None, revoked_ms: int | None, vouching: bool, head: bytes | None, signed: bool,
              /) -> tuple[int, bytes, tuple[bytes, bytes] | None]: ...
def native_sha(use: bool, /) -> bool: ...
def trusted_run(held: Any, topic: str, /) -> list[Any]: ...
