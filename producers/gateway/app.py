"""The agency edge: an HTTPS/JSON gateway for systems not written in Python (DESIGN §7, issue 13).

    gateway = Gateway(GatewayConfig("SAMR", "33", tokens=…, state_dir=…), kafka=KafkaSettings(…), sealer=…)
    app = create_app(gateway)        # served over TLS by `leadbus gateway --agency SAMR --province 33`

`POST /v1/leads` takes one lead in the JSON contract (DESIGN §3), validates it with the SDK's models,
signs it with the agency's key and publishes it; it answers only once the broker has confirmed it:

* 201 — `{lead_id, revision, topic, partition, offset}`; the same lead and revision posted again
  answers the same 201 (header `Idempotent-Replayed: true`) and publishes nothing;
* 422 — `{error: "INVALID_LEAD", errors: [{field, code, message}]}` with the SDK's reason codes;
* 413 — the event would exceed 256 KiB (`OVERSIZED`, naming the largest field), or the body is too big;
* 409 — `REVISION_CONFLICT` (this revision is known with other content) or `STALE_REVISION` (a higher
  revision is known), judged by intake's own rule on what the gateway knows: what it published, and
  the agency's accepted leads on the bus;
* 429 — the calling system's rate is exceeded (`Retry-After`);
* 503 — the bus did not confirm within the publish timeout. The gateway waits for librdkafka's final
  delivery report before answering, and the producer's `message.timeout.ms` is that timeout, so a
  lead answered 503 is no longer queued anywhere: nothing is published later by surprise. (A lead to a
  partition the gateway has not written to yet may first wait, held by the SDK, for the first lead
  there to be confirmed: its 503 can take up to twice the timeout.) (If the
  broker died mid-request the event may have been written; a repost is then dropped by intake as an
  exact redelivery, and the receipt tells.)

`POST /v1/leads:batch` takes NDJSON (one lead per line) and answers NDJSON, one `{line, status, body}`
per input line, in order. `GET /v1/leads/{lead_id}` is the receipt: accepted (with its case id once
linked), rejected (reason, field, message) or pending, from the bus's own outputs.

Callers present `Authorization: Bearer <token>` (per-system tokens stored hashed, `auth.py`) or, without
one, a client certificate the TLS layer verified against the callers' CA and that the certificates file
maps to a system (`server.py` puts it into the request's state); every call is logged (who and how, when,
what, the answer) to `<state>/access.jsonl`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from fastapi import Depends, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from leadbus.access_log import AccessLog
from leadbus.clients import KafkaSettings
from leadbus.limits import MAX_EVENT_BYTES
from leadbus.models import CaseLead
from leadbus.processors.core.intake import Seen, judge
from leadbus.processors.core.normalize import normalise
from leadbus.producers.errors import FieldError, InvalidLead, PublishError
from leadbus.producers.gateway.auth import Caller, CertificateStore, TokenStore, certificate_fingerprint
from leadbus.producers.gateway.ledger import Ledger, Published
from leadbus.producers.gateway.ratelimit import RateLimiter
from leadbus.producers.gateway.receipts import Outcome, ReceiptIndex
from leadbus.producers.publisher import EventSealer, PendingDelivery, Publisher
from leadbus.web import running

log = logging.getLogger("leadbus.producers.gateway")

#: A JSON body above this is refused before parsing (a lead's JSON is bigger than its Avro, so not 256 KiB).
MAX_BODY_BYTES = 4 * MAX_EVENT_BYTES
MAX_BATCH_LINES = 1000
MAX_BATCH_BYTES = 32 * 1024 * 1024
#: Where the server puts the verified client certificate (DER) of a connection in each request's ASGI state.
PEER_CERTIFICATE = "tls_peer_certificate"


@dataclass(frozen=True)
class GatewayConfig:
    agency: str
    province: str
    tokens: Path
    state_dir: Path
    publisher_id: str | None = None  # who signs: AGENCY.PP by default
    rate: float = 50.0  # leads per second per calling system (0: unlimited)
    burst: float = 200.0
    publish_timeout: float = 15.0  # seconds the broker has to confirm; then 503 (and the event is dropped)
    certificates: Path | None = None  # client certificates → systems; default certificates.json beside the tokens

    @property
    def certificates_file(self) -> Path:
        return self.certificates or self.tokens.with_name("certificates.json")

    @property
    def signer(self) -> str:
        return self.publisher_id or f"{self.agency}.{self.province}"


# -- OpenAPI models ----------------------------------------------------------------------------------

class FieldErrorModel(BaseModel):
    field: str = Field(description="dotted path of the field, e.g. subject.id_number")
    code: str = Field(description="stable reason code (docs/reason-codes.md), the same as the Python SDK's")
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="INVALID_LEAD, OVERSIZED, REVISION_CONFLICT, STALE_REVISION, RATE_LIMITED, "
                                   "BUS_UNAVAILABLE, UNAUTHENTICATED, BODY_TOO_LARGE, NOT_FOUND")
    message: str
    errors: list[FieldErrorModel] = Field(default_factory=list)


class Published201(BaseModel):
    lead_id: str
    revision: int
    topic: str
    partition: int
    offset: int


class OutcomeModel(BaseModel):
    status: str = Field(description="accepted | rejected")
    at: str
    topic: str
    partition: int
    offset: int
    revision: int | None = None
    warnings: list[str] | None = None
    reason: str | None = None
    field: str | None = None
    message: str | None = None


class Receipt(BaseModel):
    lead_id: str
    status: str = Field(description="accepted | rejected | pending")
    revision: int | None = None
    case_id: str | None = Field(None, description="the case the lead belongs to, once linked")
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    warnings: list[str] = Field(default_factory=list)
    published: Published201 | None = Field(None, description="where this gateway published the latest revision")
    history: list[OutcomeModel] = Field(default_factory=list)


class BatchLine(BaseModel):
    line: int
    status: int
    body: dict[str, Any]


# -- the publishing core -------------------------------------------------------------------------------

class _GatewayPublisher(Publisher):
    """The SDK's publisher, with a metadata look-up bounded by the publish timeout (an unreachable bus is a 503)."""

    metadata_timeout = 10.0


