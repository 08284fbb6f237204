"""XMLDSig core validation of the signature shape the gateway makes, done directly.

signxml's verifier re-serialises and re-parses the whole signature for every reference and
validates it against the XML Signature schema: ~3 ms per document in the record consumer,
ten times the cryptography. The shape gateway.signing.xades produces (and the usual sender
signatures) needs far less: canonicalise SignedInfo and check SignatureValue with the given
certificate's key, then canonicalise each referenced element (found by its Id) and compare
its digest. The same rules as signxml's, in the same order (signature first, then each
reference in document order, then the XAdES signing-certificate digest), so a given
tampering is reported the same way.

``core_verify`` returns None for anything outside that shape (another algorithm, transform
or reference form): the caller then asks signxml, whose behaviour stays the reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from lxml import etree

from gateway.signing import rules
from gateway.signing.rules import SignatureFault

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS = {"ds": DS, "xades": XADES}

# Canonicalisation algorithm → lxml's (exclusive, with_comments). C14N 1.1 differs from 1.0
# only for xml:id/xml:base inheritance, absent from these signatures (signxml treats it so too).
C14N = {
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": (False, False),
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": (False, True),
    "http://www.w3.org/2006/12/xml-c14n11": (False, False),
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": (False, True),
    "http://www.w3.org/2001/10/xml-exc-c14n#": (True, False),
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": (True, True),
}
DEFAULT_C14N = (False, False)  # a reference without a c14n transform: inclusive C14N
DIGEST_METHODS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_RSA = "http://www.w3.org/2001/04/xmldsig-more#rsa-"
_ECDSA = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-"
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
SIGNATURE_METHODS = {
    prefix + name: (kind, algorithm)
    for kind, prefix in (("rsa", _RSA), ("ecdsa", _ECDSA))
    for name, algorithm in HASHES.items()
}
_BY_ID = etree.XPath("//*[@Id=$id or @ID=$id]")  # compiled once
EXPECTED_REFERENCES = 3  # the manifest object, the signed properties, the KeyInfo


@dataclass(frozen=True)
class Verified:
    """What the signature covers, each element re-read from its canonical bytes (what was
    signed, and only that: no unsigned comment or text survives)."""

    signed: tuple[etree._Element, ...]
    signed_properties: etree._Element


class _Unhandled(Exception):
    """Outside the shape validated here: signxml decides."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _one(parent: etree._Element, path: str) -> etree._Element:
    found = parent.findall(path, NS)
    if len(found) != 1:
        raise _Unhandled(path)
    return found[0]


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Unhandled("base64") from None


def _canonical(element: etree._Element, algorithm: tuple[bool, bool]) -> bytes:
    exclusive, with_comments = algorithm
    # A standalone copy first, as signxml does on both sides: ancestors' namespace
    # declarations then reach the output exactly as when the signer computed the digest.
    copy = etree.fromstring(etree.tostring(element), _parser())
    return etree.tostring(copy, method="c14n", exclusive=exclusive, with_comments=with_comments)


def _c14n_of(method: etree._Element | None) -> tuple[bool, bool]:
    if method is None or method.get("Algorithm") not in C14N or len(method):
        raise _Unhandled("canonicalisation")  # InclusiveNamespaces prefixes: signxml's job
    return C14N[method.get("Algorithm")]


def _check_signature_value(
    root: etree._Element, signed_info: etree._Element, certificate: x509.Certificate
) -> None:
    method = SIGNATURE_METHODS.get(_one(signed_info, "ds:SignatureMethod").get("Algorithm", ""))
    if method is None:
        raise _Unhandled("signature method")
    kind, algorithm = method
    key = certificate.public_key()
    value = _b64(_one(root, "ds:SignatureValue").text)
    data = _canonical(signed_info, _c14n_of(_one(signed_info, "ds:CanonicalizationMethod")))
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), algorithm())
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.key_size + 7) // 8  # XMLDSig ECDSA values are r || s, fixed width
            if len(value) != 2 * size:
                raise InvalidSignature
            r, s = int.from_bytes(value[:size]), int.from_bytes(value[size:])
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(algorithm()))
        else:
            raise _Unhandled("key type")
    except InvalidSignature:
        raise SignatureFault(
            rules.INVALID, "SignatureValue does not verify: signature or SignedInfo altered"
        ) from None


