"""`gateway serve`: run the gateway (HTTP, MLLP, record consumer) in one process."""

from __future__ import annotations

import asyncio
import signal
import sys

from gateway import logs
from gateway.cli._common import command
from gateway.config import Settings
from gateway.errors import BrokerUnavailable, ConfigError, KeystoreError, StoreUnavailable


def register(sub) -> None:
    p = command(
        sub,
        "serve",
        "run the gateway: HTTP API, MLLP listener and patient-record consumer",
        "  gateway serve\n"
        "  GATEWAY_HTTP_ADDR=0.0.0.0:8080 GATEWAY_MLLP_ADDR=0.0.0.0:2575 gateway serve",
    )
    p.set_defaults(run=run)


SWITCH_INTERVAL_S = 0.001


def run(_args) -> int:
    from gateway.cli import EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from gateway.runtime import Runtime

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    logs.setup(settings.log_level, settings.log_format)
    # The event loop (the publisher runs in it), record consumers and tracking writer share
    # one GIL; each database or broker round trip gives it up, and getting it back from a
    # busy thread waits up to the switch interval (5 ms by default) — per round trip. At 1 ms
    # the same load gave 67 -> 85 msg/s (raw ORU over MLLP) and 71 -> 88 (CR-BIO over HTTP),
    # p99 lower (docs/performance.md).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    runtime = Runtime(settings)
    # uvicorn re-raises SIGTERM/SIGINT after its own shutdown; with these handlers in place
    # that lands here instead of killing the process before the runtime stops its consumers,
    # publisher and store (so `kill` ends in a clean exit 0).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runtime.request_stop())
    try:
        asyncio.run(runtime.run())
    except BrokerUnavailable as exc:
        return fail(
            f"{exc}. Start it with `rabbitmq-server -detached`, or set GATEWAY_AMQP_URL.",
            EXIT_UNAVAILABLE,
        )
    except StoreUnavailable as exc:
        return fail(f"{exc}. Check GATEWAY_DATABASE_URL.", EXIT_UNAVAILABLE)
    except (ConfigError, KeystoreError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except OSError as exc:  # address in use, permission denied
        return fail(f"cannot listen: {exc.strerror or exc}", EXIT_UNAVAILABLE)
    return 0
