"""Signatures of the gateway's own shape are checked without XML processing
(verify.check_own); that check must decide exactly as signxml's path (verify.check) on every
signature of that shape, altered or not, and leave every other signature to signxml."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.signing import shape, verify
from gateway.signing.rules import SignatureFault
from gateway.signing.verifier import GatewayVerifier
from gateway.signing.xades import XadesSigner
from tests.signing.pki import NOW, issue

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def outcome(decide) -> tuple:
    try:
        facts = decide()
    except SignatureFault as fault:
        return ("fault", fault.rule)
    return None if facts is None else ("valid", facts.signing_time)


def both(signature: str, payload: bytes, cert, now=None) -> tuple[tuple | None, tuple]:
    own = shape.read(signature)
    assert own is not None, "the alteration left the gateway's shape"
    fast = outcome(lambda: verify.check_own(own, payload, cert, now))
    slow = outcome(lambda: verify.check(verify.parse(signature), payload, cert, now))
    return fast, slow


def altered_texts(own: shape.OwnSignature, rng: random.Random, other_cert: str):
    """(group, new text) pairs that keep the shape: one character of a base64 text changed,
    other times, another key name, other certificates."""
    for group in (
        "object_digest",
        "properties_digest",
        "key_info_digest",
        "signature_value",
        "certificate_digest",
        "manifest_digest",
    ):
        text = getattr(own, group)
        for _ in range(3):
            i = rng.randrange(len(text.rstrip("=")))
            new = rng.choice(B64.replace(text[i], ""))
            yield group, text[:i] + new + text[i + 1 :]
    at = NOW.replace(microsecond=0)
    for when in (at - timedelta(days=3), at + timedelta(days=3), at - timedelta(days=400)):
        yield "signing_time", when.isoformat()
    yield "signature_value", own.signature_value.rstrip("=")[:-1]  # no longer base64
    yield "signature_value", own.signature_value[4:]  # shorter
    yield "key_name", "0123456789abcdef"
    cert = own.certificates_b64()[0]
    yield "certificates", f"<ds:X509Certificate>{other_cert}</ds:X509Certificate>"
    yield "certificates", own.certificates + own.certificates  # chain of two
    yield "certificates", f"<ds:X509Certificate>{cert[:-8]}AAAAAAAA</ds:X509Certificate>"


@pytest.mark.parametrize("issuer", ["gateway_rsa", "gateway_ec"])
def test_own_check_decides_as_signxml_on_every_alteration(request, issuer, cda):
    issued = request.getfixturevalue(issuer)
    _, info = XadesSigner(issued.signing_key()).sign(cda)
    own = shape.read(info.signature)
    assert own is not None and own.key_name == info.key_id
    intruder = issue("intruder", algorithm="rsa" if issuer == "gateway_rsa" else "ecdsa")
    other_cert = base64.b64encode(intruder.cert.public_bytes(serialization.Encoding.DER)).decode()

    fast, slow = both(info.signature, cda, issued.cert)
    assert fast == slow and fast[0] == "valid"
    cases = [
        (info.signature, cda[:-1] + b" ", issued.cert, None),  # another document
        (info.signature, cda, intruder.cert, None),  # verified against another key
        (info.signature, cda, issued.cert, NOW + timedelta(days=60)),  # certificate expired
    ]
    rng = random.Random(9)
    for group, text in altered_texts(own, rng, other_cert):
        old = getattr(own, group)
        assert old in info.signature
        cases.append((info.signature.replace(old, text, 1), cda, issued.cert, None))
    decided = 0
    for signature, payload, cert, now in cases:
        fast, slow = both(signature, payload, cert, now)
        if fast is not None:
            decided += 1
            assert fast == slow, signature
        assert slow[0] == "fault" or signature == info.signature
    assert decided >= len(cases) - 3  # what is not base64 or an odd ECDSA value: signxml


def test_gateway_verifier_checks_its_own_signatures_without_signxml(gateway_rsa, cda, monkeypatch):
    _, info = XadesSigner(gateway_rsa.signing_key()).sign(cda)
    verifier = GatewayVerifier([gateway_rsa.cert])

    def no_signxml(*args, **kwargs):
        raise AssertionError("signxml was used")

    monkeypatch.setattr(verify, "_verify", no_signxml)
    key_id, facts = verifier.check(info.signature, cda, expected_key=info.key_id)
    assert key_id == info.key_id and facts.certificate == gateway_rsa.cert
    with pytest.raises(SignatureFault):
        verifier.check(info.signature, cda + b" ", expected_key=info.key_id)


@pytest.mark.parametrize(
    "rewrite",
    [
        # the same XML, serialised otherwise: not the shape, still a valid signature
        lambda s: s.replace(
            f'<ds:CanonicalizationMethod Algorithm="{shape.C14N11}"/>',
            f'<ds:CanonicalizationMethod Algorithm="{shape.C14N11}"></ds:CanonicalizationMethod>',
        ),
        lambda s: s.replace("<ds:SignedInfo>", '<ds:SignedInfo xmlns:ds="' + shape.DS + '">'),
    ],
)
def test_other_serialisations_go_to_signxml_and_still_verify(rewrite, gateway_rsa, cda):
    _, info = XadesSigner(gateway_rsa.signing_key()).sign(cda)
    variant = rewrite(info.signature)
    assert variant != info.signature and shape.read(variant) is None
    key_id, _ = GatewayVerifier([gateway_rsa.cert]).check(variant, cda)
    assert key_id == info.key_id


def test_a_signature_of_another_shape_is_never_read_as_the_gateways(gateway_rsa, cda):
    _, info = XadesSigner(gateway_rsa.signing_key()).sign(cda)
    wrapped = info.signature.replace(
        "</ds:Signature>", '<ds:Object Id="object"><x/></ds:Object></ds:Signature>'
    )
    assert shape.read(wrapped) is None
    assert shape.read(info.signature.replace("urn:passerelle:document", "urn:other")) is None
    assert shape.read(" " + info.signature) is None


def _signed_by_signxml(issued, payload: bytes) -> str:
    """A signature as the gateway made them before its own shape (signxml's signer over the
    same manifest): messages still queued and documents filed then carry these."""
    from signxml import methods
    from signxml.xades import XAdESDataObjectFormat, XAdESSigner

    manifest = etree.Element(f"{{{shape.DS}}}Manifest", nsmap={"ds": shape.DS}, Id="m")
    reference = etree.SubElement(manifest, f"{{{shape.DS}}}Reference", URI=shape.DOCUMENT_URI)
    etree.SubElement(reference, f"{{{shape.DS}}}DigestMethod", Algorithm=shape.SHA256)
    value = etree.SubElement(reference, f"{{{shape.DS}}}DigestValue")
    value.text = base64.b64encode(hashlib.sha256(payload).digest()).decode()
    key = issued.signing_key()
    signature = XAdESSigner(
        method=methods.enveloping,
        signature_algorithm=key.algorithm,
        digest_algorithm="sha256",
        data_object_format=XAdESDataObjectFormat(
            Description=shape.MANIFEST_DESCRIPTION, MimeType="text/xml"
        ),
    ).sign(manifest, key=key.key, cert=list(key.chain), key_name=key.key_id)
    return etree.tostring(signature, encoding="unicode")


@pytest.mark.parametrize("issuer", ["gateway_rsa", "gateway_ec"])
def test_signatures_made_before_the_own_shape_still_verify(request, issuer, cda):
    issued = request.getfixturevalue(issuer)
    older = _signed_by_signxml(issued, cda)
    assert shape.read(older) is None
    verifier = GatewayVerifier([issued.cert])
    key_id, _ = verifier.check(older, cda)
    assert key_id == issued.signing_key().key_id
    with pytest.raises(SignatureFault) as caught:
        verifier.check(older, cda + b" ")
    assert caught.value.rule == "signature.digest"
