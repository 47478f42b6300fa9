"""Ed25519 verification by libsodium gives OpenSSL's verdict on every seal an honest or hostile sender makes."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from leadbus.signing import message_signed, public_bytes, sign, signature_valid

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RAW = public_bytes(KEY.public_key())


def _openssl(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@settings(max_examples=300, deadline=None)
@given(message=st.binary(max_size=2048), where=st.integers(min_value=0), part=st.sampled_from(
    ["none", "message", "signature", "key", "short-signature", "long-signature", "short-key", "empty-key"]))
def test_the_verdict_is_openssls(message: bytes, where: int, part: str) -> None:
    signature, key = KEY.sign(message), RAW
    if part == "message":
        message = _flip(message, where) if message else b"\x00"
    elif part == "signature":
        signature = _flip(signature, where)
    elif part == "key":
        key = _flip(key, where)
    elif part == "short-signature":
        signature = signature[:63]
    elif part == "long-signature":
        signature += b"\x00"
    elif part == "short-key":
        key = key[:31]
    elif part == "empty-key":
        key = b""
    verdict = message_signed(key, signature, message)
    assert verdict == _openssl(key, signature, message)
    assert verdict == (part == "none")


def test_a_seal_verifies_and_any_change_to_what_it_covers_breaks_it() -> None:
    value = b"\xc3\x01" + os.urandom(8) + b"lead body"
    seal = sign(KEY, "SAMR.33", "leadbus.intake.SAMR", 2, 7, value, prev=bytes(32))
    assert signature_valid(RAW, seal, "leadbus.intake.SAMR", value)
    assert not signature_valid(RAW, seal, "leadbus.intake.MPS", value)  # copied to another topic
    assert not signature_valid(RAW, seal, "leadbus.intake.SAMR", value + b"\x00")
    stranger = public_bytes(Ed25519PrivateKey.generate().public_key())
    assert not signature_valid(stranger, seal, "leadbus.intake.SAMR", value)


def test_small_order_keys_and_non_canonical_signatures_are_refused() -> None:
    # The identity point as a public key, with the all-zero-R signature that verifies under it for a lax verifier.
    identity = bytes([1]) + bytes(31)
    assert not message_signed(identity, bytes([1]) + bytes(63), b"anything")
    # S >= L (the group order): a malleated copy of a good signature.
    message = b"lead"
    signature = KEY.sign(message)
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(signature[32:], "little") + order
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not message_signed(RAW, malleated, message)
    assert message_signed(RAW, signature, message)
