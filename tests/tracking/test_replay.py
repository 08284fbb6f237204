"""The replay button takes back every parked copy of a message, against the real RabbitMQ: one
submission parks one copy per document and destination, all under its trace id."""

from __future__ import annotations

import pika
import pytest

from gateway.broker import names as h
from gateway.routing import loader
from gateway.submission import Submission
from gateway.tracking import events
from gateway.tracking.replay import ParkingReplayer, ReplayStatus
from tests.broker.helpers import declared, depth
from tests.conftest import ROOT
from tests.tracking.scenario import http, operator_token, status_of

pytestmark = pytest.mark.broker

TWO_DESTINATIONS = """\
version: 1
destinations:
  records: {type: quorum, dead_letter: parking}
  mail: {type: quorum, dead_letter: parking}
  parking: {type: quorum}
default: {to: [records, mail]}
parking: parking
"""


def park(url: str, queue: str, copies: list[tuple[str, str, str | None]]) -> None:
    """Put (trace id, document id, destination or None) copies in the parking ``queue``."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for trace_id, document_id, destination in copies:
            headers = {h.DESTINATION: destination} if destination else {}
            props = pika.BasicProperties(
                message_id=document_id,
                correlation_id=trace_id,
                headers=headers,
                delivery_mode=pika.DeliveryMode.Persistent,
            )
            channel.basic_publish("", queue, b"{}", props, mandatory=True)
    finally:
        conn.close()


def test_every_parked_copy_of_the_message_goes_back(broker_ns):
    table = declared(broker_ns, TWO_DESTINATIONS)
    queue = broker_ns.names.queue
    park(
        broker_ns.url,
        queue("parking"),
        [
            ("trace-1", "doc-1", "records"),
            ("trace-2", "doc-2", "records"),  # another message: stays
            ("trace-1", "doc-1", "mail"),
            ("trace-1", "doc-3", "records"),  # an ORU's second CDA
        ],
    )
    result = ParkingReplayer(broker_ns.url, broker_ns.names, table).replay("trace-1")
    assert result.status is ReplayStatus.REPLAYED and not result.left
    assert result.destinations == ("records", "mail", "records") and result.copies == 3
    assert depth(broker_ns.url, queue("parking")) == 1
    assert depth(broker_ns.url, queue("records")) == 2
    assert depth(broker_ns.url, queue("mail")) == 1
    again = ParkingReplayer(broker_ns.url, broker_ns.names, table).replay("trace-1")
    assert again.status is ReplayStatus.NOT_FOUND


def test_copies_that_cannot_go_are_reported_and_stay_parked(broker_ns):
    table = declared(broker_ns, TWO_DESTINATIONS)
    queue = broker_ns.names.queue
    park(broker_ns.url, queue("parking"), [("trace-1", "d", "mail"), ("trace-1", "d", None)])
    result = ParkingReplayer(broker_ns.url, broker_ns.names, table).replay("trace-1")
    assert result.status is ReplayStatus.REPLAYED and result.destinations == ("mail",)
    assert len(result.left) == 1 and "no destination" in result.left[0]
    assert depth(broker_ns.url, queue("parking")) == 1


def test_the_replay_button_answers_how_many_copies_went_where(start_gateway):
    """Through the API: every copy goes, each one is in the timeline; a copy that could not
    go keeps the message parked (and its button)."""
    gw = start_gateway()
    parking = gw.services.names.queue(loader.load(ROOT / "routing.yaml").parking)
    submission = Submission(raw=b"<x/>", transport="http", sender="http:10.0.0.1")
    trace_id = submission.trace_id
    gw.services.tracker.record(
        [
            events.received(submission),
            events.parked(trace_id, "secure-mail-ps", "refused"),
            events.parked(trace_id, "patient-mailbox", "refused"),
        ]
    )
    assert status_of(gw, trace_id) == "parked"
    park(
        gw.services.settings.amqp_url,
        parking,
        [
            (trace_id, "doc", "secure-mail-ps"),
            (trace_id, "doc", "patient-mailbox"),
            (trace_id, "doc", None),  # where it was going is lost: cannot go back
        ],
    )
    op = operator_token(gw)
    status, body = http("POST", f"{gw.http_url}/messages/{trace_id}/replay", token=op)
    assert status == 202, body
    assert body["copies"] == 2
    assert body["destinations"] == ["secure-mail-ps", "patient-mailbox"]
    assert len(body["not_replayed"]) == 1
    assert status_of(gw, trace_id) == "parked"
    timeline = gw.services.tracking.message(trace_id)["timeline"]
    replayed = [e["destination"] for e in timeline if e["event"] == "replayed"]
    assert replayed == ["secure-mail-ps", "patient-mailbox"]
    assert timeline[-1]["event"] == "parked" and "not replayed" in timeline[-1]["reason"]
