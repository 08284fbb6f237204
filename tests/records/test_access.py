"""The authorisation policy, rule by rule and caller role by caller role (pure)."""

from datetime import UTC, date, datetime

import pytest

from gateway.records.access import (
    Caller,
    CallerKind,
    DocumentFacts,
    PatientFacts,
    document_access,
    french_date,
    may_know_of,
    may_manage,
    may_release,
    notify_holders,
    record_access,
)

TODAY = date(2026, 11, 2)
INS, CHILD = "184127505612355", "212345678901234"
ATTENDING, AUTHOR, GRANTED, OPPOSED_DOC, STRANGER = "8001", "8002", "8003", "8004", "8005"
PARENT, OTHER_PARENT = "rep-1", "rep-2"

ADULT = PatientFacts(
    ins=INS,
    birth_date="19841205",
    attending_id=ATTENDING,
    granted=frozenset({GRANTED, AUTHOR, OPPOSED_DOC}),
    opposed=frozenset({OPPOSED_DOC}),
    representatives=frozenset({PARENT}),
)
MINOR = PatientFacts(
    ins=CHILD, birth_date="20150301", attending_id=ATTENDING, representatives=frozenset({PARENT})
)


def pro(rpps: str) -> Caller:
    return Caller(CallerKind.PROFESSIONAL, rpps, "10")


def doc(patient=ADULT, **flags) -> DocumentFacts:
    return DocumentFacts("d^1", patient.ins, frozenset({AUTHOR}), **flags)


PATIENT = Caller(CallerKind.PATIENT, INS)
CHILD_SELF = Caller(CallerKind.PATIENT, CHILD)
REP = Caller(CallerKind.REPRESENTATIVE, PARENT)


@pytest.mark.parametrize(
    ("caller", "patient", "allowed"),
    [
        (PATIENT, ADULT, True),
        (Caller(CallerKind.PATIENT, "292059912304525"), ADULT, False),  # someone else's
        (CHILD_SELF, MINOR, False),  # a minor's rights are held by the representatives
        (REP, MINOR, True),
        (Caller(CallerKind.REPRESENTATIVE, OTHER_PARENT), MINOR, False),
        (REP, ADULT, False),  # representation ends at majority
        (pro(ATTENDING), ADULT, True),
        (pro(GRANTED), ADULT, True),
        (pro(STRANGER), ADULT, False),  # no grant
        (pro(OPPOSED_DOC), ADULT, False),  # opposition beats a grant
    ],
)
def test_record_access(caller, patient, allowed):
    decision = record_access(caller, patient, TODAY)
    assert decision.allowed is allowed and decision.reason


def test_opposing_the_attending_doctor_shuts_them_out():
    patient = PatientFacts(ins=INS, attending_id=ATTENDING, opposed=frozenset({ATTENDING}))
    assert not record_access(pro(ATTENDING), patient, TODAY)


def test_minority_ends_on_the_eighteenth_birthday():
    teen = PatientFacts(ins=CHILD, birth_date="20081103", representatives=frozenset({PARENT}))
    assert teen.is_minor(date(2026, 11, 2)) and not teen.is_minor(date(2026, 11, 3))
    assert not PatientFacts(ins=INS).is_minor(TODAY)  # unknown birth date: adult


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (pro(ATTENDING), True),
        (pro(AUTHOR), True),
        (pro(GRANTED), False),
        (PATIENT, True),  # masking is about professionals only
    ],
)
def test_masked_document(caller, allowed):
    assert document_access(caller, ADULT, doc(masked=True), TODAY).allowed is allowed


@pytest.mark.parametrize(
    ("caller", "patient", "released", "allowed"),
    [
        (PATIENT, ADULT, False, False),
        (PATIENT, ADULT, True, True),
        (REP, MINOR, False, False),
        (REP, MINOR, True, True),
        (pro(GRANTED), ADULT, False, True),  # professionals see it: they announce it
    ],
)
def test_invisible_to_the_patient_until_released(caller, patient, released, allowed):
    facts = doc(patient, invisible_patient=True, released=released)
    assert document_access(caller, patient, facts, TODAY).allowed is allowed


def test_hidden_from_legal_representatives():
    facts = doc(MINOR, invisible_representatives=True)
    assert not document_access(REP, MINOR, facts, TODAY)
    assert document_access(pro(ATTENDING), MINOR, facts, TODAY)


def test_a_document_of_another_patient_is_never_seen_through_this_record():
    other = DocumentFacts("d^9", "292059912304525")
    assert not document_access(PATIENT, ADULT, other, TODAY)


@pytest.mark.parametrize(
    ("caller", "patient", "allowed"),
    [
        (PATIENT, ADULT, True),
        (REP, MINOR, True),
        (CHILD_SELF, MINOR, False),
        (REP, ADULT, False),
        (pro(ATTENDING), ADULT, False),  # professionals never manage the patient's choices
    ],
)
def test_who_manages_the_record(caller, patient, allowed):
    assert may_manage(caller, patient, TODAY).allowed is allowed


