"""Check one XAdES-BES signature of the shape gateway.signing.xades makes, against the exact
document bytes and a certificate the caller chose (by key id, or after a trust-store check).

Every failure is a SignatureFault naming one rule of gateway.signing.rules. Order matters:
the cheap, precise checks (structure, certificate identity, validity) run before the
cryptographic one, so a wrong certificate is reported as such and not as a bad value.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from lxml import etree
from signxml import DigestAlgorithm
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

from gateway.signing import rules
from gateway.signing.rules import SignatureFault
from gateway.signing.xades import DS, XADES

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
    signing_time = _signing_time(results, certificate, now)
    return SignedFacts(signing_time=signing_time, certificate=certificate)


def check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise SignatureFault(
            rules.EXPIRED, f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )
    if at > cert.not_valid_after_utc:
        raise SignatureFault(
            rules.EXPIRED, f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )


def _verify(root: etree._Element, certificate: x509.Certificate) -> list:
    try:
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


def _signing_time(results: list, certificate: x509.Certificate, now: datetime) -> datetime:
    props = next((r.signed_properties for r in results if hasattr(r, "signed_properties")), None)
    text = props.findtext("xades:SigningTime", namespaces=NS) if props is not None else None
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
