"""Webhook delivery over an injected httpx client: signed, idempotent, retried, then dead-lettered.

Every request carries `Idempotency-Key`, `X-Leadbus-Timestamp` (Unix seconds) and
`X-Leadbus-Signature: v1=<hex>`, the HMAC-SHA256 of `timestamp + "." + key + "." + body`.
The key is the same on every attempt, so a receiver applies each delivery once; the timestamp
and signature are fresh per attempt, so a receiver may reject stale requests.

Retried: connection errors, timeouts, 408, 429, 5xx, and a 409 that does not name our key
(a request with that key still in flight). Success: 2xx, and a 409 "already processed" that
names our key (`Idempotency-Key` response header or `idempotency_key` in a JSON body).
Everything else (3xx, other 4xx) is final. The caller sends what fails to the dead-letter topic.

Notice-and-takedown (通知—删除): the notice and the meaning of a platform's answer are domain rules
in `processors/core/takedown.py`; `takedown_reply` here adapts a `DeliveryResult` to it and
`dead_letter` builds the record of a delivery that failed. No function here reads the clock
unless it is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from leadbus.processors.core.takedown import takedown_reply as core_takedown_reply

SIGNATURE_HEADER = "X-Leadbus-Signature"
TIMESTAMP_HEADER = "X-Leadbus-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Leadbus-Attempt"
SIGNATURE_VERSION = "v1"

DELIVERED = "delivered"
ALREADY_PROCESSED = "already_processed"
REJECTED = "rejected"  # a final answer or error: retrying cannot help
BUDGET_EXHAUSTED = "budget_exhausted"
DEADLINE_EXCEEDED = "deadline_exceeded"

_RETRY_STATUSES = frozenset({408, 429})
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)
_ERROR_TEXT_LIMIT = 300


# --- signing -----------------------------------------------------------------------------------


def sign(secret: bytes, timestamp: str, idempotency_key: str, body: bytes) -> str:
    """HMAC-SHA256 hex digest of `timestamp + "." + idempotency_key + "." + body`."""
    message = timestamp.encode("ascii") + b"." + idempotency_key.encode("utf-8") + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: str, idempotency_key: str, body: bytes) -> str:
    return f"{SIGNATURE_VERSION}={sign(secret, timestamp, idempotency_key, body)}"


def verify_signature(
    secret: bytes,
    timestamp: str,
    idempotency_key: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """True when one `v1=` entry of `header` matches; with `now`, the timestamp must be within `tolerance`."""
    if now is not None:
        try:
            if abs(now - int(timestamp)) > tolerance:
                return False
        except ValueError:
            return False
    try:
        expected = sign(secret, timestamp, idempotency_key, body)
    except UnicodeEncodeError:
        return False
    ok = False
    for part in header.split(","):
        version, _, digest = part.strip().partition("=")
        if version == SIGNATURE_VERSION and hmac.compare_digest(digest.encode(), expected.encode()):
            ok = True  # no early exit: the time taken does not depend on which entry matched
    return ok


def verify_request(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """Receiver side: check the three headers of a request (a case-insensitive mapping)."""
    timestamp, key, header = (headers.get(h) for h in (TIMESTAMP_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER))
    if timestamp is None or key is None or header is None:
        return False
    return verify_signature(secret, timestamp, key, body, header, now=now)


# --- retry policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n+1 waits `min(initial * factor**(n-1), max_delay)` after attempt n.

    `budget` is the number of attempts (first one included); no retry starts once `deadline`
    seconds have passed since the first attempt. `jitter` in [0, 1] shortens each delay by up to
    that fraction, drawn from `random.Random(seed)` so a schedule is reproducible.
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    budget: int = 6
    deadline: float = 300.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.max_delay < self.initial:
            raise ValueError("need 0 <= initial <= max_delay and factor >= 1")
        if self.budget < 1 or self.deadline <= 0 or not 0 <= self.jitter <= 1:
            raise ValueError("need budget >= 1, deadline > 0 and 0 <= jitter <= 1")

    def delays(self, seed: int | str | None = None) -> list[float]:
        """The `budget - 1` waits between attempts; pure (jitter uses its own seeded RNG)."""
        rng = random.Random(seed if seed is not None else 0)
        out = []
        for n in range(self.budget - 1):
            delay = min(self.initial * self.factor**n, self.max_delay)
            if self.jitter:
                delay *= 1 - self.jitter * rng.random()
            out.append(delay)
        return out


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    attempts: int
    status: int | None  # HTTP status of the last attempt; None if it got no response
    last_error: str | None  # None when ok
    response_json: Any  # JSON body of the last response, if any
    attempt_times: list[float] = field(default_factory=list)  # `now()` at the start of each attempt
    outcome: str = DELIVERED


@dataclass(frozen=True)
class _Attempt:
    verdict: str  # "ok", "retry" or "final"
    status: int | None
    error: str | None
    response_json: Any
    retry_after: float | None
    outcome: str


def encode_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _names_key(response: httpx.Response, body: Any, key: str) -> bool | None:
    """Does a 409 say our key was processed? True / False (another key) / None (it does not say)."""
    echoed = response.headers.get(IDEMPOTENCY_HEADER)
    if echoed is None and isinstance(body, dict) and isinstance(body.get("idempotency_key"), str):
        echoed = body["idempotency_key"]
    return None if echoed is None else echoed == key


def _classify(response: httpx.Response, key: str, wall_now: datetime) -> _Attempt:
    status, body = response.status_code, _json_or_none(response)
    text = response.text[:_ERROR_TEXT_LIMIT]
    error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"), wall_now)
    if 200 <= status < 300:
        return _Attempt("ok", status, None, body, None, DELIVERED)
    if status == 409:
        names = _names_key(response, body, key)
        if names:
            return _Attempt("ok", status, None, body, None, ALREADY_PROCESSED)
        verdict = "retry" if names is None else "final"
        return _Attempt(verdict, status, error, body, retry_after, REJECTED)
    if status in _RETRY_STATUSES or status >= 500:
        return _Attempt("retry", status, error, body, retry_after, REJECTED)
    return _Attempt("final", status, error, body, None, REJECTED)


class WebhookDelivery:
    """Delivers JSON payloads to webhooks through `client` (injected; its timeout applies)."""

    def __init__(
        self,
        client: httpx.Client,
        secret: bytes,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.secret, self.policy = client, secret, policy
        self.sleep, self.now, self.wall = sleep, now, wall

    def _attempt(self, url: str, body: bytes, key: str, number: int) -> _Attempt:
        timestamp = str(int(self.wall()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature_header(self.secret, timestamp, key, body),
            ATTEMPT_HEADER: str(number),
        }
        try:
            response = self.client.post(url, content=body, headers=headers)
        except _RETRY_ERRORS as exc:
            return _Attempt("retry", None, f"{type(exc).__name__}: {exc}", None, None, REJECTED)
        except httpx.TransportError as exc:  # e.g. an unsupported scheme: retrying cannot help
            return _Attempt("final", None, f"{type(exc).__name__}: {exc}", None, None, REJECTED)
        return _classify(response, key, datetime.fromtimestamp(self.wall(), UTC))

    def deliver(self, url: str, payload: Mapping[str, Any], key: str) -> DeliveryResult:
        body = encode_body(payload)
        delays = self.policy.delays(seed=key)
        start = self.now()
        times: list[float] = []
        while True:
            times.append(self.now())
            result = self._attempt(url, body, key, len(times))
            if result.verdict != "retry" or len(times) >= self.policy.budget:
                break
            wait = max(delays[len(times) - 1], result.retry_after or 0.0)
            if self.now() - start + wait > self.policy.deadline:
                return self._result(result, times, DEADLINE_EXCEEDED)
            self.sleep(wait)
        if result.verdict == "retry":
            return self._result(result, times, BUDGET_EXHAUSTED)
        return self._result(result, times, result.outcome)

    @staticmethod
    def _result(attempt: _Attempt, times: list[float], outcome: str) -> DeliveryResult:
        ok = attempt.verdict == "ok"
        return DeliveryResult(ok, len(times), attempt.status, None if ok else attempt.error,
                              attempt.response_json, times, outcome)


def deliver(
    client: httpx.Client,
    url: str,
    payload: Mapping[str, Any],
    key: str,
    secret: bytes,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> DeliveryResult:
    """POST `payload` as UTF-8 JSON to `url`, signed, with retries per `policy`."""
    return WebhookDelivery(client, secret, policy, sleep=sleep, now=now, wall=wall).deliver(url, payload, key)


# --- notice-and-takedown (通知—删除): the notice and its reply are the core's (processors/core/takedown.py) ---


def takedown_reply(notice: Mapping[str, Any], result: DeliveryResult, recorded_at: datetime) -> dict[str, Any]:
    """The `TakedownReply` record of a delivered notice (an undelivered one is dead-lettered instead)."""
    if not result.ok:
        raise ValueError("an undelivered notice has no reply; dead-letter it")
    return core_takedown_reply(notice, result.response_json, result.status, result.attempts, recorded_at)


def dead_letter(
    source_topic: str, key: str, payload: Mapping[str, Any], result: DeliveryResult, failed_at: datetime
) -> dict[str, Any]:
    """A record for `leadbus.webhooks.dead`: what was sent, how often, and the last error."""
    if result.ok:
        raise ValueError("a delivered webhook is not a dead letter")
    return {
        "source_topic": source_topic,
        "idempotency_key": key,
        "payload_json": encode_body(payload).decode("utf-8"),
        "outcome": result.outcome,
        "attempts": result.attempts,
        "last_status": result.status,
        "last_error": result.last_error or result.outcome,
        "failed_at": failed_at,
    }
