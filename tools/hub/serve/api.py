"""The JSON API under ``/api/`` (the console uses nothing else; contract: docs/console.md)
and the static console, as one Starlette app."""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tools.hub.serve import alerts, auth, cases, insights, views
from tools.hub.serve.db import dumps, explain_error, loads

if TYPE_CHECKING:
    from tools.hub.serve.service import Hub

log = logging.getLogger("vigil-hub.api")
STATIC = Path(__file__).with_name("static")
COOKIE = "vigil_session"
CONSOLE_COMMANDS = ("arm", "disarm", "mute", "deterrent_test")
MAX_LIMIT = 1000


def _err(status: int, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, json.dumps({"error": message, **extra}))


def _who(request: Request, role: str = "guard", csrf: bool = False) -> auth.Session:
    """The request's session: 401 without one, 403 for a lower role or a missing CSRF token."""
    hub: Hub = request.app.state.hub
    s = auth.session(hub.db, request.cookies.get(COOKIE))
    if s is None:
        raise _err(401, "not logged in: POST /api/login first")
    if csrf:
        token = request.headers.get("x-csrf-token", "")
        if not token or not hmac.compare_digest(token, s.csrf):
            raise _err(403, "CSRF token missing or wrong: send the X-CSRF-Token header from login")
    if not s.may(role):
        raise _err(403, f"{s.user} is a {s.role}; this needs the {role} role")
    return s


