"""`gateway`: the command line. One module per command family; each registers itself here.

Exit codes, for every command: 0 success, 1 the input was judged (invalid, rejected),
2 usage or configuration error, 3 a service it needs is unavailable, 130 interrupted (Ctrl-C),
141 its output was closed before it finished (``gateway validate outbox/ | head -1``). A
ConfigError no command handled (a bad GATEWAY_* variable, read by most commands before
anything else) ends here as one line on stderr and exit 2, never a traceback with exit 1.

141 is what the shell reports for ``cat``, ``grep`` and any C tool killed by SIGPIPE (128 +
13): the command stopped early, so its verdict on the inputs it never reached is unknown —
neither 0 ("all valid") nor the verdict so far would be true. A pipeline's status is still
the last command's unless ``set -o pipefail``, which then sees the early stop as it would for
``grep``. Python ignores SIGPIPE and raises BrokenPipeError instead; the rest of the output
goes to /dev/null so that the interpreter's own flush at exit cannot print a second error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gateway.cli import keys, pack, records, replay, routing, send, serve, sign, validate, verify
from gateway.errors import ConfigError

COMMANDS = (serve, validate, send, keys, sign, verify, pack, routing, replay, records)

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # 128 + SIGINT, 128 + SIGPIPE


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
        code = args.run(args)
        sys.stdout.flush()  # what print() still holds: its broken pipe is ours to report
        return code
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gateway validate … | head`
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and the interpreter flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (an embedding, a test's capture)
        pass


def fail(message: str, code: int) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code
