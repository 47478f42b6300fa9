"""One joint operation's view (集群战役): its name, lead, members, target cases — for its members only.

    create_app(settings, operation_id) -> FastAPI    what `leadbus operation-view` serves

The view reads `leadbus.operation.<id>` with the settings of the member principal it runs as
(`operation-<member>`): the broker decides who reads, so a view run by a non-member, or by a member after
the operation closed, gets nothing and says so (HTTP 403). Cases are shown as a regional dashboard shows
them (`routing.bulletin`: personal data masked); the latest (case id, version) wins, since the controller
delivers at least once.

Routes: `/` (the page, refreshed every three seconds), `/api/state`, `/healthz`.
"""

from __future__ import annotations

import html
import logging
import threading
import uuid
from typing import Any

import uvicorn
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from leadbus.avro import DecodeError, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.operations import Operation, decide, operation_topic
from leadbus.processors.core.routing import bulletin
from leadbus.web import running

log = logging.getLogger("leadbus.sinks.operation_view")


class OperationBoard:
    def __init__(self, kafka: KafkaSettings, operation_id: str, member: str) -> None:
        self.kafka, self.operation_id, self.member = kafka, operation_id, member
        self.topic = operation_topic(operation_id)
        self.catalog = packaged_catalog()
        self.lock = threading.Lock()
        self.operation: Operation | None = None
        self.cases: dict[str, dict[str, Any]] = {}
        self.refused: str | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def state(self) -> dict[str, Any]:
        with self.lock:
            op = self.operation
            return {"operation_id": self.operation_id, "refused": self.refused,
                    "operation": op.to_json() if op else None,
                    "cases": [self.cases[c] for c in sorted(self.cases)]}

    def handle(self, value: bytes) -> None:
        try:
            writer, record = decode(self.catalog, value)
        except DecodeError as exc:
            log.error("undecodable record on %s: %s", self.topic, exc)
            return
        with self.lock:
            if writer.name == "cn.leadbus.OperationDecision":
                outcome = decide(self.operation, record)
                if isinstance(outcome, Operation):
                    self.operation = outcome
            elif writer.name == "cn.leadbus.CaseUpdated":
                shown = bulletin(record, self.operation_id)
                known = self.cases.get(shown["case_id"])
                if known is None or known["version"] <= shown["version"]:
                    self.cases[shown["case_id"]] = {**shown, "first_reported_at": str(shown["first_reported_at"]),
                                                    "last_reported_at": str(shown["last_reported_at"])}

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="operation-reader", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except Exception as exc:  # noqa: BLE001 - broker gone …: retry, never die
                log.warning("operation reader failed (%s: %s); retrying", type(exc).__name__, exc)
                self.stopping.wait(2.0)

    def _read(self) -> None:
        # subscribed, in a group the member's grant names: a refusal of the topic comes back as an error
        consumer = self.kafka.consumer(f"leadbus-operation-{self.operation_id}-{self.member}-{uuid.uuid4()}",
                                       **{"auto.offset.reset": "earliest", "error_cb": self._client_error})
        try:
            consumer.subscribe([self.topic], on_assign=lambda c, parts: c.assign(
                [TopicPartition(p.topic, p.partition, OFFSET_BEGINNING) for p in parts]))
            while not self.stopping.is_set():
                for msg in consumer.consume(500, 0.5):
                    error = msg.error()
                    if error is not None:
                        if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                            KafkaError.GROUP_AUTHORIZATION_FAILED):
                            with self.lock:
                                self.refused = error.name()
                                self.operation, self.cases = None, {}
                        continue
                    with self.lock:
                        self.refused = None
                    self.handle(msg.value() or b"")
        finally:
            consumer.close()


    def _client_error(self, error: KafkaError) -> None:
        """A principal removed with its operation no longer authenticates: the view shows nothing from then on."""
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            with self.lock:
                self.refused = error.name()
                self.operation, self.cases = None, {}


def _page(state: dict[str, Any]) -> str:
    e = html.escape
    op = state["operation"] or {}
    rows = "".join(
        f"<tr data-case='{e(c['case_id'])}'><td>{e(c['case_id'])}</td><td>{e(str(c['suspect_name']))}</td>"
        f"<td>{e(', '.join(c['categories']))}</td><td>{e(str(c.get('suspect_province') or ''))}</td>"
        f"<td>{c['version']}</td></tr>" for c in state["cases"])
    members = ", ".join([op.get("lead_agency", ""), *op.get("member_agencies", []), *op.get("member_provinces", [])])
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>集群战役 {e(state['operation_id'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1 id="name">{e(op.get('name', ''))}</h1>
<p id="meta">行动 {e(state['operation_id'])} · 状态 {e(op.get('status', ''))} · 牵头 {e(op.get('lead_agency', ''))}
 · 成员 <span id="members">{e(members)}</span> · {e(op.get('starts_at', ''))} — {e(op.get('ends_at', ''))}</p>
<p>目标案件 {len(op.get('targets', []))} 件</p>
<table id="cases"><tr><th>案件</th><th>当事人</th><th>品类</th><th>省份</th><th>版本</th></tr>{rows}</table>
</body></html>"""


def create_app(kafka: str | KafkaSettings, operation_id: str, member: str) -> FastAPI:
    board = OperationBoard(settings_for(kafka), operation_id, member)

    app = FastAPI(title=f"leadbus operation {operation_id}", lifespan=running(board.start, board.stop),
                  docs_url=None, redoc_url=None, openapi_url=None)
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'", "Cache-Control": "no-store"}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        state = board.state()
        if state["refused"]:
            return HTMLResponse("<!doctype html><title>refused</title><p>无权查看此行动 (refused by the broker)</p>",
                                status_code=403, headers=headers)
        return HTMLResponse(_page(state), headers=headers)

    @app.get("/api/state")
    def api() -> JSONResponse:
        state = board.state()
        return JSONResponse(state, status_code=403 if state["refused"] else 200, headers=headers)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        alive = board.thread is not None and board.thread.is_alive()
        return JSONResponse({"ok": alive}, status_code=200 if alive else 503)

    return app


def run(kafka: KafkaSettings, operation_id: str, member: str, host: str = "127.0.0.1", port: int = 8095) -> None:
    uvicorn.run(create_app(kafka, operation_id, member), host=host, port=port, timeout_graceful_shutdown=2,
                log_level="info")
