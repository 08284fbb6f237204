"""`gateway pack check DIR`: what a conformance pack references that it does not hold.

Lists, per schematron layer, every include or value-set file that is missing, those found only
by ignoring letter case, and the value sets supplied from their SVS form. Exit 0 when every
reference resolves, 1 when some are missing (the pack still runs, minus those rules), 2 when
DIR is not a pack. ``--json`` prints one object per layer per line.
"""

from __future__ import annotations

import json

from gateway.cli._common import command


def register(sub) -> None:
    p = command(
        sub,
        "pack",
        "inspect an ANS CI-SIS conformance pack",
        "  gateway pack check ../shared/cisis\n"
        "  gateway pack check --json ../shared/cisis | jq 'select(.missing != [])'",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = command(
        actions,
        "check",
        "list the files a pack references but lacks, and how each defect is handled",
        "  gateway pack check ../shared/cisis\n"
        "  GATEWAY_CONFORMANCE_PACK=/opt/cisis gateway pack check /opt/cisis && echo clean",
    )
    check.add_argument(
        "directory", metavar="DIR", help="the pack (infrastructure/, schematrons/ …)"
    )
    check.add_argument("--json", action="store_true", help="one JSON object per layer per line")
    check.set_defaults(run=run_check)


def layer_report(sch) -> dict:
    def rel(path):
        return str(path.relative_to(sch.pack_root)) if path else None

    return {
        "layer": sch.layer,
        "file": rel(sch.path),
        "missing": [{"kind": r.kind, "href": r.href, "in": rel(r.source)} for r in sch.missing],
        "case_resolved": [
            {"href": r.href, "file": rel(r.resolved)} for r in sch.references if r.case_fixed
        ],
        "supplied_from_svs": [
            {"href": r.href, "from": rel(r.substitute)}
            for r in sch.references
            if r.resolved is None and r.substitute is not None
        ],
    }


def run_check(args) -> int:
    from pathlib import Path

    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, fail
    from gateway.conformance import pack
    from gateway.errors import ConfigError

    try:
        loaded = pack.load(Path(args.directory))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    reports = [layer_report(s) for s in loaded.schematrons]
    if loaded.xsd is None:
        reports.insert(
            0,
            {
                "layer": "xsd",
                "file": None,
                "missing": [{"kind": "xsd", "href": str(pack.XSD), "in": "."}],
                "case_resolved": [],
                "supplied_from_svs": [],
            },
        )
    missing = sum(len(r["missing"]) for r in reports)
    for r in reports:
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        elif r["missing"] or r["case_resolved"] or r["supplied_from_svs"]:
            print(f"{r['layer']} ({r['file']})")
            for m in r["missing"]:
                print(f"  MISSING   {m['kind']:9} {m['href']}  (named in {m['in']})")
            for m in r["supplied_from_svs"]:
                print(f"  supplied  value-set {m['href']}  from {m['from']}")
            for m in r["case_resolved"]:
                print(f"  case      {m['href']}  → {m['file']}")
    if not args.json:
        print(
            f"{len(reports)} layers; {missing} missing reference(s)"
            + (
                "; layers with missing files run without the rules that need them"
                if missing
                else ""
            )
        )
    return EXIT_INVALID if missing else EXIT_OK