class Answer:
    """An HTTP answer of the publishing core: status, JSON body, extra headers."""

    __slots__ = ("body", "headers", "lead_id", "revision", "status")

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
                 lead_id: str | None = None, revision: int | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.lead_id, self.revision = lead_id, revision


def _error(status: int, code: str, message: str, errors: list[FieldError] | None = None,
           headers: dict[str, str] | None = None, **ids: Any) -> Answer:
    body = {"error": code, "message": message,
            "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in errors or ()]}
    return Answer(status, body, headers, **ids)


def _published(entry: Published) -> dict[str, Any]:
    return {"lead_id": entry.lead_id, "revision": entry.revision, "topic": entry.topic,
            "partition": entry.partition, "offset": entry.offset}


@dataclass
class _Checked:
    """A lead that passed validation and the gateway's own checks, ready to publish."""

    model: CaseLead
    digest: str


class Gateway:
    """Validates, signs, publishes and answers after confirmation; knows what it published; keeps receipts."""

    def __init__(self, config: GatewayConfig, kafka: KafkaSettings, sealer: EventSealer | None = None,
                 receipts_kafka: KafkaSettings | None = None) -> None:
        self.config = config
        self.kafka = kafka
        producer_config = {**kafka.security, **kafka.extras,
                           "message.timeout.ms": int(config.publish_timeout * 1000),
                           "socket.connection.setup.timeout.ms": 5000}
        self.publisher = _GatewayPublisher(config.agency, config.province, bootstrap_servers=kafka.bootstrap,
                                           config=producer_config, sealer=sealer)
        self.publisher.metadata_timeout = min(10.0, config.publish_timeout)
        self.ledger = Ledger(config.state_dir / "ledger.sqlite")
        self.receipts = ReceiptIndex(receipts_kafka or kafka, config.agency)
        self.tokens = TokenStore(config.tokens, config.agency)
        self.certificates = CertificateStore(config.certificates_file, config.agency)
        self.limiter = RateLimiter(config.rate, config.burst)
        self.access = AccessLog(config.state_dir / "access.jsonl", "leadbus.producers.gateway.access")
        self._publish_lock = threading.Lock()  # seal + produce in one order: a lane's numbers reach Kafka in order
        self._lead_locks: dict[str, list[Any]] = {}  # lead id → [lock, users]
        self._locks_guard = threading.Lock()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll, name="gateway-delivery-reports", daemon=True)
        self._poller.start()
        self.receipts.start()

    def _poll(self) -> None:
        producer = self.publisher.producer
        while not self._stopping.is_set():
            producer.poll(0.1)  # delivery reports resolve the requests waiting for them

    def stop(self) -> None:
        self.receipts.stop()
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(5)
        with contextlib.suppress(PublishError, KafkaException):
            self.publisher.flush(self.config.publish_timeout + 5)
        close = getattr(self.publisher._sealer, "close", None)  # the sequence file records exactly what was used
        if close is not None:
            close()
        self.ledger.close()
        self.access.close()

    # -- per-lead locks -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, lead_ids: list[str]) -> Iterator[None]:
        ids = sorted(set(lead_ids))
        with self._locks_guard:
            entries = []
            for lead_id in ids:
                entry = self._lead_locks.setdefault(lead_id, [threading.Lock(), 0])
                entry[1] += 1
                entries.append(entry)
        try:
            for entry in entries:
                entry[0].acquire()
            yield
        finally:
            for entry in reversed(entries):
                if entry[0].locked():
                    entry[0].release()
            with self._locks_guard:
                for lead_id, entry in zip(ids, entries, strict=True):
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._lead_locks.pop(lead_id, None)

    # -- checks --------------------------------------------------------------------------------------

    def check(self, doc: Any) -> _Checked | Answer:
        """Validation with the SDK's models and codes, then the gateway's publisher (agency and province)."""
        if not isinstance(doc, dict):
            return _error(422, "INVALID_LEAD", "the body is not a JSON object",
                          [FieldError("<lead>", "INVALID_FIELD", "a lead is a JSON object (DESIGN §3)")])
        try:
            model = self.publisher.validate(doc)
        except InvalidLead as exc:
            lead_id = doc.get("lead_id") if isinstance(doc.get("lead_id"), str) else None
            return _error(422, "INVALID_LEAD", str(exc)[:2000], exc.errors, lead_id=lead_id)
        if model.publisher.province != self.config.province:
            return _error(422, "INVALID_LEAD", f"this gateway publishes for {self.config.signer}",
                          [FieldError("publisher.province", "WRONG_PUBLISHER",
                                      f"this gateway speaks for province {self.config.province}, "
                                      f"not {model.publisher.province}")],
                          lead_id=model.lead_id, revision=model.revision)
        digest = hashlib.sha256(normalise(model).lead.to_json().encode()).hexdigest()
        return _Checked(model, digest)

    def known(self, checked: _Checked) -> Answer | None:
        """What the gateway already knows of this lead id: a replay to answer again, or a conflict (intake's rule)."""
        model = checked.model
        lead_id, revision = model.lead_id, model.revision
        mine = self.ledger.revisions(lead_id)
        same = next((p for p in mine if p.revision == revision), None)
        if same is not None and same.digest == checked.digest:
            return Answer(201, _published(same), {"Idempotent-Replayed": "true"}, lead_id, revision)
        outcomes, _, _ = self.receipts.of(lead_id)
        versions: dict[int, tuple[str, tuple[str, int, int] | None]] = {
            o.revision: (o.digest, o.source) for o in outcomes
            if o.status == "accepted" and o.revision is not None and o.digest is not None}
        versions.update({p.revision: (p.digest, (p.topic, p.partition, p.offset)) for p in mine})
        if revision in versions:
            digest, source = versions[revision]
            if digest == checked.digest:  # accepted on the bus already (published another way): once is enough
                assert source is not None
                body = {"lead_id": lead_id, "revision": revision, "topic": source[0], "partition": source[1],
                        "offset": source[2]}
                return Answer(201, body, {"Idempotent-Replayed": "true"}, lead_id, revision)
            return _error(409, "REVISION_CONFLICT",
                          f"revision {revision} of {lead_id} is known with different content; "
                          "publish a higher revision to correct it", lead_id=lead_id, revision=revision)
        if versions:
            top = max(versions)
            if judge(Seen(top, versions[top][0]), revision, checked.digest) == "STALE_REVISION":  # intake's rule
                return _error(409, "STALE_REVISION", f"revision {top} of {lead_id} is known: revision {revision} "
                                                     "is older", lead_id=lead_id, revision=revision)
        return None

    # -- publishing ------------------------------------------------------------------------------------

    def _send(self, model: CaseLead) -> PendingDelivery | Answer:
        try:
            with self._publish_lock:
                return self.publisher.publish(model)
        except InvalidLead as exc:  # after `check`, mostly the size of the sealed event; anything else is a 422
            oversized = bool(exc.errors) and all(e.code == "OVERSIZED" for e in exc.errors)
            return _error(413 if oversized else 422, "OVERSIZED" if oversized else "INVALID_LEAD", str(exc)[:2000],
                          exc.errors, lead_id=model.lead_id, revision=model.revision)
        except (PublishError, KafkaException) as exc:
            log.warning("bus unavailable for %s: %s", model.lead_id, exc)
            return _unavailable(model, str(exc))

    def _await(self, pending: PendingDelivery) -> None:
        # A lead to a partition this producer has not written to yet may wait, held by the SDK, for the first
        # record there to be reported (within one publish timeout) before it is handed to librdkafka: two.
        deadline = time.monotonic() + 2 * self.config.publish_timeout + 30
        while not pending.done() and time.monotonic() < deadline:
            time.sleep(0.002)

    def _settle(self, checked: _Checked, pending: PendingDelivery, system: str) -> Answer:
        model = checked.model
        if not pending.done():  # librdkafka always reports by message.timeout.ms; this is a defect's guard
            log.error("no delivery report for %s within the publish timeout and 30 s", model.lead_id)
            return _unavailable(model, "no delivery report")
        error = pending.exception()
        if error is not None:
            log.warning("lead %s not confirmed: %s", model.lead_id, error)
            return _unavailable(model, str(error))
        delivery = pending.result()
        entry = self.ledger.record(model.lead_id, model.revision, checked.digest, delivery.topic,
                                   delivery.partition, delivery.offset, system)
        return Answer(201, _published(entry), None, model.lead_id, model.revision)

    def submit(self, doc: Any, caller: Caller) -> Answer:
        checked = self.check(doc)
        if isinstance(checked, Answer):
            return checked
        with self._locked([checked.model.lead_id]):
            known = self.known(checked)
            if known is not None:
                return known
            pending = self._send(checked.model)
            if isinstance(pending, Answer):
                return pending
            self._await(pending)
            return self._settle(checked, pending, caller.system)

    def submit_batch(self, docs: list[Any], caller: Caller) -> list[Answer]:
        """Each line judged alone; every line to publish is sent before any is awaited. A lead and revision
        repeated in one batch is published once (later lines answer as the first; other content: 409)."""
        answers: list[Answer | None] = [None] * len(docs)
        checked: dict[int, _Checked] = {}
        for i, doc in enumerate(docs):
            result = self.check(doc)
            if isinstance(result, Answer):
                answers[i] = result
            else:
                checked[i] = result
        with self._locked([c.model.lead_id for c in checked.values()]):
            first: dict[tuple[str, int], int] = {}
            sending: dict[int, PendingDelivery] = {}
            for i, item in checked.items():
                key = (item.model.lead_id, item.model.revision)
                if key in first:
                    continue  # answered below, from the first line
                known = self.known(item)
                if known is not None:
                    answers[i] = known
                    first[key] = i
                    continue
                sent = self._send(item.model)
                if isinstance(sent, Answer):
                    answers[i] = sent
                else:
                    sending[i] = sent
                first[key] = i
            for i, pending in sending.items():
                self._await(pending)
                answers[i] = self._settle(checked[i], pending, caller.system)
            for i, item in checked.items():
                if answers[i] is not None:
                    continue
                j = first[(item.model.lead_id, item.model.revision)]
                earlier = answers[j]
                assert earlier is not None
                if checked[j].digest != item.digest:
                    answers[i] = _error(409, "REVISION_CONFLICT",
                                        f"line {j + 1} has revision {item.model.revision} of {item.model.lead_id} "
                                        "with different content", lead_id=item.model.lead_id,
                                        revision=item.model.revision)
                else:
                    answers[i] = Answer(earlier.status, earlier.body, {"Idempotent-Replayed": "true"}
                                        if earlier.status == 201 else earlier.headers, earlier.lead_id,
                                        earlier.revision)
        return [a for a in answers if a is not None]

    # -- receipts -----------------------------------------------------------------------------------------

    def receipt(self, lead_id: str) -> Answer:
        lead_id = lead_id.strip()
        mine = self.ledger.revisions(lead_id)
        outcomes, case_id, by_source = self.receipts.of(lead_id)
        ours = [o for o in outcomes if o.status == "rejected" or o.province == self.config.province]
        if not mine and not any(o.status == "accepted" for o in ours):
            return _error(404, "NOT_FOUND", f"no lead {lead_id} of {self.config.signer} is known to this gateway",
                          lead_id=lead_id)
        latest: Outcome | None = None
        published = mine[-1] if mine else None
        if published is not None:
            latest = by_source.get((published.topic, published.partition, published.offset))
            if latest is None:  # dropped by intake as a redelivery of what was accepted before
                latest = next((o for o in reversed(ours) if o.status == "accepted"
                               and o.revision == published.revision and o.digest == published.digest), None)
        else:
            latest = ours[-1] if ours else None
        body: dict[str, Any] = {"lead_id": lead_id, "status": "pending", "revision": None, "case_id": None,
                                "reason": None, "field": None, "message": None, "warnings": [],
                                "published": _published(published) if published else None,
                                "history": [o.view() for o in ours]}
        if published is not None:
            body["revision"] = published.revision
        if latest is not None:
            body["status"] = latest.status
            if latest.status == "accepted":
                body.update(revision=latest.revision, case_id=case_id, warnings=list(latest.warnings))
            else:
                body.update(reason=latest.reason, field=latest.field, message=latest.message)
        return Answer(200, body, lead_id=lead_id)


