"""The stage signature verified by libsodium's `crypto_sign_verify_detached` called from C (`native_seal.verified`)
against PyNaCl's `crypto_sign_open` (`leadbus.signing._verified`, the reference): the same verdict on valid signatures
and on hostile ones (bits flipped in the signature, message or key; S not reduced; keys and R of small order or not
canonical; lengths other than 32 and 64), and the C path is built and in use."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit import native_seal
from leadbus.audit import stage_seals as stage_seals_module
from leadbus.signing import _verified
from leadbus.stage_seals import head_message

#: the group order L (a signature's S must be below it)
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
#: encodings of points of small order (the identity, order 2, 4 and 8 among them), and non-canonical ones (y >= p)
SMALL = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]


def reference(key: bytes, signature: bytes, message: bytes) -> bool:
    return _verified(key, signature, message)


def test_the_c_verification_is_built_and_in_use() -> None:
    assert native_seal.verified is not None
    assert stage_seals_module.verified is native_seal.verified


def test_the_c_verdicts_are_pynacls_on_valid_and_hostile_signatures() -> None:
    verified = native_seal.verified
    assert verified is not None
    rng = random.Random(1616)
    outcomes = {True: 0, False: 0}
    for n in range(1500):
        private = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        key = private.public_key().public_bytes_raw()
        message = head_message(rng.randbytes(32)) if n % 3 else rng.randbytes(rng.randrange(0, 300))
        signature = private.sign(message)
        how = rng.randrange(11)
        if how == 1:  # a bit of the signature flipped (R or S)
            at = rng.randrange(64 * 8)
            signature = bytearray(signature)  # type: ignore[assignment]
            signature[at // 8] ^= 1 << (at % 8)  # type: ignore[index]
            signature = bytes(signature)
        elif how == 2:  # a bit of the message flipped
            if message:
                at = rng.randrange(len(message))
                message = message[:at] + bytes([message[at] ^ 1]) + message[at + 1:]
        elif how == 3:  # a bit of the key flipped
            at = rng.randrange(32)
            key = key[:at] + bytes([key[at] ^ (1 << rng.randrange(8))]) + key[at + 1:]
        elif how == 4:  # S + L: the same point equation, S not reduced
            s = int.from_bytes(signature[32:], "little") + L
            if s < 2**256:
                signature = signature[:32] + s.to_bytes(32, "little")
        elif how == 5:  # a key of small order, or not canonical
            key = rng.choice(SMALL)
        elif how == 6:  # R of small order, or not canonical
            signature = rng.choice(SMALL) + signature[32:]
        elif how == 7:  # lengths other than 32 and 64
            key, signature = rng.choice([(key[:31], signature), (key + b"\x00", signature), (key, signature[:63]),
                                         (key, signature + b"\x00"), (b"", b"")])
        elif how == 8:  # a key's y not reduced (y + p), where it fits
            y = int.from_bytes(key, "little") & (2**255 - 1)
            if y + P < 2**255:
                key = ((y + P) | (int.from_bytes(key, "little") & 2**255)).to_bytes(32, "little")
        elif how == 9:  # random bytes
            signature = rng.randbytes(64)
        got = verified(key, signature, message)
        assert got == reference(key, signature, message), (n, how)
        outcomes[bool(got)] += 1
    assert outcomes[True] > 200 and outcomes[False] > 500, outcomes


def test_arguments_that_are_not_bytes_are_left_to_the_caller() -> None:
    verified = native_seal.verified
    assert verified is not None
    private = Ed25519PrivateKey.from_private_bytes(bytes(32))
    key, message = private.public_key().public_bytes_raw(), b"m"
    signature = private.sign(message)
    assert verified(key, signature, message) is True
    assert verified(bytearray(key), signature, message) is None  # type: ignore[arg-type]
    assert verified(key, signature, memoryview(message)) is None  # type: ignore[arg-type]
