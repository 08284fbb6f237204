"""Who may see and do what in a patient's record: the authorisation policy. Pure.

The rules come from the shared-record model (../shared/domain/README.md, docs/records.md):

- a professional reads a record only with the patient's grant or as the attending doctor
  (médecin traitant), and never after the patient opposed them;
- a document masked from professionals (MASQUE_PS) stays visible to the attending doctor and to
  its author only;
- a document invisible to the patient (INVISIBLE_PATIENT) is hidden from the patient and the
  legal representatives until a professional releases it (announces it);
- the legal representatives of a minor act for them; a minor's rights are held by them; a
  document flagged INVISIBLE_REPRESENTANTS_LEGAUX is hidden from them;
- only the patient (or, for a minor, a legal representative) manages the record: masking,
  grants and oppositions, the attending doctor, reading the audit trail.

Every function answers with a Decision carrying the reason, which goes into the audit trail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class CallerKind(enum.StrEnum):
    PATIENT = "patient"
    PROFESSIONAL = "professional"
    REPRESENTATIVE = "representative"
    OPERATOR = "operator"  # runs the gateway (/messages, /ui); never opens a patient record


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: a patient (id = INS), a professional (id = RPPS, role = their
    profession/specialty code) or a legal representative (id = their identifier)."""

    kind: CallerKind
    id: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class PatientFacts:
    ins: str
    birth_date: str | None = None  # YYYYMMDD
    attending_id: str | None = None
    representatives: frozenset[str] = frozenset()
    granted: frozenset[str] = frozenset()
    opposed: frozenset[str] = frozenset()

    def is_minor(self, today: date) -> bool:
        """Under 18 on ``today``; an unknown birth date counts as an adult."""
        b = self.birth_date or ""
        if len(b) < 8 or not b[:8].isdigit():
            return False
        born = (int(b[:4]), int(b[4:6]), int(b[6:8]))
        return (today.year - born[0]) - ((today.month, today.day) < born[1:]) < 18


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    document_id: str
    patient_ins: str
    author_ids: frozenset[str] = field(default_factory=frozenset)
    masked: bool = False
    invisible_patient: bool = False
    invisible_representatives: bool = False
    released: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _allow(reason: str) -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def record_access(caller: Caller, patient: PatientFacts, today: date) -> Decision:
    """May ``caller`` open this patient's record at all?"""
    if caller.kind is CallerKind.PATIENT:
        if caller.id != patient.ins:
            return _deny("another patient's record")
        if patient.is_minor(today):
            return _deny("a minor's rights are exercised by their legal representatives")
        return _allow("own record")
    if caller.kind is CallerKind.REPRESENTATIVE:
        if caller.id not in patient.representatives:
            return _deny("not a legal representative of this patient")
        if not patient.is_minor(today):
            return _deny("legal representation ends at the patient's majority")
        return _allow("legal representative of a minor")
    if caller.kind is not CallerKind.PROFESSIONAL:
        return _deny("only patients, their representatives and professionals open records")
    if caller.id in patient.opposed:
        return _deny("the patient opposed access by this professional")
    if caller.id == patient.attending_id:
        return _allow("attending doctor")
    if caller.id in patient.granted:
        return _allow("access granted by the patient")
    return _deny("no access granted by the patient")


def document_access(
    caller: Caller, patient: PatientFacts, doc: DocumentFacts, today: date
) -> Decision:
    """May ``caller`` see this document? Includes the record-level check."""
    record = record_access(caller, patient, today)
    if not record or doc.patient_ins != patient.ins:
        return record if not record else _deny("document of another patient")
    if caller.kind is CallerKind.PROFESSIONAL:
        if not doc.masked:
            return record
        if caller.id == patient.attending_id:
            return _allow("masked document, visible to the attending doctor")
        if caller.id in doc.author_ids:
            return _allow("masked document, visible to its author")
        return _deny("masked from professionals by the patient")
    if doc.invisible_patient and not doc.released:
        return _deny("not yet announced to the patient")
    if caller.kind is CallerKind.REPRESENTATIVE and doc.invisible_representatives:
        return _deny("hidden from legal representatives")
    return record


def may_know_of(caller: Caller, patient: PatientFacts, doc: DocumentFacts) -> bool:
    """May ``caller`` learn that this document exists at all? A denial then says "no such
    document" (404), not why (403): "not yet announced" would announce it. Professionals
    may: the record's documents are theirs to see once the patient lets them, and a masked
    one is refused as masked. A patient or representative may not know of a document of
    another record, one not yet announced, or (representatives) one hidden from them."""
    if caller.kind is CallerKind.PROFESSIONAL:
        return True
    if doc.patient_ins != patient.ins or (doc.invisible_patient and not doc.released):
        return False
    if caller.kind is CallerKind.PATIENT:
        return caller.id == patient.ins
    if caller.kind is CallerKind.REPRESENTATIVE:
        return caller.id in patient.representatives and not doc.invisible_representatives
    return False


def may_manage(caller: Caller, patient: PatientFacts, today: date) -> Decision:
    """Patient-only actions: masking, grants, oppositions, attending doctor, audit trail."""
    if caller.kind is CallerKind.PROFESSIONAL:
        return _deny("only the patient or their legal representative manages the record")
    return record_access(caller, patient, today)


def may_release(caller: Caller, patient: PatientFacts, doc: DocumentFacts, today: date) -> Decision:
    """A professional who can see a document may announce it to the patient."""
    if caller.kind is not CallerKind.PROFESSIONAL:
        return _deny("only a professional announces a document to the patient")
    return document_access(caller, patient, doc, today)
