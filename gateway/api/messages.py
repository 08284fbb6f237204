"""Message tracking: GET /messages (search), GET /messages/{id} (timeline), replay.

``id`` is the trace id every sender gets back: the ``message_id`` field of the HTTP answer.
An MLLP sender correlates with its own MSH-10, echoed in the ACK's MSA-2: it finds the
message with ``GET /messages?control_id=<MSH-10>`` (control ids are the sender's, so the
answer is a list). Metadata only: no payload, no patient identity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from gateway.api.operator import Operator, operator
from gateway.errors import BrokerUnavailable, StoreUnavailable
from gateway.logs import log
from gateway.tracking import events
from gateway.tracking.replay import ReplayStatus
from gateway.tracking.store import MAX_LIST

# Operators only (api/operator.py): a bearer operator token, or the /ui login cookie.
router = APIRouter(tags=["tracking"], dependencies=[Depends(operator)])


def parse_day_or_time(value: str | None, name: str, end: bool = False) -> datetime | None:
    """``2026-11-01`` (a whole day: ``end`` gives the next midnight) or an ISO date-time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: expected YYYY-MM-DD or an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value) == 10:
        moment += timedelta(days=1)
    return moment.astimezone(UTC)


def search_messages(services, filters: dict[str, str | None]) -> list[dict]:
    """The tracking search from query-string filters (shared by /messages and /ui)."""
    status = filters.get("status") or None
    if status and status not in events.STATUSES:
        raise HTTPException(422, f"status: one of {', '.join(events.STATUSES)}")
    try:
        limit = int(filters.get("limit") or 100)
    except ValueError:
        raise HTTPException(422, "limit: expected an integer") from None
    return services.tracking.search(
        status=status,
        sender=filters.get("sender") or None,
        type_code=filters.get("type_code") or None,
        control_id=filters.get("control_id") or None,
        since=parse_day_or_time(filters.get("since"), "since"),
        until=parse_day_or_time(filters.get("until"), "until", end=True),
        limit=limit,
    )


@router.get("/messages", summary="Recent messages, newest first, filtered")
def list_messages(
    request: Request,
    status: str | None = Query(None, description=f"one of {', '.join(events.STATUSES)}"),
    sender: str | None = Query(None, description="part of the sender label"),
    type_code: str | None = Query(None, description="document type code (LOINC)"),
    control_id: str | None = Query(None, description="HL7v2 MSH-10 (echoed in MSA-2)"),
    since: str | None = Query(None, description="YYYY-MM-DD or ISO date-time, inclusive"),
    until: str | None = Query(None, description="YYYY-MM-DD (inclusive day) or date-time"),
    limit: int = Query(100, ge=1, le=MAX_LIST),
) -> dict:
    filters = {
        "status": status,
        "sender": sender,
        "type_code": type_code,
        "control_id": control_id,
        "since": since,
        "until": until,
        "limit": str(limit),
    }
    try:
        return {"messages": search_messages(request.app.state.services, filters)}
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None


@router.get("/messages/{message_id}", summary="One message's timeline")
def message(message_id: str, request: Request) -> dict:
    try:
        found = request.app.state.services.tracking.message(message_id)
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if found is None:
        raise HTTPException(404, "no such message")
    return found


@router.post("/messages/{message_id}/replay", summary="Send a parked message back to its queue")
def replay(message_id: str, request: Request, who: Operator) -> JSONResponse:
    """Every parked copy of the message (one per document and destination) goes back; the
    answer says how many and where (``copies``, ``destinations``), and why any that could not
    go is still parked (``not_replayed``: the message then stays parked)."""
    services = request.app.state.services
    found = services.tracking.message(message_id)
    if found is None:
        raise HTTPException(404, "no such message")
    if found["status"] != events.PARKED:
        raise HTTPException(409, f"message is {found['status']}, not parked")
    if services.replayer is None:
        raise HTTPException(409, "no parking destination in the routing table")
    try:
        result = services.replayer.replay(message_id)
    except BrokerUnavailable as exc:
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    if result.status is not ReplayStatus.REPLAYED:
        return JSONResponse(
            {"status": result.status.value, "reason": result.detail}, status_code=409
        )
    steps = [
        events.replayed(message_id, destination, result.at, operator=who.id)
        for destination in result.destinations
    ]
    if result.left:
        steps.append(events.left_parked(message_id, result.left))
    services.tracker.record(steps)
    still = {"reason": f"{len(result.left)} still parked"} if result.left else {}
    log(
        "message.replayed",
        trace_id=message_id,
        destinations=",".join(result.destinations),
        count=result.copies,
        operator=who.id,
        **still,
    )
    answer = {
        "status": "replayed",
        "message_id": message_id,
        "copies": result.copies,
        "destinations": list(result.destinations),
    }
    if result.left:
        answer["not_replayed"] = list(result.left)
    return JSONResponse(answer, status_code=202)
