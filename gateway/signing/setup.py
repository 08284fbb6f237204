"""Build the signing parts from Settings, once at start: the key, the verifier, the inbound
signature checks. Shared by the gateway (gateway.bootstrap) and the `sign`/`verify` commands."""

from __future__ import annotations

from gateway.config import Settings
from gateway.signing.inbound import InboundSignatures, SenderPolicy
from gateway.signing.keystore import (
    CERT_FILE,
    KEY_FILE,
    PREVIOUS_DIR,
    SigningKey,
    load_certificates,
    load_pem,
    load_pkcs12,
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