@pytest.mark.parametrize(
    ("caller", "masked", "allowed"),
    [
        (pro(GRANTED), False, True),
        (pro(GRANTED), True, False),  # cannot announce what they cannot see
        (pro(AUTHOR), True, True),
        (pro(STRANGER), False, False),
        (PATIENT, False, False),
    ],
)
def test_who_releases(caller, masked, allowed):
    facts = doc(invisible_patient=True, masked=masked)
    assert may_release(caller, ADULT, facts, TODAY).allowed is allowed


@pytest.mark.parametrize("operator_id", [ATTENDING, GRANTED, PARENT, INS])
def test_an_operator_never_opens_a_record_whatever_its_name(operator_id):
    """An operator token named like the attending doctor, a granted professional, a
    representative or the patient is still an operator's: no record, no document."""
    op = Caller(CallerKind.OPERATOR, operator_id)
    for patient in (ADULT, MINOR):
        assert not record_access(op, patient, TODAY)
        assert not document_access(op, patient, doc(patient), TODAY)
        assert not may_manage(op, patient, TODAY)
        assert not may_release(op, patient, doc(patient), TODAY)


@pytest.mark.parametrize(
    ("birth_date", "today", "minor"),
    [
        ("2008", date(2026, 6, 1), True),  # born in 2008: maybe still 17 until 31 December
        ("2008", date(2027, 1, 1), False),
        ("2007", date(2026, 6, 1), False),
        ("200812", date(2026, 12, 30), True),  # born in December 2008: maybe 31 December
        ("200812", date(2026, 12, 31), False),
        ("200802", date(2026, 2, 28), True),  # February 2008 had 29 days
        ("20081231", date(2026, 12, 31), False),
        ("200812311230", date(2026, 12, 30), True),  # a time after the day is ignored
        ("19841205", date(2026, 11, 2), False),
    ],
)
def test_a_partial_birth_date_is_a_minor_while_any_day_of_it_would_be(birth_date, today, minor):
    assert PatientFacts(ins=INS, birth_date=birth_date).is_minor(today) is minor


@pytest.mark.parametrize("unreadable", ["20151340", "20150230", "2015-03-01", "abcd", "20151"])
def test_an_unreadable_birth_date_opens_the_record_to_neither_patient_nor_representative(
    unreadable,
):
    patient = PatientFacts(ins=CHILD, birth_date=unreadable, representatives=frozenset({PARENT}))
    assert patient.minority(TODAY) is None
    assert not record_access(Caller(CallerKind.PATIENT, CHILD), patient, TODAY)
    assert not record_access(Caller(CallerKind.REPRESENTATIVE, PARENT), patient, TODAY)
    assert not notify_holders(
        patient, DocumentFacts("d", CHILD, invisible_representatives=True), TODAY
    )


def test_majority_is_reached_on_the_french_calendar_date():
    # 18th birthday on 2 November 2026: at 23:30 UTC on 1 November it is already 00:30 in Paris
    teen = PatientFacts(ins=CHILD, birth_date="20081102")
    eve = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    assert french_date(eve) == date(2026, 11, 2)
    assert not teen.is_minor(french_date(eve)) and teen.is_minor(eve.date())


def test_notifications_go_only_for_what_the_account_holders_may_see():
    minor_doc = DocumentFacts("d", CHILD, invisible_representatives=True)
    assert not notify_holders(MINOR, minor_doc, TODAY)  # the representatives hold the account
    assert not notify_holders(PatientFacts(ins=CHILD), minor_doc, TODAY)  # age unknown
    assert notify_holders(ADULT, DocumentFacts("d", INS, invisible_representatives=True), TODAY)
    assert notify_holders(ADULT, DocumentFacts("d", INS, masked=True), TODAY)
    assert not notify_holders(ADULT, DocumentFacts("d", INS, invisible_patient=True), TODAY)
    assert notify_holders(
        ADULT, DocumentFacts("d", INS, invisible_patient=True, released=True), TODAY
    )


def test_nobody_the_record_is_closed_to_may_know_a_document_exists():
    former = PatientFacts(ins=CHILD, birth_date="20050301", representatives=frozenset({PARENT}))
    assert not may_know_of(pro(STRANGER), ADULT, doc(), TODAY)
    assert not may_know_of(pro(OPPOSED_DOC), ADULT, doc(), TODAY)
    assert not may_know_of(Caller(CallerKind.REPRESENTATIVE, PARENT), former, doc(former), TODAY)
    assert may_know_of(pro(GRANTED), ADULT, doc(masked=True), TODAY)  # refused as masked: 403
    assert may_know_of(Caller(CallerKind.REPRESENTATIVE, PARENT), MINOR, doc(MINOR), TODAY)
