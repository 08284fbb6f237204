"""The ANS HL7v2 corpus: its MetaDMPMSS flag combinations reach the right queues.

The first test reads the flags of every corpus message with a deliberately small reader
(OBX-3 ``NAME^…^MetaDMPMSS``, OBX-5 ``Y``/``N``), so each real combination is proven against
routing.yaml even where the adapter refuses the message; the others send messages through the
running gateway and look in the queues.
"""

from __future__ import annotations

import re

import pytest

from gateway.envelope import Envelope, Patient
from gateway.routing import loader
from tests.broker.helpers import depth, post
from tests.conftest import ROOT

pytestmark = pytest.mark.shared

FLAG = re.compile(rb"^OBX\|[^|]*\|C[EW]E?\|([A-Z_]+)\^[^|]*\^MetaDMPMSS\|[^|]*\|([YN])", re.M)


def corpus_messages(shared) -> list:
    files = sorted((shared / "corpus/hl7v2").rglob("*"))
    return [f for f in files if f.is_file() and b"MetaDMPMSS" in f.read_bytes()]


def flags_of(raw: bytes) -> dict[str, bool]:
    return {name.decode(): value == b"Y" for name, value in FLAG.findall(raw.replace(b"\r", b"\n"))}


def test_corpus_flag_combinations_route_as_the_flags_say(shared):
    table = loader.load(ROOT / "routing.yaml")
    messages = corpus_messages(shared)
    assert len(messages) >= 10
    seen = set()
    for path in messages:
        flags = flags_of(path.read_bytes())
        env = Envelope(
            document_id="x",
            source_kind="hl7v2",
            content_type="application/xml",
            sha256="0",
            size=1,
            sender="s",
            received_at="t",
            trace_id="t",
            flags=flags,
            patient=Patient(ins="277076322082910"),
        )
        dests = set(table.decide(env).destinations)
        assert ("patient-record" in dests) == flags.get("DESTDMP", False), path.name
        assert ("secure-mail-ps" in dests) == flags.get("DESTMSSANTEPS", False), path.name
        assert ("patient-mailbox" in dests) == flags.get("DESTMSSANTEPAT", False), path.name
        assert "patient-notification" not in dests, path.name  # the record consumer's job
        seen |= {k for k, v in flags.items() if v}
    assert {"DESTDMP", "DESTMSSANTEPS", "DESTMSSANTEPAT", "INVISIBLE_PATIENT"} <= seen


def corpus_file(shared, name: str):
    return next((shared / "corpus/hl7v2").rglob(name))


@pytest.mark.broker
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # DESTDMP + DESTMSSANTEPS, invisible to the patient: no mailbox
        ("message_MDM_CR_Radio_INIT_N1_Base64.er7", ["patient-record", "secure-mail-ps"]),
        # DESTDMP + DESTMSSANTEPS + DESTMSSANTEPAT, a biology report
        (
            "message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7",
            [
                "patient-record",
                "secure-mail-ps",
                "patient-mailbox",
                "lab-statistics",
            ],
        ),
        # MSSanté-only profile: recipients, no DEST flag
        ("message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7", ["secure-mail-ps"]),
    ],
)
def test_corpus_messages_reach_their_queues_through_the_gateway(
    shared, start_gateway, broker_ns, name, expected
):
    gw = start_gateway()
    status, receipt = post(gw.http_url + "/hl7v2", corpus_file(shared, name).read_bytes())
    assert status == 202, receipt
    assert receipt["destinations"] == expected
    for queue in ("secure-mail-ps", "patient-mailbox"):
        filled = depth(broker_ns.url, broker_ns.names.queue(queue)) > 0
        assert filled == (queue in expected), queue  # no consumer there: copies wait
