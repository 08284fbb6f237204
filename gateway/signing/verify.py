"""Check one XAdES-BES signature of the shape gateway.signing.xades makes, against the exact
document bytes and a certificate the caller chose (by key id, or after a trust-store check).

Every failure is a SignatureFault naming one rule of gateway.signing.rules. Order matters:
the cheap, precise checks (structure, certificate identity, validity) run before the
cryptographic one, so a wrong certificate is reported as such and not as a bad value.

A signature of exactly the gateway's own shape (gateway.signing.shape) is checked by
``check_own`` without XML processing; any other goes through signxml (``check``). Both name
the same rule for the same fault (tests/signing/test_own_shape.py compares them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature as InvalidValue
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml import DigestAlgorithm
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

from gateway.signing import rules, shape
from gateway.signing.rules import SignatureFault
from gateway.signing.shape import DS, XADES, OwnSignature

MAX_SIGNATURE_BYTES = 256 * 1024
CLOCK_SKEW = timedelta(minutes=5)
DIGESTS = {
    DigestAlgorithm.SHA256.value: hashlib.sha256,
    DigestAlgorithm.SHA384.value: hashlib.sha384,
    DigestAlgorithm.SHA512.value: hashlib.sha512,
}
NS = {"ds": DS, "xades": XADES}
# signxml's signed info, signed properties and KeyInfo, plus the manifest object.
EXPECT = XAdESSignatureConfiguration(expect_references=3)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class ParsedSignature:
    """A signature document read but not yet trusted: what it claims about its key."""

    root: etree._Element
    key_name: str | None
    chain: tuple[x509.Certificate, ...]  # KeyInfo/X509Data, signing certificate first


@dataclass(frozen=True)
class SignedFacts:
    """What a verified signature proves."""

    signing_time: datetime
    certificate: x509.Certificate


def parse(signature: bytes | str) -> ParsedSignature:
    data = signature.encode("utf-8") if isinstance(signature, str) else signature
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureFault(rules.MALFORMED, f"signature larger than {MAX_SIGNATURE_BYTES} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SignatureFault(rules.MALFORMED, "signature with a DOCTYPE or entity declaration")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SignatureFault(rules.MALFORMED, f"signature is not well-formed XML: {exc}") from None
    if root.tag != f"{{{DS}}}Signature":
        raise SignatureFault(rules.MALFORMED, "the signature document's root is not ds:Signature")
    try:
        chain = tuple(
            x509.load_der_x509_certificate(base64.b64decode("".join((t or "").split())))
            for t in root.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=NS)
        )
    except ValueError:
        raise SignatureFault(rules.CERTIFICATE, "KeyInfo holds an unreadable certificate") from None
    key_name = root.findtext("ds:KeyInfo/ds:KeyName", namespaces=NS)
    return ParsedSignature(root, key_name.strip() if key_name else None, chain)


def check(
    parsed: ParsedSignature,
    payload: bytes,
    certificate: x509.Certificate,
    now: datetime | None = None,
) -> SignedFacts:
    """Prove that ``certificate``'s key signed ``payload``'s digest; raise SignatureFault."""
    now = now or datetime.now(UTC)
    if parsed.chain and parsed.chain[0] != certificate:
        raise SignatureFault(
            rules.CERTIFICATE, "the certificate in KeyInfo is not the signing key's certificate"
        )
    check_validity(certificate, now, "signing certificate")
    results = _verify(parsed.root, certificate)
    _check_manifest(results, payload)
    props = next((r.signed_properties for r in results if hasattr(r, "signed_properties")), None)
    text = props.findtext("xades:SigningTime", namespaces=NS) if props is not None else None
    return SignedFacts(signing_time=_signing_time(text, certificate, now), certificate=certificate)


def check_own(
    own: OwnSignature, payload: bytes, certificate: x509.Certificate, now: datetime | None = None
) -> SignedFacts | None:
    """``check`` for a signature of the gateway's own shape, in the same order and with the
    same rules as signxml's path; None where only the general verifier should decide (a
    certificate whose key type is not the signature method's, an ECDSA value of the wrong
    size)."""
    now = now or datetime.now(UTC)
    key = certificate.public_key()
    kind = "ecdsa-sha256" if isinstance(key, ec.EllipticCurvePublicKey) else "rsa-sha256"
    if own.signature_method != shape.SIGNATURE_METHODS[kind]:
        return None
    der = certificate.public_bytes(serialization.Encoding.DER)
    try:
        chain = [base64.b64decode(c, validate=True) for c in own.certificates_b64()]
        for other in chain[1:]:
            x509.load_der_x509_certificate(other)
    except ValueError:
        raise SignatureFault(rules.CERTIFICATE, "KeyInfo holds an unreadable certificate") from None
    if chain[0] != der:
        raise SignatureFault(
            rules.CERTIFICATE, "the certificate in KeyInfo is not the signing key's certificate"
        )
    check_validity(certificate, now, "signing certificate")
    signed_info = shape.signed_info(
        own.signature_method, own.object_digest, own.properties_digest, own.key_info_digest
    )
    try:
        value = base64.b64decode(own.signature_value, validate=True)
    except ValueError:
        return None  # not base64 after all (bad padding): signxml's path names it
    verified = _value_verifies(key, value, signed_info.encode())
    if verified is None:
        return None
    if not verified:
        raise SignatureFault(
            rules.INVALID, "SignatureValue does not verify: signature or SignedInfo altered"
        )
    if shape.object_digest(own.manifest_digest) != own.object_digest:
        raise SignatureFault(rules.DIGEST, "the document manifest was altered")
    if shape.properties_digest(own.signing_time, own.certificate_digest) != own.properties_digest:
        raise SignatureFault(
            rules.SIGNED_PROPERTIES, "signed properties (signing time, certificate) altered"
        )
    if shape.key_info_digest(own.key_name, own.certificates) != own.key_info_digest:
        raise SignatureFault(rules.CERTIFICATE, "KeyInfo (key name, certificate) altered")
    if shape.digest(der) != own.certificate_digest:
        raise SignatureFault(
            rules.CERTIFICATE, "SigningCertificateV2 digest does not match the certificate"
        )
    if shape.digest(payload) != own.manifest_digest:
        raise SignatureFault(rules.DIGEST, "the document is not the one that was signed")
    at = _signing_time(own.signing_time, certificate, now)
    return SignedFacts(signing_time=at, certificate=certificate)


def _value_verifies(key: object, value: bytes, signed_info: bytes) -> bool | None:
    """Whether the signature value verifies; None for an ECDSA value that is not r and s side
    by side at the curve's width, or a key of another kind."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            width = (key.curve.key_size + 7) // 8
            if len(value) != 2 * width:
                return None
            r, s = int.from_bytes(value[:width], "big"), int.from_bytes(value[width:], "big")
            key.verify(encode_dss_signature(r, s), signed_info, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())
        else:
            return None
    except InvalidValue:
        return False
    return True


