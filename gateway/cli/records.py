"""`gateway token …` mints records-API tokens; `gateway records represent …` records who the
legal representatives of a patient are (an operator's act, audited)."""

from __future__ import annotations

from gateway.cli._common import command
from gateway.config import Settings
from gateway.errors import ConfigError, StoreUnavailable


def register(sub) -> None:
    p = command(
        sub,
        "token",
        "mint a bearer token for the records API or the operator endpoints (/messages, /ui)",
        "  gateway token patient 184127505612355\n"
        "  gateway token professional 810001234567 --role 10 --ttl 3600\n"
        "  gateway token representative rep-0001\n"
        "  gateway token operator alice    # /messages and /ui\n"
        '  curl -H "Authorization: Bearer $(gateway token patient 184127505612355)" \\\n'
        "       http://127.0.0.1:8080/patients/184127505612355/documents",
    )
    p.add_argument("kind", choices=("patient", "professional", "representative", "operator"))
    p.add_argument(
        "id", help="INS (patient), RPPS (professional), representative id or operator name"
    )
    p.add_argument("--role", help="professional's profession/specialty code")
    p.add_argument("--ttl", type=int, default=8 * 3600, help="seconds of validity (default 8h)")
    p.set_defaults(run=run_token)

    records = sub.add_parser("records", help="administer patient records")
    records_sub = records.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    r = command(
        records_sub,
        "represent",
        "declare (or with --remove, end) a patient's legal representative",
        "  gateway records represent 212345678901234 rep-0001\n"
        "  gateway records represent 212345678901234 rep-0001 --remove",
    )
    r.add_argument("ins", help="the patient's INS")
    r.add_argument("representative", help="the representative's identifier")
    r.add_argument("--remove", action="store_true", help="end the representation")
    r.add_argument("--operator", default="cli", help="who does it, for the audit trail")
    r.set_defaults(run=run_represent)


def run_token(args) -> int:
    from gateway.api.identity import load_secret, mint
    from gateway.cli import EXIT_OK, EXIT_USAGE, fail
    from gateway.records.access import Caller, CallerKind

    if args.ttl <= 0:
        return fail("--ttl must be positive", EXIT_USAGE)
    try:
        settings = Settings.from_env()
        secret = load_secret(settings.data_dir, settings.token_secret)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(mint(secret, Caller(CallerKind(args.kind), args.id, args.role), args.ttl))
    return EXIT_OK


def run_represent(args) -> int:
    from gateway.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from gateway.records.audit import Action, Actor, Event
    from gateway.records.store import RecordStore

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        store = RecordStore.open(settings.database_url)
    except StoreUnavailable as exc:
        return fail(f"{exc}. Check GATEWAY_DATABASE_URL.", EXIT_UNAVAILABLE)
    try:
        event = Event(
            Actor("operator", args.operator),
            Action.REPRESENTATIVE,
            "removed" if args.remove else "added",
            args.ins,
            reason=f"representative {args.representative}",
        )
        store.set_representative(args.ins, args.representative, not args.remove, event)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    finally:
        store.close()
    return EXIT_OK
