"""The gateway's one signature shape: its template, the canonical forms of its signed parts,
and the recognition of a signature document of exactly that shape.

Signing fills the template (gateway.signing.xades). Verifying a signature of this exact
shape needs no XML processing at all: the document must match the template byte for byte,
with only texts that canonicalisation leaves unchanged (base64, an ISO time, a key id, the
algorithm URI) free; from those texts the signed parts' canonical forms are rebuilt exactly as
any XMLDSig verifier would compute them from that document, so nothing in it is resolved,
re-parsed or trusted (no reference points anywhere but where the template says). Anything else
— another serialisation, other content, a sender's signature — is not this shape, and
goes to the general verifier (signxml, gateway.signing.verify).

The canonical forms are computed once, by lxml's canonicaliser, from the template itself,
with the placeholders in place: braces never occur in what is put in, nor does the
canonicaliser change them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
DOCUMENT_URI = "urn:passerelle:document"  # the manifest's name for the payload it travels with
MANIFEST_DESCRIPTION = "IHE DSG manifest of document digests"
SIGNATURE_METHODS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ecdsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}

# The free texts: name → what the text may be (all of it left unchanged by canonicalisation).
_B64_DIGEST = r"[A-Za-z0-9+/]{43}="  # SHA-256
FREE = {
    "signature-method": "|".join(re.escape(u) for u in SIGNATURE_METHODS.values()),
    "object-digest": _B64_DIGEST,
    "properties-digest": _B64_DIGEST,
    "key-info-digest": _B64_DIGEST,
    "signature-value": r"[A-Za-z0-9+/]+={0,2}",
    "key-name": r"[0-9A-Za-z._-]{1,64}",
    "certificates": r"(?:<ds:X509Certificate>[A-Za-z0-9+/]+={0,2}</ds:X509Certificate>){1,8}",
    "signing-time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)",
    "certificate-digest": _B64_DIGEST,
    "manifest-digest": _B64_DIGEST,
}

# One signature per document: fixed ids are unique in it.
TEMPLATE = f"""\
<ds:Signature xmlns:ds="{DS}" xmlns:xades="{XADES}" Id="signature">\
<ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm="{C14N11}"/>\
<ds:SignatureMethod Algorithm="{{signature-method}}"/>\
<ds:Reference Id="object-reference" URI="#object">\
<ds:Transforms><ds:Transform Algorithm="{C14N11}"/></ds:Transforms>\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{{object-digest}}</ds:DigestValue>\
</ds:Reference>\
<ds:Reference URI="#signed-properties" Type="{SIGNED_PROPERTIES_TYPE}">\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{{properties-digest}}</ds:DigestValue>\
</ds:Reference>\
<ds:Reference URI="#key-info">\
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{{key-info-digest}}</ds:DigestValue>\
</ds:Reference>\
</ds:SignedInfo>\
<ds:SignatureValue>{{signature-value}}</ds:SignatureValue>\
<ds:KeyInfo Id="key-info"><ds:KeyName>{{key-name}}</ds:KeyName>\
<ds:X509Data>{{certificates}}</ds:X509Data></ds:KeyInfo>\
<ds:Object><xades:QualifyingProperties Target="#signature">\
<xades:SignedProperties Id="signed-properties">\
<xades:SignedSignatureProperties>\
<xades:SigningTime>{{signing-time}}</xades:SigningTime>\
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
<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>{{manifest-digest}}</ds:DigestValue>\
</ds:Reference></ds:Manifest></ds:Object>\
</ds:Signature>"""


def fill(template: str, **values: str) -> str:
    """``template`` with ``{name}`` replaced for each given value (names with ``_`` for ``-``)."""
    for name, value in values.items():
        template = template.replace("{" + name.replace("_", "-") + "}", value)
    return template


def _canonical_parts() -> dict[str, str]:
    root = etree.fromstring(TEMPLATE.encode("utf-8"))

    def canonical(path: str) -> str:
        [element] = root.xpath(path, namespaces={"ds": DS, "xades": XADES})
        return etree.tostring(element, method="c14n").decode("utf-8")

    return {
        "signed_info": canonical("ds:SignedInfo"),
        "signed_properties": canonical("ds:Object/xades:QualifyingProperties/*"),
        "manifest_object": canonical("ds:Object[@Id='object']"),
        "key_info": canonical("ds:KeyInfo"),
    }


# Canonical forms (C14N 1.0 inclusive, which for this content, free of xml:* attributes, is
# also C14N 1.1) of the four parts SignedInfo covers or is.
CANONICAL = _canonical_parts()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digest(data: bytes | str) -> str:
    """SHA-256 as XMLDSig writes a DigestValue: base64 (text is hashed as UTF-8)."""
    return b64(hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).digest())


def object_digest(manifest_digest: str) -> str:
    return digest(fill(CANONICAL["manifest_object"], manifest_digest=manifest_digest))


def properties_digest(signing_time: str, certificate_digest: str) -> str:
    return digest(
        fill(
            CANONICAL["signed_properties"],
            signing_time=signing_time,
            certificate_digest=certificate_digest,
        )
    )


def key_info_digest(key_name: str, certificates: str) -> str:
    return digest(fill(CANONICAL["key_info"], key_name=key_name, certificates=certificates))


def signed_info(method: str, object_digest: str, properties_digest: str, key_info: str) -> str:
    """The canonical SignedInfo: the exact bytes the signature value signs."""
    return fill(
        CANONICAL["signed_info"],
        signature_method=method,
        object_digest=object_digest,
        properties_digest=properties_digest,
        key_info_digest=key_info,
    )


def _pattern() -> re.Pattern[str]:
    text = re.escape(TEMPLATE)
    for name, free in FREE.items():
        placeholder = re.escape("{" + name + "}")
        group = name.replace("-", "_")
        text = text.replace(placeholder, f"(?P<{group}>{free})", 1)
        # a placeholder that occurs twice would be one group and one unmatched literal
        assert placeholder not in text, name
    return re.compile(text)


_SHAPE = _pattern()


@dataclass(frozen=True)
class OwnSignature:
    """The free texts of a signature document of exactly the gateway's shape, not yet checked."""

    signature_method: str
    object_digest: str
    properties_digest: str
    key_info_digest: str
    signature_value: str
    key_name: str
    certificates: str  # the X509Certificate elements, as they are in the document
    signing_time: str
    certificate_digest: str
    manifest_digest: str

    def certificates_b64(self) -> list[str]:
        return re.findall(r"<ds:X509Certificate>([^<]*)</ds:X509Certificate>", self.certificates)


def read(signature: str) -> OwnSignature | None:
    """The free texts, when ``signature`` is exactly the gateway's shape; else None."""
    match = _SHAPE.fullmatch(signature)
    return OwnSignature(**match.groupdict()) if match else None
