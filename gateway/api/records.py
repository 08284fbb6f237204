"""Patient record routes (read side). Authorisation arrives with the records issue."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

router = APIRouter(tags=["records"])


@router.get("/patients/{ins}/documents", summary="Documents filed for a patient (by INS)")
def patient_documents(ins: str, request: Request) -> dict:
    store = request.app.state.services.store
    rows = store.documents_for_patient(ins)
    return {
        "documents": [
            {
                "id": r["document_id"],
                "set_id": r["set_id"],
                "version": r["version"],
                "type_code": r["type_code"],
                "source_kind": r["source_kind"],
                "sha256": r["sha256"],
                "size": r["size"],
                "creation_time": r["creation_time"],
                "received_at": r["received_at"],
            }
            for r in rows
        ]
    }


@router.get("/documents/{document_id}", summary="One filed document's envelope")
def document(document_id: str, request: Request) -> dict:
    row = request.app.state.services.store.document(document_id)
    if row is None:
        raise HTTPException(404, "no such document")
    return {"id": row["document_id"], "envelope": row["envelope"]}
