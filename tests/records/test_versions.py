"""Versions of a document (same setId) on SQLite and PostgreSQL: replacement keeps history,
a late stale version never becomes current, redelivery files once, withdrawal by the author's
organisation only. Plus the notification outbox that filing feeds."""

from datetime import UTC, datetime

import pytest

from gateway.records.access import french_date
from gateway.records.filing import Placement, placement
from gateway.records.store import DocumentQuery, Filing
from tests.records.builders import INS, LAB, OTHER_INS, OTHER_ORG, message


def current(store, ins=INS):
    return [r["document_id"] for r in store.query(ins, DocumentQuery())]


def status(store, doc_id):
    return store.document(doc_id)["status"]


def test_higher_version_supersedes_and_the_old_one_stays_as_history(store):
    assert store.file(message("d^1", version=1)) is Filing.STORED
    assert store.file(message("d^2", version=2, replaces="d^1")) is Filing.STORED
    assert current(store) == ["d^2"]
    old = store.document("d^1")
    assert old["status"] == "superseded" and old["superseded_by"] == "d^2"
    assert old["payload"] == b"<doc id='d^1'/>"  # history is retrievable whole
    assert [v["document_id"] for v in store.versions("1.2.3.set")] == ["d^2", "d^1"]
    history = store.query(INS, DocumentQuery(include_history=True))
    assert {r["document_id"] for r in history} == {"d^1", "d^2"}


def test_a_stale_version_arriving_late_is_history_and_never_current(store):
    store.file(message("d^1", version=1))
    store.file(message("d^3", version=3))
    assert store.file(message("d^2", version=2)) is Filing.HISTORY
    assert current(store) == ["d^3"]
    assert status(store, "d^2") == "superseded"
    assert store.document("d^2")["superseded_by"] == "d^3"
    # the first version arriving after everything changes nothing either
    assert store.file(message("d^0", version=0)) is Filing.HISTORY
    assert current(store) == ["d^3"]


def test_replacement_without_version_numbers_follows_relatedDocument(store):
    store.file(message("r^1", set_id=None, version=None))
    assert store.file(message("r^2", set_id=None, version=None, replaces="r^1")) is Filing.STORED
    assert current(store) == ["r^2"]
    # a document naming an already-replaced version as its predecessor is not newer
    assert store.file(message("r^x", set_id=None, version=None, replaces="r^1")) is Filing.HISTORY
    assert current(store) == ["r^2"]


def test_same_set_and_version_under_another_id_is_a_conflict(store):
    store.file(message("d^1", version=1))
    assert store.file(message("d^1bis", version=1)) is Filing.CONFLICT
    assert store.document("d^1bis") is None


def test_a_replacement_for_another_patient_is_refused(store):
    store.file(message("d^1", version=1))
    replacement = message("d^2", version=2, ins=OTHER_INS, set_id=None, replaces="d^1")
    assert store.file(replacement) is Filing.CONFLICT
    assert current(store) == ["d^1"] and current(store, OTHER_INS) == []


def test_redelivery_of_each_version_changes_nothing(store):
    store.file(message("d^1", version=1))
    store.file(message("d^2", version=2))
    assert store.file(message("d^1", version=1)) is Filing.DUPLICATE
    assert store.file(message("d^2", version=2)) is Filing.DUPLICATE
    assert current(store) == ["d^2"]
    assert len(store.documents_for_patient(INS)) == 2


def test_withdrawal_from_the_authors_organisation_marks_it_withdrawn(store):
    store.file(message("d^1"))
    assert store.file(message("del^1", action="delete", replaces="d^1")) is Filing.WITHDRAWN
    assert status(store, "d^1") == "withdrawn"
    assert current(store) == []
    assert store.document("d^1")["payload"]  # marked, not erased
    # redelivered withdrawal
    assert store.file(message("del^1", action="delete", replaces="d^1")) is Filing.DUPLICATE


def test_withdrawal_naming_the_set_withdraws_its_current_version(store):
    store.file(message("d^1", version=1))
    store.file(message("d^2", version=2))
    assert store.file(message("del", action="delete", version=None)) is Filing.WITHDRAWN
    assert status(store, "d^2") == "withdrawn" and status(store, "d^1") == "superseded"


