"""`gateway routing check`, `gateway route --explain`, `gateway topology`: routing.yaml for
operators — is it valid, where would this document go and why, what does it declare."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.cli._common import command, expand
from gateway.config import Settings
from gateway.errors import BrokerUnavailable, ConfigError


def register(sub) -> None:
    routing = sub.add_parser("routing", help="check routing.yaml")
    routing_sub = routing.add_subparsers(dest="routing_command", metavar="ACTION", required=True)
    p = command(
        routing_sub,
        "check",
        "validate a routing file: schema, destinations, unreachable rules (with line numbers)",
        "  gateway routing check\n"
        "  gateway routing check new.yaml && cp new.yaml routing.yaml   # then the gateway reloads",
    )
    p.add_argument("file", nargs="?", help="routing file (default: GATEWAY_ROUTING_FILE)")
    p.set_defaults(run=run_check)

    p = command(
        sub,
        "route",
        "show where documents would go under routing.yaml, rule by rule, and why",
        "  gateway route --explain report.xml\n"
        "  gateway route --explain tests/fixtures/hl7v2/ --routing new-routing.yaml",
    )
    p.add_argument("--explain", nargs="+", required=True, metavar="FILE", help="inputs to route")
    p.add_argument("--routing", help="routing file (default: GATEWAY_ROUTING_FILE)")
    p.set_defaults(run=run_explain)

    p = command(
        sub,
        "topology",
        "declare the RabbitMQ exchanges, queues and bindings routing.yaml needs",
        "  gateway topology --dry-run\n  GATEWAY_AMQP_PREFIX=staging gateway topology",
    )
    p.add_argument("--dry-run", action="store_true", help="print the declarations only")
    p.add_argument("--routing", help="routing file (default: GATEWAY_ROUTING_FILE)")
    p.set_defaults(run=run_topology)


def _table(given: str | None, settings: Settings):
    from gateway.routing import loader

    return loader.load(Path(given) if given else settings.routing_file)


def run_check(args) -> int:
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, fail
    from gateway.routing.loader import RoutingFileError

    settings = Settings.from_env()
    path = Path(args.file) if args.file else settings.routing_file
    try:
        table = _table(args.file, settings)
    except RoutingFileError as exc:
        print(exc, file=sys.stderr)
        print(f"{path}: {len(exc.findings)} problem(s); the file would be refused", file=sys.stderr)
        return EXIT_INVALID
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(
        f"{path}: valid ({len(table.destinations)} destinations, {len(table.rules)} rules, "
        f"default → {', '.join(table.default)})"
    )
    return EXIT_OK


def run_explain(args) -> int:
    from gateway.bootstrap import load_checks
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, fail
    from gateway.outcome import Rejected
    from gateway.pipeline import normalise, read
    from gateway.submission import Submission

    settings = Settings.from_env()
    try:
        table = _table(args.routing, settings)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    files = expand(args.explain)
    missing = [given for given, path in files if not path.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    checks = load_checks(settings)
    code = EXIT_OK
    for given, path in files:
        submission = Submission(raw=path.read_bytes(), transport="cli", sender="cli")
        document = read(submission, checks)
        if isinstance(document, Rejected):
            errors = len(document.report.errors)
            print(f"{given}: rejected ({document.kind.value}, {errors} error(s))")
            print(f"  → {table.rejected or '(no rejected destination)'} with its report")
            print("    (`gateway validate` lists the findings)")
            code = EXIT_INVALID
            continue
        envelope = normalise(document, document.payload, None, submission)
        type_code = envelope.type_code.code if envelope.type_code else "no type code"
        print(f"{given}: {envelope.source_kind}, {type_code}")
        for line in table.explain(envelope):
            print(line)
        decision = table.decide(envelope)
        via = " (default)" if decision.by_default else ""
        print(f"  → {', '.join(decision.destinations) or '(nowhere)'}{via}")
    return code


def run_topology(args) -> int:
    from gateway.broker import topology
    from gateway.broker.names import Names
    from gateway.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, fail

    settings = Settings.from_env()
    try:
        table = _table(args.routing, settings)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    decls = topology.plan(table, Names(settings.amqp_prefix))
    for d in decls:
        print(d)
    if args.dry_run:
        return EXIT_OK
    try:
        topology.declare_at(settings.amqp_url, decls)
    except BrokerUnavailable as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    print(f"declared {len(decls)} objects")
    return EXIT_OK