def check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise SignatureFault(
            rules.EXPIRED, f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )
    if at > cert.not_valid_after_utc:
        raise SignatureFault(
            rules.EXPIRED, f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )


# signxml validates every signature against XMLSchema objects it shares between all its
# verifiers; the record consumers' threads take turns (signatures of the gateway's own shape,
# nearly all of them, do not come here).
_SIGNXML = threading.Lock()


def _verify(root: etree._Element, certificate: x509.Certificate) -> list:
    try:
        with _SIGNXML:
            return XAdESVerifier().verify(
                root, x509_cert=certificate, parser=_parser(), expect_config=EXPECT
            )
    except InvalidDigest as exc:
        raise SignatureFault(*_digest_rule(root, str(exc))) from None
    except InvalidCertificate as exc:
        raise SignatureFault(rules.EXPIRED, f"signing certificate not usable: {exc}") from None
    except InvalidInput as exc:
        raise SignatureFault(rules.MALFORMED, f"not a XAdES-BES signature: {exc}") from None
    except InvalidSignature as exc:
        if "Signature verification failed" in str(exc):
            raise SignatureFault(
                rules.INVALID, "SignatureValue does not verify: signature or SignedInfo altered"
            ) from None
        raise SignatureFault(rules.MALFORMED, f"not a XAdES-BES signature: {exc}") from None
    except (etree.LxmlError, ValueError) as exc:
        raise SignatureFault(rules.MALFORMED, f"signature unreadable: {exc}") from None


_REFERENCE = re.compile(r"\(#([^)]*)\)")


def _digest_rule(root: etree._Element, message: str) -> tuple[str, str]:
    """Which signed part no longer matches its digest, from signxml's InvalidDigest."""
    if "certificate digest" in message:
        return rules.CERTIFICATE, "SigningCertificateV2 digest does not match the certificate"
    match = _REFERENCE.search(message)
    target = root.xpath("//*[@Id=$id]", id=match.group(1)) if match else []
    tag = target[0].tag if target else ""
    if tag == f"{{{XADES}}}SignedProperties":
        return rules.SIGNED_PROPERTIES, "signed properties (signing time, certificate) altered"
    if tag == f"{{{DS}}}KeyInfo":
        return rules.CERTIFICATE, "KeyInfo (key name, certificate) altered"
    if tag == f"{{{DS}}}Object":
        return rules.DIGEST, "the document manifest was altered"
    return rules.INVALID, f"a signed reference does not match its digest: {message}"


def _check_manifest(results: list, payload: bytes) -> None:
    """The verified manifest (never the unverified tree) must hold this payload's digest."""
    manifests = [
        m
        for r in results
        if r.signed_xml is not None
        for m in r.signed_xml.iter(f"{{{DS}}}Manifest")
    ]
    if len(manifests) != 1:
        raise SignatureFault(rules.MALFORMED, "the signature signs no single document manifest")
    references = manifests[0].findall("ds:Reference", NS)
    if len(references) != 1:
        raise SignatureFault(rules.MALFORMED, "the manifest must list exactly one document")
    algorithm = references[0].find("ds:DigestMethod", NS)
    digest = DIGESTS.get(algorithm.get("Algorithm", "") if algorithm is not None else "")
    if digest is None:
        raise SignatureFault(rules.MALFORMED, "manifest digest algorithm not accepted")
    expected = (references[0].findtext("ds:DigestValue", namespaces=NS) or "").strip()
    if base64.b64encode(digest(payload).digest()).decode("ascii") != expected:
        raise SignatureFault(rules.DIGEST, "the document is not the one that was signed")


def _signing_time(text: str | None, certificate: x509.Certificate, now: datetime) -> datetime:
    if not text:
        raise SignatureFault(rules.SIGNING_TIME, "the signature has no SigningTime")
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SignatureFault(rules.SIGNING_TIME, "SigningTime is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise SignatureFault(rules.SIGNING_TIME, "SigningTime has no time zone")
    if at > now + CLOCK_SKEW:
        raise SignatureFault(rules.SIGNING_TIME, "SigningTime is in the future")
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise SignatureFault(
            rules.SIGNING_TIME, "SigningTime is outside the signing certificate's validity"
        )
    return at.astimezone(UTC)
