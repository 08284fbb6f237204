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

import calendar
import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

FRANCE = ZoneInfo("Europe/Paris")
MAJORITY = 18


def french_date(now: datetime) -> date:
    """The calendar date in France at ``now``: majority is reached on the French birthday,
    not on UTC's (between midnight and 01:00 or 02:00 in Paris, UTC is still the day before)."""
    return now.astimezone(FRANCE).date()


def birth_range(birth_date: str | None) -> tuple[date, date] | None:
    """The earliest and latest day a birth date may mean: HL7 and CDA allow YYYY, YYYYMM and
    YYYYMMDD (anything after the day, a time, is ignored). None when there is none or it
    cannot be a date (non-digits, month 13, 30 February...)."""
    b = (birth_date or "").strip()
    digits = b[:8] if len(b) >= 8 else b
    if len(digits) not in (4, 6, 8) or not digits.isdigit():
        return None
    year = int(digits[:4])
    try:
        if len(digits) == 4:
            return date(year, 1, 1), date(year, 12, 31)
        month = int(digits[4:6])
        if len(digits) == 6:
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        day = date(year, month, int(digits[6:8]))
    except ValueError:
        return None
    return day, day


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


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

    def minority(self, today: date) -> bool | None:
        """Under 18 on ``today`` (French calendar date, ``french_date``): True, False, or None
        when the birth date is known but cannot be read. No birth date at all: an adult (most
        documents give one; a record opened before any document is the patient's own). A
        partial date (YYYY, YYYYMM) is the range of days it may mean: a minor as long as any
        day of it makes them under 18, so a child born "2015" is never taken for an adult."""
        if not self.birth_date:
            return False
        days = birth_range(self.birth_date)
        if days is None:
            return None
        return _age(days[1], today) < MAJORITY

    def is_minor(self, today: date) -> bool:
        """Under 18, or maybe (an unreadable birth date): who holds the record's rights
        cannot be known, so ``record_access`` opens it to neither patient nor representative
        until an operator corrects the birth date (``RecordStore.set_birth_date``)."""
        return self.minority(today) is not False


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
    unreadable = _deny("the patient's birth date cannot be read: an operator must correct it")
    if caller.kind is CallerKind.PATIENT:
        if caller.id != patient.ins:
            return _deny("another patient's record")
        if patient.minority(today) is None:
            return unreadable
        if patient.is_minor(today):
            return _deny("a minor's rights are exercised by their legal representatives")
        return _allow("own record")
    if caller.kind is CallerKind.REPRESENTATIVE:
        if caller.id not in patient.representatives:
            return _deny("not a legal representative of this patient")
        if patient.minority(today) is None:
            return unreadable
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


def may_know_of(caller: Caller, patient: PatientFacts, doc: DocumentFacts, today: date) -> bool:
    """May ``caller`` learn that this document exists at all? A denial then says "no such
    document" (404), not why (403): "not yet announced" would announce it, and "no access
    granted" to a caller who may not open the record would tell which document ids exist.
    Nobody the record is closed to (``record_access``: no grant, opposed, another patient, a
    former representative of a patient now adult) may. A professional who may open the record
    may: its documents are theirs to see once the patient lets them, and a masked one is
    refused as masked (403, docs/records.md). A patient or representative may not know of a
    document of another record, one not yet announced, or (representatives) one hidden
    from them."""
    if doc.patient_ins != patient.ins or not record_access(caller, patient, today):
        return False
    if caller.kind is CallerKind.PROFESSIONAL:
        return True
    if doc.invisible_patient and not doc.released:
        return False
    if caller.kind is CallerKind.REPRESENTATIVE:
        return not doc.invisible_representatives
    return caller.kind is CallerKind.PATIENT


def notify_holders(patient: PatientFacts, doc: DocumentFacts, today: date) -> bool:
    """May a notification about ``doc`` go to the patient's account? Only when whoever holds
    the account may see the document: not while it is invisible to the patient (not yet
    announced), and, unless the patient is known to be an adult, not when it is hidden from
    the legal representatives (a minor's account is held by them; a patient with no readable
    birth date may be a minor). A masked document is the patient's to see: it is notified."""
    if doc.invisible_patient and not doc.released:
        return False
    if doc.invisible_representatives:
        return bool(patient.birth_date) and patient.minority(today) is False
    return True


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
