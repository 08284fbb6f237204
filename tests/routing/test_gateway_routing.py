"""The running gateway routes by routing.yaml over the real RabbitMQ: each rule kind, stripped
destinations, rejected inputs with their report, and reload (a bad file keeps the old rules)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
from pathlib import Path

import pika
import pytest

from gateway.broker.message import decode
from gateway.routing import loader
from tests.broker.helpers import depth, get_one, post, wait_for
from tests.conftest import FIXTURES

pytestmark = pytest.mark.broker

CDA = FIXTURES / "cda/crbio_glycemia.xml"  # CR-BIO 11502-2, INS 184127505612355, sender lab
INS = b"184127505612355"

# One destination per rule kind: the CR-BIO fixture must reach every "yes-*" and no "no-*".
KINDS = {
    "equals": ("{type_code: 11502-2}", "{type_code: 18748-4}"),
    "in": ("{source_kind: {in: [cda, x]}}", "{source_kind: {in: [hl7v2]}}"),
    "prefix": ("{document_id: {prefix: '1.2.250.'}}", "{document_id: {prefix: '2.'}}"),
    "regex": ("{type_code: {regex: '\\d{5}-\\d'}}", "{type_code: {regex: '\\d{4}'}}"),
    "exists": ("{patient.ins: {exists: true}}", "{patient.ins: {exists: false}}"),
    "not": ("{confidentiality: {not: {in: [V]}}}", "{confidentiality: {not: {in: [N]}}}"),
    "flag": ("{flags.DESTDMP: {not: {equals: false}}}", "{flags.DESTMSSANTEPS: true}"),
}


def routing_with_every_kind() -> str:
    names = [f"{answer}-{kind}" for kind in KINDS for answer in ("yes", "no")]
    lines = ["version: 1", "destinations:"]
    lines += [f"  {n}: {{type: classic}}" for n in [*names, "parking", "rejected", "stats"]]
    lines += ["  stats-anon: {type: classic, strip: [patient]}", "rules:"]
    for kind, (yes, no) in KINDS.items():
        for answer, match in (("yes", yes), ("no", no)):
            lines += [f"  - name: {answer}-{kind}", f"    match: {match}"]
            lines += [f"    to: [{answer}-{kind}]", "    stop: false"]
    lines += ["  - name: stats", "    match: {type_code: 11502-2}", "    to: [stats-anon]"]
    lines += ["default: {to: [parking]}", "rejected: rejected", "parking: parking", ""]
    return "\n".join(lines)


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_with_every_kind())
    return path


def test_each_rule_kind_routes_on_the_real_broker(start_gateway, broker_ns, routing_file):
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing_file))
    status, body = post(gw.http_url + "/documents", CDA.read_bytes())
    assert status == 202, body
    q = broker_ns.names.queue
    for kind in KINDS:
        assert depth(broker_ns.url, q(f"yes-{kind}")) == 1, kind
        assert depth(broker_ns.url, q(f"no-{kind}")) == 0, kind
    assert depth(broker_ns.url, q("parking")) == 0


def test_a_stripping_destination_never_receives_the_patient(start_gateway, broker_ns, routing_file):
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing_file))
    assert post(gw.http_url + "/documents", CDA.read_bytes())[0] == 202
    _, body = get_one(broker_ns.url, broker_ns.names.queue("stats-anon"))
    assert INS not in body and b"patient" not in body
    message = json.loads(body)
    assert message["format"] == "passerelle.deidentified/1"
    assert message["envelope"]["type_code"]["code"] == "11502-2" and "payload" not in message
    assert message["envelope"]["signature"]["key_id"]  # who signed stays; the document does not
    _, full = get_one(broker_ns.url, broker_ns.names.queue("yes-equals"))
    assert INS in full  # the other destinations get the whole document


def test_each_destination_gets_the_document_in_its_format(start_gateway, broker_ns, tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\ndestinations:\n"
        "  framed: {type: classic, format: passerelle.document/2}\n"
        "  compressed: {type: classic, format: passerelle.document/3}\n"
        "  plain: {type: classic}\n"
        "  parking: {type: classic}\n"
        "rules: [{name: all, match: {type_code: 11502-2}, to: [framed, compressed, plain]}]\n"
        "default: {to: [parking]}\nparking: parking\n"
    )
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(path))
    assert post(gw.http_url + "/documents", CDA.read_bytes())[0] == 202
    framed_props, framed = get_one(broker_ns.url, broker_ns.names.queue("framed"))
    plain_props, plain = get_one(broker_ns.url, broker_ns.names.queue("plain"))
    assert framed.startswith(b'{"format":"passerelle.document/2"')
    assert framed_props.content_type == "application/vnd.passerelle.document-2"
    assert json.loads(plain)["format"] == "passerelle.document/1"
    assert plain_props.content_type == "application/json"
    assert decode(framed) == decode(plain)
    compressed_props, compressed = get_one(broker_ns.url, broker_ns.names.queue("compressed"))
    assert compressed.startswith(b'{"format":"passerelle.document/3"')
    assert compressed_props.content_type == "application/vnd.passerelle.document-3"
    assert decode(compressed) == decode(plain) and len(compressed) < len(framed)
    payload = decode(framed).payload
    assert hashlib.sha256(payload).hexdigest() == decode(framed).envelope.sha256
    assert framed.endswith(payload)  # the bytes themselves, no base64


def test_a_rejected_input_reaches_the_rejected_queue_with_its_report(
    start_gateway, broker_ns, routing_file
):
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing_file))
    bad = CDA.read_bytes().replace(b"184127505612355", b"184127505612356")  # wrong NIR key
    status, receipt = post(gw.http_url + "/documents", bad)
    assert status == 422
    props, body = get_one(broker_ns.url, broker_ns.names.queue("rejected"))
    message = json.loads(body)
    assert message["format"] == "passerelle.rejection/1"
    assert message["trace_id"] == receipt["message_id"] == props.correlation_id
    assert message["report"]["valid"] is False
    rules = {f["rule"] for f in message["report"]["findings"]}
    assert rules == {f["rule"] for f in receipt["findings"]}
    assert base64.b64decode(message["input"]) == bad
    assert props.headers["x-rejection"] == "invalid"


def test_reload_applies_a_valid_file_and_refuses_a_bad_one(start_gateway, broker_ns, tmp_path):
    path = tmp_path / "routing.yaml"
    first = "version: 1\ndestinations: {a: {type: classic}, b: {type: classic}}\n"
    path.write_text(first + "default: {to: [a]}\n")
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(path), GATEWAY_ROUTING_RELOAD_INTERVAL="0.1")
    services = gw.services

    path.write_text(first + "default: {to: [b]}\n")
    broker_ns.track(loader.load(path))
    wait_for(lambda: services.ingest.tools.routing.default == ("b",))
    assert post(gw.http_url + "/documents", CDA.read_bytes())[0] == 202
    assert depth(broker_ns.url, broker_ns.names.queue("b")) == 1

    refusals = services.reloader.refusals
    path.write_text(first + "default: {to: [c]}\n")  # unknown destination
    wait_for(lambda: services.reloader.refusals > refusals)
    assert services.ingest.tools.routing.default == ("b",)
    path.write_text(first + "default: {to: [b]}\nsurprise: 1\n")  # unknown key
    wait_for(lambda: services.reloader.refusals > refusals + 1)
    assert post(gw.http_url + "/documents", CDA.read_bytes().replace(b"4711", b"4712"))[0] == 202
    assert depth(broker_ns.url, broker_ns.names.queue("b")) == 2  # still the old rules


def test_sighup_path_reloads_an_unchanged_stamp(start_gateway, broker_ns, tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\ndestinations: {a: {type: classic}}\ndefault: {to: [a]}\n")
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(path), GATEWAY_ROUTING_RELOAD_INTERVAL="600")
    reloads = gw.services.reloader.reloads
    gw.services.reloader.request()  # what the SIGHUP handler calls
    wait_for(lambda: gw.services.reloader.reloads == reloads + 1)
    time.sleep(0.05)
    assert gw.services.reloader.refusals == 0


def test_a_document_for_a_deleted_queue_is_parked_and_counted_for_operators(
    start_gateway, broker_ns, routing_file
):
    """A destination queue deleted under a running gateway: the broker returns the document,
    the publisher keeps it in parking (durable, accepted), and /metrics says so."""
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing_file))
    queue = broker_ns.names.queue("yes-equals")
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    conn.channel().queue_delete(queue)
    conn.close()
    status, body = post(gw.http_url + "/documents", CDA.read_bytes())
    assert status == 202, body
    assert depth(broker_ns.url, broker_ns.names.queue("parking")) == 1
    metrics = urllib.request.urlopen(gw.http_url + "/metrics").read().decode()
    assert "passerelle_unroutable_parked_total 1.0" in metrics
