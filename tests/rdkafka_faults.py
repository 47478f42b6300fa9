"""A real librdkafka client put into a fatal state, as a broker's refusal would put it (`rd_kafka_test_fatal_error`).

No client can make itself fatal, and the broker refuses an abort (INVALID_TXN_STATE) only now and then, so librdkafka
has a function for tests that raises a fatal error in a client: the producer then behaves as after a real one (every
transactional call fails with a fatal error). confluent-kafka does not expose it: it is called through ctypes on the
client's `rd_kafka_t`, read from the Python object (confluent-kafka's `Handle`: the pointer right after the object
header), checked by asking librdkafka for that client's name and type before it is used.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

import confluent_kafka
from confluent_kafka import KafkaError, Producer

_LIBS = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs")
_RD_KAFKA_PRODUCER = 0


def _librdkafka() -> ctypes.CDLL:
    found = glob.glob(os.path.join(_LIBS, "librdkafka*.so*"))
    assert found, f"confluent-kafka's bundled librdkafka not found in {_LIBS}"
    lib = ctypes.CDLL(found[0])
    lib.rd_kafka_name.restype = ctypes.c_char_p
    lib.rd_kafka_name.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_type.restype = ctypes.c_int
    lib.rd_kafka_type.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_test_fatal_error.restype = ctypes.c_int
    lib.rd_kafka_test_fatal_error.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    return lib


def fail_fatally(producer: Producer, code: int = KafkaError.INVALID_TXN_STATE, reason: str = "test") -> None:
    """Put `producer` into librdkafka's fatal error state with `code` (default: a broker refusing a transition)."""
    lib = _librdkafka()
    rk = ctypes.c_void_p.from_address(id(producer) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    assert sys.implementation.name == "cpython" and rk
    name = lib.rd_kafka_name(rk) or b""
    assert name.startswith(b"rdkafka#producer-") and lib.rd_kafka_type(rk) == _RD_KAFKA_PRODUCER, name
    assert lib.rd_kafka_test_fatal_error(rk, code, reason.encode()) == 0, "a fatal error was already raised"
