"""Message tracking through a running gateway: ids returned, timelines, search, replay, metrics,
logs — and no patient data in any of them."""

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.tracking.scenario import (
    PATIENT_TEXT,
    http,
    operator_token,
    populate,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.broker


def events_of(body: dict) -> list[str]:
    return [e["event"] for e in body["timeline"]]


def test_every_message_has_a_timeline_and_no_patient_data(start_gateway, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    gw = start_gateway()
    ids = populate(gw)
    url = gw.http_url + "/messages/"
    op = operator_token(gw)

    status, filed = http("GET", url + ids.filed, token=op)
    assert status == 200 and filed["status"] == "filed"
    assert events_of(filed)[:2] == ["received", "validated"]
    assert {"signed", "routed", "accepted", "filed"} <= set(events_of(filed))
    assert filed["type_code"] == "11502-2" and "patient-record" in filed["destinations"]

    status, rejected = http("GET", url + ids.rejected, token=op)
    assert status == 200 and rejected["status"] == "rejected"
    [report] = [e["report"] for e in rejected["timeline"] if e["event"] == "rejected"]
    assert [f["rule"] for f in report if f["severity"] == "error"] == ["ins.nir-key"]
    assert report[0]["location"] and report[0]["fix"]

    status, parked = http("GET", url + ids.parked, token=op)
    assert parked["status"] == "parked"
    [step] = [e for e in parked["timeline"] if e["event"] == "parked"]
    assert step["destination"] == "patient-record" and "already filed" in step["reason"]

    # MLLP: the sender correlates with its MSH-10 (echoed in MSA-2)
    status, found = http("GET", gw.http_url + "/messages?control_id=LAB-000001", token=op)
    assert [m["trace_id"] for m in found["messages"]] == [ids.mllp]
    assert found["messages"][0]["message_type"] == "ORU^R01^ORU_R01"

    status, listed = http("GET", gw.http_url + "/messages?status=rejected", token=op)
    assert [m["trace_id"] for m in listed["messages"]] == [ids.rejected]
    assert http("GET", url + "0" * 32, token=op)[0] == 404
    assert http("GET", gw.http_url + "/messages?status=bogus", token=op)[0] == 422

    everything = json.dumps([filed, rejected, parked, found])
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    for text in PATIENT_TEXT:
        assert text not in everything and text not in logged
    done = [r.fields for r in caplog.records if r.getMessage() == "ingest.done"]
    assert {f["trace_id"] for f in done} == {ids.filed, ids.rejected, ids.parked, ids.mllp}


def test_replay_sends_a_parked_message_back_through_the_broker(start_gateway):
    gw = start_gateway()
    ids = populate(gw)
    replay = gw.http_url + "/messages/{}/replay"
    op = operator_token(gw)

    assert http("POST", replay.format(ids.filed), token=op)[0] == 409  # not parked
    assert http("POST", replay.format("0" * 32), token=op)[0] == 404
    status, body = http("POST", replay.format(ids.parked), token=op)
    assert status == 202, body
    assert body == {
        "status": "replayed",
        "message_id": ids.parked,
        "copies": 1,
        "destinations": ["patient-record"],
    }

    # Back on patient-record, refused again (same conflict), parked again.
    def parked_twice():
        status_of(gw, ids.parked)
        steps = [e["event"] for e in gw.services.tracking.message(ids.parked)["timeline"]]
        return steps.count("parked") == 2 and steps[-2:] == ["replayed", "parked"] and steps

    assert wait_for(parked_twice), gw.services.tracking.message(ids.parked)["timeline"]
    assert status_of(gw, ids.parked) == "parked"
    # The timeline says who sent it back.
    status, timeline = http("GET", gw.http_url + "/messages/" + ids.parked, token=op)
    [step] = [e for e in timeline["timeline"] if e["event"] == "replayed"]
    assert step["operator"] == "test-operator" and step["destination"] == "patient-record"


def test_metrics_and_readiness(start_gateway):
    gw = start_gateway()
    populate(gw)
    parking = gw.services.names.queue("parking")
    samples = {}

    def scrape() -> dict:
        status, text = http("GET", gw.http_url + "/metrics")
        assert status == 200
        samples.clear()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def value(name: str, **labels) -> float:
        return sum(
            v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)
        )

    # "parked" is counted once the consumer's copy in the parking queue is confirmed: both are
    # awaited (the scrape may come between the confirm and the count).
    assert wait_for(
        lambda: (
            scrape()
            and value("passerelle_queue_messages", queue=parking) == 1
            and value("passerelle_consumer_messages_total", outcome="parked") == 1
        )
    )

    cda = {"transport": "http", "kind": "cda"}
    assert value("passerelle_messages_received_total", **cda) == 3
    assert value("passerelle_messages_accepted_total", **cda, type_code="11502-2") == 2
    assert value("passerelle_messages_rejected_total", **cda, rejection="invalid") == 1
    assert value("passerelle_messages_accepted_total", transport="mllp", kind="hl7v2") == 1
    assert value("passerelle_validation_rule_hits_total", rule="ins.nir-key") == 1
    assert value("passerelle_publish_confirm_seconds_count", outcome="confirmed") == 3
    # the two CDA at least; an ORU may carry documents of its own, signed too
    assert value("passerelle_signing_seconds_count") >= 2
    assert value("passerelle_consumer_messages_total", outcome="parked") == 1
    assert value("passerelle_consumer_lag_seconds_count", consumer="patient-record") == 3
    record_queue = gw.services.names.queue("patient-record")
    assert (
        value("passerelle_queue_consumers", queue=record_queue)
        == gw.runtime.settings.record_consumers
    )
    assert value("passerelle_broker_connected") == 1

    status, ready = http("GET", gw.http_url + "/ready")
    assert status == 200 and ready["checks"]["topology"] is True
    # A queue deleted behind the gateway's back: not ready, and the answer says which.
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(gw.services.settings.amqp_url))
    conn.channel().queue_delete(gw.services.names.queue("rejected"))
    conn.close()
    gw.services.probe._at = 0.0  # skip the cache's TTL
    status, ready = http("GET", gw.http_url + "/ready")
    assert status == 503 and ready["checks"]["topology"] is False
    assert ready["missing"] == [gw.services.names.queue("rejected")]
