"""/ui: the message browser. Server-rendered HTML, a little vanilla JS, no build step, no CDN.

Operators only (api/operator.py): without a valid operator token the page is a sign-in form
that posts the token to /ui/login, which keeps it in an HttpOnly, SameSite=Strict cookie.

Everything shown is tracking metadata (gateway.tracking): never a payload, never a patient's
identity (INS-shaped text is masked when the events are made). Every value is HTML-escaped
here; the script only refreshes counters (``textContent``) and posts replays. A strict
Content-Security-Policy forbids inline script and any other origin.
"""

from __future__ import annotations

import html
import urllib.parse
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.limits import CLOSE, read_body
from gateway.api.messages import search_messages
from gateway.api.operator import COOKIE, Operator, operator_from
from gateway.errors import StoreUnavailable
from gateway.tracking import events

router = APIRouter(tags=["message browser"], include_in_schema=False)
ASSETS = Path(__file__).parent / "ui_assets"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FILTERS = ("status", "sender", "type_code", "since", "until")
COUNTED = (
    events.RECEIVED,
    events.ACCEPTED,
    events.FILED,
    events.REJECTED,
    events.PARKED,
    events.UNAVAILABLE,
)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@router.get("/ui/app.js")
def script() -> Response:
    return Response(_asset("app.js"), media_type="text/javascript", headers=SECURITY_HEADERS)


@router.get("/ui/app.css")
def style() -> Response:
    return Response(_asset("app.css"), media_type="text/css", headers=SECURITY_HEADERS)


MAX_LOGIN_BYTES = 8192


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """The sign-in form's target: a valid operator token goes into the cookie. The form is
    read up to MAX_LOGIN_BYTES, within the request timeout (api/limits.py), never whole."""
    body = await read_body(request, MAX_LOGIN_BYTES)
    if body is None:  # the rest is not read: the connection is closed
        return _login_page("the form is too large", 413, CLOSE)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    token = form.get("token", [""])[0].strip()
    try:
        operator_from(request, token)
    except HTTPException as exc:
        return _login_page(str(exc.detail), exc.status_code)
    answer = RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
    answer.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.post("/ui/logout")
def logout() -> Response:
    answer = RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
    answer.delete_cookie(COOKIE, path="/")
    return answer


@router.get("/ui/counters")
def counters(request: Request, _: Operator) -> dict:
    """Messages per status over the last 24 hours (what the page's counters show)."""
    since = datetime.now(UTC) - timedelta(hours=24)
    try:
        counts = request.app.state.services.tracking.counts(since)
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return {"since": since.isoformat(timespec="seconds"), "counts": counts}


@router.get("/ui", response_class=HTMLResponse)
def page(request: Request) -> HTMLResponse:
    kept = request.cookies.get(COOKIE)
    try:
        who = operator_from(request, kept)
    except HTTPException as exc:
        return _login_page("" if kept is None else str(exc.detail), exc.status_code)
    services = request.app.state.services
    filters = {k: request.query_params.get(k, "").strip()[:128] for k in FILTERS}
    selected_id = request.query_params.get("selected", "")[:64]
    try:
        rows = search_messages(services, {**filters, "limit": "200"})
        counts = counters(request, who)["counts"]
        selected = services.tracking.message(selected_id) if selected_id else None
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    body = "".join(
        [
            _counters(counts),
            _search_form(filters),
            _table(rows, filters),
            _detail(selected, selected_id),
        ]
    )
    return HTMLResponse(_layout(body), headers=SECURITY_HEADERS)


def _layout(body: str, signed_in: bool = True) -> str:
    nav = (
        "<nav><a href='/ui'>messages</a> <a href='/metrics'>metrics</a> "
        "<a href='/ready'>ready</a><form method='post' action='/ui/logout' class='inline'>"
        "<button type='submit'>sign out</button></form></nav>"
        if signed_in
        else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Passerelle · messages</title>"
        "<link rel='stylesheet' href='/ui/app.css'></head><body>"
        "<header><h1>Passerelle</h1><span class='sub'>message browser · metadata only</span>"
        f"{nav}</header>"
        f"<main>{body}</main>"
        "<script src='/ui/app.js'></script></body></html>"
    )


def _login_page(reason: str, status: int, headers: dict | None = None) -> HTMLResponse:
    error = f"<p class='error' id='login-error'>{esc(reason)}</p>" if reason else ""
    body = (
        "<section id='login'><h2>Sign in</h2>"
        "<p>Operators only. Mint a token with <code>gateway token operator NAME</code>.</p>"
        f"{error}<form method='post' action='/ui/login'>"
        "<label>Operator token <input type='password' name='token' autocomplete='off' "
        "required></label> <button type='submit'>sign in</button></form></section>"
    )
    page = _layout(body, signed_in=False)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS | (headers or {}))


