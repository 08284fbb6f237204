"""Build the signing parts from Settings, once at start: the key, the verifier, the inbound
signature checks, the envelope seal key. Shared by the gateway (gateway.bootstrap) and the
`sign`/`verify`/`keys` commands."""

from __future__ import annotations

from pathlib import Path

from gateway.config import Settings
from gateway.errors import KeystoreError
from gateway.logs import log
from gateway.signing.inbound import InboundSignatures, SenderPolicy
from gateway.signing.keystore import (
    CERT_FILE,
    ENVELOPE_KEY_FILE,
    KEY_FILE,
    PREVIOUS_DIR,
    SigningKey,
    init_envelope_key,
    load_certificates,
    load_pem,
    load_pkcs12,
    read_envelope_key,
)
from gateway.signing.trust import TrustStore
from gateway.signing.verifier import GatewayVerifier


def load_key(settings: Settings) -> SigningKey:
    """The current signing key: PKCS#12 when configured, else the PEM pair (raises
    KeystoreError naming the file)."""
    if settings.signing_p12 is not None:
        return load_pkcs12(settings.signing_p12, settings.signing_password)
    key_path = settings.signing_key or settings.keys_dir / KEY_FILE
    cert_path = settings.signing_cert or settings.keys_dir / CERT_FILE
    return load_pem(key_path, cert_path, settings.signing_password)


def load_verifier(settings: Settings) -> GatewayVerifier:
    """Accepts the current key, the retired keys kept in ``keys_dir/previous`` and every
    certificate listed in GATEWAY_VERIFY_CERTS. Needs certificates only (no private key),
    except from a PKCS#12 file."""
    previous = settings.keys_dir / PREVIOUS_DIR
    paths = [*settings.verify_certs, *([previous] if previous.is_dir() else [])]
    if settings.signing_p12 is not None:
        current = [load_key(settings).certificate]
    else:
        current = load_certificates([settings.signing_cert or settings.keys_dir / CERT_FILE])
    return GatewayVerifier([*current[:1], *load_certificates(paths)])


def load_inbound(settings: Settings) -> InboundSignatures:
    trust = TrustStore.load(settings.trust_store) if settings.trust_store else None
    return InboundSignatures(SenderPolicy(settings.signed_senders), trust)


def envelope_key_path(settings: Settings) -> Path:
    return settings.envelope_key_file or settings.keys_dir / ENVELOPE_KEY_FILE


def load_envelope_key(settings: Settings) -> bytes:
    """The envelope seal key (gateway.signing.seal), the same in intake and record consumers.

    GATEWAY_ENVELOPE_KEY_FILE when set: that file must exist (a consumer pointed at a key that
    was not deployed would otherwise make its own and park every message). Else
    ``keys_dir/envelope.key``, created by whichever process needs it first."""
    path = envelope_key_path(settings)
    try:
        return read_envelope_key(path)
    except FileNotFoundError:
        if settings.envelope_key_file is not None:
            raise KeystoreError(
                f"GATEWAY_ENVELOPE_KEY_FILE: {path} is missing (copy the gateway's envelope "
                "key there, or create one with `gateway keys init`)"
            ) from None
    if init_envelope_key(path):
        log(
            "keys.envelope_created",
            level=30,
            component="signing",
            reason=f"created {path}: every record consumer needs this same file",
        )
    return read_envelope_key(path)
