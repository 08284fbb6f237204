"""`gateway replay --from parking`: send parked messages back where they were going."""

from __future__ import annotations

from gateway.cli._common import command
from gateway.config import Settings
from gateway.errors import BrokerUnavailable, ConfigError


def register(sub) -> None:
    p = command(
        sub,
        "replay",
        "re-publish parked messages to their destination once the cause is fixed",
        "  gateway replay --from parking --dry-run\n"
        "  gateway replay --from parking --filter destination=patient-record\n"
        "  gateway replay --from parking --filter 'failure~StoreUnavailable' --limit 100",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DESTINATION",
        help="destination to take messages from (usually parking)",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE|KEY~REGEX",
        help="only messages whose header (failure, destination, type-code, sender, "
        "source-kind …) or document_id/trace_id matches; repeat to combine",
    )
    p.add_argument(
        "--to",
        metavar="DESTINATION",
        help="send there instead of the destination recorded in the message; a record "
        "consumer still refuses a document the gateway did not route to the record (its "
        "envelope seal names the routing): to re-route a document, send it again",
    )
    p.add_argument("--limit", type=int, help="replay at most N messages")
    p.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    p.add_argument("--routing", help="routing file (default: GATEWAY_ROUTING_FILE)")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from gateway.broker.names import Names
    from gateway.broker.replay import Filter, replay
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from gateway.routing import loader

    settings = Settings.from_env()
    try:
        table = loader.load(Path(args.routing) if args.routing else settings.routing_file)
        filters = [Filter.parse(f) for f in args.filter]
    except (ConfigError, ValueError) as exc:
        return fail(str(exc), EXIT_USAGE)
    for name in (args.source, args.to):
        if name is not None and name not in table.destinations:
            return fail(f"unknown destination {name!r} (routing file: {table.source})", EXIT_USAGE)
    names = Names(settings.amqp_prefix)
    by_queue = {names.queue(d.queue): d.name for d in table.destinations.values()}
    try:
        result = replay(
            settings.amqp_url,
            names,
            names.queue(table.destinations[args.source].queue),
            filters,
            to=args.to,
            limit=args.limit,
            dry_run=args.dry_run,
            queue_to_destination=by_queue.get,
        )
    except BrokerUnavailable as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    verb = "would replay" if args.dry_run else "replayed"
    for doc, target in result.replayed:
        print(f"{verb} {doc} → {target}")
    for doc, why in result.failed:
        print(f"kept {doc}: {why}")
    print(
        f"{verb} {len(result.replayed)}, skipped {result.skipped} (filters), "
        f"kept {len(result.failed)} (errors)"
    )
    return EXIT_INVALID if result.failed else EXIT_OK
