from collections.abc import Sequence

def quick_link(headers: Sequence[tuple[str, bytes | None]], signer: bytes | None, key_id: bytes | None,
               chain: bytes | None, link: bytes, number: int, lane: object, key: bytes | None,
               value: bytes | None, /) -> bytes | None: ...
