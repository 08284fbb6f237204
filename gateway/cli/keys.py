"""`gateway keys init|rotate`: create the development signing key and the envelope seal key;
rotate the signing key, keeping the retired certificate (keys_dir/previous) so that what it
signed still verifies."""

from __future__ import annotations

from pathlib import Path

from gateway.cli._common import command
from gateway.config import Settings
from gateway.errors import KeystoreError
from gateway.signing.keystore import (
    ENVELOPE_KEY_FILE,
    KEY_FILE,
    init_dev_key,
    init_envelope_key,
    retire,
)
from gateway.signing.setup import envelope_key_path


def register(sub) -> None:
    keys = sub.add_parser("keys", help="manage the gateway's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = command(
        keys_sub,
        "init",
        "create a development signing key and self-signed certificate, and the envelope "
        "seal key when there is none (GATEWAY_ENVELOPE_KEY_FILE, else keys_dir/envelope.key)",
        "  gateway keys init --if-missing\n  gateway keys init --algorithm ecdsa --dir /tmp/keys",
    )
    _key_options(p)
    p.add_argument("--if-missing", action="store_true", help="do nothing when a key exists")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.set_defaults(run=run_init)
    r = command(
        keys_sub,
        "rotate",
        "retire the current key (its certificate stays accepted) and create a new one",
        "  gateway keys rotate\n  gateway keys rotate --algorithm ecdsa --dir /tmp/keys",
    )
    _key_options(r)
    r.set_defaults(run=run_rotate)


def _key_options(parser) -> None:
    parser.add_argument("--dir", help="keys directory (default: GATEWAY_KEYS_DIR, var/keys)")
    parser.add_argument("--algorithm", choices=("rsa", "ecdsa"), default="rsa")


def run_init(args) -> int:
    from gateway.cli import EXIT_USAGE, fail

    if args.dir:
        directory = Path(args.dir)
        envelope = directory / ENVELOPE_KEY_FILE
    else:
        settings = Settings.from_env()
        directory, envelope = settings.keys_dir, envelope_key_path(settings)
    try:
        if (directory / KEY_FILE).exists():
            if args.if_missing:
                _init_envelope_key(envelope)
                return 0
            if not args.force:
                return fail(
                    f"{directory / KEY_FILE} exists (use --force to replace it)", EXIT_USAGE
                )
        path = init_dev_key(directory, args.algorithm)
        print(f"created development signing key {path} ({args.algorithm}); never commit it")
        _init_envelope_key(envelope)
    except KeystoreError as exc:
        return fail(str(exc), EXIT_USAGE)
    return 0


def _init_envelope_key(path: Path) -> None:
    """Made when absent, never replaced: a new key would strand every message in flight."""
    if init_envelope_key(path):
        print(
            f"created envelope seal key {path}: every record consumer needs this same file "
            "(docs/signing.md); never commit it"
        )


def run_rotate(args) -> int:
    from gateway.cli import EXIT_USAGE, fail

    directory = Path(args.dir) if args.dir else Settings.from_env().keys_dir
    kept = retire(directory)
    if kept is None:
        return fail(
            f"no current key in {directory} (create one with `gateway keys init`)", EXIT_USAGE
        )
    path = init_dev_key(directory, args.algorithm)
    print(f"retired key kept as {kept} (still accepted by verifiers); new key {path}")
    return 0
