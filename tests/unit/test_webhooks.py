"""Webhook signing, retry classification and schedules, takedown notices — with httpx.MockTransport."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from leadbus.processors.core.takedown import COPYRIGHT_REG_ART14, ECOMMERCE_ART42, reply_overdue, takedown_notice
from leadbus.sinks.webhooks import (
    ALREADY_PROCESSED,
    BUDGET_EXHAUSTED,
    DEADLINE_EXCEEDED,
    DELIVERED,
    REJECTED,
    DeliveryResult,
    RetryPolicy,
    dead_letter,
    deliver,
    parse_retry_after,
    sign,
    takedown_reply,
    verify_request,
    verify_signature,
)

SECRET = b"s3cret"
URL = "https://platform.example/leadbus/takedown"
KEY = "0b8f5d3e-1111-4222-8333-444455556666"
PAYLOAD = {"notice_id": KEY, "text": "通知—删除"}
FAST = RetryPolicy(initial=0.1, factor=2.0, max_delay=1.0, budget=5, deadline=60.0)
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """`now` and `sleep` for `deliver`: sleeping advances the clock and is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def run(handler: Handler, policy: RetryPolicy = FAST, clock: FakeClock | None = None) -> DeliveryResult:
    clock = clock or FakeClock()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return deliver(client, URL, PAYLOAD, KEY, SECRET, policy, sleep=clock.sleep, now=clock.now,
                       wall=lambda: NOW.timestamp())


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with `responses` in turn (the last one repeats), recording requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


# --- signing -----------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_key_body() -> None:
    body = "{\"a\":\"通知\"}".encode()
    expected = hmac.new(SECRET, b"1700000000." + KEY.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", KEY, body) == expected
    assert verify_signature(SECRET, "1700000000", KEY, body, f"v1={expected}")


@pytest.mark.parametrize(
    ("secret", "ts", "key", "body", "header_of"),
    [
        (b"other", "1700000000", KEY, b"{}", lambda d: f"v1={d}"),
        (SECRET, "1700000001", KEY, b"{}", lambda d: f"v1={d}"),
        (SECRET, "1700000000", "another-key", b"{}", lambda d: f"v1={d}"),
        (SECRET, "1700000000", KEY, b"{ }", lambda d: f"v1={d}"),
        (SECRET, "1700000000", KEY, b"{}", lambda d: d),
        (SECRET, "1700000000", KEY, b"{}", lambda d: f"v0={d}"),
        (SECRET, "1700000000", KEY, b"{}", lambda d: f"v1={d[:-1]}"),
    ],
)
def test_verify_rejects_any_change(
    secret: bytes, ts: str, key: str, body: bytes, header_of: Callable[[str], str]
) -> None:
    digest = sign(SECRET, "1700000000", KEY, b"{}")
    assert not verify_signature(secret, ts, key, body, header_of(digest))


def test_verify_accepts_one_of_several_and_checks_age() -> None:
    digest = sign(SECRET, "1700000000", KEY, b"{}")
    assert verify_signature(SECRET, "1700000000", KEY, b"{}", f"v1=deadbeef, v1={digest}")
    assert verify_signature(SECRET, "1700000000", KEY, b"{}", f"v1={digest}", now=1700000299)
    assert not verify_signature(SECRET, "1700000000", KEY, b"{}", f"v1={digest}", now=1700000301)
    assert not verify_signature(SECRET, "soon", KEY, b"{}", f"v1={digest}", now=1700000000)


def test_request_headers_body_and_signature() -> None:
    handler, seen = scripted(httpx.Response(202, json={"decision": "ACKNOWLEDGED"}))
    result = run(handler)
    assert (result.ok, result.attempts, result.status, result.outcome) == (True, 1, 202, DELIVERED)
    assert result.response_json == {"decision": "ACKNOWLEDGED"}
    request = seen[0]
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Idempotency-Key"] == KEY
    assert request.headers["X-Leadbus-Timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["X-Leadbus-Signature"].startswith("v1=")
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "通知—删除".encode() in request.content  # ensure_ascii=False, UTF-8
    assert json.loads(request.content) == PAYLOAD
    assert verify_request(SECRET, request.headers, request.content, now=NOW.timestamp())


# --- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success_first_time(status: int) -> None:
    result = run(scripted(httpx.Response(status))[0])
    assert (result.ok, result.attempts, result.last_error) == (True, 1, None)


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_and_3xx_are_final(status: int) -> None:
    clock = FakeClock()
    result = run(scripted(httpx.Response(status, text="bad notice"))[0], clock=clock)
    assert (result.ok, result.attempts, result.status, result.outcome) == (False, 1, status, REJECTED)
    assert result.last_error == f"HTTP {status}: bad notice"
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_then_success(status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(status), httpx.Response(200))
    result = run(handler)
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert {r.headers["Idempotency-Key"] for r in seen} == {KEY}
    assert [r.headers["X-Leadbus-Attempt"] for r in seen] == ["1", "2", "3"]


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"),
     httpx.RemoteProtocolError("server hung up"), httpx.ReadError("reset")],
)
def test_transport_errors_are_retried(error: Exception) -> None:
    result = run(scripted(error, httpx.Response(200))[0])
    assert (result.ok, result.attempts) == (True, 2)


