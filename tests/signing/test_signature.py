"""The gateway's XAdES-BES signature: what it contains, and that every tampering is caught."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.signing import rules, verify
from gateway.signing.rules import SignatureFault
from gateway.signing.shape import DS, XADES
from gateway.signing.xades import FORM, XadesSigner
from tests.signing.pki import NOW, issue

NS = {"ds": DS, "xades": XADES}


def signed(issued, payload: bytes):
    _, info = XadesSigner(issued.signing_key()).sign(payload)
    return info


def fault(signature: bytes | str, payload: bytes, cert, now=None) -> str:
    with pytest.raises(SignatureFault) as caught:
        verify.check(verify.parse(signature), payload, cert, now)
    return caught.value.rule


def edit(signature: str, xpath: str, change) -> bytes:
    root = etree.fromstring(signature.encode())
    [node] = root.xpath(xpath, namespaces=NS)
    change(node)
    return etree.tostring(root)


@pytest.mark.parametrize("issuer", ["gateway_rsa", "gateway_ec"])
def test_sign_then_verify_round_trip(request, issuer, cda):
    issued = request.getfixturevalue(issuer)
    payload, info = XadesSigner(issued.signing_key()).sign(cda)
    assert payload == cda  # detached: the document travels unchanged
    assert info.form == FORM
    assert info.algorithm == ("rsa-sha256" if issuer == "gateway_rsa" else "ecdsa-sha256")
    facts = verify.check(verify.parse(info.signature), cda, issued.cert)
    # now, not pki.NOW (taken when the suite was collected, minutes earlier in a full run)
    assert abs(facts.signing_time - datetime.now(UTC)) < timedelta(seconds=30)
    assert facts.signing_time.isoformat() == info.signed_at


def test_signature_is_xades_bes_naming_its_key_and_the_document_digest(gateway_rsa, cda):
    info = signed(gateway_rsa, cda)
    root = etree.fromstring(info.signature.encode())
    method = root.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm")
    assert method == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert root.findtext("ds:KeyInfo/ds:KeyName", namespaces=NS) == info.key_id
    props = root.find(".//xades:SignedSignatureProperties", NS)
    assert props.findtext("xades:SigningTime", namespaces=NS) == info.signed_at
    cert_digest = props.findtext(
        "xades:SigningCertificateV2/xades:Cert/xades:CertDigest/ds:DigestValue", namespaces=NS
    )
    der = gateway_rsa.cert.public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(cert_digest) == hashlib.sha256(der).digest()
    manifest_digest = root.findtext(".//ds:Manifest/ds:Reference/ds:DigestValue", namespaces=NS)
    assert base64.b64decode(manifest_digest) == hashlib.sha256(cda).digest()
    # The SignedProperties are covered by SignedInfo: that is what makes this XAdES-BES.
    types = [r.get("Type") for r in root.findall("ds:SignedInfo/ds:Reference", NS)]
    assert "http://uri.etsi.org/01903#SignedProperties" in types


@pytest.mark.parametrize("algorithm", ["rsa", "ecdsa"])
def test_signxml_alone_verifies_the_built_signature_and_its_chain(algorithm, cda):
    """The signature is built from templates, not by signxml: signxml's verifier, called
    directly, must accept it and return the manifest as what was signed."""
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    ca = issue("Passerelle test CA", ca=True, algorithm=algorithm)
    leaf = issue("gateway", ca, algorithm=algorithm)
    _, info = XadesSigner(leaf.signing_key(ca.cert)).sign(cda)
    results = XAdESVerifier().verify(
        info.signature.encode(),
        x509_cert=leaf.cert,
        expect_config=XAdESSignatureConfiguration(expect_references=3),
    )
    signed_tags = {r.signed_xml.tag for r in results if r.signed_xml is not None}
    assert f"{{{DS}}}Object" in signed_tags
    root = etree.fromstring(info.signature.encode())
    carried = root.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    assert [base64.b64decode(c.text) for c in carried] == [
        c.public_bytes(serialization.Encoding.DER) for c in (leaf.cert, ca.cert)
    ]
    assert "{" not in info.signature  # every placeholder of the template was filled


def test_altered_key_name_is_detected(gateway_rsa, cda):
    info = signed(gateway_rsa, cda)
    forged = edit(info.signature, "ds:KeyInfo/ds:KeyName", lambda n: setattr(n, "text", "other"))
    assert fault(forged, cda, gateway_rsa.cert) == rules.CERTIFICATE


@pytest.mark.parametrize("position", [0, 1000, -2])
def test_one_byte_changed_in_the_document_is_detected(gateway_ec, cda, position):
    info = signed(gateway_ec, cda)
    tampered = bytearray(cda)
    tampered[position] ^= 0x01
    assert fault(info.signature, bytes(tampered), gateway_ec.cert) == rules.DIGEST


def test_manifest_rewritten_for_other_content_is_detected(gateway_ec, cda):
    info = signed(gateway_ec, cda)
    other = cda.replace(b"</ClinicalDocument>", b"<!-- x --></ClinicalDocument>")
    new_digest = base64.b64encode(hashlib.sha256(other).digest()).decode()
    forged = edit(
        info.signature,
        ".//ds:Manifest/ds:Reference/ds:DigestValue",
        lambda n: setattr(n, "text", new_digest),
    )
    assert fault(forged, other, gateway_ec.cert) == rules.DIGEST


def test_altered_signature_value_is_detected(gateway_rsa, cda):
    info = signed(gateway_rsa, cda)

    def flip(node):
        raw = bytearray(base64.b64decode(node.text))
        raw[10] ^= 0x01
        node.text = base64.b64encode(bytes(raw)).decode()

    forged = edit(info.signature, "ds:SignatureValue", flip)
    assert fault(forged, cda, gateway_rsa.cert) == rules.INVALID


def test_altered_signing_time_is_detected(gateway_ec, cda):
    info = signed(gateway_ec, cda)
    earlier = (NOW - timedelta(days=3)).isoformat(timespec="seconds")
    forged = edit(info.signature, ".//xades:SigningTime", lambda n: setattr(n, "text", earlier))
    assert fault(forged, cda, gateway_ec.cert) == rules.SIGNED_PROPERTIES


def test_certificate_swapped_in_keyinfo_is_detected(gateway_ec, cda):
    info = signed(gateway_ec, cda)
    intruder = issue("intruder")
    der = intruder.cert.public_bytes(serialization.Encoding.DER)
    forged = edit(
        info.signature,
        ".//ds:X509Certificate",
        lambda n: setattr(n, "text", base64.b64encode(der).decode()),
    )
    # Verified against the gateway's certificate: the carried one is not it.
    assert fault(forged, cda, gateway_ec.cert) == rules.CERTIFICATE
    # Verified against the intruder's certificate it names: the signature is not its.
    assert fault(forged, cda, intruder.cert) in {rules.INVALID, rules.CERTIFICATE}


def test_signing_certificate_digest_altered_is_detected(gateway_ec, cda):
    info = signed(gateway_ec, cda)
    bogus = base64.b64encode(b"\0" * 32).decode()
    forged = edit(
        info.signature, ".//xades:CertDigest/ds:DigestValue", lambda n: setattr(n, "text", bogus)
    )
    assert fault(forged, cda, gateway_ec.cert) == rules.SIGNED_PROPERTIES


def test_signature_by_another_key_does_not_verify(gateway_ec, cda):
    other = issue("other gateway")
    info = signed(other, cda)
    assert fault(info.signature, cda, gateway_ec.cert) == rules.CERTIFICATE


def test_expired_signing_certificate_is_refused(cda):
    short = issue(
        "short-lived", not_before=NOW - timedelta(days=2), not_after=NOW + timedelta(hours=1)
    )
    info = signed(short, cda)
    assert fault(info.signature, cda, short.cert, now=NOW + timedelta(days=1)) == rules.EXPIRED


@pytest.mark.parametrize(
    "signature",
    [b"not xml", b"<a/>", b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>', b"<x>" + b"a" * 300_000],
)
def test_unreadable_signatures_are_malformed(signature, gateway_ec, cda):
    assert fault(signature, cda, gateway_ec.cert) == rules.MALFORMED


def test_valid_signature_over_something_else_than_a_manifest_is_malformed(gateway_ec, cda):
    from signxml import methods
    from signxml.xades import XAdESSigner

    other = XAdESSigner(method=methods.enveloping, signature_algorithm="ecdsa-sha256").sign(
        etree.fromstring(b"<note>not a manifest</note>"),
        key=gateway_ec.key,
        cert=[gateway_ec.cert],
    )
    assert fault(etree.tostring(other), cda, gateway_ec.cert) == rules.MALFORMED
