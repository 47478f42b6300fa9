"""Webhook delivery against a real local HTTP server: flaky then slow then fine, and always down.

No Kafka here: the server is stdlib `ThreadingHTTPServer` on 127.0.0.1 (port 0, so a free one),
the client a real `httpx.Client(timeout=0.5)`, the clock the real one.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from leadbus.processors.core.takedown import takedown_notice
from leadbus.sinks.webhooks import (
    ALREADY_PROCESSED,
    BUDGET_EXHAUSTED,
    DELIVERED,
    DeliveryResult,
    RetryPolicy,
    dead_letter,
    deliver,
    verify_request,
)

pytestmark = pytest.mark.timeout(60)

SECRET = b"webhook-test-secret"
TIMEOUT = 0.5  # the client's
STALL = 1.0  # the slow attempt: past the client's timeout
# Retries must never come early; they may come a little late on a loaded 2-core machine (20 parallel
# senders, the broker and the test runner share it), hence an asymmetric window.
EARLY, LATE = 0.02, 0.3
POLICY = RetryPolicy(initial=0.05, factor=2.0, max_delay=0.2, budget=5, deadline=10.0)
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
NOTICES = 20


class Receiver:
    """A platform endpoint: checks signatures, counts attempts, applies each idempotency key once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.bad_signatures = 0
        self.effects: list[tuple[str, str]] = []  # (idempotency key, notice id), in order applied
        self.applied: set[str] = set()

    def arrive(self, key: str, valid: bool) -> int:
        with self.lock:
            self.arrivals[key].append(time.monotonic())
            self.bad_signatures += not valid
            return len(self.arrivals[key])

    def apply(self, key: str, notice: dict[str, Any]) -> bool:
        with self.lock:
            if key in self.applied:
                return False
            self.applied.add(key)
            self.effects.append((key, notice["notice_id"]))
            return True

    def answer(self, key: str, notice: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class FlakyReceiver(Receiver):
    """503, 503, then one attempt that stalls past the client's timeout, then fine.

    For even cases the stalled attempt applies the notice before stalling (the answer is lost,
    so the retry gets 409 "already processed"); for odd ones it stalls first (the retry applies it).
    """

    def answer(self, key: str, notice: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        if attempt <= 2:
            return 503, {"error": "maintenance"}
        if attempt == 3:
            if int(notice["case_id"].rsplit("-", 1)[1]) % 2 == 0:
                self.apply(key, notice)
            time.sleep(STALL)
            return 200, {"decision": "ACKNOWLEDGED"}
        if self.apply(key, notice):
            return 200, {"decision": "ACKNOWLEDGED", "reference": f"TB-{notice['case_id']}"}
        return 409, {"status": "already processed", "idempotency_key": key}


class DownReceiver(Receiver):
    def answer(self, key: str, notice: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        return 500, {"error": "internal error"}


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # 20 clients connect at once
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        receiver = self.server.receiver
        valid = verify_request(SECRET, self.headers, body, now=time.time())
        key = self.headers.get("Idempotency-Key", "")
        attempt = receiver.arrive(key, valid)
        if valid:
            status, answer = receiver.answer(key, json.loads(body), attempt)
        else:
            status, answer = 401, {"error": "bad signature"}
        data = json.dumps(answer, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on the stalled attempt

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Receiver], str]]:
    """`serve(receiver)` → the URL of a running local server; stopped at teardown."""
    running: list[tuple[_Server, threading.Thread]] = []

    def start(receiver: Receiver) -> str:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = receiver
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/leadbus/takedown"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _notices() -> list[dict[str, Any]]:
    cases = [
        {"case_id": f"case-33-{i:04d}", "platform": "淘宝", "shop_id": f"{100000 + i}",
         "urls": [f"https://item.taobao.com/item.htm?id={i}"], "rights_holder": "某国际化妆品公司",
         "categories": ["COSMETICS"]}
        for i in range(NOTICES)
    ]
    return [takedown_notice(case, NOW, timedelta(hours=24)) for case in cases]


def _deliver_all(url: str, notices: list[dict[str, Any]]) -> list[DeliveryResult]:
    with httpx.Client(timeout=TIMEOUT) as client, ThreadPoolExecutor(max_workers=len(notices)) as pool:
        return list(pool.map(lambda n: deliver(client, url, n, n["notice_id"], SECRET, POLICY), notices))


def _assert_spacing(times: list[float], expected: list[float]) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected, strict=True):
        assert want - EARLY <= gap <= want + LATE, (gaps, expected)