def test_transport_error_on_last_attempt_has_no_status() -> None:
    result = run(scripted(httpx.ReadTimeout("slow"))[0], RetryPolicy(0.1, 2, 1, budget=2))
    assert (result.ok, result.attempts, result.status) == (False, 2, None)
    assert result.last_error == "ReadTimeout: slow"


def test_unsupported_scheme_is_final() -> None:
    result = run(scripted(httpx.UnsupportedProtocol("ftp"))[0])
    assert (result.ok, result.attempts, result.outcome) == (False, 1, REJECTED)


def test_409_already_processed_with_our_key_is_success() -> None:
    by_header = httpx.Response(409, headers={"Idempotency-Key": KEY}, json={"status": "already processed"})
    by_body = httpx.Response(409, json={"status": "already processed", "idempotency_key": KEY})
    for answer in (by_header, by_body):
        result = run(scripted(httpx.Response(503), answer)[0])
        assert (result.ok, result.attempts, result.status, result.outcome) == (True, 2, 409, ALREADY_PROCESSED)
        assert result.last_error is None


def test_409_for_another_key_is_final_and_without_key_is_retried() -> None:
    other = run(scripted(httpx.Response(409, json={"idempotency_key": "someone-else"}))[0])
    assert (other.ok, other.attempts, other.outcome) == (False, 1, REJECTED)
    in_flight = run(scripted(httpx.Response(409, text="in progress"), httpx.Response(200))[0])
    assert (in_flight.ok, in_flight.attempts) == (True, 2)


# --- schedule, Retry-After, budget, deadline ---------------------------------------------------


def test_delays_are_exponential_capped_and_pure() -> None:
    policy = RetryPolicy(initial=0.1, factor=2.0, max_delay=1.0, budget=7)
    assert policy.delays() == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delays() == policy.delays()
    assert RetryPolicy(initial=0.5, budget=1).delays() == []


def test_jitter_is_bounded_and_reproducible() -> None:
    policy = RetryPolicy(initial=1.0, factor=2.0, max_delay=8.0, budget=6, jitter=0.5)
    plain = RetryPolicy(initial=1.0, factor=2.0, max_delay=8.0, budget=6).delays()
    jittered = policy.delays(seed="a")
    assert jittered == policy.delays(seed="a") != policy.delays(seed="b")
    assert all(p / 2 <= j <= p for j, p in zip(jittered, plain, strict=True))


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1}, {"factor": 0.5}, {"budget": 0}, {"deadline": 0}, {"jitter": 2}, {"initial": 5, "max_delay": 1}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_retries_are_spaced_by_the_schedule_and_budget_exhaustion_keeps_last_error() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(503, text="maintenance"))
    result = run(handler, FAST, clock)
    assert (result.ok, result.attempts, result.status, result.outcome) == (False, 5, 503, BUDGET_EXHAUSTED)
    assert result.last_error == "HTTP 503: maintenance"
    assert clock.sleeps == pytest.approx(FAST.delays()) == [0.1, 0.2, 0.4, 0.8]
    gaps = [b - a for a, b in itertools.pairwise(result.attempt_times)]
    assert gaps == pytest.approx(FAST.delays())
    assert len(seen) == 5
    assert len({r.headers["X-Leadbus-Signature"] for r in seen}) == 1  # same ts (fake wall), same body


