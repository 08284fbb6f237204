"""The records API over HTTP (FastAPI app, real store on SQLite and PostgreSQL): tokens, each
access rule from each caller role including denials, and the audit trail they leave."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.identity import mint
from gateway.records.access import Caller, CallerKind
from gateway.records.audit import Action, Actor, Event
from tests.records.builders import AUTHOR, INS, message

SECRET = b"k" * 32
CHILD = "212345678901234"
ATTENDING, GRANTED, STRANGER = "810000000001", "810000000002", "810000000003"
PARENT = "rep-0001"


def token(kind: CallerKind, sub: str, role: str | None = None, **kw) -> dict:
    return {"Authorization": "Bearer " + mint(SECRET, Caller(kind, sub, role), **kw)}


PATIENT = token(CallerKind.PATIENT, INS)
CHILD_SELF = token(CallerKind.PATIENT, CHILD)
REP = token(CallerKind.REPRESENTATIVE, PARENT)


def pro(rpps: str) -> dict:
    return token(CallerKind.PROFESSIONAL, rpps, "10")


@pytest.fixture
def client(store):
    services = SimpleNamespace(store=store, token_secret=SECRET, notifier=None)
    with TestClient(create_app(services)) as c:
        c.store = store
        yield c


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(d["id"] for d in response.json()["documents"])


def doc_url(doc_id: str, suffix: str = "") -> str:
    return f"/documents/{quote(doc_id, safe='')}{suffix}"


def test_every_route_needs_a_valid_token(client):
    client.store.file(message("d^1"))
    assert client.get(f"/patients/{INS}/documents").status_code == 401
    assert client.get(doc_url("d^1")).status_code == 401
    forged = token(CallerKind.PATIENT, INS)["Authorization"][:-4] + "AAAA"
    assert client.get(doc_url("d^1"), headers={"Authorization": forged}).status_code == 401
    expired = token(CallerKind.PATIENT, INS, ttl_s=10, now=time.time() - 60)
    r = client.get(f"/patients/{INS}/documents", headers=expired)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_patient_lists_with_filters_and_fetches_one(client):
    s = client.store
    s.file(message("bio^1", set_id="bio", created="20261101093000+0100"))
    s.file(message("img^1", set_id="img", type_code="18748-4", created="20260615", author="8111"))
    s.file(message("old^1", set_id="old", created="20250101", facility="1750000077"))
    url = f"/patients/{INS}/documents"
    assert ids(client.get(url, headers=PATIENT)) == ["bio^1", "img^1", "old^1"]
    assert ids(client.get(url, params={"type": "18748-4"}, headers=PATIENT)) == ["img^1"]
    dated = client.get(url, params={"from": "2026-01-01", "to": "2026-10-31"}, headers=PATIENT)
    assert ids(dated) == ["img^1"]
    assert ids(client.get(url, params={"author": "8111"}, headers=PATIENT)) == ["img^1"]
    assert ids(client.get(url, params={"facility": "1750000077"}, headers=PATIENT)) == ["old^1"]
    assert client.get(url, params={"from": "yesterday"}, headers=PATIENT).status_code == 422

    s.file(message("bio^2", set_id="bio", version=2))
    assert "bio^1" not in ids(client.get(url, headers=PATIENT))
    assert "bio^1" in ids(client.get(url, params={"history": True}, headers=PATIENT))
    one = client.get(doc_url("bio^2"), headers=PATIENT)
    assert one.status_code == 200
    body = one.json()
    assert body["status"] == "current" and body["envelope"]["document_id"] == "bio^2"
    assert body["payload"] == "PGRvYyBpZD0nYmlvXjInLz4="  # base64 of the filed bytes
    assert body["signature"]["status"] == "unchecked"
    assert [v["id"] for v in body["versions"]] == ["bio^2", "bio^1"]
    assert client.get(doc_url("nothing^1"), headers=PATIENT).status_code == 404


def test_professionals_need_a_grant_and_are_shut_out_by_an_opposition(client):
    client.store.file(message("d^1"))
    url = f"/patients/{INS}/documents"
    assert client.get(url, headers=pro(STRANGER)).status_code == 403
    # not 403: that would tell a caller the record is closed to that "d^1" exists
    assert client.get(doc_url("d^1"), headers=pro(STRANGER)).status_code == 404

    grant = {"decision": "grant"}
    assert client.put(f"/patients/{INS}/access/{GRANTED}", json=grant, headers=PATIENT).is_success
    assert ids(client.get(url, headers=pro(GRANTED))) == ["d^1"]
    # only the patient decides
    r = client.put(f"/patients/{INS}/access/{STRANGER}", json=grant, headers=pro(GRANTED))
    assert r.status_code == 403

    oppose = {"decision": "oppose"}
    assert client.put(f"/patients/{INS}/access/{GRANTED}", json=oppose, headers=PATIENT).is_success
    assert client.get(url, headers=pro(GRANTED)).status_code == 403
    assert client.delete(f"/patients/{INS}/access/{GRANTED}", headers=PATIENT).is_success
    assert client.get(url, headers=pro(GRANTED)).status_code == 403  # revoked: no grant either


def test_masked_documents_stay_visible_to_the_attending_doctor_and_the_author(client):
    s = client.store
    s.file(message("open^1", set_id="open"))
    s.file(message("masked^1", set_id="m", codes=("MASQUE_PS",)))
    s.file(message("later^1", set_id="later"))
    for rpps in (GRANTED, AUTHOR):
        client.put(f"/patients/{INS}/access/{rpps}", json={"decision": "grant"}, headers=PATIENT)
    assert client.put(
        f"/patients/{INS}/attending", json={"professional_id": ATTENDING}, headers=PATIENT
    ).is_success
    url = f"/patients/{INS}/documents"
    everything = ["later^1", "masked^1", "open^1"]
    assert ids(client.get(url, headers=pro(GRANTED))) == ["later^1", "open^1"]
    assert client.get(doc_url("masked^1"), headers=pro(GRANTED)).status_code == 403
    assert ids(client.get(url, headers=pro(ATTENDING))) == everything
    assert ids(client.get(url, headers=pro(AUTHOR))) == everything
    assert ids(client.get(url, headers=PATIENT)) == everything

    # the patient masks and unmasks; professionals cannot
    assert client.put(doc_url("later^1", "/mask"), headers=pro(ATTENDING)).status_code == 403
    assert client.put(doc_url("later^1", "/mask"), headers=PATIENT).is_success
    assert ids(client.get(url, headers=pro(GRANTED))) == ["open^1"]
    assert client.delete(doc_url("masked^1", "/mask"), headers=PATIENT).is_success
    assert ids(client.get(url, headers=pro(GRANTED))) == ["masked^1", "open^1"]


def test_invisible_to_the_patient_until_a_professional_releases_it(client):
    client.store.file(message("diag^1", codes=("INVISIBLE_PATIENT",)))
    client.put(f"/patients/{INS}/access/{GRANTED}", json={"decision": "grant"}, headers=PATIENT)
    assert ids(client.get(f"/patients/{INS}/documents", headers=PATIENT)) == []
    # not "not yet announced" (403): that would announce it
    assert client.get(doc_url("diag^1"), headers=PATIENT).status_code == 404
    assert client.put(doc_url("diag^1", "/mask"), headers=PATIENT).status_code == 404
    assert client.store.pending_notifications() == []  # nothing told before the announcement

    assert client.post(doc_url("diag^1", "/release"), headers=PATIENT).status_code == 404
    assert client.post(doc_url("diag^1", "/release"), headers=pro(STRANGER)).status_code == 404
    assert client.post(doc_url("diag^1", "/release"), headers=pro(GRANTED)).is_success
    assert client.get(doc_url("diag^1"), headers=PATIENT).status_code == 200
    [note] = client.store.pending_notifications()
    assert (note["document_id"], note["event"]) == ("diag^1", "document-released")


def test_legal_representatives_act_for_a_minor(client):
    s = client.store
    s.file(message("c^1", set_id="c1", ins=CHILD, birth_date="20150301"))
    s.file(
        message(
            "c^2",
            set_id="c2",
            ins=CHILD,
            birth_date="20150301",
            codes=("INVISIBLE_REPRESENTANTS_LEGAUX",),
        )
    )
    operator = Event(Actor("operator", "test"), Action.REPRESENTATIVE, "allowed", CHILD)
    s.set_representative(CHILD, PARENT, True, operator)
    url = f"/patients/{CHILD}/documents"
    assert ids(client.get(url, headers=REP)) == ["c^1"]
    assert client.get(doc_url("c^2"), headers=REP).status_code == 404  # may not know of it
    assert client.get(url, headers=CHILD_SELF).status_code == 403  # rights held by the parents
    # the representative manages the record for the child
    assert client.put(doc_url("c^1", "/mask"), headers=REP).is_success
    r = client.put(f"/patients/{CHILD}/access/{GRANTED}", json={"decision": "grant"}, headers=REP)
    assert r.is_success
    assert client.get(f"/patients/{CHILD}/audit", headers=REP).status_code == 200
    # but represents nobody else
    assert client.get(f"/patients/{INS}/documents", headers=REP).status_code == 403


def test_the_audit_trail_records_every_read_and_change_with_denials(client):
    client.store.file(message("d^1"))
    client.get(f"/patients/{INS}/documents", headers=PATIENT)
    client.get(doc_url("d^1"), headers=PATIENT)
    client.get(doc_url("d^1"), headers=pro(STRANGER))  # denied
    client.put(f"/patients/{INS}/access/{GRANTED}", json={"decision": "grant"}, headers=PATIENT)
    client.get(doc_url("d^1"), headers=pro(GRANTED))
    client.put(doc_url("d^1", "/mask"), headers=PATIENT)
    client.put(doc_url("d^1", "/mask"), headers=pro(GRANTED))  # denied
    assert client.get(f"/patients/{INS}/audit", headers=pro(GRANTED)).status_code == 403

    trail = client.get(f"/patients/{INS}/audit", headers=PATIENT)
    assert trail.status_code == 200
    seen = [
        (e["actor"]["kind"], e["actor"]["id"], e["action"], e["outcome"])
        for e in reversed(trail.json()["events"])
    ]
    assert seen == [
        ("sender", "lab-sil", "document.file", "stored"),
        ("patient", INS, "record.list", "allowed"),
        ("patient", INS, "document.read", "allowed"),
        ("professional", STRANGER, "document.read", "denied"),
        ("patient", INS, "access.grant", "allowed"),
        ("professional", GRANTED, "document.read", "allowed"),
        ("patient", INS, "document.mask", "allowed"),
        ("professional", GRANTED, "document.mask", "denied"),
        ("professional", GRANTED, "record.audit", "denied"),
    ]
    events = trail.json()["events"]
    assert all(e["at"] for e in events)
    denied = next(e for e in events if e["actor"]["id"] == STRANGER)
    assert (
        denied["actor"]["role"] == "10" and denied["reason"] == "no access granted by the patient"
    )
    recent = client.get(
        f"/patients/{INS}/audit", params={"since": "2000-01-01T00:00:00Z"}, headers=PATIENT
    )
    assert len(recent.json()["events"]) == len(events) + 1  # + the previous trail read
    future = client.get(
        f"/patients/{INS}/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=PATIENT
    )
    assert future.json()["events"] == []
    # reading the trail is itself in the trail
    again = client.get(f"/patients/{INS}/audit", headers=PATIENT).json()["events"]
    assert (again[0]["action"], again[0]["actor"]["id"]) == ("record.audit", INS)


def test_openapi_schema_is_served_at_docs(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    schema = client.get("/openapi.json").json()
    for path in (
        "/patients/{ins}/documents",
        "/documents/{document_id}",
        "/documents/{document_id}/mask",
        "/documents/{document_id}/release",
        "/patients/{ins}/access/{professional_id}",
        "/patients/{ins}/audit",
    ):
        assert path in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_documents_history_lists_only_the_versions_the_caller_may_see(client):
    client.store.file(message("h^1", set_id="h", version=1, codes=("INVISIBLE_PATIENT",)))
    client.store.file(message("h^2", set_id="h", version=2))  # inherits INVISIBLE_PATIENT
    client.put(f"/patients/{INS}/access/{GRANTED}", json={"decision": "grant"}, headers=PATIENT)
    assert client.post(doc_url("h^2", "/release"), headers=pro(GRANTED)).is_success
    mine = client.get(doc_url("h^2"), headers=PATIENT).json()["versions"]
    assert [v["id"] for v in mine] == ["h^2"]
    theirs = client.get(doc_url("h^2"), headers=pro(GRANTED)).json()["versions"]
    assert [(v["id"], v["status"]) for v in theirs] == [("h^2", "current"), ("h^1", "superseded")]


def test_a_version_the_patient_may_not_see_yet_is_not_told_by_the_one_before(client):
    """v2 not yet announced to the patient: for them v1 is still the current version, in the
    list and when read, and nothing names v2; a professional who may see v2 sees the truth."""
    client.store.file(message("n^1", set_id="n", version=1))
    client.store.file(message("n^2", set_id="n", version=2, codes=("INVISIBLE_PATIENT",)))
    client.put(f"/patients/{INS}/access/{GRANTED}", json={"decision": "grant"}, headers=PATIENT)
    url = f"/patients/{INS}/documents"
    assert ids(client.get(url, headers=PATIENT)) == ["n^1"]
    seen = client.get(doc_url("n^1"), headers=PATIENT).json()
    assert (seen["status"], seen["superseded_by"]) == ("current", None)
    assert [(v["id"], v["status"]) for v in seen["versions"]] == [("n^1", "current")]
    history = client.get(url, params={"history": True}, headers=PATIENT).json()["documents"]
    assert [(d["id"], d["status"]) for d in history] == [("n^1", "current")]
    assert "n^2" not in client.get(doc_url("n^1"), headers=PATIENT).text
    theirs = client.get(doc_url("n^1"), headers=pro(GRANTED)).json()
    assert (theirs["status"], theirs["superseded_by"]) == ("superseded", "n^2")
    assert ids(client.get(url, headers=pro(GRANTED))) == ["n^2"]


def test_a_mask_hides_every_version_of_the_document_from_professionals(client):
    s = client.store
    s.file(message("d^1", version=1))
    s.file(message("d^2", version=2))
    client.put(f"/patients/{INS}/access/{GRANTED}", json={"decision": "grant"}, headers=PATIENT)
    assert client.put(doc_url("d^2", "/mask"), headers=PATIENT).is_success
    url = f"/patients/{INS}/documents"
    for doc_id in ("d^1", "d^2"):
        assert client.get(doc_url(doc_id), headers=pro(GRANTED)).status_code == 403
    assert ids(client.get(url, params={"history": True}, headers=pro(GRANTED))) == []
    s.file(message("d^0", version=0))  # an older version filed after the mask
    assert client.get(doc_url("d^0"), headers=pro(GRANTED)).status_code == 403
    # the author still sees the versions; the patient unmasks them all at once
    client.put(f"/patients/{INS}/access/{AUTHOR}", json={"decision": "grant"}, headers=PATIENT)
    assert client.get(doc_url("d^1"), headers=pro(AUTHOR)).status_code == 200
    assert client.delete(doc_url("d^0", "/mask"), headers=PATIENT).is_success
    history = client.get(url, params={"history": True}, headers=pro(GRANTED))
    assert ids(history) == ["d^0", "d^1", "d^2"]


def test_a_stale_document_with_a_childs_birth_date_does_not_lock_the_patient_out(client):
    s = client.store
    s.file(message("a^1", set_id="a", birth_date="19841205"))
    s.file(message("b^2", set_id="b", version=2))
    s.file(message("b^1", set_id="b", version=1, birth_date="20181205"))  # history
    s.file(message("c^1", set_id="c", birth_date="20181205", created="20261201"))  # current
    assert ids(client.get(f"/patients/{INS}/documents", headers=PATIENT)) == ["a^1", "b^2", "c^1"]
    trail = client.get(f"/patients/{INS}/audit", headers=PATIENT).json()["events"]
    assert [(e["action"], e["outcome"]) for e in trail if e["document_id"] == "c^1"][-1] == (
        "patient.birth-date",
        "conflict",
    )


def test_the_audit_trail_keeps_quiet_about_documents_the_caller_may_not_see(client):
    """Events about a document not yet announced to the patient (or hidden from legal
    representatives) would announce it: they are left out until the caller may see it."""
    s = client.store
    s.file(message("open^1", set_id="open"))
    s.file(message("cancer^1", set_id="cancer", codes=("INVISIBLE_PATIENT",)))
    client.put(f"/patients/{INS}/attending", json={"professional_id": ATTENDING}, headers=PATIENT)
    assert client.get(doc_url("cancer^1"), headers=pro(ATTENDING)).status_code == 200
    assert client.get(doc_url("cancer^1"), headers=PATIENT).status_code == 404

    def trail_ids(who: dict, ins: str = INS) -> set:
        r = client.get(f"/patients/{ins}/audit", headers=who)
        assert r.status_code == 200, r.text
        return {e["document_id"] for e in r.json()["events"]}

    assert trail_ids(PATIENT) == {None, "open^1"}
    assert client.post(doc_url("cancer^1", "/release"), headers=pro(ATTENDING)).is_success
    assert "cancer^1" in trail_ids(PATIENT)  # announced: its whole history shows

    s.file(message("c^1", set_id="c1", ins=CHILD, birth_date="20150301"))
    s.file(
        message(
            "c^2",
            set_id="c2",
            ins=CHILD,
            birth_date="20150301",
            codes=("INVISIBLE_REPRESENTANTS_LEGAUX",),
        )
    )
    operator = Event(Actor("operator", "test"), Action.REPRESENTATIVE, "allowed", CHILD)
    s.set_representative(CHILD, PARENT, True, operator)
    assert client.get(doc_url("c^2"), headers=REP).status_code == 404
    assert trail_ids(REP, CHILD) == {None, "c^1"}


def test_the_audit_trail_is_paged_newest_first_with_a_link_to_the_next_page(client):
    s = client.store
    s.file(message("d^1"))
    snoop = Event(Actor("professional", STRANGER, "10"), Action.READ, "denied", INS, "d^1")
    s.audit(snoop)  # the oldest event but one: beyond any cap on a busy record
    for _ in range(12):
        s.audit(Event(Actor("patient", INS), Action.LIST, "allowed", INS))
    url = f"/patients/{INS}/audit"
    assert client.get(url, params={"limit": 501}, headers=PATIENT).status_code == 422
    assert client.get(url, params={"limit": 0}, headers=PATIENT).status_code == 422
    seen, pages, next_url = [], 0, f"{url}?limit=5"
    while next_url:
        page = client.get(next_url, headers=PATIENT)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["events"]) <= 5
        seen += body["events"]
        next_url, pages = body["next"], pages + 1
    assert pages == 3
    event_ids = [e["id"] for e in seen]
    assert event_ids == sorted(event_ids, reverse=True) and len(set(event_ids)) == 14
    assert [e["actor"]["id"] for e in seen[-2:]] == [STRANGER, "lab-sil"]
    # since narrows every page alike
    since = client.get(url, params={"since": "2999-01-01T00:00:00Z"}, headers=PATIENT).json()
    assert since == {"events": [], "next": None}


def test_audit_times_carry_their_offset(client):
    client.store.file(message("d^1"))
    [event] = client.get(f"/patients/{INS}/audit", headers=PATIENT).json()["events"]
    from datetime import datetime, timedelta

    at = datetime.fromisoformat(event["at"])
    assert at.utcoffset() == timedelta(0)


def _represent(store, ins=CHILD):
    event = Event(Actor("operator", "t"), Action.REPRESENTATIVE, "allowed", ins)
    store.set_representative(ins, PARENT, True, event)


def test_a_release_is_not_notified_to_a_minors_account_hidden_from_the_representatives(client):
    s = client.store
    hidden = ("INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
    s.file(message("c^3", set_id="c3", ins=CHILD, birth_date="20150301", codes=hidden))
    _represent(s)
    client.put(f"/patients/{CHILD}/access/{GRANTED}", json={"decision": "grant"}, headers=REP)
    assert client.post(doc_url("c^3", "/release"), headers=pro(GRANTED)).is_success
    assert s.pending_notifications() == []
    assert client.get(doc_url("c^3"), headers=REP).status_code == 404


def test_a_child_born_in_a_year_given_alone_is_still_a_minor(client):
    s = client.store
    s.file(message("c^1", set_id="c1", ins=CHILD, birth_date="2015"))
    _represent(s)
    assert client.get(f"/patients/{CHILD}/documents", headers=CHILD_SELF).status_code == 403
    assert ids(client.get(f"/patients/{CHILD}/documents", headers=REP)) == ["c^1"]


def test_callers_the_record_is_closed_to_cannot_tell_which_documents_exist(client):
    s = client.store
    s.file(message("d^1"))
    s.file(message("c^1", set_id="c1", ins=CHILD, birth_date="20050301"))  # adult in 2026
    _represent(s)
    for headers in (pro(STRANGER), REP):
        for doc_id in ("d^1", "c^1", "zz^9"):
            assert client.get(doc_url(doc_id), headers=headers).status_code == 404
    reasons = {
        (e["actor_kind"], e["outcome"], e["reason"])
        for e in s.audit_trail(CHILD)
        if e["action"] == "document.read"
    }  # the real reason, in the trail
    assert reasons == {
        ("professional", "denied", "no access granted by the patient"),
        ("representative", "denied", "legal representation ends at the patient's majority"),
    }


def test_another_patients_ins_never_shows_in_a_patients_trail(client):
    other_ins = "292059912304525"
    other = token(CallerKind.PATIENT, other_ins)
    client.store.file(message("d^1"))
    assert client.get(doc_url("d^1"), headers=other).status_code == 404
    assert client.get(f"/patients/{INS}/documents", headers=other).status_code == 403
    trail = client.get(f"/patients/{INS}/audit", headers=PATIENT).json()["events"]
    denied = [e for e in trail if e["outcome"] == "denied"]
    assert len(denied) == 2  # both attempts traced
    assert all(e["actor"] == {"kind": "patient", "id": "another patient", "role": None}
               for e in denied)  # fmt: skip
    assert other_ins not in str(trail)


def test_a_version_superseded_through_the_chain_is_never_shown_current(client):
    s = client.store
    s.file(message("x^1", set_id="x", version=1))
    s.file(message("x^2", set_id="x", version=None, replaces="x^1"))
    s.file(message("A", set_id="s", version=None))
    s.file(message("B", set_id="s", version=None, replaces="A"))
    s.file(message("C", set_id="s", version=None, replaces="A"))  # late: history
    for doc_id, successor in (("x^1", "x^2"), ("C", "B")):
        body = client.get(doc_url(doc_id), headers=PATIENT).json()
        assert (body["status"], body["superseded_by"]) == ("superseded", successor)
    listed = client.get(f"/patients/{INS}/documents", headers=PATIENT)
    assert ids(listed) == ["B", "x^2"]