async def _body(request: Request) -> dict:
    hub: Hub = request.app.state.hub
    limit = hub.cfg.max_request_bytes
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise _err(413, f"request body over {limit} bytes")
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _err(400, f"body is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise _err(400, "body must be a JSON object")
    return value


def _num(request: Request, name: str) -> float | None:
    v = request.query_params.get(name)
    if v in (None, ""):
        return None
    try:
        return float(v)
    except ValueError:
        raise _err(400, f"{name}={v!r} is not a number (Unix time)") from None


def _limit(request: Request, default: int = 200) -> int:
    v = request.query_params.get("limit", str(default))
    if not v.isdigit() or not 0 < int(v) <= MAX_LIMIT:
        raise _err(400, f"limit={v!r}: 1..{MAX_LIMIT}")
    return int(v)


# -- session ------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    body = await _body(request)
    user, password = body.get("user"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise _err(400, 'send {"user": ..., "password": ...}')
    client = request.client.host if request.client else "?"
    try:
        token, s = await run_in_threadpool(auth.login, hub.db, user, password, client, hub.limit)
    except auth.TooMany as e:
        log.warning("login: %s rate limited (client %s)", user, client)
        return JSONResponse(
            {"error": str(e), "retry_after_s": round(e.wait_s, 1)},
            429,
            headers={"Retry-After": str(int(e.wait_s) + 1)},
        )
    except auth.AuthError as e:
        log.warning("login: failed for %r from %s", user, client)
        raise _err(401, str(e)) from None
    log.info("login: %s (%s) from %s", s.user, s.role, client)
    resp = JSONResponse({"user": s.user, "role": s.role, "csrf": s.csrf})
    resp.set_cookie(
        COOKIE, token, max_age=auth.SESSION_S, httponly=True, samesite="strict",
        secure=hub.cfg.tls, path="/",
    )  # fmt: skip
    return resp


async def logout(request: Request) -> Response:
    _who(request, csrf=True)
    await run_in_threadpool(auth.logout, request.app.state.hub.db, request.cookies[COOKIE])
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE, path="/")
    return resp


def me(request: Request) -> Response:
    s = _who(request)
    return JSONResponse({"user": s.user, "role": s.role, "csrf": s.csrf})


# -- units, events, alerts ----------------------------------------------------------------


def get_units(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    return JSONResponse(views.units(hub.db.read(), hub.known_units))


def get_events(request: Request) -> Response:
    _who(request)
    q = request.query_params
    rows = views.events(
        request.app.state.hub.db.read(),
        since=_num(request, "since"),
        until=_num(request, "until"),
        unit=q.get("unit"),
        type=q.get("type"),
        zone=q.get("zone"),
        rule=q.get("rule"),
        limit=_limit(request),
        raw=True,
    )
    return Response("[" + ",".join(rows) + "]", media_type="application/json")


def get_alerts(request: Request) -> Response:
    _who(request)
    q = request.query_params
    try:
        rows = alerts.query(
            request.app.state.hub.db.read(),
            state=q.get("state") or None,
            unit=q.get("unit"),
            zone=q.get("zone"),
            rule=q.get("rule"),
            outcome=q.get("outcome"),
            since=_num(request, "since"),
            until=_num(request, "until"),
            limit=_limit(request, 100),
        )
    except alerts.WorkflowError as e:
        raise _err(400, str(e)) from None
    return JSONResponse(rows)


def _alert_id(request: Request) -> int:
    v = request.path_params["id"]
    if not v.isdigit():
        raise _err(404, f"no alert {v!r}")
    return int(v)


def get_alert(request: Request) -> Response:
    _who(request)
    try:
        return JSONResponse(alerts.get(request.app.state.hub.db.read(), _alert_id(request)))
    except alerts.NotFound as e:
        raise _err(404, str(e)) from None


ROLE_OF = {"ack": "guard", "escalate": "guard", "resolve": "manager"}


async def alert_action(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ROLE_OF:
        raise _err(404, f"no action {action!r}: ack, resolve or escalate")
    s = _who(request, ROLE_OF[action], csrf=True)
    body = await _body(request)
    note, outcome = body.get("note", ""), body.get("outcome")
    if not isinstance(note, str) or len(note) > 2000:
        raise _err(400, "note must be text of at most 2000 characters")
    hub: Hub = request.app.state.hub
    alert_id = _alert_id(request)

    def apply() -> dict:
        with hub.db.write() as con:
            alerts.change(con, alert_id, action, s.user, note, outcome)
            cases.alert_changed(con, alert_id, time.time(), webhook=hub.webhook is not None)
        if hub.webhook is not None:
            hub.webhook.notify()
        return alerts.get(hub.db.read(), alert_id)

    try:
        out = await run_in_threadpool(apply)
    except alerts.NotFound as e:
        raise _err(404, str(e)) from None
    except alerts.WorkflowError as e:
        raise _err(409, str(e)) from None
    log.info("alert %d %s by %s (%s)", alert_id, action, s.user, outcome or "-")
    hub.live.publish("alert", out)
    return JSONResponse(out)


async def unit_command(request: Request) -> Response:
    s = _who(request, "manager", csrf=True)
    hub: Hub = request.app.state.hub
    body = await _body(request)
    unit, name, args = request.path_params["unit"], body.get("command"), body.get("args") or {}
    if name not in CONSOLE_COMMANDS:
        raise _err(400, f"command {name!r} is not one of {', '.join(CONSOLE_COMMANDS)}")
    if not isinstance(args, dict):
        raise _err(400, "args must be a JSON object")
    site = views.unit_exists(hub.db.read(), body.get("site"), unit)
    if site is None:
        raise _err(404, f"unit {unit!r} has never reported to this hub (or is in several sites)")
    try:
        reply = await run_in_threadpool(hub.session.command, site, unit, name, args)
        ok, err, status = bool(reply.get("ok")), None, 200
    except (PermissionError, TimeoutError, ConnectionError) as e:
        reply, ok, err = None, False, str(e)
        status = 409 if isinstance(e, PermissionError) else 504

    def record() -> None:
        with hub.db.write() as con:
            con.execute(
                "INSERT INTO actions (at, user, site, unit, command, args, ok, reply) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), s.user, site, unit, name, dumps(args), int(ok), dumps(reply or err)),
            )

    await run_in_threadpool(record)
    log.info("command %s %s/%s by %s: %s", name, site, unit, s.user, "ok" if ok else err or reply)
    if err is not None:
        raise _err(status, err)
    return JSONResponse({"ok": ok, "reply": reply})


def get_cases(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    return JSONResponse(cases.list_cases(hub.db.read(), limit=_limit(request)))


def get_case(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    try:
        case_id = int(request.path_params["id"])
    except ValueError:
        raise _err(400, "case id must be a number") from None
    con = hub.db.read()
    try:
        out = cases.summary(con, case_id)
    except LookupError as e:
        raise _err(404, str(e).strip("'\"")) from None
    out["items_detail"] = cases.case_items(con, case_id)
    return JSONResponse(out)


def get_actions(request: Request) -> Response:
    _who(request, "manager")
    rows = request.app.state.hub.db.read().execute(
        "SELECT * FROM actions ORDER BY id DESC LIMIT ?", (_limit(request, 100),)
    )
    return JSONResponse(
        [{**dict(r), "args": loads(r["args"]), "reply": loads(r["reply"])} for r in rows]
    )


# -- health, stream, floor, footfall, users -----------------------------------------------


def health(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    con = hub.db.read()
    st = hub.ingest.stats
    invalid = con.execute(
        "SELECT topic, problems, size, received_at FROM invalid ORDER BY id DESC LIMIT 20"
    ).fetchall()
    gaps = con.execute(
        "SELECT site, unit, session, after_seq, missing, detected_at FROM gaps "
        "ORDER BY id DESC LIMIT 20"
    ).fetchall()
    return JSONResponse(
        {
            "mqtt": {"url": hub.cfg.mqtt, "connected": hub.session.connected.is_set()},
            "db": {"path": str(hub.db.path), "error": st.db_error, "since": st.db_error_since},
            "received": st.received,
            "stored": st.stored,
            "duplicates": st.duplicates,
            "queued": hub.ingest.queue.qsize(),
            "invalid_total": con.execute("SELECT COUNT(*) FROM invalid").fetchone()[0],
            "gaps_total": con.execute("SELECT COALESCE(SUM(missing), 0) FROM gaps").fetchone()[0],
            "invalid": [{**dict(r), "problems": loads(r["problems"])} for r in invalid],
            "gaps": [dict(r) for r in gaps],
        }
    )


async def stream(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    last = request.headers.get("last-event-id") or request.query_params.get("last_id")
    after = int(last) if last and last.isdigit() else None

    def replay() -> list:
        if after is None:
            return []
        rows = views.events(hub.db.read(), after_id=after, limit=MAX_LIMIT)
        return [("event", r, r["id"]) for r in rows]

    return StreamingResponse(
        hub.live.subscribe(replay),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def get_floor(request: Request) -> Response:
    _who(request)
    hub: Hub = request.app.state.hub
    return JSONResponse(views.floor(hub.db.read(), hub.cfg.store, hub.floor_sources))


def floor_image(request: Request) -> Response:
    _who(request)
    cfg = request.app.state.hub.cfg
    if not cfg.store.floor.image:
        raise _err(404, "no floor plan image configured ([floor] image in --store)")
    path = (cfg.store_dir or Path.cwd()) / cfg.store.floor.image
    if not path.is_file():
        raise _err(404, f"floor plan image {path} not found")
    return FileResponse(path)


def get_footfall(request: Request) -> Response:
    _who(request)
    con = request.app.state.hub.db.read()
    since = _num(request, "since")
    return JSONResponse(views.footfall(con, since, request.query_params.get("unit")))


def get_users(request: Request) -> Response:
    _who(request, "admin")
    return JSONResponse(auth.list_users(request.app.state.hub.db))


async def post_users(request: Request) -> Response:
    s = _who(request, "admin", csrf=True)
    body = await _body(request)
    try:
        await run_in_threadpool(
            auth.add_user, request.app.state.hub.db, str(body.get("user", "")),
            str(body.get("role", "")), str(body.get("password", "")),
        )  # fmt: skip
    except auth.AuthError as e:
        raise _err(400, str(e)) from None
    log.info("user %s added by %s", body.get("user"), s.user)
    return JSONResponse({"ok": True}, 201)


async def delete_user(request: Request) -> Response:
    s = _who(request, "admin", csrf=True)
    name = request.path_params["name"]
    try:
        await run_in_threadpool(auth.remove_user, request.app.state.hub.db, name)
    except auth.AuthError as e:
        raise _err(400, str(e)) from None
    log.info("user %s removed by %s", name, s.user)
    return JSONResponse({"ok": True})


def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


# -- app ----------------------------------------------------------------------------------


async def _http_error(request: Request, exc: HTTPException) -> Response:
    try:
        body = json.loads(exc.detail)
    except (TypeError, json.JSONDecodeError):
        body = {"error": exc.detail}
    return JSONResponse(body, exc.status_code)


async def _db_error(request: Request, exc: sqlite3.Error) -> Response:
    hub: Hub = request.app.state.hub
    text = explain_error(hub.db.path, exc)
    log.error("api: %s %s: %s", request.method, request.url.path, text)
    return JSONResponse({"error": text}, 503, headers={"Retry-After": "2"})


class Limits:
    """Refuses oversized bodies before reading them; adds security headers to each answer."""

    def __init__(self, app: Any, max_bytes: int, tls: bool):
        self.app, self.max_bytes, self.tls = app, max_bytes, tls

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            resp = JSONResponse(
                {"error": f"request body over {self.max_bytes} bytes (or bad Content-Length)"},
                413,
            )
            return await resp(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                h = message.setdefault("headers", [])
                h += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:"),
                ]
                if self.tls:
                    h.append((b"strict-transport-security", b"max-age=31536000"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(hub: Hub) -> Any:
    routes = [
        Route("/", index),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/me", me),
        Route("/api/units", get_units),
        Route("/api/units/{unit}/commands", unit_command, methods=["POST"]),
        Route("/api/alerts", get_alerts),
        Route("/api/alerts/{id}", get_alert),
        Route("/api/alerts/{id}/{action}", alert_action, methods=["POST"]),
        Route("/api/events", get_events),
        Route("/api/stream", stream),
        Route("/api/health", health),
        Route("/api/actions", get_actions),
        Route("/api/cases", get_cases),
        Route("/api/cases/{id}", get_case),
        Route("/api/floor", get_floor),
        Route("/api/floor/image", floor_image),
        Route("/api/footfall", get_footfall),
        Route("/api/users", get_users),
        Route("/api/users", post_users, methods=["POST"]),
        Route("/api/users/{name}", delete_user, methods=["DELETE"]),
        *insights.routes(),  # peak times, floor heat, weekly summary (docs/forecast.md)
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, sqlite3.Error: _db_error},
    )
    app.state.hub = hub
    app.state.insights_who = _who
    return Limits(app, hub.cfg.max_request_bytes, hub.cfg.tls)
