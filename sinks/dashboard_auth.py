"""Sign-in for the regional dashboards: users from one file, argon2 passwords, signed secure cookies,
one region per user, and an access log of every view and search (who, when, what) for PIPL accountability.

    sign_in = SignIn(users_file, region="yrd", access_log=Path("var/dashboard/yrd/access.jsonl"))
    app = create_app(bootstrap, "yrd", sign_in=sign_in)     # sinks/dashboard.py calls sign_in.install(app)

The users file (YAML, 0600; `leadbus dashboard-user` writes it):

    users:
      - username: li.na
        password: "$argon2id$v=19$m=65536,t=3,p=4$…"   # argon2id, never the password
        region: yrd                                     # jjj | yrd | pprd: the only dashboard it may open
        agencies: [SAMR, MPS]                           # the agencies the user works for ("*": all)
        role: viewer                                    # viewer | supervisor (supervisors also read the access log
                                                        # and decide suggested links: sinks/link_desk.py)

Every route but `/signin`, `/healthz` and `/metrics` (counts only, for the scraper) needs a session: a page
request without one is sent to `/signin`, an API or event-stream request gets 401. A user of another region
gets 403 on every page, API and event stream, before any case data is read. The file is re-read when it
changes: a removed user, or one moved to another region, loses access at the next request. Sessions are an
HMAC-signed cookie (`HttpOnly; Secure; SameSite=Strict`, 8 hours) keyed by `$LEADBUS_DASHBOARD_SECRET` or a
random secret per process. Browsers accept `Secure` cookies from http://127.0.0.1 and localhost; anywhere
else serve the dashboard over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from leadbus.access_log import AccessLog, read_access_log
from leadbus.geography import REGIONS

COOKIE = "leadbus_session"
SECRET_ENV = "LEADBUS_DASHBOARD_SECRET"
SESSION_SECONDS = 8 * 3600
ROLES = ("viewer", "supervisor")
OPEN_PATHS = frozenset({"/signin", "/signout", "/healthz", "/metrics", "/favicon.ico"})
MAX_FAILURES, FAILURE_WINDOW = 5, 300.0  # per user name: then refused for the rest of the window

_hasher = PasswordHasher()
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))  # unknown users cost one verification too

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class User:
    username: str
    password: str
    region: str
    agencies: tuple[str, ...]
    role: str


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _parse_users(doc: Any, path: Path) -> dict[str, User]:
    users: dict[str, User] = {}
    for entry in (doc or {}).get("users") or []:
        user = User(str(entry["username"]), str(entry["password"]), str(entry["region"]),
                    tuple(str(a) for a in entry.get("agencies") or ("*",)), str(entry.get("role", "viewer")))
        if user.region not in REGIONS or user.role not in ROLES or not user.password.startswith("$argon2"):
            raise ValueError(f"{path}: user {user.username}: region in {sorted(REGIONS)}, role in {ROLES}, "
                             "password an argon2 hash")
        users[user.username] = user
    return users


def add_user(path: Path, username: str, password: str, region: str, role: str = "viewer",
             agencies: list[str] | None = None) -> User:
    """Add or replace a user in the users file (written 0600), storing only the argon2 hash of the password."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    entries = [e for e in (doc or {}).get("users") or [] if e.get("username") != username]
    entry = {"username": username, "password": hash_password(password), "region": region,
             "agencies": agencies or ["*"], "role": role}
    _parse_users({"users": [entry]}, path)
    entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump({"users": entries}, out, allow_unicode=True, sort_keys=False)
    os.replace(tmp, path)
    return _parse_users({"users": [entry]}, path)[username]