def _digest_fault(target: etree._Element) -> SignatureFault:
    """Which signed part no longer matches its digest."""
    if target.tag == f"{{{XADES}}}SignedProperties":
        return SignatureFault(
            rules.SIGNED_PROPERTIES, "signed properties (signing time, certificate) altered"
        )
    if target.tag == f"{{{DS}}}KeyInfo":
        return SignatureFault(rules.CERTIFICATE, "KeyInfo (key name, certificate) altered")
    if target.tag == f"{{{DS}}}Object":
        return SignatureFault(rules.DIGEST, "the document manifest was altered")
    return SignatureFault(rules.INVALID, "a signed reference does not match its digest")


def _referenced(root: etree._Element, reference: etree._Element) -> etree._Element:
    """The element a reference's digest covers, after checking that digest."""
    uri = reference.get("URI") or ""
    if not uri.startswith("#") or uri.startswith("#xpointer("):
        raise _Unhandled("reference URI")
    targets = _BY_ID(root, id=uri[1:])
    if len(targets) != 1:
        raise _Unhandled("reference target")
    transforms = reference.findall("ds:Transforms/ds:Transform", NS)
    if len(transforms) > 1:
        raise _Unhandled("transforms")
    algorithm = _c14n_of(transforms[0]) if transforms else DEFAULT_C14N
    digest = DIGEST_METHODS.get(_one(reference, "ds:DigestMethod").get("Algorithm", ""))
    if digest is None:
        raise _Unhandled("digest method")
    expected = _b64(_one(reference, "ds:DigestValue").text)
    canonical = _canonical(targets[0], algorithm)
    if hashlib.new(digest, canonical).digest() != expected:
        raise _digest_fault(targets[0])
    return etree.fromstring(canonical, _parser())


def _check_certificate_digest(
    root: etree._Element, properties: etree._Element, certificate: x509.Certificate
) -> None:
    """SigningCertificateV2 (or V1) names the signing certificate first."""
    nodes = properties.findall(
        "xades:SignedSignatureProperties/xades:SigningCertificateV2", NS
    ) + properties.findall("xades:SignedSignatureProperties/xades:SigningCertificate", NS)
    if len(nodes) != 1:
        raise _Unhandled("signing certificate property")
    carried = [
        _b64(t)
        for t in root.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=NS)
    ]
    if not carried:
        raise _Unhandled("no X509Certificate")
    known = [x509.load_der_x509_certificate(der) for der in carried]
    if certificate not in known:
        known.append(certificate)
    for index, cert in enumerate(nodes[0].findall("xades:Cert", NS)):
        digest_node = _one(cert, "xades:CertDigest")
        name = DIGEST_METHODS.get(_one(digest_node, "ds:DigestMethod").get("Algorithm", ""))
        if name is None:
            raise _Unhandled("certificate digest method")
        algorithm = HASHES[name]
        value = _b64(_one(digest_node, "ds:DigestValue").text)
        matches = any(value == c.fingerprint(algorithm()) for c in known)
        if not matches or (index == 0 and value != certificate.fingerprint(algorithm())):
            raise SignatureFault(
                rules.CERTIFICATE, "SigningCertificateV2 digest does not match the certificate"
            )


def core_verify(root: etree._Element, certificate: x509.Certificate) -> Verified | None:
    """Verified parts of ``root`` (a ds:Signature) under ``certificate``; SignatureFault when
    a signature or digest does not match; None when the shape is not one handled here."""
    try:
        signed_info = _one(root, "ds:SignedInfo")
        references = signed_info.findall("ds:Reference", NS)
        if len(references) != EXPECTED_REFERENCES:
            raise _Unhandled("references")
        _check_signature_value(root, signed_info, certificate)
        signed = tuple(_referenced(root, r) for r in references)
        properties = [e for e in signed if e.tag == f"{{{XADES}}}SignedProperties"]
        if len(properties) != 1:
            raise _Unhandled("signed properties")
        _check_certificate_digest(root, properties[0], certificate)
        return Verified(signed, properties[0])
    except _Unhandled:
        return None
    except (etree.LxmlError, ValueError):
        return None
