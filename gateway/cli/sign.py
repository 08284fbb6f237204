"""`gateway sign FILE...`: sign documents as the gateway does, detached, beside each file.

Writes FILE.xades.xml (the IHE DSG-style XAdES-BES signature over FILE's exact bytes) with
the configured key (GATEWAY_SIGNING_KEY/CERT, GATEWAY_SIGNING_P12, or var/keys). Exit 0 all
signed, 2 usage or key error (the message names the file). A directory gives its files but
the signatures already in it (``*.xades.xml``): signing it again re-signs its documents.
"""

from __future__ import annotations

from pathlib import Path

from gateway.cli._common import command, expand
from gateway.config import Settings
from gateway.errors import ConfigError, KeystoreError

SUFFIX = ".xades.xml"


def signature_path(document: Path) -> Path:
    return document.with_name(document.name + SUFFIX)


def register(sub) -> None:
    p = command(
        sub,
        "sign",
        "sign documents with the gateway's key; the signature is written beside each one",
        "  gateway sign report.xml               # writes report.xml.xades.xml\n"
        "  gateway sign report.xml --out sig.xml\n"
        "  GATEWAY_SIGNING_P12=gw.p12 GATEWAY_SIGNING_PASSWORD=… gateway sign report.xml",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="documents to sign")
    p.add_argument("--out", help="signature file (one FILE only; default FILE.xades.xml)")
    p.set_defaults(run=run)


def run(args) -> int:
    from gateway.cli import EXIT_OK, EXIT_USAGE, fail
    from gateway.signing.setup import load_key
    from gateway.signing.xades import XadesSigner

    files = expand(args.paths, skip_suffix=SUFFIX)
    missing = [given for given, path in files if not path.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    if args.out and len(files) != 1:
        return fail("--out takes exactly one FILE", EXIT_USAGE)
    try:
        signer = XadesSigner(load_key(Settings.from_env()))
    except (KeystoreError, ConfigError) as exc:
        return fail(str(exc), EXIT_USAGE)
    for given, path in files:
        _, info = signer.sign(path.read_bytes())
        out = Path(args.out) if args.out else signature_path(path)
        out.write_text(info.signature or "", encoding="utf-8")
        print(
            f"{given}: signed by key {info.key_id} ({info.algorithm}) at {info.signed_at} → {out}"
        )
    return EXIT_OK