def _unavailable(model: CaseLead, why: str) -> Answer:
    return _error(503, "BUS_UNAVAILABLE", f"the bus did not confirm lead {model.lead_id}; it was not published "
                                          f"(retry later: a repost is safe) — {why[:300]}",
                  headers={"Retry-After": "5"}, lead_id=model.lead_id, revision=model.revision)


# -- the web app -------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="a per-system API token (`leadbus gateway-token`); callers may "
                     "instead present a client certificate mapped to a system (`leadbus gateway-cert`)")


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _json(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(_error(413, "BODY_TOO_LARGE", f"the body is over {limit} bytes"))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(_error(413, "BODY_TOO_LARGE", f"the body is over {limit} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(422, "INVALID_LEAD", "the body is not JSON",
                      [FieldError("<lead>", "INVALID_JSON", str(exc)[:200])])


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no or unknown API token"},
    413: {"model": ErrorBody, "description": "the event would exceed 256 KiB, or the body is too large"},
    422: {"model": ErrorBody, "description": "invalid lead: field errors with the SDK's codes"},
    409: {"model": ErrorBody, "description": "REVISION_CONFLICT or STALE_REVISION"},
    429: {"model": ErrorBody, "description": "the calling system's rate is exceeded (Retry-After)"},
    503: {"model": ErrorBody, "description": "the bus did not confirm: nothing was published (Retry-After)"},
}


def create_app(gateway: Gateway) -> FastAPI:
    cfg = gateway.config

    app = FastAPI(
        title=f"leadbus agency gateway ({cfg.agency}, province {cfg.province})",
        version="1",
        description="Publish case leads (DESIGN §3 JSON) onto the leadbus bus, signed with the agency's key; "
                    "answers after the broker's confirmation; receipts by lead id.",
        lifespan=running(gateway.start, gateway.stop), docs_url="/docs", redoc_url=None,
    )
    app.state.gateway = gateway

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.monotonic()
        request.state.request_id = uuid.uuid4().hex
        request.state.caller = None
        request.state.lead = None
        presented = request.scope.get("state", {}).get(PEER_CERTIFICATE)
        response: Response | None = None
        try:
            response = await call_next(request)
            return response
        finally:
            caller: Caller | None = request.state.caller
            gateway.access.write({
                "request_id": request.state.request_id, "system": caller.system if caller else None,
                "principal": caller.principal if caller else None, "via": caller.via if caller else None,
                "certificate": certificate_fingerprint(presented) if presented else None,
                "remote": request.client.host if request.client else None, "method": request.method,
                "path": request.url.path, "status": response.status_code if response is not None else 500,
                "lead": request.state.lead, "ms": round((time.monotonic() - started) * 1000, 1),
            })

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return _json(exc.answer)

    def authenticate(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        if "authorization" in request.headers:  # a credential given is the one judged: no falling back
            caller = gateway.tokens.caller(credentials.credentials if credentials else None)
        else:
            caller = gateway.certificates.caller(request.scope.get("state", {}).get(PEER_CERTIFICATE))
        if caller is None:
            raise _Refused(_error(401, "UNAUTHENTICATED", "present a valid API token (Authorization: Bearer <token>) "
                                  "or a client certificate mapped to a system of this agency",
                                  headers={"WWW-Authenticate": "Bearer"}))
        request.state.caller = caller
        return caller

    def throttle(caller: Caller, cost: float = 1.0) -> None:
        wait = gateway.limiter.take(caller.system, cost)
        if wait > 0:
            raise _Refused(_error(429, "RATE_LIMITED", f"{caller.system} is over {cfg.rate:g} leads/s",
                                  headers={"Retry-After": str(max(1, int(wait + 0.999)))}))

    lead_schema = {"$ref": "#/components/schemas/CaseLead"}
    lead_body = {"required": True, "content": {"application/json": {"schema": lead_schema}}}

    @app.post("/v1/leads", status_code=201, response_model=Published201, responses=ERRORS,
              openapi_extra={"requestBody": lead_body}, summary="Publish one lead; answers after confirmation")
    async def post_lead(request: Request, caller: Caller = Depends(authenticate)) -> JSONResponse:
        throttle(caller)
        doc = _parse(await _read_body(request, MAX_BODY_BYTES))
        answer = doc if isinstance(doc, Answer) else await run_in_threadpool(gateway.submit, doc, caller)
        request.state.lead = {"lead_id": answer.lead_id, "revision": answer.revision}
        return _json(answer)

    batch_body = {"required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
    batch_doc: dict[int | str, dict[str, Any]] = {
        200: {"description": "one NDJSON line per input line: {line, status, body}",
              "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}

    @app.post("/v1/leads:batch", responses={**batch_doc, **{k: v for k, v in ERRORS.items() if k in (401, 413, 429)}},
              openapi_extra={"requestBody": batch_body}, response_class=Response,
              summary="Publish NDJSON leads; answers per line")
    async def post_batch(request: Request, caller: Caller = Depends(authenticate)) -> Response:
        raw = await _read_body(request, MAX_BATCH_BYTES)
        lines = [line for line in raw.split(b"\n") if line.strip()]
        if len(lines) > MAX_BATCH_LINES:
            raise _Refused(_error(413, "BODY_TOO_LARGE", f"a batch has at most {MAX_BATCH_LINES} lines"))
        throttle(caller, float(min(max(1, len(lines)), cfg.burst)))  # a big batch takes the whole burst
        answers: list[Answer | None] = []
        docs: list[Any] = []
        for line in lines:
            parsed = _parse(line) if len(line) <= MAX_BODY_BYTES else _error(
                413, "BODY_TOO_LARGE", f"the line is over {MAX_BODY_BYTES} bytes")
            answers.append(parsed if isinstance(parsed, Answer) else None)
            if not isinstance(parsed, Answer):
                docs.append(parsed)
        results = iter(await run_in_threadpool(gateway.submit_batch, docs, caller) if docs else [])
        out = []
        for number, answer in enumerate(answers, start=1):
            final = answer if answer is not None else next(results)
            out.append(json.dumps({"line": number, "status": final.status, "body": final.body},
                                  ensure_ascii=False, separators=(",", ":")))
        request.state.lead = {"lines": len(lines)}
        return Response("\n".join(out) + ("\n" if out else ""), media_type="application/x-ndjson")

    receipt_doc: dict[int | str, dict[str, Any]] = {
        **{k: ERRORS[k] for k in (401, 429)},
        404: {"model": ErrorBody, "description": "no such lead of this agency and province"}}

    @app.get("/v1/leads/{lead_id}", response_model=Receipt, responses=receipt_doc,
        summary="Receipt: accepted (with case id), rejected (reason) or pending")
    async def get_receipt(request: Request, lead_id: str = PathParam(..., min_length=1, max_length=100),
                          caller: Caller = Depends(authenticate)) -> JSONResponse:
        throttle(caller, 0.1)
        answer = await run_in_threadpool(gateway.receipt, lead_id)
        request.state.lead = {"lead_id": lead_id}
        return _json(answer)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        body = {"agency": cfg.agency, "province": cfg.province, "signer": cfg.signer,
                "receipts_caught_up": gateway.receipts.caught_up.is_set(),
                "receipts_error": gateway.receipts.last_error}
        return JSONResponse(body)

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base_openapi()
            lead = CaseLead.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(lead.pop("$defs", {}))
            components["CaseLead"] = lead
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def openapi_document(agency: str = "SAMR", province: str = "33") -> dict[str, Any]:
    """The OpenAPI document (committed as docs/gateway-openapi.json), without starting anything."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config = GatewayConfig(agency, province, tokens=Path(tmp) / "tokens.json", state_dir=Path(tmp))
        gateway = Gateway(config, KafkaSettings("127.0.0.1:9"))
        try:
            return create_app(gateway).openapi()
        finally:
            gateway.ledger.close()
            gateway.access.close()
