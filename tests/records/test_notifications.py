"""Patient notifications through real RabbitMQ: published after filing, without clinical
content, only for documents the account holders may see, and kept in the outbox while the broker is
away. Also the record worker's refusals."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pytest
import yaml

from gateway.broker import topology
from gateway.broker.consumer import Delivery, Poison
from gateway.broker.message import encode
from gateway.broker.publisher import Publisher
from gateway.records.notify import DESTINATION, BrokerNotifier
from gateway.records.store import RecordStore
from gateway.records.worker import RecordWorker
from gateway.routing import loader
from tests.conftest import FIXTURES, ROOT
from tests.records.builders import INS, OTHER_ORG, message

pytestmark = pytest.mark.broker


def routing_with_notifications() -> dict:
    """The example routing, with the patient-notification queue fed only by the record
    consumer (no ingest-time rule copying documents into it), so tests see what it sends."""
    data = yaml.safe_load((ROOT / "routing.yaml").read_text())
    data["destinations"][DESTINATION] = {"queue": DESTINATION, "type": "quorum"}
    for rule in data.get("rules") or []:
        rule["to"] = [d for d in rule["to"] if d != DESTINATION]
    data["rules"] = [r for r in data.get("rules") or [] if r["to"]]
    return data


def delivery(msg) -> Delivery:
    return Delivery(encode(msg), msg.envelope.document_id, "t", {}, False, "patient-record")


def take(url: str, queue: str, timeout: float = 10.0) -> list[dict]:
    """Every message waiting in ``queue`` (polls until one arrives or ``timeout``)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                if out:
                    return out
                time.sleep(0.05)
                continue
            out.append({"id": props.message_id, "type": props.type, **json.loads(body)})
        return out
    finally:
        conn.close()


@pytest.fixture
def wired(broker_ns, tmp_path):
    table = loader.from_dict(routing_with_notifications())
    broker_ns.track(table)
    publisher = Publisher(broker_ns.url, topology.plan(table, broker_ns.names))
    publisher.start()
    store = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    yield store, publisher, broker_ns
    publisher.stop()
    store.close()


def test_notification_after_filing_carries_no_clinical_content(wired):
    store, publisher, ns = wired
    worker = RecordWorker(store, notifier=BrokerNotifier(publisher, ns.names, 5))
    worker(delivery(message("n^1", set_id="n1")))
    worker(delivery(message("m^1", set_id="m1", codes=("MASQUE_PS",))))
    worker(delivery(message("i^1", set_id="i1", flags={"INVISIBLE_PATIENT": True})))
    # masked from professionals, not from the patient: both told; not the invisible one
    note, masked = take(ns.url, ns.names.queue(DESTINATION), timeout=5)
    assert masked["document_id"] == "m^1"
    assert note == {
        "id": "document-filed:n^1",
        "type": "notification",
        "format": "passerelle.notification/1",
        "event": "document-filed",
        "patient": {"ins": INS},
        "document_id": "n^1",
        "at": note["at"],
    }
    assert store.pending_notifications() == []


def test_notifications_wait_in_the_outbox_while_the_broker_is_away(wired):
    store, publisher, ns = wired
    publisher.stop()
    worker = RecordWorker(store, notifier=BrokerNotifier(publisher, ns.names, 2))
    worker(delivery(message("a^1", set_id="a")))  # filed although nothing can be published
    assert store.document("a^1")["status"] == "current"
    assert [p["document_id"] for p in store.pending_notifications()] == ["a^1"]

    table = loader.from_dict(routing_with_notifications())
    again = Publisher(ns.url, topology.plan(table, ns.names))
    again.start()
    try:
        worker = RecordWorker(store, notifier=BrokerNotifier(again, ns.names, 5))
        worker(delivery(message("b^1", set_id="b")))
        got = take(ns.url, ns.names.queue(DESTINATION), timeout=5)
        assert [n["document_id"] for n in got] == ["a^1", "b^1"]
        assert store.pending_notifications() == []
    finally:
        again.stop()


