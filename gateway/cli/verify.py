"""`gateway verify FILE...`: check a document against its detached signature.

By default the signature must be the gateway's: its key id must name the current key, a
retired one (var/keys/previous) or one in GATEWAY_VERIFY_CERTS. With --trust-store (or
GATEWAY_TRUST_STORE and --sender) it is checked as a sender's signature: the certificate it
carries must chain to a CA of the bundle. Exit 0 all valid, 1 any invalid (the rule id says
why: signature.digest, signature.expired …), 2 usage or key/trust store error. A directory
gives its documents, each checked against the ``.xades.xml`` beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.cli._common import command, expand
from gateway.cli.sign import SUFFIX, signature_path
from gateway.config import Settings
from gateway.errors import ConfigError, KeystoreError
from gateway.signing.rules import SignatureFault


def register(sub) -> None:
    p = command(
        sub,
        "verify",
        "check documents against their detached XAdES signatures",
        "  gateway verify report.xml                  # reads report.xml.xades.xml\n"
        "  gateway verify report.xml --signature sig.xml\n"
        "  gateway verify report.xml --sender --trust-store ca-bundle.pem\n"
        "  gateway verify report.xml && echo untouched",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="signed documents")
    p.add_argument("--signature", help="signature file (one FILE only; default FILE.xades.xml)")
    p.add_argument(
        "--sender",
        action="store_true",
        help="a sender's signature: check its certificate against the trust store",
    )
    p.add_argument(
        "--trust-store", help="PEM CA bundle (implies --sender; default: GATEWAY_TRUST_STORE)"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, fail

    files = expand(args.paths, skip_suffix=SUFFIX)
    if args.signature and len(files) != 1:
        return fail("--signature takes exactly one FILE", EXIT_USAGE)
    pairs = [
        (given, path, Path(args.signature) if args.signature else signature_path(path))
        for given, path in files
    ]
    missing = [str(p) for _, doc, sig in pairs for p in (doc, sig) if not p.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    try:
        check = _checker(args, Settings.from_env())
    except (KeystoreError, ConfigError) as exc:
        return fail(str(exc), EXIT_USAGE)
    all_valid = True
    for given, doc, sig in pairs:
        try:
            print(f"{given}: valid ({check(doc.read_bytes(), sig.read_bytes())})")
        except SignatureFault as fault:
            all_valid = False
            print(f"{given}: INVALID {fault.rule}: {fault.message}")
    return EXIT_OK if all_valid else EXIT_INVALID


def _checker(args, settings: Settings):
    """check(document, signature) → description, raising SignatureFault."""
    from gateway.errors import KeystoreError
    from gateway.signing import verify
    from gateway.signing.setup import load_verifier
    from gateway.signing.trust import TrustStore

    if args.sender or args.trust_store:
        bundle = Path(args.trust_store) if args.trust_store else settings.trust_store
        if bundle is None:
            raise KeystoreError("--sender needs --trust-store or GATEWAY_TRUST_STORE")
        trust = TrustStore.load(bundle)

        def check_sender(document: bytes, signature: bytes) -> str:
            now = datetime.now(UTC)
            parsed = verify.parse(signature)
            facts = verify.check(parsed, document, trust.signing_certificate(parsed.chain, now))
            return f"sender signature, signed at {facts.signing_time.isoformat()}"

        return check_sender

    verifier = load_verifier(settings)

    def check_gateway(document: bytes, signature: bytes) -> str:
        key_id, facts = verifier.check(signature, document)
        return f"key {key_id}, signed at {facts.signing_time.isoformat()}"

    return check_gateway
