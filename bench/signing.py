"""Signing and verification of a 30 KB CDA, RSA-2048 and ECDSA P-256, beside the floor: one
raw cryptography signature (or verification) of a SHA-256 digest with the same key.

"x floor" is how many raw operations one XAdES operation costs: what XML (manifest,
canonicalisation, XAdES properties) adds over the mathematics. Verification twice: as the
record consumer does it (GatewayVerifier: the gateway's own shape, checked without XML
processing, gateway.signing.verify.check_own) and through signxml (what any other signature
takes, and what the own-shape check is tested against).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from bench.common import FIXTURES, Context, measure
from gateway.signing import verify
from gateway.signing.keystore import CERT_FILE, KEY_FILE, init_dev_key, load_pem
from gateway.signing.verifier import GatewayVerifier
from gateway.signing.xades import XadesSigner

TARGET_BYTES = 30 * 1024


def document_of_30_kb() -> bytes:
    """The fixture CDA grown to ~30 KB with an XML comment (the bytes are what is hashed)."""
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    filler = b"<!-- " + b"x" * max(0, TARGET_BYTES - len(cda) - 10) + b" -->\n"
    return cda + filler


def raw_sign(key):
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return lambda digest: key.sign(digest, ec.ECDSA(prehashed))
    return lambda digest: key.sign(digest, padding.PKCS1v15(), prehashed)


def raw_verify(public_key):
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return lambda sig, digest: public_key.verify(sig, digest, ec.ECDSA(prehashed))
    return lambda sig, digest: public_key.verify(sig, digest, padding.PKCS1v15(), prehashed)


def rows(ctx: Context) -> dict[str, dict]:
    document = document_of_30_kb()
    digest = hashlib.sha256(document).digest()
    out: dict[str, dict] = {}
    for algorithm, label in (("rsa", "RSA-2048"), ("ecdsa", "ECDSA P-256")):
        directory = ctx.workdir / f"keys-{algorithm}"
        init_dev_key(directory, algorithm)
        key = load_pem(directory / KEY_FILE, directory / CERT_FILE)
        signer = XadesSigner(key)
        signature = signer.sign(document)[1].signature or ""
        sign_floor = raw_sign(key.key)
        raw_signature = sign_floor(digest)
        verify_floor = raw_verify(key.certificate.public_key())

        floor_s = measure(lambda f=sign_floor: f(digest))
        xades_s = measure(lambda s=signer: s.sign(document))
        floor_v = measure(lambda f=verify_floor, r=raw_signature: f(r, digest))
        xades_v = measure(
            lambda s=signature, c=key.certificate: verify.check(verify.parse(s), document, c)
        )
        gateway = GatewayVerifier([key.certificate])
        own_v = measure(lambda s=signature, g=gateway: g.check(s, document))
        kb = len(document) // 1024
        out[f"XAdES sign {label} ({kb} KB CDA)"] = {
            **xades_s,
            "x floor": round(floor_s["ops/s"] / xades_s["ops/s"], 1),
        }
        out[f"  floor: raw sign {label}"] = floor_s
        out[f"XAdES verify {label} ({kb} KB CDA), own shape"] = {
            **own_v,
            "x floor": round(floor_v["ops/s"] / own_v["ops/s"], 1),
        }
        out[f"XAdES verify {label} ({kb} KB CDA), signxml"] = {
            **xades_v,
            "x floor": round(floor_v["ops/s"] / xades_v["ops/s"], 1),
        }
        out[f"  floor: raw verify {label}"] = floor_v
    return out
