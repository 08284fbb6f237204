"""Patient record routes. Every call needs a bearer token (api/identity.py); what the caller
may see or do is decided by the record service on each call, and audited."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from gateway.api.bearer import bearer, verified_caller
from gateway.records.access import Caller
from gateway.records.notify import relay
from gateway.records.service import Denied, NotFound, RecordService
from gateway.records.store import AUDIT_PAGE, DocumentQuery

router = APIRouter(tags=["records"])
DATE = r"^\d{4}-\d{2}-\d{2}$"
AUDIT_PAGE_MAX = 500  # audit events per page at most


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    token = credentials.credentials if credentials else None
    return verified_caller(request, token, "records.unauthenticated", "a bearer token is required")


Who = Annotated[Caller, Depends(caller)]


def service(request: Request) -> RecordService:
    return RecordService(request.app.state.services.store)


Records = Annotated[RecordService, Depends(service)]


def _guard(call):
    try:
        return call()
    except Denied as exc:
        raise HTTPException(403, str(exc)) from None
    except NotFound:
        raise HTTPException(404, "no such document") from None


def _summary(row: dict) -> dict:
    env = json.loads(row["envelope"])
    return {
        "id": row["document_id"],
        "set_id": row["set_id"],
        "version": row["version"],
        "status": row["status"],
        "type_code": row["type_code"],
        "title": env.get("title"),
        "source_kind": row["source_kind"],
        "creation_time": row["creation_time"],
        "received_at": row["received_at"],
        "authors": sorted(row["author_ids"]),
        "facility_id": row["facility_id"],
        "sha256": row["sha256"],
        "size": row["size"],
        "masked": bool(row["masked"]),
        "invisible_patient": bool(row["invisible_patient"]) and row["released_at"] is None,
    }


@router.get("/patients/{ins}/documents", summary="A patient's documents the caller may see")
def patient_documents(
    ins: str,
    who: Who,
    records: Records,
    type: Annotated[str | None, Query(description="LOINC type code, e.g. 11502-2")] = None,
    date_from: Annotated[str | None, Query(alias="from", pattern=DATE)] = None,
    date_to: Annotated[str | None, Query(alias="to", pattern=DATE)] = None,
    author: Annotated[str | None, Query(description="author RPPS")] = None,
    facility: Annotated[str | None, Query(description="facility id (FINESS…)")] = None,
    history: Annotated[bool, Query(description="also superseded and withdrawn")] = False,
) -> dict:
    query = DocumentQuery(type, date_from, date_to, author, facility, include_history=history)
    rows = _guard(lambda: records.list(who, ins, query))
    return {"documents": [_summary(r) for r in rows]}


@router.get("/documents/{document_id}", summary="One document: payload, envelope, signature")
def document(document_id: str, who: Who, records: Records) -> dict:
    row, versions = _guard(lambda: records.read(who, document_id))
    env = json.loads(row["envelope"])
    return {
        **_summary(row),
        "content_type": row["content_type"],
        "envelope": env,
        "payload": base64.b64encode(row["payload"]).decode("ascii"),
        "signature": {"status": row["signature_status"], **(env.get("signature") or {})},
        "superseded_by": row["superseded_by"],
        "versions": [
            {"id": v["document_id"], "version": v["version"], "status": v["status"]}
            for v in versions
        ],
    }


@router.put("/documents/{document_id}/mask", summary="Mask a document from professionals")
def mask(document_id: str, who: Who, records: Records) -> dict:
    _guard(lambda: records.mask(who, document_id, True))
    return {"id": document_id, "masked": True}


@router.delete("/documents/{document_id}/mask", summary="Unmask a document")
def unmask(document_id: str, who: Who, records: Records) -> dict:
    _guard(lambda: records.mask(who, document_id, False))
    return {"id": document_id, "masked": False}


@router.post(
    "/documents/{document_id}/release",
    summary="Announce a document to the patient (ends INVISIBLE_PATIENT)",
)
def release(document_id: str, who: Who, records: Records, request: Request) -> dict:
    changed = _guard(lambda: records.release(who, document_id))
    notifier = getattr(request.app.state.services, "notifier", None)
    if changed and notifier is not None:
        relay(records.store.pending_notifications, records.store.mark_notified, notifier)
    return {"id": document_id, "released": True}


class AccessDecision(BaseModel):
    decision: Literal["grant", "oppose"] = Field(
        description="grant: the professional may read the record; oppose: never"
    )


@router.put(
    "/patients/{ins}/access/{professional_id}",
    summary="Grant access to, or oppose, one professional",
)
def decide_access(
    ins: str, professional_id: str, body: AccessDecision, who: Who, records: Records
) -> dict:
    _guard(lambda: records.decide_access(who, ins, professional_id, body.decision))
    return {"professional_id": professional_id, "decision": body.decision}


@router.delete(
    "/patients/{ins}/access/{professional_id}", summary="Revoke a grant or an opposition"
)
def revoke_access(ins: str, professional_id: str, who: Who, records: Records) -> dict:
    _guard(lambda: records.decide_access(who, ins, professional_id, None))
    return {"professional_id": professional_id, "decision": None}


class Attending(BaseModel):
    professional_id: str = Field(description="RPPS of the médecin traitant", min_length=1)


@router.put("/patients/{ins}/attending", summary="Declare the attending doctor")
def set_attending(ins: str, body: Attending, who: Who, records: Records) -> dict:
    _guard(lambda: records.set_attending(who, ins, body.professional_id))
    return {"attending": body.professional_id}


@router.delete("/patients/{ins}/attending", summary="Remove the attending doctor")
def clear_attending(ins: str, who: Who, records: Records) -> dict:
    _guard(lambda: records.set_attending(who, ins, None))
    return {"attending": None}


@router.get("/patients/{ins}/audit", summary="Who looked at (or changed) the record")
def audit_trail(
    ins: str,
    who: Who,
    records: Records,
    request: Request,
    since: Annotated[datetime | None, Query(description="events at or after this time")] = None,
    before: Annotated[
        int | None, Query(ge=1, description="events older than this event id (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX, description="events per page")] = (
        AUDIT_PAGE
    ),
) -> dict:
    """One page of events, newest first; ``next`` is the URL of the next (older) page, null on
    the last one. Events about documents the caller may not see are left out, so a page may
    hold fewer than ``limit`` events (even none) and still have a next page."""
    events, next_before = _guard(lambda: records.audit_trail(who, ins, since, before, limit))
    next_url = None
    if next_before is not None:
        params = {"before": next_before, "limit": limit}
        if since is not None:
            params["since"] = since.isoformat()
        next_url = f"{request.url.path}?{urlencode(params)}"
    return {
        "events": [
            {
                "id": e["id"],
                "at": e["at"].isoformat(),  # aware: the store makes it so
                "actor": {"kind": e["actor_kind"], "id": e["actor_id"], "role": e["actor_role"]},
                "action": e["action"],
                "document_id": e["document_id"],
                "outcome": e["outcome"],
                "reason": e["reason"],
            }
            for e in events
        ],
        "next": next_url,
    }
