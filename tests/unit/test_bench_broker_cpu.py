"""bench/broker_cpu.py: a JVM's CPU by thread, and the JIT compilers' share of it."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from broker_cpu import broker_threads, jit_seconds  # bench/ is a folder of scripts, not a package


def test_jit_share_counts_the_compiler_threads_only() -> None:
    spent = Counter({"C2 CompilerThre": 2.5, "C1 CompilerThre": 0.5, "data-plane-kafk": 4.0, "VM Thread": 1.0})
    assert jit_seconds(spent) == 3.0
    assert jit_seconds(Counter({"data-plane-kafk": 4.0})) == 0


def test_threads_of_a_live_process_fold_their_numbers() -> None:
    def spin() -> None:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass

    workers = [threading.Thread(target=spin, name=f"spinner-{i}") for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    spent = broker_threads(os.getpid())
    assert all("0" not in name and "1" not in name for name in spent)  # digits folded into '#'
    assert sum(spent.values()) > 0


def test_full_java_names_tell_request_handlers_from_network_threads() -> None:
    """Linux keeps 15 characters of a thread's name (`data-plane-kafk` for both); the full names from the JVM's
    thread dump, where given, name the thread and the bench sorts it by kind."""
    from scale import thread_kind  # bench/scale.py

    me = os.getpid()
    spent = broker_threads(me, {me: "data-plane-kafka-request-handler-3"})
    assert "data-plane-kafka-request-handler-#" in spent
    assert thread_kind("data-plane-kafka-request-handler-3") == "handlers"
    assert thread_kind("data-plane-kafka-network-thread-1-ListenerName(PLAINTEXT)-PLAINTEXT-2") == "network"
    assert thread_kind("C2 CompilerThread0") == "JIT"
    assert thread_kind("VM Thread") == "GC"  # the serial collector runs there
    assert thread_kind("TxnMarkerSenderThread-1") == "markers"


def test_no_thread_names_where_the_pid_is_no_jvm() -> None:
    from broker_cpu import jvm_thread_names

    assert jvm_thread_names(os.getpid()) == {}
