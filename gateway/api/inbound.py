"""POST /documents (CDA) and POST /hl7v2: answer only once the broker confirmed.

202 accepted (durable) · 422 rejected, with the validation report · 413 too large ·
503 unavailable (retry later; nothing was taken). With authentication on (senders file):
401 unknown sender · 403 sender not allowed this document · 429 too many requests at once ·
408 body not received within the request timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.limits import CLOSE, read_body
from gateway.logs import log
from gateway.outcome import Receipt, ReceiptStatus, RejectionKind
from gateway.security.senders import Sender, SenderRegistry
from gateway.submission import Submission

router = APIRouter(tags=["inbound"])
SIGNATURE_HEADER = "x-document-signature"

API_KEY_HEADER = "x-api-key"
_STATUS = {
    ReceiptStatus.ACCEPTED: 202,
    ReceiptStatus.REJECTED: 422,
    ReceiptStatus.UNAVAILABLE: 503,
}


def signature_of(request: Request) -> bytes | None:
    """The sender's detached XAdES signature: base64 in the X-Document-Signature header."""
    value = request.headers.get(SIGNATURE_HEADER)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b"(not base64)"  # judged, and refused, as a malformed signature


def sender_of(request: Request) -> str:
    client = request.client
    return f"http:{client.host}" if client else "http:unknown"


def authenticated_sender(request: Request, senders: SenderRegistry) -> Sender | None:
    """The sender named by the verified client certificate, else by the API key."""
    peers = getattr(request.app.state, "peer_names", None)
    by_cert = senders.by_cert_cn(peers.get(request.scope.get("client")) if peers else None)
    if by_cert is not None:
        return by_cert
    key = request.headers.get(API_KEY_HEADER)
    return senders.by_api_key(key) if key else None


def _refusal(status: int, reason: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"status": "rejected", "reason": reason}, status, headers=headers)


async def _submit(request: Request) -> JSONResponse:
    services = request.app.state.services
    if services.senders is None:
        return await _receive(request, services, sender_of(request))
    sender = authenticated_sender(request, services.senders)
    if sender is None:
        log(
            "security.denied",
            level=30,
            transport="http",
            peer=sender_of(request),
            reason="no valid client certificate or API key",
        )
        return _refusal(401, "authentication required: client certificate or X-API-Key")
    if not services.connections.admit(sender, "http"):
        return _refusal(429, "too many requests in flight for this sender", {"Retry-After": "1"})
    try:
        return await _receive(request, services, sender.id)
    finally:
        services.connections.release(sender.id)


async def _receive(request: Request, services, sender: str) -> JSONResponse:
    limit = services.settings.max_document_bytes
    try:
        body = await asyncio.wait_for(
            read_body(request, limit), services.settings.request_timeout_s
        )
    except TimeoutError:  # the connection is closed: the rest of the body is never read
        return _refusal(408, "request body not received in time", CLOSE)
    if body is None:
        return _refusal(413, f"body larger than {limit} bytes", CLOSE)
    receipt: Receipt = await services.ingest.accept(
        Submission(
            raw=body,
            transport="http",
            sender=sender,
            signature=signature_of(request),
        )
    )
    headers = {"Retry-After": "5"} if receipt.status is ReceiptStatus.UNAVAILABLE else None
    status = 403 if receipt.rejection is RejectionKind.FORBIDDEN else _STATUS[receipt.status]
    return JSONResponse(receipt.to_dict(), status_code=status, headers=headers)


@router.post("/documents", status_code=202, summary="Submit a CDA R2 document")
async def post_document(request: Request) -> JSONResponse:
    return await _submit(request)


@router.post("/hl7v2", status_code=202, summary="Submit one HL7v2 message (ER7)")
async def post_hl7v2(request: Request) -> JSONResponse:
    return await _submit(request)