def test_retry_after_seconds_lengthens_a_wait() -> None:
    clock = FakeClock()
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200))
    result = run(handler, FAST, clock)
    assert (result.ok, clock.sleeps) == (True, [3.0])
    shorter = FakeClock()
    run(scripted(httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200))[0], FAST, shorter)
    assert shorter.sleeps == [0.1]  # never shorter than the schedule


def test_retry_after_http_date() -> None:
    when = "Mon, 02 Nov 2026 08:00:07 GMT"
    assert parse_retry_after(when, NOW) == 7.0
    assert parse_retry_after("Mon, 02 Nov 2026 07:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    clock = FakeClock()
    run(scripted(httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200))[0], FAST, clock)
    assert clock.sleeps == [7.0]


def test_retry_after_beyond_the_deadline_gives_up() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial=0.1, factor=2, max_delay=1, budget=5, deadline=10)
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down"))
    result = run(handler, policy, clock)
    assert (result.ok, result.attempts, result.outcome) == (False, 1, DEADLINE_EXCEEDED)
    assert result.last_error == "HTTP 429: slow down"
    assert clock.sleeps == [] and len(seen) == 1


def test_deadline_counts_time_spent_in_attempts() -> None:
    clock = FakeClock()

    def slow_failure(request: httpx.Request) -> httpx.Response:
        clock.t += 2.0  # each attempt takes 2 s
        return httpx.Response(500)

    policy = RetryPolicy(initial=1.0, factor=1.0, max_delay=1.0, budget=10, deadline=8.0)
    result = run(slow_failure, policy, clock)
    # attempts start at 0, 3, 6; after the third, 8 s have passed and a 1 s wait would exceed 8 s
    assert [t - 1000.0 for t in result.attempt_times] == [0.0, 3.0, 6.0]
    assert (result.ok, result.outcome, result.status) == (False, DEADLINE_EXCEEDED, 500)


# --- takedown notices and replies ----------------------------------------------------------------

CASE: dict[str, Any] = {
    "case_id": "case-33-0001",
    "platform": "淘宝",
    "shop_id": "123456",
    "urls": ["https://item.taobao.com/item.htm?id=1", "https://item.taobao.com/item.htm?id=2"],
    "rights_holder": {"name": "某国际化妆品公司", "registration": "第1234567号"},
    "categories": ["COSMETICS"],
    "evidence": [{"kind": "photo", "uri": "https://evidence.example/1.jpg", "sha256": "a" * 64}],
    "issuer": {"agency": "SAMR", "province": "33", "unit": "杭州市市场监督管理局"},
}


def test_takedown_notice_payload() -> None:
    notice = takedown_notice(CASE, NOW, timedelta(hours=24))
    assert notice["case_id"] == "case-33-0001" and notice["platform"] == "淘宝" and notice["shop_id"] == "123456"
    assert notice["urls"] == CASE["urls"]
    assert notice["rights_holder"] == {"name": "某国际化妆品公司", "registration": "第1234567号"}
    assert [b["code"] for b in notice["legal_basis"]] == [ECOMMERCE_ART42]
    assert "第四十二条" in notice["legal_basis"][0]["citation"]
    assert notice["issued_at"] == "2026-11-02T08:00:00.000Z"
    assert notice["reply_due_at"] == "2026-11-03T08:00:00.000Z"
    assert notice["evidence"] == CASE["evidence"] and notice["issuer"]["agency"] == "SAMR"
    assert "删除" in notice["measures"]
    json.dumps(notice)  # plain JSON


def test_notice_id_is_stable_and_depends_on_what_is_taken_down() -> None:
    first = takedown_notice(CASE, NOW, timedelta(hours=24))["notice_id"]
    later = takedown_notice({**CASE, "urls": CASE["urls"][::-1]}, NOW + timedelta(days=1), timedelta(hours=1))
    assert later["notice_id"] == first
    assert takedown_notice({**CASE, "urls": CASE["urls"][:1]}, NOW, timedelta(hours=24))["notice_id"] != first
    assert takedown_notice({**CASE, "notice_seq": 1}, NOW, timedelta(hours=24))["notice_id"] != first


