"""XAdES-BES signing of documents with a key loaded once.

The signature is detached in the IHE DSG manner: a ds:Manifest lists the document by URI and
by the SHA-256 of its exact bytes; the XAdES signature (enveloping that manifest) signs the
manifest, the signed properties (SigningTime, SigningCertificateV2) and the KeyInfo. The
document bytes travel unchanged — the manifest digest equals the envelope's ``sha256`` — and
the signature document travels beside them in the envelope. docs/signing.md says why.

The gateway makes one signature shape only (gateway.signing.shape), so it is filled in from a
template whose canonical parts were computed once, rather than built by a general XMLDSig
library (which builds, serialises and re-parses a tree per signature: ~2.1 ms against ~0.9 ms
here, most of it the RSA operation). signxml verifies what is built, in the tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.envelope import SignatureInfo
from gateway.signing import shape
from gateway.signing.keystore import SigningKey

FORM = "xades-bes-detached"


class XadesSigner:
    """The Signer port over one loaded SigningKey (loaded once: re-loading a PEM key per call
    costs an order of magnitude more than the signature)."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        der = key.certificate.public_bytes(serialization.Encoding.DER)
        certificates = "".join(
            f"<ds:X509Certificate>{shape.b64(c.public_bytes(serialization.Encoding.DER))}"
            "</ds:X509Certificate>"
            for c in key.chain
        )
        self._method = shape.SIGNATURE_METHODS[key.algorithm]
        self._certificate_digest = shape.digest(der)
        # Nothing in the KeyInfo changes from one signature to the next.
        self._key_info_digest = shape.key_info_digest(key.key_id, certificates)
        self._document = shape.fill(
            shape.TEMPLATE,
            signature_method=self._method,
            key_name=key.key_id,
            certificates=certificates,
            certificate_digest=self._certificate_digest,
            key_info_digest=self._key_info_digest,
        )
        if shape.read(shape.fill(self._document, **_SAMPLE)) is None:
            raise ValueError(f"key id {key.key_id!r} cannot be written in a signature")

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]:
        signing_time = datetime.now(UTC).isoformat(timespec="seconds")
        manifest_digest = shape.digest(payload)
        object_digest = shape.object_digest(manifest_digest)
        properties_digest = shape.properties_digest(signing_time, self._certificate_digest)
        signed_info = shape.signed_info(
            self._method, object_digest, properties_digest, self._key_info_digest
        )
        signature = shape.fill(
            self._document,
            object_digest=object_digest,
            properties_digest=properties_digest,
            signature_value=self._signature_value(signed_info.encode("utf-8")),
            signing_time=signing_time,
            manifest_digest=manifest_digest,
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
            return shape.b64(r.to_bytes(width, "big") + s.to_bytes(width, "big"))
        return shape.b64(key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()))


# Free texts of the right form, to check once per key that its signatures will be of the shape.
_SAMPLE = {
    "object_digest": "A" * 43 + "=",
    "properties_digest": "A" * 43 + "=",
    "signature_value": "AAAA",
    "signing_time": "2000-01-01T00:00:00+00:00",
    "manifest_digest": "A" * 43 + "=",
}
