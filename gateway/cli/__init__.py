"""`gateway`: the command line. One module per command family; each registers itself here.

Exit codes, for every command: 0 success, 1 the input was judged (invalid, rejected),
2 usage or configuration error, 3 a service it needs is unavailable. A ConfigError no command
handled (a bad GATEWAY_* variable, read by most commands before anything else) ends here as
one line on stderr and exit 2, never a traceback with exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import keys, pack, records, replay, routing, send, serve, sign, validate, verify
from gateway.errors import ConfigError

COMMANDS = (serve, validate, send, keys, sign, verify, pack, routing, replay, records)

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Passerelle: receive, validate, sign and route health documents.",
        epilog="Run `gateway COMMAND --help` for a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gateway validate … | head`
        sys.stderr.close()
        return EXIT_OK


def fail(message: str, code: int) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code