@pytest.mark.parametrize(
    ("categories", "codes"),
    [
        (["FILM_TV"], [COPYRIGHT_REG_ART14]),
        (["MUSIC", "SOFTWARE"], [COPYRIGHT_REG_ART14]),
        (["GAMES", "ELECTRONICS"], [ECOMMERCE_ART42, COPYRIGHT_REG_ART14]),
        ([], [ECOMMERCE_ART42]),
    ],
)
def test_legal_basis_follows_categories(categories: list[str], codes: list[str]) -> None:
    notice = takedown_notice({**CASE, "categories": categories}, NOW, timedelta(hours=24))
    assert [b["code"] for b in notice["legal_basis"]] == codes
    explicit = takedown_notice({**CASE, "legal_basis": [COPYRIGHT_REG_ART14]}, NOW, timedelta(hours=24))
    assert [b["code"] for b in explicit["legal_basis"]] == [COPYRIGHT_REG_ART14]


@pytest.mark.parametrize(
    ("case", "now", "within"),
    [
        ({**CASE, "platform": None}, NOW, timedelta(hours=1)),
        ({**CASE, "urls": [], "shop_id": None}, NOW, timedelta(hours=1)),
        ({**CASE, "legal_basis": ["MADE_UP"]}, NOW, timedelta(hours=1)),
        (CASE, NOW, timedelta(0)),
        (CASE, datetime(2026, 11, 2, 8, 0), timedelta(hours=1)),
    ],
)
def test_takedown_notice_rejects(case: dict[str, object], now: datetime, within: timedelta) -> None:
    with pytest.raises(ValueError):
        takedown_notice(case, now, within)


def test_reply_overdue() -> None:
    notice = takedown_notice(CASE, NOW, timedelta(hours=24))
    due = NOW + timedelta(hours=24)
    assert not reply_overdue(notice, None, due)
    assert reply_overdue(notice, None, due + timedelta(milliseconds=1))
    assert not reply_overdue(notice, due - timedelta(hours=1), due + timedelta(days=3))
    assert reply_overdue(notice, due + timedelta(minutes=1), due + timedelta(minutes=1))


def test_takedown_reply_records_the_platform_answer() -> None:
    notice = takedown_notice(CASE, NOW, timedelta(hours=24))
    answer = {"decision": "removed", "measures": ["删除"], "reference": 991, "message": "已删除"}
    result = DeliveryResult(True, 2, 200, None, answer, [0.0, 0.1])
    reply = takedown_reply(notice, result, NOW + timedelta(hours=2))
    assert reply["decision"] == "REMOVED" and reply["measures"] == ["删除"] and reply["platform_reference"] == "991"
    assert reply["replied_at"] == NOW + timedelta(hours=2) and reply["overdue"] is False
    assert (reply["attempts"], reply["http_status"]) == (2, 200)
    late = takedown_reply(notice, result, NOW + timedelta(hours=30))
    assert late["overdue"] is True
    ack = takedown_reply(notice, DeliveryResult(True, 1, 202, None, None), NOW + timedelta(hours=1))
    assert (ack["decision"], ack["replied_at"], ack["overdue"]) == ("ACKNOWLEDGED", None, False)
    with pytest.raises(ValueError):
        takedown_reply(notice, DeliveryResult(False, 5, 503, "HTTP 503", None), NOW)


def test_dead_letter_keeps_the_last_error() -> None:
    failed = DeliveryResult(False, 5, 503, "HTTP 503: maintenance", None, outcome=BUDGET_EXHAUSTED)
    record = dead_letter("leadbus.takedown.notices", KEY, PAYLOAD, failed, NOW)
    assert record["last_error"] == "HTTP 503: maintenance" and record["attempts"] == 5
    assert record["outcome"] == BUDGET_EXHAUSTED and json.loads(record["payload_json"]) == PAYLOAD
    with pytest.raises(ValueError):
        dead_letter("t", KEY, PAYLOAD, DeliveryResult(True, 1, 200, None, None), NOW)
