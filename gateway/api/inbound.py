"""POST /documents (CDA) and POST /hl7v2: answer only once the broker confirmed.

202 accepted (durable) · 422 rejected, with the validation report · 413 too large ·
503 unavailable (retry later; nothing was taken).
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.outcome import Receipt, ReceiptStatus
from gateway.submission import Submission

router = APIRouter(tags=["inbound"])
SIGNATURE_HEADER = "x-document-signature"

_STATUS = {
    ReceiptStatus.ACCEPTED: 202,
    ReceiptStatus.REJECTED: 422,
    ReceiptStatus.UNAVAILABLE: 503,
}


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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


async def _submit(request: Request) -> JSONResponse:
    services = request.app.state.services
    limit = services.settings.max_document_bytes
    body = await read_body(request, limit)
    if body is None:
        return JSONResponse(
            {"status": "rejected", "reason": f"body larger than {limit} bytes"}, status_code=413
        )
    receipt: Receipt = await services.ingest.accept(
        Submission(
            raw=body,
            transport="http",
            sender=sender_of(request),
            signature=signature_of(request),
        )
    )
    headers = {"Retry-After": "5"} if receipt.status is ReceiptStatus.UNAVAILABLE else None
    return JSONResponse(receipt.to_dict(), status_code=_STATUS[receipt.status], headers=headers)


@router.post("/documents", status_code=202, summary="Submit a CDA R2 document")
async def post_document(request: Request) -> JSONResponse:
    return await _submit(request)


@router.post("/hl7v2", status_code=202, summary="Submit one HL7v2 message (ER7)")
async def post_hl7v2(request: Request) -> JSONResponse:
    return await _submit(request)
