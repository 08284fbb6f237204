"""XAdES-BES signing of documents with a key loaded once.

The signature is detached in the IHE DSG manner: a ds:Manifest lists the document by URI and
by the SHA-256 of its exact bytes; the XAdES signature (enveloping that manifest) signs the
manifest, the signed properties (SigningTime, SigningCertificateV2) and the KeyInfo. The
document bytes travel unchanged — the manifest digest equals the envelope's ``sha256`` — and
the signature document travels beside them in the envelope. docs/signing.md says why.

The gateway makes one signature shape only, so it is built from templates prepared once per
key rather than by a general XMLDSig library (which builds, serialises and re-parses a tree
per signature: ~2.3 ms against ~0.8 ms here, two thirds of it the RSA operation). The
canonical forms come from lxml's canonicaliser, run once on the template with placeholders;
per signature only base64 digests, the signature value and an ISO time — texts that
canonicalisation leaves unchanged — are put in. signxml verifies what is built (tests, and
every consumer through gateway.signing.verify).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from gateway.envelope import SignatureInfo
from gateway.signing.keystore import SigningKey

FORM = "xades-bes-detached"
DOCUMENT_URI = "urn:passerelle:document"  # the manifest's name for the payload it travels with
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
SIGNATURE_METHODS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ecdsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}
MANIFEST_DESCRIPTION = "IHE DSG manifest of document digests"

# What changes per signature. Braces and hyphens never occur in base64, in an ISO time or in
# what the canonicaliser writes for this template, so each placeholder is found only where
# it was put.
_MANIFEST_DIGEST = "{manifest-digest}"
_OBJECT_DIGEST = "{object-digest}"
_PROPERTIES_DIGEST = "{properties-digest}"
_KEY_INFO_DIGEST = "{key-info-digest}"
_SIGNING_TIME = "{signing-time}"
_SIGNATURE_VALUE = "{signature-value}"

# One signature per document: fixed ids are unique in it.
_TEMPLATE = f"""\
<ds:Signature xmlns:ds="{DS}" xmlns:xades="{XADES}" Id="signature">\
<ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm="{C14N11}"/>\
<ds:SignatureMethod Algorithm="{{signature-method}}"/>\
<ds:Reference Id="object-reference" URI="#object">\
<ds:Transforms><ds:Transform Algorithm="{C14N11}"/></ds:Transforms>\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{_OBJECT_DIGEST}</ds:DigestValue>\
</ds:Reference>\
<ds:Reference URI="#signed-properties" Type="{SIGNED_PROPERTIES_TYPE}">\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{_PROPERTIES_DIGEST}</ds:DigestValue>\
</ds:Reference>\
<ds:Reference URI="#key-info">\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{_KEY_INFO_DIGEST}</ds:DigestValue>\
</ds:Reference>\
</ds:SignedInfo>\
<ds:SignatureValue>{_SIGNATURE_VALUE}</ds:SignatureValue>\
<ds:KeyInfo Id="key-info"><ds:KeyName>{{key-name}}</ds:KeyName>\
<ds:X509Data>{{certificates}}</ds:X509Data></ds:KeyInfo>\
<ds:Object><xades:QualifyingProperties Target="#signature">\
<xades:SignedProperties Id="signed-properties">\
<xades:SignedSignatureProperties>\
<xades:SigningTime>{_SIGNING_TIME}</xades:SigningTime>\
<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{{certificate-digest}}</ds:DigestValue>\
</xades:CertDigest></xades:Cert></xades:SigningCertificateV2>\
</xades:SignedSignatureProperties>\
<xades:SignedDataObjectProperties>\
<xades:DataObjectFormat ObjectReference="#object-reference">\
<xades:Description>{MANIFEST_DESCRIPTION}</xades:Description>\
<xades:MimeType>text/xml</xades:MimeType>\
</xades:DataObjectFormat>\
</xades:SignedDataObjectProperties>\
</xades:SignedProperties></xades:QualifyingProperties></ds:Object>\
<ds:Object Id="object"><ds:Manifest Id="document-manifest">\
<ds:Reference URI="{DOCUMENT_URI}">\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{_MANIFEST_DIGEST}</ds:DigestValue>\
</ds:Reference></ds:Manifest></ds:Object>\
</ds:Signature>"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sha256_b64(data: bytes) -> str:
    return _b64(hashlib.sha256(data).digest())