class Users:
    """The users file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self.get("")  # a broken file fails at start, not at the first sign-in

    def get(self, username: str) -> User | None:
        with self._lock:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._users = _parse_users(yaml.safe_load(self.path.read_text(encoding="utf-8")), self.path)
                self._stamp = stamp
            return self._users.get(username)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignIn:
    def __init__(self, users: Path, region: str, access_log: Path | None = None, secret: bytes | None = None,
                 session_seconds: int = SESSION_SECONDS) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}")
        self.users = Users(users)
        self.region = region
        self.access = AccessLog(access_log, f"leadbus.sinks.dashboard.access.{region}")
        self.access_path = access_log
        env = os.environ.get(SECRET_ENV)
        self.secret = secret or (env.encode() if env else secrets.token_bytes(32))
        self.session_seconds = session_seconds
        self._failures: dict[str, list[float]] = {}
        self._failures_lock = threading.Lock()

    # -- sessions ---------------------------------------------------------------------------------

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.secret, payload, hashlib.sha256).digest())

    def issue(self, user: User) -> str:
        now = int(time.time())
        payload = json.dumps({"u": user.username, "r": user.region, "iat": now, "exp": now + self.session_seconds,
                              "sid": secrets.token_hex(8)}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def session(self, cookie: str | None) -> tuple[User, str] | None:
        """The signed-in user (as the users file says now) and the session id, or None."""
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        claims = json.loads(payload)
        if claims.get("exp", 0) < time.time():
            return None
        user = self.users.get(str(claims.get("u")))
        return (user, str(claims.get("sid"))) if user is not None else None

    def verify(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        try:
            _hasher.verify(user.password if user else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    def _locked_out(self, username: str, failed: bool = False) -> bool:
        now = time.monotonic()
        with self._failures_lock:
            recent = [t for t in self._failures.get(username, []) if now - t < FAILURE_WINDOW]
            if failed:
                recent.append(now)
            self._failures[username] = recent
            return len(recent) >= MAX_FAILURES

    # -- the app ----------------------------------------------------------------------------------

    def install(self, app: FastAPI, view_case: Callable[[str], dict[str, Any] | None] | None = None) -> None:
        """Guard every route of `app` and add /signin, /signout, /api/cases/{id} and /api/access-log."""
        region = self.region

        @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
        def signin_page(lang: str = "zh") -> HTMLResponse:
            return _signin_page(region, "en" if lang == "en" else "zh", None)

        @app.post("/signin", include_in_schema=False)
        async def signin(request: Request) -> Response:
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            username = (form.get("username") or [""])[0][:100]
            password = (form.get("password") or [""])[0][:1000]
            lang = "en" if (form.get("lang") or ["zh"])[0] == "en" else "zh"
            remote = request.client.host if request.client else None
            if self._locked_out(username):
                self.access.write({"user": username, "region": region, "remote": remote, "action": "signin",
                                   "result": "locked"})
                return _signin_page(region, lang, "locked", 429)
            user = self.verify(username, password)
            if user is None:
                self._locked_out(username, failed=True)
                self.access.write({"user": username, "region": region, "remote": remote, "action": "signin",
                                   "result": "wrong_password"})
                return _signin_page(region, lang, "wrong", 401)
            self.access.write({"user": user.username, "user_region": user.region, "region": region,
                               "remote": remote, "action": "signin",
                               "result": "ok" if user.region == region else "other_region"})
            if user.region != region:  # signed in or not, another region's user sees nothing here
                return _signin_page(region, lang, "region", 403)
            response = RedirectResponse("/?lang=en" if lang == "en" else "/", status_code=303)
            response.set_cookie(COOKIE, self.issue(user), max_age=self.session_seconds, httponly=True, secure=True,
                                samesite="strict", path="/")
            return response

        @app.post("/signout", include_in_schema=False)
        def signout() -> Response:
            response = RedirectResponse("/signin", status_code=303)
            response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
            return response

        if view_case is not None:
            @app.get("/api/cases/{case_id}", include_in_schema=False)
            def case(case_id: str) -> JSONResponse:
                found = view_case(case_id)
                if found is None:
                    return JSONResponse({"error": "NOT_FOUND"}, status_code=404, headers=_NO_STORE)
                return JSONResponse(found, headers=_NO_STORE)

        @app.get("/api/access-log", include_in_schema=False)
        def access_log(request: Request, limit: int = 200) -> JSONResponse:
            user: User = request.scope["state"]["user"]
            if user.role != "supervisor":
                return JSONResponse({"error": "FORBIDDEN", "message": "supervisors only"}, status_code=403,
                                    headers=_NO_STORE)
            entries = read_access_log(self.access_path, max(1, min(limit, 5000))) if self.access_path else []
            return JSONResponse({"entries": entries}, headers=_NO_STORE)

        app.add_middleware(_Guard, sign_in=self)


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _what(path: str, query: dict[str, list[str]]) -> dict[str, Any]:
    """What a request shows, for the access log."""
    if path == "/":
        return {"view": "page"}
    if path == "/api/state":
        return {"view": "state"}
    if path == "/api/search":
        return {"view": "search", "q": (query.get("q") or [""])[0][:100]}
    if path == "/events":
        return {"view": "stream"}
    if path == "/api/suggestions":
        return {"view": "suggestions"}
    if path.startswith("/api/suggestions/") and path.endswith("/decision"):  # issue #19: a supervisor's decision
        return {"view": "link_decision", "suggestion_id": path.split("/")[3][:64]}
    if path.startswith("/api/cases/") and path.endswith("/split"):
        return {"view": "split", "case_id": path.split("/")[3][:64]}
    if path.startswith("/api/cases/"):
        return {"view": "case", "case_id": path.removeprefix("/api/cases/")[:64]}
    return {"view": "other"}


class _Guard:
    """ASGI middleware: the session and the region are checked before any route (page, API, SSE) runs."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], sign_in: SignIn) -> None:
        self.app, self.sign_in = app, sign_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sign_in, path = self.sign_in, scope["path"]
        found = sign_in.session(request.cookies.get(COOKIE))
        entry: dict[str, Any] = {"region": sign_in.region, "remote": request.client.host if request.client else None,
                                 "method": request.method, "path": path,
                                 **_what(path, parse_qs(request.url.query))}
        denied: Response | None = None
        if found is None:
            entry["user"] = None
            if path == "/" and request.method == "GET":
                denied = RedirectResponse("/signin" + ("?lang=en" if "lang=en" in request.url.query else ""), 303)
            else:
                denied = JSONResponse({"error": "UNAUTHENTICATED", "message": "sign in at /signin"}, 401,
                                      headers=_NO_STORE)
        else:
            user, sid = found
            entry.update(user=user.username, role=user.role, user_region=user.region, session=sid)
            if user.region != sign_in.region:
                if path == "/":
                    denied = HTMLResponse(_forbidden_html(sign_in.region), 403, headers=_NO_STORE)
                else:
                    denied = JSONResponse({"error": "FORBIDDEN", "message": "another region's dashboard"}, 403,
                                          headers=_NO_STORE)
            else:
                scope.setdefault("state", {})["user"] = user
        if denied is not None:
            entry["status"] = denied.status_code
            sign_in.access.write(entry)
            await denied(scope, receive, send)
            return

        logged = False

        async def logging_send(message: MutableMapping[str, Any]) -> None:
            nonlocal logged
            if message["type"] == "http.response.start" and not logged:
                logged = True
                sign_in.access.write({**entry, "status": message["status"]})
            await send(message)

        await self.app(scope, receive, logging_send)


