"""The platform check API (平台资格审查): may this seller sell? A signed, minimal answer over HTTPS/JSON.

    POST /v1/check   Authorization: Bearer lbt_…   {"kind": "uscc|rid|shop|domain", "value": "…", "platform": "…"}
    → 200 {"answer_id", "query" (as sent), "blacklisted", "open_case", "checked_at", "key_id", "algorithm", "signature"}
    GET  /v1/key     the bus's public key (raw, base64) and its id, to verify answers
    GET  /healthz

Each e-commerce platform calls with its own token (tokens file as the gateway's, `leadbus platform-check-token`);
calls are rate-limited per platform (token bucket), and every query — answered, refused, or over the limit —
is appended to the audit log with the platform, the identifier kind, a digest of the value (not the value:
the log must not become a register of who was checked) and the answer. The index behind the answers is
rebuilt in memory from `leadbus.blacklist`, `leadbus.cases` and `leadbus.handover` by a reader thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from leadbus.access_log import AccessLog
from leadbus.avro import SchemaCatalog, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.seller_check import QueryError, SellerIndex, identifier_of, signed_answer
from leadbus.producers.gateway.auth import TokenStore
from leadbus.producers.gateway.ratelimit import RateLimiter
from leadbus.readers import FollowingReader
from leadbus.signing import key_id_of
from leadbus.topics import BLACKLIST, CASES, HANDOVER
from leadbus.web import running

log = logging.getLogger("leadbus.sinks.platform_check")
TOKENS_OWNER = "PLATFORMS"  # the tokens file's "agency": platforms are no agency
MAX_BODY = 4096
_NO_STORE = {"Cache-Control": "no-store"}


class IndexReader(FollowingReader):
    """Keeps a `SellerIndex` current from the three topics (read_committed, from the beginning)."""

    topics = (BLACKLIST, CASES, HANDOVER)
    group_prefix = "leadbus-platform-check-"

    def __init__(self, kafka: str | KafkaSettings, catalog: SchemaCatalog | None = None) -> None:
        super().__init__(settings_for(kafka), "platform-check-reader")
        self.catalog = catalog or packaged_catalog()
        self.index = SellerIndex()
        self.lock = threading.Lock()

    def handle(self, topic: str, value: bytes | None) -> None:
        if not value:
            return
        _, record = decode(self.catalog, value)
        with self.lock:
            if topic == BLACKLIST:
                self.index.on_entry(record["entry_id"], record["identifiers"], str(record["status"]))
            elif topic == CASES:
                self.index.on_case(record["case_id"], [f"{i['kind']}:{i['value']}" for i in record["identifiers"]],
                                   record["merged_into"])
            elif topic == HANDOVER:
                self.index.on_step(record["case_id"], str(record["to_phase"]))

    def lookup(self, identifier: str) -> tuple[bool, bool]:
        with self.lock:
            return self.index.lookup(identifier)



def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def create_app(kafka: str | KafkaSettings, key: Ed25519PrivateKey, tokens: Path, audit_log: Path,
               rate: float = 5.0, burst: float = 20.0) -> FastAPI:
    reader = IndexReader(kafka)
    store = TokenStore(tokens, TOKENS_OWNER)
    limiter = RateLimiter(rate, burst)
    audit = AccessLog(audit_log, "leadbus.platform_check.audit")
    public = key.public_key().public_bytes_raw()

    def stop() -> None:
        reader.stop()
        audit.close()

    app = FastAPI(title="leadbus platform check", lifespan=running(reader.start, stop), docs_url=None, redoc_url=None)
    app.state.reader = reader

    def refuse(status: int, code: str, message: str, entry: dict[str, Any],
               headers: dict[str, str] | None = None) -> JSONResponse:
        audit.write({**entry, "status": status, "outcome": code})
        return JSONResponse({"error": code, "message": message}, status_code=status,
                            headers={**_NO_STORE, **(headers or {})})

    @app.post("/v1/check")
    async def check(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        caller = store.caller(token)
        entry: dict[str, Any] = {"event": "check", "platform": caller.system if caller else None,
                                 "client": request.client.host if request.client else None}
        if caller is None:
            return refuse(401, "UNAUTHENTICATED", "a platform token is required", entry,
                          {"WWW-Authenticate": "Bearer"})
        wait = limiter.take(caller.system)
        if wait > 0:
            return refuse(429, "RATE_LIMITED", f"retry in {wait:.1f}s", entry,
                          {"Retry-After": str(max(1, round(wait)))})
        body = await request.body()
        if len(body) > MAX_BODY:
            return refuse(413, "TOO_LARGE", f"a query is at most {MAX_BODY} bytes", entry)
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or set(doc) - {"kind", "value", "platform"}:
                raise QueryError("QUERY_FIELDS", "a query has kind, value and (for a shop) platform only")
            kind, value, platform = doc.get("kind"), doc.get("value"), doc.get("platform")
            if not isinstance(kind, str) or not isinstance(value, str) or not isinstance(platform, str | None):
                raise QueryError("QUERY_FIELDS", "kind, value and platform are strings")
            entry.update(kind=kind, value_sha256=_digest(value))
            identifier = identifier_of(kind, value, platform)
        except ValueError as exc:  # JSONDecodeError and QueryError
            code = exc.code if isinstance(exc, QueryError) else "QUERY_JSON"
            return refuse(422, code, exc.message if isinstance(exc, QueryError) else "the body is not JSON", entry)
        if not reader.caught_up.is_set():
            return refuse(503, "NOT_READY", "the index is still being read from the bus", entry, {"Retry-After": "2"})
        blacklisted, open_case = reader.lookup(identifier)
        query = {"kind": kind, "value": value, **({"platform": platform} if platform is not None else {})}
        answer = signed_answer(query, blacklisted, open_case, datetime.now(UTC), str(uuid.uuid4()), key)
        audit.write({**entry, "status": 200, "outcome": "ANSWERED", "answer_id": answer["answer_id"],
                     "blacklisted": blacklisted, "open_case": open_case})
        return JSONResponse(answer, headers=_NO_STORE)

    @app.get("/v1/key")
    def public_key() -> JSONResponse:
        return JSONResponse({"algorithm": "Ed25519", "key_id": key_id_of(public),
                             "public_key": base64.b64encode(public).decode()})

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        ok = reader.alive()
        return JSONResponse({"status": "ok" if ok else "down", "caught_up": reader.caught_up.is_set(),
                             "error": reader.last_error}, status_code=200 if ok else 503)

    return app


def run(kafka: str | KafkaSettings, key: Ed25519PrivateKey, tokens: Path, audit_log: Path, host: str, port: int,
        rate: float, burst: float, **server: Any) -> None:
    uvicorn.run(create_app(kafka, key, tokens, audit_log, rate, burst), host=host, port=port,
                timeout_graceful_shutdown=2, log_level="warning", **server)
