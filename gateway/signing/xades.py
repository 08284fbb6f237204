"""XAdES-BES signing of documents with a key loaded once.

The signature is detached in the IHE DSG manner: a ds:Manifest lists the document by URI and
by the SHA-256 of its exact bytes; the XAdES signature (enveloping that manifest) signs the
manifest, the signed properties (SigningTime, SigningCertificateV2) and the KeyInfo. The
document bytes travel unchanged — the manifest digest equals the envelope's ``sha256`` — and
the signature document travels beside them in the envelope. docs/signing.md says why.
"""

from __future__ import annotations

import base64
import hashlib

from lxml import etree
from signxml import DigestAlgorithm, methods
from signxml.xades import XAdESDataObjectFormat, XAdESSigner

from gateway.envelope import SignatureInfo
from gateway.signing.keystore import SigningKey

FORM = "xades-bes-detached"
DOCUMENT_URI = "urn:passerelle:document"  # the manifest's name for the payload it travels with
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SHA256 = DigestAlgorithm.SHA256.value
MANIFEST_FORMAT = XAdESDataObjectFormat(
    Description="IHE DSG manifest of document digests", MimeType="text/xml"
)


def manifest(payload: bytes, uri: str = DOCUMENT_URI) -> etree._Element:
    """ds:Manifest naming one document by ``uri`` and the SHA-256 of its bytes (no transforms:
    the bytes are signed exactly as they travel)."""
    root = etree.Element(f"{{{DS}}}Manifest", nsmap={"ds": DS}, Id="document-manifest")
    ref = etree.SubElement(root, f"{{{DS}}}Reference", URI=uri)
    etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=SHA256)
    value = etree.SubElement(ref, f"{{{DS}}}DigestValue")
    value.text = base64.b64encode(hashlib.sha256(payload).digest()).decode("ascii")
    return root


class XadesSigner:
    """The Signer port over one loaded SigningKey (loaded once: signxml given PEM bytes would
    parse the key on every call, an order of magnitude slower)."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._chain = list(key.chain)

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def sign_element(self, payload: bytes) -> etree._Element:
        # signxml signers keep per-call state (ids used, settings): one per signature, cheap.
        signer = XAdESSigner(
            method=methods.enveloping,
            signature_algorithm=self._key.algorithm,
            digest_algorithm="sha256",
            data_object_format=MANIFEST_FORMAT,
        )
        return signer.sign(
            manifest(payload), key=self._key.key, cert=self._chain, key_name=self._key.key_id
        )

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]:
        signature = self.sign_element(payload)
        signing_time = signature.findtext(f".//{{{XADES}}}SigningTime")
        return payload, SignatureInfo(
            key_id=self._key.key_id,
            algorithm=self._key.algorithm,
            signed_at=signing_time or "",
            form=FORM,
            signature=etree.tostring(signature, encoding="unicode"),
        )