_TEXT = {
    "zh": {"title": "登录", "user": "用户名", "password": "密码", "submit": "登录",
           "wrong": "用户名或密码错误。", "region": "此账号无权查看本区域的看板。",
           "locked": "尝试次数过多，请稍后再试。"},
    "en": {"title": "Sign in", "user": "User name", "password": "Password", "submit": "Sign in",
           "wrong": "Wrong user name or password.", "region": "This account may not see this region's dashboard.",
           "locked": "Too many attempts; try again later."},
}


def _signin_page(region: str, lang: str, error: str | None, status: int = 200) -> HTMLResponse:
    t = _TEXT[lang]
    r = REGIONS[region]
    name = r.name_zh if lang == "zh" else r.name_en
    nonce = secrets.token_urlsafe(16)
    message = f'<p id="error" role="alert">{html.escape(t[error])}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)} · {t['title']}</title>
<style nonce="{nonce}">
body {{ font-family: system-ui, "Noto Sans CJK SC", sans-serif; background: #f4f6f8; display: grid;
       place-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; padding: 2rem 2.5rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; min-width: 18rem; }}
label {{ display: block; margin: .8rem 0 .2rem; }} input {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; width: 100%; padding: .5rem; }} #error {{ color: #c62828; }}
</style></head><body>
<form id="signin" method="post" action="/signin">
<h1>{html.escape(name)}</h1>{message}
<input type="hidden" name="lang" value="{lang}">
<label for="username">{t['user']}</label><input id="username" name="username" autocomplete="username" required>
<label for="password">{t['password']}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="submit" type="submit">{t['submit']}</button>
</form></body></html>"""
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; "
           "frame-ancestors 'none'")
    return HTMLResponse(body, status_code=status, headers={**_NO_STORE, "Content-Security-Policy": csp})


def _forbidden_html(region: str) -> str:
    return ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>403</title></head><body>"
            f"<h1>403</h1><p>此账号无权查看{html.escape(REGIONS[region].name_zh)}看板。"
            "This account may not see this region's dashboard.</p>"
            "<form method=\"post\" action=\"/signout\"><button id=\"signout\">退出 Sign out</button></form>"
            "</body></html>")