def test_withdrawal_from_another_organisation_is_refused_and_audited(store):
    store.file(message("d^1"))
    request = message("del^1", action="delete", replaces="d^1", org=OTHER_ORG)
    assert store.file(request) is Filing.REFUSED
    assert status(store, "d^1") == "current"
    [event] = [e for e in store.audit_trail(INS) if e["action"] == "document.withdraw"]
    assert event["outcome"] == "refused" and event["document_id"] == "d^1"


def test_withdrawal_of_an_unknown_document_is_an_orphan(store):
    assert store.file(message("del", action="delete", replaces="nothing^1")) is Filing.ORPHAN


def test_the_patients_mask_holds_for_later_versions(store):
    store.file(message("d^1", version=1))
    from gateway.records.audit import Action, Actor, Event

    store.set_masked("d^1", True, Event(Actor("patient", INS), Action.MASK, "allowed", INS))
    store.file(message("d^2", version=2))
    assert store.document("d^2")["masked"]


@pytest.mark.parametrize(
    ("codes", "flags", "notified"),
    [
        ((), {}, True),
        (("MASQUE_PS",), {}, True),  # masked from professionals, not from the patient
        (("INVISIBLE_PATIENT",), {}, False),
        ((), {"MASQUE_PS": True}, True),
        ((), {"INVISIBLE_PATIENT": True}, False),
        (("INVISIBLE_REPRESENTANTS_LEGAUX",), {}, True),  # an adult's: they see it
    ],
)
def test_filing_queues_a_notification_of_what_the_patient_may_see(store, codes, flags, notified):
    store.file(message("n^1", codes=codes, flags=flags))
    pending = store.pending_notifications()
    assert [(p["document_id"], p["event"]) for p in pending] == (
        [("n^1", "document-filed")] if notified else []
    )


def test_history_and_redelivery_queue_no_notification(store):
    store.file(message("d^2", version=2))
    store.file(message("d^1", version=1))
    store.file(message("d^2", version=2))
    assert [p["document_id"] for p in store.pending_notifications()] == ["d^2"]
    store.mark_notified([store.pending_notifications()[0]["id"]])
    assert store.pending_notifications() == []


def test_filing_audits_each_document(store):
    store.file(message("d^1", version=1))
    store.file(message("d^0", version=0))
    events = {(e["document_id"], e["outcome"]) for e in store.audit_trail(INS)}
    assert events == {("d^1", "stored"), ("d^0", "history")}


@pytest.mark.parametrize(
    ("version", "replaces", "current_id", "current_version", "expected"),
    [
        (1, None, None, None, Placement.CURRENT),
        (2, None, "a", 1, Placement.CURRENT),
        (1, None, "a", 2, Placement.HISTORY),
        (2, None, "a", 2, Placement.CONFLICT),
        (None, "a", "a", 1, Placement.CURRENT),
        (None, "old", "a", 1, Placement.HISTORY),
        (None, None, "a", None, Placement.HISTORY),
        (3, "a", "a", None, Placement.CURRENT),
    ],
)
def test_placement(version, replaces, current_id, current_version, expected):
    assert placement(version, replaces, current_id, current_version) is expected


