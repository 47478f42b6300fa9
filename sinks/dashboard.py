"""The regional dashboard: one web page per region (京津冀, 长三角, 泛珠三角), live over Server-Sent Events.

    create_app(bootstrap, region) -> FastAPI      what `leadbus dashboard --region yrd` serves
    run(bootstrap, region, host, port)            the same under uvicorn, with a short graceful shutdown

A background thread reads, from the beginning and without joining a consumer group, only
`leadbus.region.<region>`: masked `RegionalBulletin`s, `CaseWithdrawn`s and the `HandoverStep`s of the
region's cases (without free text), all written by the routing stage — so the dashboard's principal
reads one topic and no other region's data ever reaches it. `RegionBoard` keeps, behind one lock, the
latest bulletin of each case (a case merged into another, or withdrawn from the region by a
`CaseWithdrawn`, is dropped — with its handover row and search entries — at once) and a handover row for
each case seen in this region's bulletins; a step that arrives before its case's bulletin is parked out
of sight until the bulletin comes.

Only masked bulletin fields are held or sent: a whitelist projection of the bulletin, and of a
step only its phase, deadline and escalation (no free-text reasons or assessment, which agencies
write). As a second line of defence, an identifier of a personal kind (ID number, phone, account)
that arrives without a mask, or any text with an ID- or card-length run of digits, is withheld and
counted in `/metrics`; public enterprise identifiers (统一社会信用代码, ICP filing numbers) are shown.

Routes: `/` (the page, Chinese by default, `?lang=en` for English), `/api/state`, `/api/search?q=`,
`/events` (SSE: a `snapshot`, then `bulletin` / `removed` / `handover` events), `/metrics`, `/healthz`.

Suggested links (issue #19): the reader also reads `leadbus.review.<region>` (`LinkSuggested` events the
suggesting stage wrote for pairs of cases involving the region) and keeps the open ones — a pair leaves with the
`LinkDecided` linking writes there once a confirm or reject of it is carried out, so a restarted dashboard, which
rebuilds its board from the topic, does not show decided pairs again; `/api/suggestions`
serves them to a signed-in *supervisor* of the region only (never to viewers, never on the shared event
stream), a person's name masked to its surname and an IP address to its network. With a `LinkDesk`
(sinks/link_desk.py: the agency office's signing key) such a supervisor also decides: ``POST
/api/suggestions/{id}/decision`` ``{"action": "CONFIRM" | "REJECT", "reason": …}`` on a suggestion open here, and
``POST /api/cases/{id}/split`` ``{"lead_ids": […], "reason": …}`` on a case shown here (a v3 bulletin names its
leads; the signed-in case view shows them). Each publishes a signed `LinkDecision` by that supervisor and answers
202 once the broker confirmed it; viewers, users of another agency and requests without sign-in get 403 (another
region's users 403 from the sign-in), and every attempt is written to the access log (who, when, what, why,
outcome). The merge or split itself reaches the page as routing's bulletins and withdrawals, like any change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client import Counter as PromCounter

from leadbus.agencies import CATEGORIES
from leadbus.avro import DecodeError, SchemaCatalog, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.geography import PROVINCES, REGIONS
from leadbus.processors.core.review import split_refusal
from leadbus.readers import FollowingReader
from leadbus.sinks.dashboard_auth import SignIn
from leadbus.sinks.dashboard_state import Event, RegionBoard, SuggestionBoard, case_view, step_view, suggestion_view
from leadbus.sinks.link_desk import DeskRefusal, LinkDesk
from leadbus.topics import region_topic, review_topic

log = logging.getLogger("leadbus.sinks.dashboard")

BULLETIN, STEP, WITHDRAWN = "cn.leadbus.RegionalBulletin", "cn.leadbus.HandoverStep", "cn.leadbus.CaseWithdrawn"
SUGGESTED, DECIDED = "cn.leadbus.LinkSuggested", "cn.leadbus.LinkDecided"
SNAPSHOT_SUGGESTIONS = 500
SNAPSHOT_CASES = 500  # the newest cases in a snapshot; counts always cover every case
SNAPSHOT_BOARD = 500
SSE_QUEUE = 1000  # events buffered per client; a client that falls further behind is disconnected
SSE_KEEPALIVE = 15.0
MAX_DECISION_BODY = 200_000  # a split names at most 1,000 lead ids
MAX_LOGGED_REASON = 2000

CATEGORY_EN: Mapping[str, str] = {
    "AGRI_INPUTS": "Agricultural inputs", "FOOD": "Food", "DRUGS": "Drugs", "COSMETICS": "Cosmetics",
    "MEDICAL_DEVICES": "Medical devices", "ELECTRONICS": "Electrical & electronics", "AUTO_PARTS": "Auto parts",
    "BUILDING_MATERIALS": "Building materials", "HAZARDOUS_CHEMICALS": "Explosive precursor chemicals",
    "CHILDREN_PRODUCTS": "Children's products", "APPAREL_FOOTWEAR": "Apparel & footwear",
    "LITERATURE": "Online literature", "MUSIC": "Music", "FILM_TV": "Film & TV", "GAMES": "Games",
    "ANIMATION": "Animation", "SOFTWARE": "Software", "STANDARDS": "Standards",
    "PATENTED_PRODUCTS": "Patented products", "OTHER": "Other",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- metrics ---------------------------------------------------------------------------------------

class Metrics:
    def __init__(self, region: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str) -> Any:
            return PromCounter(name, doc, ["region"], registry=r).labels(region)

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, ["region"], registry=r).labels(region)

        self.bulletins = counter("leadbus_dashboard_bulletins", "RegionalBulletin events received")
        self.steps = counter("leadbus_dashboard_handover_steps", "HandoverStep events received (this region's topic)")
        self.steps_shown = counter("leadbus_dashboard_handover_steps_shown", "HandoverStep events of this region")
        self.undecodable = counter("leadbus_dashboard_undecodable", "events that could not be decoded")
        self.withdrawals = counter("leadbus_dashboard_withdrawals", "CaseWithdrawn events received")
        self.foreign = counter("leadbus_dashboard_foreign_bulletins", "bulletins naming another region, ignored")
        self.withheld = counter("leadbus_dashboard_withheld_values", "personal data that arrived unmasked, withheld")
        self.sse_events = counter("leadbus_dashboard_sse_events", "events pushed to SSE clients")
        self.sse_dropped = counter("leadbus_dashboard_sse_dropped_clients", "SSE clients dropped as too slow")
        self.sse_clients = gauge("leadbus_dashboard_sse_clients", "connected SSE clients")
        self.cases = gauge("leadbus_dashboard_cases", "cases shown")
        self.board = gauge("leadbus_dashboard_handover_cases", "cases on the handover board")
        self.overdue = gauge("leadbus_dashboard_overdue", "cases with an overdue handover step")
        self.caught_up = gauge("leadbus_dashboard_caught_up", "1 once the topics were read to their end at start")


# -- SSE fan-out -------------------------------------------------------------------------------------

class Hub:
    """Pushes frames from the reader thread to every SSE client's queue, on the event loop.

    Frames wait in `pending` until the loop takes them all: one wake-up of the loop per batch the reader handles,
    not one per frame (each `call_soon_threadsafe` writes to the loop's self-pipe and wakes its selector).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: dict[asyncio.Queue[str | None], int] = {}  # queue → seq of its snapshot
        self.pending: list[tuple[int, str]] = []
        self.scheduled = False
        self.pending_lock = threading.Lock()

    def publish(self, seq: int, frame: str) -> None:  # any thread
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with self.pending_lock:
            self.pending.append((seq, frame))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is shutting down
            with self.pending_lock:
                self.pending.clear()
                self.scheduled = False

    def _drain(self) -> None:  # on the loop: every frame published since the last drain, in order
        with self.pending_lock:
            frames, self.pending, self.scheduled = self.pending, [], False
        for seq, frame in frames:
            self._fanout(seq, frame)

    def _fanout(self, seq: int, frame: str) -> None:  # on the loop
        for queue, since in list(self.clients.items()):
            if seq <= since:
                continue  # already in that client's snapshot
            try:
                queue.put_nowait(frame)
                self.metrics.sse_events.inc()
            except asyncio.QueueFull:
                self.metrics.sse_dropped.inc()
                self.drop(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    def add(self, queue: asyncio.Queue[str | None], since: int) -> None:
        self.clients[queue] = since
        self.metrics.sse_clients.set(len(self.clients))

    def drop(self, queue: asyncio.Queue[str | None]) -> None:
        self.clients.pop(queue, None)
        self.metrics.sse_clients.set(len(self.clients))


def sse_frame(kind: str, seq: int, data: Mapping[str, Any]) -> str:
    body = json.dumps({"seq": seq, **data}, ensure_ascii=False, separators=(",", ":"))
    return f"id: {seq}\nevent: {kind}\ndata: {body}\n\n"


# -- the dashboard: state + reader thread ------------------------------------------------------------

class Dashboard(FollowingReader):
    def __init__(self, bootstrap: str | KafkaSettings, region: str, catalog: SchemaCatalog | None = None) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; one of {', '.join(REGIONS)}")
        super().__init__(settings_for(bootstrap), f"dashboard-{region}")
        self.region, self.topic = region, region_topic(region)
        self.bootstrap = self.kafka.bootstrap
        self.catalog = catalog or packaged_catalog()
        self.lock = threading.Lock()
        self.state = RegionBoard(region)
        self.review = review_topic(region)
        self.topics = (self.topic, self.review)
        self.optional_topics = frozenset({self.review})  # a bus not yet given review topics: no suggestions
        # never joined (assigned); the prefix is what the dashboard principal's ACL grants
        self.group_prefix = f"leadbus-dashboard-{region}-"
        self.suggestions = SuggestionBoard()
        self.lead_ids: dict[str, tuple[int, list[str]]] = {}  # case id → (version, its leads): v3 bulletins, for splits
        self.seq = 0
        self.metrics = Metrics(region)
        self.hub = Hub(self.metrics)

    # state, under the lock -------------------------------------------------------------------

    def _push(self, events: Iterable[Event]) -> None:
        for kind, data in events:  # called with the lock held: frames leave in seq order
            self.seq += 1
            self.hub.publish(self.seq, sse_frame(kind, self.seq, data))

    def refresh_gauges(self) -> None:
        """On each `/metrics` scrape (under the lock), not on each event: the overdue count walks the whole board,
        and doing it per event made the reader's cost grow with the board (bench/latency.py)."""
        now = _now_ms()
        self.metrics.cases.set(len(self.state.cases))
        self.metrics.board.set(len(self.state.board))
        self.metrics.overdue.set(sum(row.overdue(now) for row in self.state.board.values()))

    def handle(self, topic: str, value: bytes) -> None:
        try:
            writer, record = decode(self.catalog, value)
        except DecodeError as exc:
            self.metrics.undecodable.inc()
            log.error("undecodable event on %s: %s", topic, exc)
            return
        if topic == self.topic and writer.name == BULLETIN:
            self.metrics.bulletins.inc()
            if record["region"] != self.region:
                self.metrics.foreign.inc()
                log.error("bulletin of %s for region %s on %s; ignored", record["case_id"], record["region"], topic)
                return
            view = case_view(record, self.metrics.withheld.inc)
            with self.lock:
                self._push(self.state.bulletin(record, view, _now_ms()))
                known = self.lead_ids.get(view["case_id"])
                if record.get("merged_into"):
                    self.lead_ids.pop(view["case_id"], None)
                elif known is None or known[0] <= view["version"]:
                    self.lead_ids[view["case_id"]] = (view["version"], [str(i) for i in record.get("lead_ids") or ()])
        elif topic == self.topic and writer.name == WITHDRAWN:
            self.metrics.withdrawals.inc()
            if record["recipient"] != self.region:
                self.metrics.foreign.inc()
                log.error("withdrawal of %s for %s on %s; ignored", record["case_id"], record["recipient"], topic)
                return
            with self.lock:
                self._push(self.state.withdraw(str(record["case_id"]), int(record["version"]),
                                               record.get("merged_into")))
                self.suggestions.drop_case(str(record["case_id"]))
                if record.get("merged_into") or self.lead_ids.get(str(record["case_id"]), (0,))[0] <= record["version"]:
                    self.lead_ids.pop(str(record["case_id"]), None)
        elif topic == self.review and writer.name == SUGGESTED:
            if self.region not in record["regions"]:
                self.metrics.foreign.inc()
                log.error("suggestion %s for %s on %s; ignored", record["suggestion_id"], record["regions"], topic)
                return
            with self.lock:
                self.suggestions.add(suggestion_view(record))
        elif topic == self.review and writer.name == DECIDED:
            with self.lock:  # confirmed or rejected: closed for good (a rebuilt board never shows it again)
                self.suggestions.decided(str(record["case_a"]), str(record["case_b"]))
        elif topic == self.topic and writer.name == STEP:
            self.metrics.steps.inc()
            step = step_view(record)
            with self.lock:
                events = self.state.step(str(record["case_id"]), step, _now_ms())
                self._push(events)
            self.metrics.steps_shown.inc(len(events))
        else:
            self.metrics.undecodable.inc()
            log.error("unexpected %s on %s; ignored", writer.name, topic)

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            return self.seq, {
                "region": self.region,
                "cases": self.state.newest(SNAPSHOT_CASES),
                "counts": self.state.counts(),
                "handover": self.state.board_rows(SNAPSHOT_BOARD, _now_ms()),
                "caught_up": self.caught_up.is_set(),
            }

    def case(self, case_id: str) -> dict[str, Any] | None:
        """One case as shown (masked), for the signed-in case view."""
        with self.lock:
            found = self.state.cases.get(case_id)
            if found is None:
                return None
            return {**found, "lead_ids": list(self.lead_ids.get(case_id, (0, []))[1])}

    def take_suggestion(self, suggestion_id: str) -> dict[str, Any] | None:
        """Take an open suggestion of this region off the board while a supervisor's decision on it is published (so
        that two clicks, or two supervisors, never publish two decisions on one pair); None when not open here."""
        with self.lock:
            for pair, view in self.suggestions.pairs.items():
                if view["suggestion_id"] == suggestion_id:
                    del self.suggestions.pairs[pair]
                    return dict(view)
            return None

    def give_back_suggestion(self, view: dict[str, Any]) -> None:
        """The decision was not published: the suggestion is open again (unless a newer one for the pair came)."""
        with self.lock:
            self.suggestions.pairs.setdefault((view["case_a"], view["case_b"]), view)

    def suggested(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.suggestions.rows(SNAPSHOT_SUGGESTIONS)

    def search(self, query: str) -> list[dict[str, Any]]:
        with self.lock:
            hits: list[dict[str, Any]] = self.state.search(query)
        return hits

    # the reader thread (leadbus/readers.py) ---------------------------------------------------

    def unusable(self, topic: str, partition: int, offset: int, exc: Exception) -> None:
        self.metrics.undecodable.inc()  # a record that decodes but does not fit
        super().unusable(topic, partition, offset, exc)

    def on_caught_up(self) -> None:
        self.metrics.caught_up.set(1)
        log.info("dashboard %s caught up with %s", self.region, self.topic)


# -- the web app ---------------------------------------------------------------------------------

def _page_config(region: str) -> dict[str, Any]:
    r = REGIONS[region]
    return {
        "region": region,
        "region_name": {"zh": r.name_zh, "en": r.name_en},
        "members": sorted(r.members),
        "regions": {code: {"zh": reg.name_zh, "en": reg.name_en} for code, reg in REGIONS.items()},
        "provinces": {code: {"zh": p.name_zh, "en": p.name_en} for code, p in PROVINCES.items()},
        "categories": {code: {"zh": zh, "en": CATEGORY_EN.get(code, code.replace("_", " ").title())}
                       for code, zh in CATEGORIES.items()},
    }


def render_page(region: str, lang: str, nonce: str, supervisor: bool = False, signed_in: bool = False) -> str:
    """The page; ``supervisor``: the signed-in user reviews suggested links (the page asks for them and shows the
    decision controls; the APIs check again on every request); ``signed_in``: case pages exist."""
    template = resources.files("leadbus.sinks").joinpath("dashboard_page.html").read_text("utf-8")
    config = json.dumps({**_page_config(region), "lang": lang, "supervisor": supervisor,
                         "signed_in": signed_in},
                        ensure_ascii=False).replace("</", "<\\/")
    return (template.replace("__NONCE__", nonce).replace("__LANG__", "zh-CN" if lang == "zh" else "en")
            .replace("/*__CONFIG__*/null", config))


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def create_app(bootstrap: str | KafkaSettings, region: str, sign_in: SignIn | None = None,
               desk: LinkDesk | None = None) -> FastAPI:
    """The dashboard of one region; its Kafka reader runs while the app is served.

    With `sign_in` (sinks/dashboard_auth.py) every page, API and event stream needs a signed-in user of this
    region, and every view and search is logged; `leadbus dashboard` always gives one. With `desk` (and `sign_in`)
    the region's supervisors confirm, reject and split links.
    """
    dash = Dashboard(bootstrap, region)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        dash.hub.loop = asyncio.get_running_loop()
        dash.start()
        try:
            yield
        finally:
            dash.hub.loop = None
            await asyncio.to_thread(dash.stop)
            if desk is not None:
                await asyncio.to_thread(desk.close)

    app = FastAPI(title=f"leadbus dashboard — {REGIONS[region].name_en}", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dash

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, lang: str = Query("zh")) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
               "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        user = request.scope.get("state", {}).get("user")
        html = render_page(region, "en" if lang == "en" else "zh", nonce,
                           supervisor=user is not None and user.role == "supervisor", signed_in=user is not None)
        return HTMLResponse(html, headers={**_NO_STORE, "Content-Security-Policy": csp})

    @app.get("/api/state")
    def state() -> JSONResponse:
        seq, snap = dash.snapshot()
        return JSONResponse({"seq": seq, **snap}, headers=_NO_STORE)

    @app.get("/api/search")
    def search(q: str = Query("", max_length=100)) -> JSONResponse:
        hits = dash.search(q)
        return JSONResponse({"count": len(hits), "results": hits}, headers=_NO_STORE)  # q is not echoed

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        queue: asyncio.Queue[str | None] = asyncio.Queue(SSE_QUEUE)
        seq, snap = dash.snapshot()  # taken and registered in one step of the loop: no event is lost
        dash.hub.add(queue, seq)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n" + sse_frame("snapshot", seq, snap)
                while not await request.is_disconnected():
                    try:
                        frame = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if frame is None:
                        break  # too slow: the browser reconnects and gets a fresh snapshot
                    yield frame
            finally:
                dash.hub.drop(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={**_NO_STORE, "X-Accel-Buffering": "no"})

    @app.get("/api/suggestions")
    def suggestions(request: Request) -> JSONResponse:
        user = request.scope.get("state", {}).get("user")
        if user is None or user.role != "supervisor":  # without sign-in nobody is a supervisor
            return JSONResponse({"error": "FORBIDDEN", "message": "suggested links: supervisors only"},
                                status_code=403, headers=_NO_STORE)
        rows = dash.suggested()
        return JSONResponse({"count": len(rows), "suggestions": rows}, headers=_NO_STORE)

    def _decide(request: Request, body: Any, what: dict[str, Any], act: Any) -> JSONResponse:
        """Check the user, publish through the desk, log the attempt (who, when, what, why, outcome)."""
        user = request.scope.get("state", {}).get("user")
        reason = body.get("reason") if isinstance(body, dict) else None
        entry: dict[str, Any] = {"action": "link_decision", "region": region, **what,
                                 "user": getattr(user, "username", None), "role": getattr(user, "role", None),
                                 "reason": reason[:MAX_LOGGED_REASON] if isinstance(reason, str) else None}
        try:
            if user is None:  # without sign-in nobody decides
                raise DeskRefusal(403, "FORBIDDEN", "link decisions: signed-in supervisors only")
            if desk is None:
                if user.role != "supervisor":
                    raise DeskRefusal(403, "FORBIDDEN", "link decisions: supervisors only")
                raise DeskRefusal(503, "DECISIONS_DISABLED", "this dashboard holds no agency key for link decisions "
                                                             "(leadbus dashboard --link-key)")
            refusal = desk.refusal(user.username, user.role, user.agencies)
            if refusal is not None:
                raise refusal
            if not isinstance(body, dict):
                raise DeskRefusal(400, "INVALID_DECISION", "a JSON object is expected")
            decision = act(user.username, body)
        except DeskRefusal as exc:
            if sign_in is not None:
                sign_in.access.write({**entry, "result": exc.code, "status": exc.status})
            return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=_NO_STORE)
        if sign_in is not None:
            sign_in.access.write({**entry, "result": "published", "status": 202, "decision": decision.action,
                                  "decision_id": decision.decision_id, "case_a": decision.case_a,
                                  "case_b": decision.case_b, "lead_ids": decision.lead_ids,
                                  "publisher": f"{decision.analyst.agency}.{decision.analyst.province}"})
        return JSONResponse({"decision_id": decision.decision_id, "action": decision.action, "case_a": decision.case_a,
                             "case_b": decision.case_b, "lead_ids": decision.lead_ids}, status_code=202,
                            headers=_NO_STORE)

    async def _json(request: Request) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None  # a form post from another site cannot send JSON without a preflight
        raw = await request.body()
        if len(raw) > MAX_DECISION_BODY:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    @app.post("/api/suggestions/{suggestion_id}/decision")
    async def decide_suggestion(suggestion_id: str, request: Request) -> JSONResponse:
        body = await _json(request)

        def act(username: str, doc: dict[str, Any]) -> Any:
            action = doc.get("action")
            if action not in ("CONFIRM", "REJECT"):
                raise DeskRefusal(400, "INVALID_DECISION", "action: CONFIRM or REJECT")
            assert desk is not None
            open_one = dash.take_suggestion(suggestion_id)
            if open_one is None:
                raise DeskRefusal(404, "NOT_FOUND", "no such open suggestion on this region's dashboard (or decided "
                                                    "already)")
            try:
                return desk.decide(username, action, open_one["case_a"], case_b=open_one["case_b"],
                                   suggestion_id=suggestion_id, reason=doc.get("reason"))
            except DeskRefusal:
                dash.give_back_suggestion(open_one)
                raise

        return await asyncio.to_thread(_decide, request, body, {"what": "suggestion",
                                                                "suggestion_id": suggestion_id[:64]}, act)

    @app.post("/api/cases/{case_id}/split")
    async def split_case(case_id: str, request: Request) -> JSONResponse:
        body = await _json(request)

        def act(username: str, doc: dict[str, Any]) -> Any:
            lead_ids = doc.get("lead_ids")
            if not isinstance(lead_ids, list) or not lead_ids or not all(isinstance(i, str) for i in lead_ids):
                raise DeskRefusal(400, "INVALID_DECISION", "lead_ids: the leads that leave the case (a list of ids)")
            shown = dash.case(case_id)
            if shown is None:
                raise DeskRefusal(404, "NOT_FOUND", "no such case on this region's dashboard")
            assert desk is not None
            decision = desk.build(username, "SPLIT", case_id, lead_ids=lead_ids, reason=doc.get("reason"))
            refusal = split_refusal(case_id, shown["lead_ids"], decision.lead_ids)  # what linking would refuse
            if refusal is not None:
                raise DeskRefusal(400, refusal[0], refusal[1][:300])
            return desk.publish(decision)

        return await asyncio.to_thread(_decide, request, body, {"what": "split", "case_id": case_id[:64]}, act)

    @app.get("/metrics")
    def metrics() -> Response:
        with dash.lock:
            dash.refresh_gauges()
        return Response(generate_latest(dash.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        ok = dash.alive()
        body = {"status": "ok" if ok else "down", "region": region, "reader": ok, "caught_up": dash.caught_up.is_set(),
                "error": dash.last_error}
        return JSONResponse(body, status_code=200 if ok else 503, headers=_NO_STORE)

    if sign_in is not None:
        sign_in.install(app, dash.case)
    return app


def run(bootstrap: str | KafkaSettings, region: str, host: str = "127.0.0.1", port: int = 8080,
        sign_in: SignIn | None = None, desk: LinkDesk | None = None, **server: Any) -> None:
    """Serve one region's dashboard (SSE streams never end by themselves, hence the short shutdown)."""
    uvicorn.run(create_app(bootstrap, region, sign_in, desk), host=host, port=port, timeout_graceful_shutdown=2,
                log_level="info", **server)