def _assert_arrived(arrivals: list[float], attempts: list[float]) -> None:
    """Each request reached the receiver after the attempt that sent it, and within LATE of it: the retries' spacing
    is the sender's (`_assert_spacing` on its attempt times); measured between arrivals it also held the receiver's
    own scheduling, and one arrival handled late made the next gap look early (session 22's CI: 0.648 s for 0.7)."""
    assert len(arrivals) == len(attempts)
    for arrived, sent in zip(arrivals, attempts, strict=True):
        assert sent <= arrived <= sent + LATE, (arrivals, attempts)


def test_flaky_then_slow_receiver_applies_each_notice_once(serve: Callable[[Receiver], str]) -> None:
    receiver = FlakyReceiver()
    notices = _notices()
    started = time.monotonic()
    results = _deliver_all(serve(receiver), notices)
    assert time.monotonic() - started < 5

    assert all(r.ok and r.last_error is None for r in results), [r.last_error for r in results]
    assert [r.attempts for r in results] == [4] * NOTICES
    assert Counter(r.outcome for r in results) == {ALREADY_PROCESSED: NOTICES // 2, DELIVERED: NOTICES // 2}
    assert Counter(notice_id for _, notice_id in receiver.effects) == {n["notice_id"]: 1 for n in notices}
    assert {key for key, _ in receiver.effects} == {n["notice_id"] for n in notices}
    assert receiver.bad_signatures == 0
    assert sum(len(times) for times in receiver.arrivals.values()) == 4 * NOTICES

    delays = POLICY.delays()  # 0.05, 0.1, 0.2, …; the third attempt also waits out the timeout
    expected = [delays[0], delays[1], TIMEOUT + delays[2]]
    for notice, result in zip(notices, results, strict=True):
        _assert_spacing(result.attempt_times, expected)
        _assert_arrived(receiver.arrivals[notice["notice_id"]], result.attempt_times)


def test_receiver_that_never_succeeds_ends_in_dead_letters(serve: Callable[[Receiver], str]) -> None:
    receiver = DownReceiver()
    notices = _notices()
    results = _deliver_all(serve(receiver), notices)

    assert not any(r.ok for r in results)
    assert {(r.attempts, r.status, r.outcome) for r in results} == {(POLICY.budget, 500, BUDGET_EXHAUSTED)}
    assert all(r.last_error and r.last_error.startswith("HTTP 500") for r in results)
    assert receiver.effects == [] and receiver.bad_signatures == 0
    for notice, result in zip(notices, results, strict=True):
        _assert_spacing(result.attempt_times, POLICY.delays())
        _assert_arrived(receiver.arrivals[notice["notice_id"]], result.attempt_times)
        letter = dead_letter("leadbus.takedown.notices", notice["notice_id"], notice, result, NOW)
        assert letter["last_error"] == result.last_error and letter["attempts"] == POLICY.budget
        assert json.loads(letter["payload_json"]) == notice


def test_nobody_listening_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = RetryPolicy(initial=0.05, factor=2.0, max_delay=0.2, budget=2, deadline=10.0)
    with httpx.Client(timeout=TIMEOUT) as client:
        result = deliver(client, f"http://127.0.0.1:{port}/", {"x": 1}, "k-1", SECRET, policy)
    assert (result.ok, result.attempts, result.status, result.outcome) == (False, 2, None, BUDGET_EXHAUSTED)
    assert result.last_error is not None and result.last_error.startswith("ConnectError")