def test_worker_parks_refused_withdrawals_and_records_signature_status(tmp_path):
    store = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        worker = RecordWorker(store)
        worker(delivery(message("d^1")))
        assert store.document("d^1")["signature_status"] == "unsigned"
        stranger = message("del^1", action="delete", replaces="d^1", org=OTHER_ORG)
        with pytest.raises(Poison, match="refused: only the author's organisation"):
            worker(delivery(stranger))
        with pytest.raises(Poison, match="names no filed document"):
            worker(delivery(message("del^2", action="delete", replaces="none^1")))
        worker(delivery(message("del^3", action="delete", replaces="d^1")))
        assert store.document("d^1")["status"] == "withdrawn"
    finally:
        store.close()


def test_a_batch_files_what_it_can_parks_the_rest_and_relays_once(wired):
    """Poison (a payload altered in transit, a refused withdrawal) is reported for its own
    delivery; the others are filed in the same commit and notified in one relay."""
    store, publisher, ns = wired
    published: list[int] = []
    notifier = BrokerNotifier(publisher, ns.names, 5)

    def counting(notes):
        published.append(len(notes))
        notifier(notes)

    worker = RecordWorker(store, notifier=counting)
    store.file(message("d^1", set_id="d"))
    altered = delivery(dataclasses.replace(message("x^1", set_id="x"), payload=b"<other/>"))
    outcomes = worker.file_batch(
        [
            delivery(message("p^1", set_id="p")),
            altered,
            delivery(message("del^1", action="delete", replaces="d^1", org=OTHER_ORG)),
            delivery(message("q^1", set_id="q")),
        ]
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], Poison) and "altered in transit" in str(outcomes[1])
    assert isinstance(outcomes[2], Poison) and "author's organisation" in str(outcomes[2])
    assert store.document("x^1") is None and store.document("d^1")["status"] == "current"
    got = take(ns.url, ns.names.queue(DESTINATION), timeout=5)
    assert sorted(n["document_id"] for n in got) == ["d^1", "p^1", "q^1"]
    assert published == [3]  # d^1 waited in the outbox; one relay sent the three


def test_a_batch_the_store_cannot_take_is_requeued_but_its_poison_still_parked(tmp_path):
    from gateway.broker.consumer import Transient

    store = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE document_authors")  # the store now fails filing
        worker = RecordWorker(store)
        good = delivery(message("g^1", set_id="g"))
        altered = delivery(dataclasses.replace(message("x^1", set_id="x"), payload=b"<other/>"))
        first, second = worker.file_batch([good, altered])
    finally:
        store.close()
    assert isinstance(first, Transient)  # requeued: filed once the store is back
    assert isinstance(second, Poison) and "altered in transit" in str(second)


