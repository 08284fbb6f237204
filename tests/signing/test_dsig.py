"""The direct XMLDSig validation (gateway.signing.dsig) against signxml's, on the gateway's own
signatures: it must take the direct path, and name every tampering as signxml's path does."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from gateway.signing import dsig, rules, verify
from gateway.signing.rules import SignatureFault
from gateway.signing.xades import XadesSigner
from tests.signing.test_signature import NS, edit


def signature_of(issued, payload: bytes) -> str:
    return XadesSigner(issued.signing_key()).sign(payload)[1].signature or ""


def direct_rule(signature: bytes | str, cert) -> str | None:
    """The rule the direct path reports; None when it accepts."""
    root = verify.parse(signature).root
    try:
        assert dsig.core_verify(root, cert) is not None, "direct path declined the shape"
    except SignatureFault as fault:
        return fault.rule
    return None


def signxml_rule(signature: bytes | str, cert, monkeypatch) -> str | None:
    with monkeypatch.context() as m:
        m.setattr(dsig, "core_verify", lambda root, certificate: None)
        try:
            verify._verify(verify.parse(signature).root, cert)
        except SignatureFault as fault:
            return fault.rule
    return None


def flip_bit(node):
    raw = bytearray(base64.b64decode(node.text))
    raw[10] ^= 0x01
    node.text = base64.b64encode(bytes(raw)).decode()


def set_text(value: str):
    return lambda node: setattr(node, "text", value)


TAMPERINGS = {
    "signature value": ("ds:SignatureValue", flip_bit, rules.INVALID),
    "signed info digest": ("ds:SignedInfo/ds:Reference[1]/ds:DigestValue", flip_bit, rules.INVALID),
    "manifest digest": (".//ds:Manifest/ds:Reference/ds:DigestValue", flip_bit, rules.DIGEST),
    "signing time": (
        ".//xades:SigningTime",
        set_text("2020-01-01T00:00:00+00:00"),
        rules.SIGNED_PROPERTIES,
    ),
    "key name": ("ds:KeyInfo/ds:KeyName", set_text("someone-else"), rules.CERTIFICATE),
    "mime type": (".//xades:MimeType", set_text("text/plain"), rules.SIGNED_PROPERTIES),
}


@pytest.mark.parametrize("issuer", ["gateway_rsa", "gateway_ec"])
def test_gateway_signatures_take_the_direct_path_and_yield_the_same_parts(
    request, issuer, cda, monkeypatch
):
    issued = request.getfixturevalue(issuer)
    signature = signature_of(issued, cda)
    root = verify.parse(signature).root
    direct = dsig.core_verify(root, issued.cert)
    assert direct is not None
    with monkeypatch.context() as m:
        m.setattr(dsig, "core_verify", lambda root, certificate: None)
        by_signxml = verify._verify(root, issued.cert)
    assert [etree.tostring(e, method="c14n") for e in direct.signed] == [
        etree.tostring(e, method="c14n") for e in by_signxml.signed
    ]
    assert etree.tostring(direct.signed_properties) == etree.tostring(by_signxml.signed_properties)


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
@pytest.mark.parametrize("issuer", ["gateway_rsa", "gateway_ec"])
def test_each_tampering_is_named_as_signxml_names_it(request, issuer, name, cda, monkeypatch):
    issued = request.getfixturevalue(issuer)
    xpath, change, expected = TAMPERINGS[name]
    forged = edit(signature_of(issued, cda), xpath, change)
    rule = direct_rule(forged, issued.cert)
    assert rule == signxml_rule(forged, issued.cert, monkeypatch)
    assert rule == expected


def test_a_comment_inside_a_signed_value_is_not_what_is_read(gateway_ec, cda):
    """Comments are outside C14N: the verified parts are re-read from canonical bytes, so a
    comment splitting the manifest digest cannot make the reader see part of it only."""
    signature = signature_of(gateway_ec, cda)
    root = etree.fromstring(signature.encode())
    [value] = root.xpath(".//ds:Manifest/ds:Reference/ds:DigestValue", namespaces=NS)
    head, tail = value.text[:10], value.text[10:]
    value.text = head
    comment = etree.Comment(" injected ")
    comment.tail = tail
    value.append(comment)
    verified = dsig.core_verify(verify.parse(etree.tostring(root)).root, gateway_ec.cert)
    assert verified is not None
    [manifest_value] = [
        e.findtext(".//ds:Manifest/ds:Reference/ds:DigestValue", namespaces=NS)
        for e in verified.signed
        if e.find(".//ds:Manifest", NS) is not None
    ]
    assert manifest_value == head + tail
    verify.check(verify.parse(etree.tostring(root)), cda, gateway_ec.cert)


def test_other_shapes_are_left_to_signxml(gateway_ec, cda):
    """A fourth reference is not this module's shape: it declines, and signxml judges (here:
    SignedInfo no longer matches its signature)."""
    root = etree.fromstring(signature_of(gateway_ec, cda).encode())
    [signed_info] = root.xpath("ds:SignedInfo", namespaces=NS)
    signed_info.append(etree.fromstring(etree.tostring(signed_info[-1])))
    assert dsig.core_verify(root, gateway_ec.cert) is None
    with pytest.raises(SignatureFault) as caught:
        verify.check(verify.parse(etree.tostring(root)), cda, gateway_ec.cert)
    assert caught.value.rule == rules.INVALID