def test_concurrent_filers_in_any_order_leave_the_highest_version_current(store):
    """Several consumers file versions of one set (and redeliveries) at once, out of order."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    versions = list(range(1, 25)) * 2  # every version delivered twice
    random.Random(7).shuffle(versions)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda v: store.file(message(f"c^{v}", version=v)), versions))
    assert results.count(Filing.DUPLICATE) == 24
    assert current(store) == ["c^24"]
    rows = store.documents_for_patient(INS)
    assert len(rows) == 24
    assert {r["document_id"] for r in rows if r["status"] == "current"} == {"c^24"}


def _story(p: str) -> list:
    """Versions, replacements naming no set, a masked first version and a redelivered twin,
    all within one batch; ``p`` prefixes every id. The ids sort against arrival order (a
    replacement's id before the id of what it replaces, a set id before the previous
    document's): filed in id order, r^a2 would find no r^z1 and both would stay current."""
    return [
        message(f"{p}v^2", set_id=f"{p}z-set-v", version=2),
        message(f"{p}v^1", set_id=f"{p}z-set-v", version=1),
        message(f"{p}v^3", set_id=f"{p}z-set-v", version=3),
        message(f"{p}v^3", set_id=f"{p}z-set-v", version=3),  # twin: a redelivery
        message(f"{p}r^z1", set_id=None, version=None),
        message(f"{p}r^a2", set_id=None, version=None, replaces=f"{p}r^z1"),
        message(f"{p}r^0", set_id=None, version=None, replaces=f"{p}r^a2"),
        message(f"{p}m^1", set_id=f"{p}a-set-m", version=1, codes=("MASQUE_PS",)),
        message(f"{p}m^2", set_id=f"{p}a-set-m", version=2),
        message(f"{p}x^1", set_id=f"{p}z-set-v", version=3),  # v^3's version, another id
    ]


def _rows(store, p: str) -> dict:
    rows = store.documents_for_patient(INS)
    return {
        r["document_id"].removeprefix(p): (
            r["status"],
            (r["superseded_by"] or "").removeprefix(p),
            r["masked"],
            r["set_id"].removeprefix(p),
        )
        for r in rows
        if r["document_id"].startswith(p)
    }


def test_a_batch_files_versions_of_its_own_documents_as_one_by_one_filing_does(store):
    """The batch holds its document and set rows until its end and reads its own filings
    from what it holds: the rows and results must be those of filing each alone."""
    alone = [store.file(m) for m in _story("one-")]
    batched = store.file_many([(m, "unchecked") for m in _story("bat-")])
    assert batched == alone
    assert alone == [Filing.STORED, Filing.HISTORY, Filing.STORED, Filing.DUPLICATE,
                     Filing.STORED, Filing.STORED, Filing.STORED, Filing.STORED,
                     Filing.STORED, Filing.CONFLICT]  # fmt: skip
    assert _rows(store, "bat-") == _rows(store, "one-")
    rows = _rows(store, "bat-")
    assert rows["v^3"][0] == "current"
    assert rows["v^2"][:2] == ("superseded", "v^3")
    assert rows["v^1"][:2] == ("superseded", "v^2")  # arrived late: history under v^2
    assert rows["r^z1"][:2] == ("superseded", "r^a2")
    assert rows["r^a2"] == ("superseded", "r^0", False, "r^z1")
    assert rows["r^0"] == ("current", "", False, "r^z1")
    assert rows["m^2"][2] is True  # the mask of version 1 holds for version 2
    assert "x^1" not in rows
    assert {d for d in current(store) if d.startswith("bat-")} == {"bat-v^3", "bat-r^0", "bat-m^2"}


def test_concurrent_batches_of_one_set_leave_the_highest_version_current(store):
    """Consumers file overlapping batches of versions of one new set at once, out of order:
    a batch that finds the set created meanwhile by another is filed again and decides anew."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    versions = list(range(1, 41)) * 2
    random.Random(11).shuffle(versions)
    batches = [versions[i : i + 8] for i in range(0, len(versions), 8)]
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(
            pool.map(
                lambda b: store.file_many(
                    [(message(f"k^{v}", set_id="set-k", version=v), "verified") for v in b]
                ),
                batches,
            )
        )
    flat = [r for batch in results for r in batch]
    assert not [r for r in flat if isinstance(r, Exception)]
    assert flat.count(Filing.DUPLICATE) == 40
    rows = {r["document_id"]: r for r in store.documents_for_patient(INS)}
    assert len(rows) == 40
    assert [d for d, r in rows.items() if r["status"] == "current"] == ["k^40"]
    assert store.query(INS, DocumentQuery())[0]["document_id"] == "k^40"


def test_a_replacement_naming_no_set_locks_the_replaced_documents_set_when_its_batch_begins(
    store,
):
    """The replaced document's set is locked with the batch's other sets, in set order, not
    later while the batch already holds sets that sort after it (two batches could then wait
    on each other)."""
    import sqlalchemy as sa

    store.file(message("a^1", set_id=None, version=None))
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:3]))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        results = store.file_many(
            [
                (message("z^1", set_id="z-set"), "verified"),
                (message("a^2", set_id=None, version=None, replaces="a^1"), "verified"),
            ]
        )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert results == [Filing.STORED, Filing.STORED]
    assert sum(s.startswith("SELECT document_sets.set_id") for s in statements) == 1
    assert sorted(current(store)) == ["a^2", "z^1"]
    assert store.document("a^2")["set_id"] == "a^1" and status(store, "a^1") == "superseded"


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        (dict(set_id=None), dict(set_id="other-set")),  # first filed without a setId
        (dict(set_id="set-1"), dict(set_id="set-2")),
    ],
    ids=["original-without-set", "two-sets"],
)
def test_a_replacement_naming_another_set_is_a_conflict_and_the_original_stays_current(
    store, original, replacement
):
    from gateway.broker.consumer import Poison
    from gateway.records.worker import RecordWorker
    from tests.records.test_notifications import delivery

    store.file(message("o^1", version=1, **original))
    replacing = message("o^2", version=2, replaces="o^1", **replacement)
    assert store.file(replacing) is Filing.CONFLICT
    assert store.document("o^2") is None
    assert current(store) == ["o^1"]
    [event] = [e for e in store.audit_trail(INS) if e["document_id"] == "o^2"]
    assert event["outcome"] == "conflict"
    assert event["reason"].startswith("replaces a document of another set")
    # the consumer parks it saying which conflict it was
    with pytest.raises(Poison, match="conflict: replaces a document of another set"):
        RecordWorker(store)(delivery(replacing))


def test_the_patients_mask_and_unmask_hold_for_every_version_of_the_set(store):
    """Masking any version masks them all, older ones included, and versions filed later,
    newer or older; unmasking unmasks them all."""
    from gateway.records.audit import Action, Actor, Event

    def mask(doc_id: str, on: bool) -> None:
        action = Action.MASK if on else Action.UNMASK
        store.set_masked(doc_id, on, Event(Actor("patient", INS), action, "allowed", INS))

    def masked() -> dict[str, bool]:
        return {r["document_id"]: bool(r["masked"]) for r in store.documents_for_patient(INS)}

    store.file(message("d^1", version=1))
    store.file(message("d^2", version=2))
    store.file(message("other^1", set_id="other"))
    mask("d^2", True)
    assert masked() == {"d^1": True, "d^2": True, "other^1": False}
    store.file(message("d^0", version=0))  # an older version arriving after the mask
    store.file(message("d^3", version=3))
    assert masked() == {"d^0": True, "d^1": True, "d^2": True, "d^3": True, "other^1": False}
    mask("d^1", False)  # unmasking through any version
    assert not any(masked().values())
    store.file(message("d^4", version=4))
    assert not masked()["d^4"]


def test_a_withdrawal_naming_the_victims_organisation_from_another_sender_is_refused(store):
    """Rights come from what was recorded when the document was filed (its sender, its
    custodian), not from the organisations the request says it speaks for."""
    store.file(message("d^1", sender="lab-sil", custodian=LAB))
    forged = message("del^1", action="delete", replaces="d^1", sender="other-clinic", custodian=LAB)
    assert store.file(forged) is Filing.REFUSED
    assert status(store, "d^1") == "current"
    [event] = [e for e in store.audit_trail(INS) if e["action"] == "document.withdraw"]
    assert event["reason"] == "only the sender that filed the document withdraws it"


def test_a_withdrawal_must_name_the_custodian_the_document_was_filed_with(store):
    store.file(message("d^1", custodian=LAB))
    other = message("del^1", action="delete", replaces="d^1", custodian=OTHER_ORG)
    assert store.file(other) is Filing.REFUSED
    assert status(store, "d^1") == "current"
    # the custodian's own request, whoever of its professionals authored it
    mine = message("del^2", action="delete", replaces="d^1", custodian=LAB, org=OTHER_ORG)
    assert store.file(mine) is Filing.WITHDRAWN
    assert status(store, "d^1") == "withdrawn"


def test_a_stale_version_never_changes_the_birth_date(store):
    """An older version filed as history says nothing about the patient today."""
    store.file(message("a^1", set_id="a", birth_date="19841205"))
    store.file(message("b^2", set_id="b", version=2))
    assert store.file(message("b^1", set_id="b", version=1, birth_date="19851205")) is (
        Filing.HISTORY
    )
    assert store.patient(INS).birth_date == "19841205"
    # nor does a current document created before the one that gave the birth date
    store.file(message("c^1", set_id="c", birth_date="19851205", created="20250101"))
    assert store.patient(INS).birth_date == "19841205"
    assert not [e for e in store.audit_trail(INS) if e["action"] == "patient.birth-date"]


def test_a_birth_date_that_would_make_an_adult_a_minor_is_kept_and_the_conflict_audited(store):
    store.file(message("a^1", set_id="a", birth_date="19841205", created="20261101"))
    assert store.file(message("b^1", set_id="b", birth_date="20181205", created="20261102")) is (
        Filing.STORED
    )
    assert store.patient(INS).birth_date == "19841205"
    [event] = [e for e in store.audit_trail(INS) if e["action"] == "patient.birth-date"]
    assert (event["document_id"], event["outcome"]) == ("b^1", "conflict")
    # the reason names no birth date: the trail is the patient's to read
    assert (
        event["reason"]
        == "the document's birth date would make the patient a minor; the known one kept"
    )
    # a correction that keeps the patient an adult is taken, and audited
    store.file(message("c^1", set_id="c", birth_date="19841206", created="20261103"))
    assert store.patient(INS).birth_date == "19841206"


CHILD = "212345678901234"


def notified(store):
    return [(n["document_id"], n["event"]) for n in store.pending_notifications()]


def test_a_minors_document_hidden_from_the_representatives_is_not_notified(store):
    hidden = ("INVISIBLE_REPRESENTANTS_LEGAUX",)
    store.file(message("c^1", set_id="c1", ins=CHILD, birth_date="20150301", codes=hidden))
    store.file(message("c^2", set_id="c2", ins=CHILD, birth_date=None, codes=hidden))
    store.file(message("c^3", set_id="c3", ins=CHILD, birth_date="20150301"))
    assert notified(store) == [("c^3", "document-filed")]


def test_a_new_version_keeps_the_sets_unreleased_invisibility(store):
    store.file(message("k^1", set_id="k", version=1, codes=("INVISIBLE_PATIENT",)))
    store.file(message("k^2", set_id="k", version=2, replaces="k^1"))  # flag not repeated
    store.file(message("p^1", set_id="p", version=1, codes=("INVISIBLE_REPRESENTANTS_LEGAUX",)))
    store.file(message("p^2", set_id="p", version=2, replaces="p^1"))
    store.file(message("p^0", set_id="p", version=0))  # an older one, late: hidden too
    assert store.document("k^2")["invisible_patient"]
    assert store.document("p^2")["invisible_representatives"]
    assert store.document("p^0")["invisible_representatives"]
    assert notified(store) == [("p^1", "document-filed"), ("p^2", "document-filed")]  # adult


def test_a_version_after_the_announcement_is_visible(store):
    from gateway.records.audit import Action, Actor, Event

    store.file(message("k^1", set_id="k", version=1, codes=("INVISIBLE_PATIENT",)))
    store.release("k^1", INS, Event(Actor("professional", "8"), Action.RELEASE, "allowed", INS))
    store.file(message("k^2", set_id="k", version=2, replaces="k^1"))
    assert not store.document("k^2")["invisible_patient"]
    assert ("k^2", "document-filed") in notified(store)


def test_a_deletion_withdraws_the_document_it_carries_not_the_one_it_replaced(store):
    store.file(message("v^1", set_id="v", version=1, custodian="1750000001"))
    store.file(message("v^2", set_id="v", version=2, replaces="v^1", custodian="1750000002"))
    deletion = message("v^2", set_id="v", version=2, replaces="v^1", action="delete",
                       custodian="1750000002")  # fmt: skip
    assert store.file(deletion) is Filing.WITHDRAWN
    assert (status(store, "v^2"), status(store, "v^1")) == ("withdrawn", "superseded")
    assert current(store) == []
    # a deletion naming an unknown id still withdraws what it names as replaced
    store.file(message("w^1", set_id="w", version=1))
    orphan = message("w^9", set_id="w", version=2, replaces="w^1", action="delete")
    assert store.file(orphan) is Filing.WITHDRAWN and status(store, "w^1") == "withdrawn"


def test_a_test_ins_and_a_real_ins_with_the_same_digits_are_not_one_record(store):
    import dataclasses

    def under(msg, oid):
        env = msg.envelope
        patient = dataclasses.replace(env.patient, ins_system=oid)
        return dataclasses.replace(msg, envelope=dataclasses.replace(env, patient=patient))

    test_oid = "1.2.250.1.213.1.4.10"
    assert store.file(under(message("t^1", set_id="t"), test_oid)) is Filing.STORED
    reasons: dict[str, str] = {}
    [result] = store.file_many([(message("r^1", set_id="r"), "unchecked")], reasons)
    assert result is Filing.CONFLICT
    assert "recorded under 1.2.250.1.213.1.4.10" in reasons["r^1"]
    assert current(store) == ["t^1"]
    # in one batch too, and a patient opened without an OID takes the first document's
    both = [(under(message("u^1", set_id="u", ins=OTHER_INS), test_oid), "unchecked"),
            (message("u^2", set_id="u2", ins=OTHER_INS), "unchecked")]  # fmt: skip
    assert store.file_many(both) == [Filing.STORED, Filing.CONFLICT]


def test_a_patient_opened_without_an_oid_takes_the_first_documents(store):
    from gateway.records.audit import Action, Actor, Event

    event = Event(Actor("patient", INS), Action.GRANT, "allowed", INS)
    store.set_access(INS, "8", "grant", event)  # the patient row exists, without an OID
    assert store.file(message("a^1", set_id="a")) is Filing.STORED
    with store.engine.connect() as conn:
        from gateway.records.schema import patients

        oid = conn.execute(
            patients.select().with_only_columns(patients.c.ins_system).where(patients.c.ins == INS)
        ).scalar()
    assert oid == "1.2.250.1.213.1.4.8"


def test_hl7_times_are_read_as_hl7_before_iso():
    from datetime import UTC, datetime

    from gateway.records.filing import document_time

    # fromisoformat reads this as 01:53+01:00 (the hour's "1" taken as the separator)
    assert document_time("20261101101530+0100") == datetime(2026, 11, 1, 9, 15, 30, tzinfo=UTC)
    assert document_time("20261101101530-0500") == datetime(2026, 11, 1, 15, 15, 30, tzinfo=UTC)
    assert document_time("2026-11-01T10:15:30+01:00") == datetime(
        2026, 11, 1, 9, 15, 30, tzinfo=UTC
    )
    assert document_time("202611") == datetime(2026, 11, 1, tzinfo=UTC)
    assert document_time("not a time") is None


def test_a_newer_birth_date_later_the_same_morning_is_taken(store):
    store.file(message("d^1", version=1, created="20261101093000+0100", birth_date="19841205"))
    store.file(message("d^2", version=2, replaces="d^1", created="20261101101530+0100",
                       birth_date="19841206"))  # fmt: skip
    assert store.patient(INS).birth_date == "19841206"


def test_a_precise_birth_date_within_a_partial_one_settles_it(store):
    """A year alone is a minor while any day of it would be; the exact day, within that year,
    is no conflict even when it makes the patient an adult: it was locked out of its record
    until an operator stepped in (review, 2008 -> 20080115 on 2026-12-05)."""
    year = french_date(datetime.now(UTC)).year - 18  # "YYYY": a minor until its 31 December
    store.file(message("y^1", version=1, created="20261101", birth_date=f"{year}"))
    store.file(message("y^2", version=2, replaces="y^1", created="20261102",
                       birth_date=f"{year}0101"))  # fmt: skip
    assert store.patient(INS).birth_date == f"{year}0101"
    [event] = [e for e in store.audit_trail(INS) if e["action"] == "patient.birth-date"]
    assert event["outcome"] == "changed"
    # a date outside the known year is still a conflict when it flips minority
    store.file(message("y^3", version=3, replaces="y^2", created="20261103",
                       birth_date=f"{year + 5}0101"))  # fmt: skip
    assert store.patient(INS).birth_date == f"{year}0101"


def test_an_unreadable_birth_date_is_not_taken(store):
    store.file(message("d^1", version=1, created="20261101", birth_date="19841205"))
    store.file(message("d^2", version=2, replaces="d^1", created="20261102", birth_date="19841340"))
    assert store.patient(INS).birth_date == "19841205"
    [event] = [e for e in store.audit_trail(INS) if e["action"] == "patient.birth-date"]
    assert event["outcome"] == "conflict" and "1984" not in event["reason"]


def test_versions_follow_the_replacement_chain_whatever_the_null_version_numbers(store):
    store.file(message("x^1", set_id="x", version=1))
    store.file(message("x^2", set_id="x", version=None, replaces="x^1"))
    assert [v["document_id"] for v in store.versions("x")] == ["x^2", "x^1"]
    store.file(message("A", set_id="s", version=None))
    store.file(message("B", set_id="s", version=None, replaces="A"))
    store.file(message("C", set_id="s", version=None, replaces="A"))  # late: history
    versions = store.versions("s")
    assert [v["document_id"] for v in versions] == ["B", "C", "A"]
    assert {v["document_id"]: v["superseded_by"] for v in versions}["C"] == "B"