def test_the_running_gateway_notifies_the_patient_of_a_filed_cda(start_gateway, tmp_path):
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump(routing_with_notifications()))
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing))
    req = urllib.request.Request(
        gw.http_url + "/documents",
        data=(FIXTURES / "cda/crbio_glycemia.xml").read_bytes(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
    names = gw.services.names
    [note] = take(gw.services.settings.amqp_url, names.queue(DESTINATION), timeout=20)
    assert note["document_id"] == "1.2.250.1.999.1.1.20261101.4711"
    assert note["patient"] == {"ins": "184127505612355"}
    assert set(note) == {"id", "type", "format", "event", "patient", "document_id", "at"}

    # the consumer checked the gateway's signature before filing; the API says so
    from gateway.api.identity import mint
    from gateway.records.access import Caller, CallerKind

    bearer = mint(gw.services.token_secret, Caller(CallerKind.PATIENT, "184127505612355"))
    fetch = urllib.request.Request(
        gw.http_url + "/documents/" + note["document_id"],
        headers={"Authorization": f"Bearer {bearer}"},
    )
    with urllib.request.urlopen(fetch, timeout=30) as resp:
        body = json.loads(resp.read())
    assert body["signature"]["status"] == "verified" and body["signature"]["key_id"]


@pytest.mark.shared
def test_corpus_mdm_invisible_to_the_patient_until_released(start_gateway, tmp_path, shared):
    """The ANS example MDM^T02 flags its report INVISIBLE_PATIENT (MetaDMPMSS): filed, shown to
    a professional the patient granted, hidden from the patient and not notified until that
    professional releases it."""
    from gateway.api.identity import mint
    from gateway.records.access import Caller, CallerKind

    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump(routing_with_notifications()))
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing))
    mdm = shared / "corpus/hl7v2/TRANS_DOC_CDA_HL7V2_V2.0/MDM/Transmission initiale MDM"
    raw = (mdm / "message_MDM_CR_Radio_INIT_N1_Base64.er7").read_bytes()

    def call(method: str, path: str, caller: Caller, body: bytes | None = None):
        bearer = mint(gw.services.token_secret, caller)
        req = urllib.request.Request(
            gw.http_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    with urllib.request.urlopen(
        urllib.request.Request(gw.http_url + "/hl7v2", data=raw, method="POST"), timeout=30
    ) as resp:
        assert resp.status == 202
    from gateway.pipeline import read
    from gateway.submission import Submission

    fields = read(Submission(raw=raw, transport="test"), gw.services.tools.checks).fields
    ins, doc_id, author = fields["patient"].ins, fields["document_id"], fields["authors"][0].id
    store = gw.services.store
    deadline = time.monotonic() + 20
    while not store.documents_for_patient(ins):
        assert time.monotonic() < deadline, "not filed in time"
        time.sleep(0.05)

    patient = Caller(CallerKind.PATIENT, ins)
    doctor = Caller(CallerKind.PROFESSIONAL, "810000000042", "10")
    path = "/documents/" + urllib.parse.quote(doc_id, safe="")
    assert call("GET", f"/patients/{ins}/documents", patient) == (200, {"documents": []})
    assert call("GET", path, patient)[0] == 404  # not announced: not even known to exist
    grant = json.dumps({"decision": "grant"}).encode()
    assert call("PUT", f"/patients/{ins}/access/{doctor.id}", patient, grant)[0] == 200
    status, body = call("GET", path, doctor)
    assert status == 200 and body["invisible_patient"] and author in body["authors"]
    queue = gw.services.names.queue(DESTINATION)
    assert take(gw.services.settings.amqp_url, queue, timeout=0.5) == []

    assert call("POST", path + "/release", doctor)[0] == 200
    assert call("GET", path, patient)[0] == 200
    [note] = take(gw.services.settings.amqp_url, queue, timeout=10)
    assert (note["event"], note["document_id"]) == ("document-released", doc_id)
    trail = call("GET", f"/patients/{ins}/audit", patient)[1]["events"]
    assert ("professional", "document.release", "allowed") in {
        (e["actor"]["kind"], e["action"], e["outcome"]) for e in trail
    }


def test_relay_sends_pending_notifications_as_one_confirmed_batch():
    from datetime import UTC, datetime

    from gateway.errors import BrokerUnavailable
    from gateway.records.notify import relay

    now = datetime.now(UTC)
    rows = [
        {"id": i, "patient_ins": INS, "document_id": f"d^{i}", "event": "document-filed",
         "created_at": now}
        for i in (3, 5, 8)
    ]  # fmt: skip
    batches, marked = [], []
    assert relay(lambda limit: rows[:limit], marked.append, batches.append) == 3
    assert [[n.document_id for n in b] for b in batches] == [["d^3", "d^5", "d^8"]]
    assert marked == [[3, 5, 8]]  # one statement for the batch

    def away(notes):
        raise BrokerUnavailable("broker down")

    marked.clear()
    assert relay(lambda limit: rows, marked.append, away) == 0
    assert marked == []  # nothing counts as sent: all stay in the outbox