def _counters(counts: dict[str, int]) -> str:
    cells = "".join(
        f"<div class='counter status-{esc(s)}'><span class='n' data-status='{esc(s)}'>"
        f"{counts.get(s, 0)}</span><span class='label'>{esc(s)}</span></div>"
        for s in COUNTED
    )
    return (
        "<section id='counters' aria-label='last 24 hours'>"
        f"{cells}<div class='note'>last 24 h · live</div></section>"
    )


def _search_form(filters: dict[str, str]) -> str:
    options = "".join(
        f"<option value='{esc(s)}'{' selected' if filters['status'] == s else ''}>{esc(s)}</option>"
        for s in ("", *events.STATUSES)
    )
    return (
        "<form id='search' method='get' action='/ui'>"
        f"<label>status <select name='status'>{options}</select></label>"
        f"<label>sender <input name='sender' value='{esc(filters['sender'])}' "
        "placeholder='http:10.0.0.5'></label>"
        f"<label>type <input name='type_code' value='{esc(filters['type_code'])}' "
        "placeholder='11502-2' size='9'></label>"
        f"<label>from <input type='date' name='since' value='{esc(filters['since'])}'></label>"
        f"<label>to <input type='date' name='until' value='{esc(filters['until'])}'></label>"
        "<button type='submit'>search</button> <a href='/ui'>clear</a></form>"
    )


def _table(rows: list[dict], filters: dict[str, str]) -> str:
    if not rows:
        return "<p id='empty'>No message matches.</p>"
    query = {k: v for k, v in filters.items() if v}
    lines = []
    for r in rows:
        link = "/ui?" + urllib.parse.urlencode({**query, "selected": r["trace_id"]})
        what = " · ".join(v for v in (r.get("message_type"), r.get("type_code")) if v)
        lines.append(
            f"<tr data-id='{esc(r['trace_id'])}' class='status-{esc(r['status'])}'>"
            f"<td>{esc(_when(r['received_at']))}</td>"
            f"<td><span class='badge status-{esc(r['status'])}'>{esc(r['status'])}</span></td>"
            f"<td>{esc(r['sender'])}</td><td>{esc(r.get('kind'))}</td>"
            f"<td>{esc(what)}</td>"
            f"<td>{esc(', '.join(r['destinations'] or r['rules']))}</td>"
            f"<td><a href='{esc(link)}'>{esc(r['trace_id'][:12])}…</a></td></tr>"
        )
    return (
        "<table id='messages'><thead><tr><th>received (UTC)</th><th>status</th><th>sender</th>"
        "<th>kind</th><th>type</th><th>to / rules</th><th>message id</th></tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table>"
    )


def _detail(message: dict | None, selected_id: str) -> str:
    if not selected_id:
        return ""
    if message is None:
        return f"<section id='detail'><p>No message {esc(selected_id)}.</p></section>"
    facts = [
        ("message id", message["trace_id"]),
        ("status", message["status"]),
        ("received", _when(message["received_at"])),
        ("transport", message["transport"]),
        ("sender", message["sender"]),
        ("kind", message.get("kind")),
        ("HL7 type", message.get("message_type")),
        ("MSH-10", message.get("control_id")),
        ("document id", message.get("document_id")),
        ("type code", message.get("type_code")),
        ("size", message.get("size")),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts if v not in (None, ""))
    steps = "".join(
        f"<li><span class='when'>{esc(_when(e['at']))}</span> "
        f"<span class='badge status-{esc(e['event'])}'>{esc(e['event'])}</span> "
        f"{esc(_step_note(e))}</li>"
        for e in message["timeline"]
    )
    report = next((e["report"] for e in message["timeline"] if e.get("report")), None)
    replay = (
        f"<button id='replay' data-id='{esc(message['trace_id'])}'>replay</button>"
        "<span id='replay-result' role='status'></span>"
        if message["status"] == events.PARKED
        else ""
    )
    return (
        "<section id='detail'>"
        f"<h2>Message {esc(message['trace_id'])}</h2><dl>{dl}</dl>{replay}"
        f"<h3>Timeline</h3><ol id='timeline'>{steps}</ol>"
        f"{_report(report) if report else ''}</section>"
    )


def _report(findings: list[dict]) -> str:
    rows = "".join(
        f"<tr class='sev-{esc(f.get('severity'))}'><td>{esc(f.get('severity'))}</td>"
        f"<td><code>{esc(f.get('rule'))}</code></td><td><code>{esc(f.get('location'))}</code></td>"
        f"<td>{esc(f.get('message'))}</td><td>{esc(f.get('fix'))}</td></tr>"
        for f in findings
    )
    return (
        "<h3>Validation report</h3><table id='report'><thead><tr><th>severity</th><th>rule</th>"
        f"<th>location</th><th>message</th><th>fix</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _step_note(event: dict) -> str:
    if event.get("destinations"):
        return "→ " + ", ".join(event["destinations"])
    if event.get("destination"):
        note = event["destination"]
        return f"{note}: {event['reason']}" if event.get("reason") else note
    if event.get("rejection"):
        return f"{event['rejection']} ({len(event.get('report', []))} finding(s))"
    return event.get("reason") or event.get("key_id") or event.get("type_code") or ""


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")
