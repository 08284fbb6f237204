"""Document messages for record tests: synthetic patients, professionals and organisations."""

from __future__ import annotations

import hashlib

from gateway.broker.message import DocumentMessage
from gateway.envelope import Code, Envelope, Party, Patient

INS = "184127505612355"
OTHER_INS = "292059912304525"
LAB = "1750000001"  # FINESS of the authoring laboratory
OTHER_ORG = "1750000099"
AUTHOR = "810001234567"  # RPPS of the biologist who writes the reports
CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"


def message(
    doc_id: str = "1.2.3^1",
    payload: bytes | None = None,
    ins: str = INS,
    set_id: str | None = "1.2.3.set",
    version: int | None = 1,
    replaces: str | None = None,
    action: str = "create",
    codes: tuple[str, ...] = (),
    flags: dict[str, bool] | None = None,
    author: str = AUTHOR,
    org: str = LAB,
    type_code: str = "11502-2",
    created: str = "20261101093000+0100",
    facility: str | None = LAB,
    birth_date: str | None = "19841205",
    sender: str = "lab-sil",
    custodian: str | None = None,
) -> DocumentMessage:
    payload = payload if payload is not None else f"<doc id='{doc_id}'/>".encode()
    env = Envelope(
        document_id=doc_id,
        source_kind="cda",
        content_type="application/hl7-cda+xml",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        sender=sender,
        received_at="2026-11-01T09:30:00+00:00",
        trace_id="t-" + doc_id,
        action=action,
        set_id=set_id,
        version=version,
        replaces=replaces,
        patient=Patient(ins=ins, ins_system="1.2.250.1.213.1.4.8", birth_date=birth_date),
        title="Compte rendu",
        type_code=Code(type_code, "2.16.840.1.113883.6.1"),
        confidentiality=(
            Code("N", "2.16.840.1.113883.5.25"),
            *(Code(c, CONFIDENTIALITY) for c in codes),
        ),
        creation_time=created,
        authors=(
            Party(
                id=author,
                id_system="1.2.250.1.71.4.2.1",
                organisation=Party(id=org, id_system="1.2.250.1.71.4.2.2"),
            ),
        ),
        facility=Party(id=facility, id_system="1.2.250.1.71.4.2.2") if facility else None,
        custodian=Party(id=custodian, id_system="1.2.250.1.71.4.2.2") if custodian else None,
        flags=flags or {},
    )
    return DocumentMessage(env, payload)