@dataclass(frozen=True)
class _Templates:
    """One key's signature document and the canonical forms of its signed parts."""

    document: str
    signed_info: str
    signed_properties: str
    manifest_object: str
    key_info_digest: str  # the KeyInfo holds nothing that changes per signature


def _templates(key: SigningKey, method: str) -> _Templates:
    der = key.certificate.public_bytes(serialization.Encoding.DER)
    document = (
        _TEMPLATE.replace("{signature-method}", method)
        .replace("{key-name}", _escaped(key.key_id))
        .replace("{certificates}", "".join(_certificate(c) for c in key.chain))
        .replace("{certificate-digest}", _sha256_b64(der))
    )
    root = etree.fromstring(document.encode("utf-8"))

    def canonical(path: str) -> str:
        [element] = root.xpath(path, namespaces={"ds": DS, "xades": XADES})
        return etree.tostring(element, method="c14n").decode("utf-8")

    key_info = canonical("ds:KeyInfo")
    return _Templates(
        document=document,
        signed_info=canonical("ds:SignedInfo"),
        signed_properties=canonical("ds:Object/xades:QualifyingProperties/xades:SignedProperties"),
        manifest_object=canonical("ds:Object[@Id='object']"),
        key_info_digest=_sha256_b64(key_info.encode("utf-8")),
    )


def _certificate(cert: x509.Certificate) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    return f"<ds:X509Certificate>{_b64(der)}</ds:X509Certificate>"


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class XadesSigner:
    """The Signer port over one loaded SigningKey (loaded once: re-loading a PEM key per call
    costs an order of magnitude more than the signature)."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._templates = _templates(key, SIGNATURE_METHODS[key.algorithm])

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]:
        t = self._templates
        signing_time = datetime.now(UTC).isoformat(timespec="seconds")
        manifest_digest = _sha256_b64(payload)
        object_digest = _sha256_b64(
            t.manifest_object.replace(_MANIFEST_DIGEST, manifest_digest).encode("ascii")
        )
        properties_digest = _sha256_b64(
            t.signed_properties.replace(_SIGNING_TIME, signing_time).encode("utf-8")
        )
        signed_info = (
            t.signed_info.replace(_OBJECT_DIGEST, object_digest)
            .replace(_PROPERTIES_DIGEST, properties_digest)
            .replace(_KEY_INFO_DIGEST, t.key_info_digest)
        )
        value = self._signature_value(signed_info.encode("utf-8"))
        signature = (
            t.document.replace(_OBJECT_DIGEST, object_digest)
            .replace(_PROPERTIES_DIGEST, properties_digest)
            .replace(_KEY_INFO_DIGEST, t.key_info_digest)
            .replace(_SIGNATURE_VALUE, value)
            .replace(_SIGNING_TIME, signing_time)
            .replace(_MANIFEST_DIGEST, manifest_digest)
        )
        return payload, SignatureInfo(
            key_id=self._key.key_id,
            algorithm=self._key.algorithm,
            signed_at=signing_time,
            form=FORM,
            signature=signature,
        )

    def _signature_value(self, signed_info: bytes) -> str:
        key = self._key.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # XMLDSig wants r and s side by side, each as wide as the curve, not DER.
            r, s = decode_dss_signature(key.sign(signed_info, ec.ECDSA(hashes.SHA256())))
            width = (key.curve.key_size + 7) // 8
            return _b64(r.to_bytes(width, "big") + s.to_bytes(width, "big"))
        return _b64(key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()))
