"""`gateway validate PATH...`: judge CDA documents and HL7v2 messages offline.

The kind is told by content. Exit 0 when every file is valid, 1 when any is invalid, 2 on a
usage error (unreadable path). ``--json`` prints one object per file per line:
{"file", "kind", "valid", "findings": [{"rule", "severity", "location", "message", …}],
"metadata"} — a contract tools outside the repo rely on.
"""

from __future__ import annotations

import json
import sys

from gateway.adapters import detect
from gateway.cli._common import command, expand
from gateway.config import Settings
from gateway.envelope import to_plain
from gateway.findings import Finding
from gateway.outcome import Rejected
from gateway.pipeline import Checks, read
from gateway.submission import Submission


def register(sub) -> None:
    p = command(
        sub,
        "validate",
        "check CDA documents and HL7v2 messages without sending them",
        "  gateway validate report.xml          # readable: rule, location, fix\n"
        "  gateway validate outbox/             # every file, then a count\n"
        "  gateway validate --json tests/fixtures/cda/ | jq 'select(.valid|not)'\n"
        "  gateway validate message.hl7 && echo valid\n"
        "  gateway validate --pack ../shared/cisis report.xml   # also the national pack's rules",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    p.add_argument(
        "--pack",
        metavar="DIR",
        help="ANS CI-SIS conformance pack to validate CDA documents against "
        "(default: GATEWAY_CONFORMANCE_PACK; built-in rules only when neither is set)",
    )
    p.set_defaults(run=run)


def check(raw: bytes, checks: Checks) -> dict:
    """The judgement of one input as the --json line (without the file name)."""
    kind = detect(raw)
    result = read(Submission(raw=raw, transport="cli", sender="cli"), checks)
    if isinstance(result, Rejected):
        findings, metadata, valid = result.report.findings, {}, False
    else:
        findings, metadata, valid = result.warnings, to_plain(result.fields), True
    return {
        "kind": kind,
        "valid": valid,
        "findings": [f.to_dict() for f in findings],
        "metadata": metadata,
    }


def run(args) -> int:
    import dataclasses
    from pathlib import Path

    from gateway.bootstrap import load_checks
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, fail
    from gateway.errors import ConfigError

    files = expand(args.paths)
    missing = [given for given, path in files if not path.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    settings = Settings.from_env()
    if args.pack:
        settings = dataclasses.replace(settings, conformance_pack=Path(args.pack).resolve())
    try:
        checks = load_checks(settings)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    invalid = 0
    for given, path in files:
        verdict = {"file": given, **check(path.read_bytes(), checks)}
        invalid += not verdict["valid"]
        if args.json:
            print(json.dumps(verdict, ensure_ascii=False), flush=True)
        else:
            print_readable(verdict)
    if not args.json and len(files) > 1:
        print(f"\n{len(files)} files: {len(files) - invalid} valid, {invalid} invalid")
    return EXIT_OK if not invalid else EXIT_INVALID


def print_readable(verdict: dict, out=sys.stdout) -> None:
    findings = [Finding.from_dict(f) for f in verdict["findings"]]
    errors = sum(f.is_error for f in findings)
    state = "valid" if verdict["valid"] else "INVALID"
    counts = (
        f"{errors} error(s), {len(findings) - errors} warning(s)" if findings else "no findings"
    )
    print(f"{verdict['file']}: {state} ({verdict['kind'] or 'unknown format'}; {counts})", file=out)
    for f in findings:
        where = f" at {f.location}" if f.location else ""
        line = f" (line {f.line})" if f.line else ""
        print(f"  {f.severity.value:7} {f.rule}{where}{line}: {f.message}", file=out)
        if f.fix:
            print(f"          fix: {f.fix}", file=out)
