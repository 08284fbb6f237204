"""Authorisation in the ingest service: every document of a message, the custodian's grant,
and a sender's signature tied to its own certificate. No broker: the publisher is a recorder."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import re

import pytest

from gateway.broker.names import Names
from gateway.envelope import Code, Envelope, Party
from gateway.outcome import ReceiptStatus, RejectionKind
from gateway.pipeline import Tools
from gateway.routing import loader
from gateway.security.authorisation import authorise
from gateway.security.senders import Sender, SenderRegistry
from gateway.service import IngestService
from gateway.signing.inbound import SIGNER, InboundSignatures, SenderPolicy
from gateway.signing.trust import SignerIdentity, TrustStore
from gateway.signing.xades import XadesSigner
from gateway.submission import Submission
from tests.conftest import FIXTURES, ROOT
from tests.signing.pki import issue

BIOLOGY = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()  # 11502-2, custodian 1750000001
IMAGING = re.sub(  # 18748-4, same patient, every organisation another establishment's;
    rb"<relatedDocument .*?</relatedDocument>",  # an initial document: MDM^T02 with OBX-11 F
    b"",
    (FIXTURES / "cda/crimg_level1_replacement.xml")
    .read_bytes()
    .replace(b"285072A01234561", b"184127505612355")
    .replace(b'extension="1750000001"', b'extension="9999999999"'),
    flags=re.S,
)


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent = []

    def publish(self, messages):
        self.sent += messages
        done = concurrent.futures.Future()
        done.set_result(None)
        return done


@pytest.fixture(scope="module")
def gateway_key():
    return issue("gateway", algorithm="rsa")


@pytest.fixture(scope="module")
def sender_ca():
    return issue("Sender CA", ca=True)


def tools(gateway_key, inbound: InboundSignatures | None = None) -> Tools:
    return Tools(
        signer=XadesSigner(gateway_key.signing_key()),
        routing=loader.load(ROOT / "routing.yaml"),
        inbound=inbound,
    )


def labo(**changes) -> Sender:
    granted = Sender(
        "labo-tilleuls",
        "0" * 64,
        None,
        frozenset({"11502-2", "18748-4", "MDM^T02"}),
        frozenset({"1750000001", "LABO-TILLEULS"}),
    )
    return dataclasses.replace(granted, **changes)


def submit(service: IngestService, raw: bytes, signature: bytes | None = None):
    submission = Submission(raw=raw, transport="http", sender="labo-tilleuls", signature=signature)
    return asyncio.run(service.accept(submission))


def service(tools_: Tools, sender: Sender) -> tuple[IngestService, RecordingPublisher]:
    publisher = RecordingPublisher()
    executor = concurrent.futures.ThreadPoolExecutor(1)
    registry = SenderRegistry([sender])
    return IngestService(tools_, publisher, Names("t"), executor, senders=registry), publisher


def documents_published(publisher: RecordingPublisher) -> list:
    return [m for m in publisher.sent if m.type != "rejection"]


def mdm(*cdas: bytes) -> bytes:
    """An MDM^T02 carrying each CDA in an OBX of type ED."""
    segments = [
        "MSH|^~\\&|LAB-SIL|LABO-TILLEULS|PASSERELLE|DMP|20261101093500||MDM^T02^MDM_T02|X-1|P|"
        "2.6|||||FRA|UNICODE UTF-8|||2.0^CISIS_CDA_HL7_V2",
        "EVN||20261101093500",
        "PID|||184127505612355^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||DUPONT^Jean"
        "^^^^^L||19841201|M|||||||||||||||||||||||N|VALI",
        "PV1|1|O",
        "TXA|1|11502-2|TEXT|20261101093000||||||||1.2.250.1.999.1.1.20261101.4711^LABO|||||LA",
    ]
    for n, cda in enumerate(cdas, start=1):
        code = "18748-4" if b'code="18748-4"' in cda else "11502-2"
        status = "C" if b'typeCode="RPLC"' in cda else "F"
        encoded = base64.b64encode(cda).decode()
        segments.append(f"OBX|{n}|ED|{code}^doc^LN||^TEXT^XML^Base64^{encoded}||||||{status}|")
    return ("\r".join(segments) + "\r").encode()


def test_a_second_document_outside_the_grants_refuses_the_whole_message(gateway_key):
    gateway, publisher = service(tools(gateway_key), labo())
    receipt = submit(gateway, mdm(BIOLOGY, IMAGING))
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.rejection is RejectionKind.FORBIDDEN
    [finding] = receipt.findings
    assert finding.rule == "auth.facility" and "9999999999" in finding.message
    assert finding.message.startswith("document 2 of 2 (1.2.250.1.999.1.1.20261102^IMG-88)")
    assert documents_published(publisher) == []  # not even the first, granted, document


def test_every_document_of_a_message_within_the_grants_is_accepted(gateway_key):
    granted = labo(facilities=frozenset({"1750000001", "9999999999"}))
    gateway, publisher = service(tools(gateway_key), granted)
    receipt = submit(gateway, mdm(BIOLOGY, IMAGING))
    assert receipt.status is ReceiptStatus.ACCEPTED, receipt.findings
    ids = {m.message_id for m in documents_published(publisher)}
    assert ids == {"1.2.250.1.999.1.1.20261101.4711", "1.2.250.1.999.1.1.20261102^IMG-88"}


def envelope(custodian: str | None, *author_orgs: str, facility: str | None = None) -> Envelope:
    return Envelope(
        document_id="1",
        source_kind="cda",
        content_type="x",
        sha256="",
        size=0,
        sender="labo-tilleuls",
        received_at="",
        trace_id="",
        type_code=Code("11502-2"),
        custodian=Party(id=custodian) if custodian else None,
        authors=tuple(Party(id="8", organisation=Party(id=o)) for o in author_orgs),
        facility=Party(id=facility) if facility else None,
    )


def test_the_custodian_decides_not_one_granted_organisation_among_those_named():
    refused = authorise(labo(), envelope("9999999999", "1750000001", facility="1750000001"))
    assert refused.rule == "auth.facility"
    assert "9999999999 (the document's custodian)" in refused.message
    # an author from another establishment does not stop the custodian's own sender
    assert authorise(labo(), envelope("1750000001", "9999999999")) is None


def test_without_custodian_every_organisation_named_must_be_granted():
    refused = authorise(labo(), envelope(None, "1750000001", "9999999999"))
    assert refused.rule == "auth.facility" and "9999999999" in refused.message
    assert "1750000001" not in refused.message  # only what is missing is named
    assert authorise(labo(), envelope(None, "1750000001", facility="LABO-TILLEULS")) is None
    assert authorise(labo(), envelope(None)).rule == "auth.facility"  # naming none
    assert authorise(labo(facilities=frozenset({"*"})), envelope(None)) is None


def signature(issued, payload: bytes) -> bytes:
    return XadesSigner(issued.signing_key()).sign(payload)[1].signature.encode()


def test_a_signature_with_another_organisations_trusted_certificate_is_refused(
    gateway_key, sender_ca
):
    own = issue("Laboratoire des Tilleuls", sender_ca)
    other = issue("Clinique Concurrente", sender_ca)  # same trusted CA
    inbound = InboundSignatures(
        SenderPolicy(frozenset({"labo-tilleuls"})), TrustStore([sender_ca.cert])
    )
    bound = labo(signing_identity=SignerIdentity(own.cert.subject))
    gateway, publisher = service(tools(gateway_key, inbound), bound)

    receipt = submit(gateway, BIOLOGY, signature(other, BIOLOGY))
    assert receipt.status is ReceiptStatus.REJECTED
    [finding] = receipt.findings
    assert finding.rule == SIGNER and finding.layer == "signature"
    assert "Clinique Concurrente" in finding.message and finding.fix
    assert documents_published(publisher) == []

    assert submit(gateway, BIOLOGY, signature(own, BIOLOGY)).status is ReceiptStatus.ACCEPTED


def test_a_sender_that_must_sign_but_names_no_certificate_is_refused(gateway_key, sender_ca):
    lab = issue("Laboratoire des Tilleuls", sender_ca)
    inbound = InboundSignatures(SenderPolicy(frozenset({"*"})), TrustStore([sender_ca.cert]))
    gateway, publisher = service(tools(gateway_key, inbound), labo())
    receipt = submit(gateway, BIOLOGY, signature(lab, BIOLOGY))
    assert [f.rule for f in receipt.findings] == [SIGNER]
    assert documents_published(publisher) == []
