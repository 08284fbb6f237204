"""Signing keys: load them once (PEM or PKCS#12), name them, rotate them; the envelope seal key.

A development key is a self-signed certificate made on the machine that uses it
(`gateway keys init`); it lives under the data directory and is never committed. Rotation
keeps the certificates of earlier keys (``previous/``) so that what they signed still
verifies: each signature names its key id, and a verifier picks the certificate by that id.

The envelope seal key (gateway.signing.seal) is a secret shared by the gateway's intake and
its record consumers: 32 random bytes, written as 64 hex digits in ``envelope.key``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway import secret_file
from gateway.errors import KeystoreError
from gateway.signing.seal import KEY_BYTES

KEY_FILE = "signing.key"
CERT_FILE = "signing.pem"
PREVIOUS_DIR = "previous"  # certificates of retired keys, still accepted by verifiers
ENVELOPE_KEY_FILE = "envelope.key"
_MAX_ENVELOPE_KEY_FILE_BYTES = 1024  # 64 hex digits and a newline; more is not a key file

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key with its certificate chain; ``key_id`` names it in signatures."""

    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    key_id: str

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def algorithm(self) -> str:
        return "ecdsa-sha256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa-sha256"


def key_id_of(cert: x509.Certificate) -> str:
    """Stable key name: SHA-256 of the certificate's public key, first 16 hex characters."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()[:16]


def load_pem(key_path: Path, cert_path: Path, password: bytes | None = None) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=password)
        chain = tuple(x509.load_pem_x509_certificates(cert_path.read_bytes()))
    except FileNotFoundError as exc:
        raise KeystoreError(
            f"signing key file missing: {exc.filename} (create one with `gateway keys init`)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"cannot load signing key {key_path}: {exc}") from None
    return _signing_key(key, chain, key_path)


def load_pkcs12(path: Path, password: bytes | None = None) -> SigningKey:
    """Key and chain from one PKCS#12 file (the form most certificate authorities deliver)."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    except FileNotFoundError:
        raise KeystoreError(f"PKCS#12 file missing: {path}") from None
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"cannot load PKCS#12 {path}: {exc}") from None
    if key is None or cert is None:
        raise KeystoreError(f"{path}: PKCS#12 file holds no private key with its certificate")
    return _signing_key(key, (cert, *extra), path)


def _signing_key(key: object, chain: tuple[x509.Certificate, ...], source: Path) -> SigningKey:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeystoreError(f"{source}: only RSA and EC keys can sign")
    if not chain:
        raise KeystoreError(f"{source}: no certificate for the signing key")
    if chain[0].public_key() != key.public_key():
        raise KeystoreError(f"{source}: the first certificate is not the private key's")
    return SigningKey(key=key, chain=chain, key_id=key_id_of(chain[0]))


def load_certificates(paths: list[Path]) -> list[x509.Certificate]:
    """Every certificate in PEM files, or in the *.pem files of directories (missing ones skip)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.pem"))
        elif path.exists():
            files.append(path)
        else:
            raise KeystoreError(f"certificate file missing: {path}")
    certs: list[x509.Certificate] = []
    for file in files:
        try:
            certs += x509.load_pem_x509_certificates(file.read_bytes())
        except ValueError as exc:
            raise KeystoreError(f"cannot read certificates in {file}: {exc}") from None
    return certs


def retire(directory: Path) -> Path | None:
    """Move the current certificate to ``previous/<key id>.pem`` and delete its private key,
    before a new key is made: signatures it made keep verifying, it signs nothing more."""
    cert_path = directory / CERT_FILE
    if not cert_path.exists():
        return None
    cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    previous = directory / PREVIOUS_DIR
    previous.mkdir(exist_ok=True)
    kept = previous / f"{key_id_of(cert)}.pem"
    kept.write_bytes(cert_path.read_bytes())
    (directory / KEY_FILE).unlink(missing_ok=True)
    cert_path.unlink()
    return kept


def init_dev_key(directory: Path, algorithm: str = "rsa", days: int = 730) -> Path:
    """Create a private key and self-signed certificate in ``directory``; returns the key path."""
    directory.mkdir(parents=True, exist_ok=True)
    key: PrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise KeystoreError(f"unknown key algorithm {algorithm!r} (rsa or ecdsa)")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Passerelle (development)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "passerelle-dev-signing"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_path = directory / KEY_FILE
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    (directory / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path


def read_envelope_key(path: Path) -> bytes:
    """The envelope seal key in ``path``: 64 hex digits (surrounding whitespace ignored).
    FileNotFoundError when absent; KeystoreError, naming the file but never its content, when
    it is not a key."""
    try:
        with path.open("rb") as fh:
            text = fh.read(_MAX_ENVELOPE_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeystoreError(f"cannot read envelope seal key {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text.strip().decode("ascii"))
    except ValueError:  # UnicodeDecodeError is one
        key = b""
    if len(text) > _MAX_ENVELOPE_KEY_FILE_BYTES or len(key) != KEY_BYTES:
        raise KeystoreError(
            f"{path}: not an envelope seal key ({KEY_BYTES * 2} hex digits expected; "
            "create one with `gateway keys init`)"
        )
    return key


def init_envelope_key(path: Path) -> bool:
    """Create the envelope seal key ``path`` (mode 0600) unless it exists; True if this call
    created it. Atomic (gateway.secret_file): never two keys, never a half-written one."""
    try:
        return secret_file.create_once(path, secrets.token_hex(KEY_BYTES) + "\n")
    except OSError as exc:
        raise KeystoreError(f"cannot create envelope seal key {path}: {exc.strerror}") from None
