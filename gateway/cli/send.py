"""`gateway send PATH... --to mllp://host:port | http://host:port`: submit files to a gateway.

Each file is sent on its own (MLLP: one connection, one frame per file, the ACK read back;
HTTP: POST /documents or /hl7v2 by content). Exit 0 when all were accepted, 1 when any was
rejected, 3 when the gateway could not take one (unreachable, AR for unavailability, 503) or
its answer could not be read (a proxy's error page: whether it took the file is unknown). A
file that fails that way does not stop the others: every file is tried, then the summary.

Output: one line per file (``PATH: STATUS DETAIL``) then a summary table; on a terminal a
progress bar replaces the per-file lines. The message id each answer carries (HTTP
``message_id``) is shown so a rejection can be looked up in ``/ui`` or ``/messages/{id}``.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from gateway.adapters import detect
from gateway.adapters.hl7v2.mllp import Frame, FrameDecoder, frame
from gateway.adapters.hl7v2.parser import parse
from gateway.cli._common import command, expand
from gateway.cli._report import Progress, table


def register(sub) -> None:
    p = command(
        sub,
        "send",
        "send CDA documents or HL7v2 messages to a running gateway",
        "  gateway send tests/fixtures/cda/crbio_glycemia.xml --to http://127.0.0.1:8080\n"
        "  gateway send tests/fixtures/hl7v2/oru_r01_lab_results.hl7 --to mllp://127.0.0.1:2575\n"
        "  gateway send outbox/ --to http://127.0.0.1:8080   # every file, then a summary\n"
        "  gateway send outbox/ --to mllp://127.0.0.1:2575 > sent.log   # plain lines, no bar",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.add_argument(
        "--to", required=True, metavar="URL", help="mllp://host:port or http://host:port"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer")
    p.set_defaults(run=run)


@dataclass(frozen=True)
class Answer:
    status: str  # "accepted", "rejected", "unavailable"
    detail: str
    message_id: str = ""  # the gateway's tracking id, when the answer carries it


def send_mllp(host: str, port: int, raw: bytes, timeout: float) -> Answer:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame(raw))
        decoder = FrameDecoder()
        while True:
            data = sock.recv(65536)
            if not data:
                return Answer("unavailable", "connection closed without an ACK")
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    return _from_ack(event.payload)
                return Answer("unavailable", "the answer was not a well-formed MLLP frame")


def _from_ack(ack: bytes) -> Answer:
    msg, _ = parse(ack)
    if msg is None or msg.first("MSA") is None:
        return Answer("unavailable", "unreadable ACK")
    code = msg.value("MSA-1")
    errors = [msg.value("ERR-8", seg) for seg in msg.all("ERR") if msg.value("ERR-4", seg) == "E"]
    detail = f"{code}" + (": " + "; ".join(errors) if errors else "")
    if code in ("AA", "CA"):
        return Answer("accepted", detail)
    if code in ("AE", "CE") or errors:
        return Answer("rejected", detail)
    return Answer("unavailable", detail + (f" {msg.value('MSA-3')}" if msg.value("MSA-3") else ""))


def send_http(base: str, raw: bytes, timeout: float) -> Answer:
    path = "/hl7v2" if detect(raw) == "hl7v2" else "/documents"
    url = base.rstrip("/") + path  # scheme checked by run(): http or https only
    request = urllib.request.Request(url, data=raw, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/xml" if path == "/documents" else "text/plain")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            status, body = resp.status, _json_object(resp.read())
    except urllib.error.HTTPError as exc:
        return _from_error(exc.code, _json_object(exc.read()))
    if body is None or "message_id" not in body:
        # A proxy's page, not the gateway's answer: whether the gateway took it is unknown.
        return Answer("unavailable", f"HTTP {status}: not a gateway answer")
    return Answer("accepted", str(body.get("id", "")), str(body.get("message_id", "")))


def _from_error(code: int, body: dict | None) -> Answer:
    """A refusal: the gateway's own (JSON, 422 with its findings) or anything in between
    (a proxy's 502 page: no body we can read)."""
    if body is None:
        return Answer("unavailable", f"HTTP {code}: not a gateway answer")
    message_id = str(body.get("message_id", ""))
    if code == 422:
        findings = [f for f in body.get("findings") or [] if isinstance(f, dict)]
        rules = [
            f"{f.get('rule')}: {f.get('message')}" for f in findings if f.get("severity") == "error"
        ]
        return Answer("rejected", "; ".join(rules), message_id)
    return Answer("unavailable", f"HTTP {code} {body.get('reason', '')}".strip(), message_id)


def _json_object(data: bytes) -> dict | None:
    """The JSON object ``data`` holds, else None (an HTML error page, an empty body …)."""
    try:
        body = json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return body if isinstance(body, dict) else None


def run(args) -> int:
    from gateway.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, fail

    target = urllib.parse.urlsplit(args.to)
    if target.scheme not in ("mllp", "http", "https") or not target.hostname:
        return fail(f"--to {args.to!r}: expected mllp://host:port or http://host:port", EXIT_USAGE)
    files = expand(args.paths)
    missing = [given for given, path in files if not path.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    worst = EXIT_OK
    progress = Progress(len(files))
    answers: list[tuple[str, Answer]] = []
    for done, (given, path) in enumerate(files, 1):
        raw = path.read_bytes()
        try:
            if target.scheme == "mllp":
                answer = send_mllp(target.hostname, target.port or 2575, raw, args.timeout)
            else:
                answer = send_http(args.to, raw, args.timeout)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, cut short …
            answer = Answer("unavailable", f"{type(exc).__name__}: {exc}")
        answers.append((given, answer))
        if progress.enabled:
            progress.update(done, _tally(answers))
        else:
            print(f"{given}: {answer.status} {answer.detail}".rstrip(), flush=True)
        code = {"accepted": EXIT_OK, "rejected": EXIT_INVALID}.get(answer.status, EXIT_UNAVAILABLE)
        worst = max(worst, code)
    progress.close()
    print(summary(answers))
    return worst


def _tally(answers: list[tuple[str, Answer]]) -> str:
    counts = {s: sum(a.status == s for _, a in answers) for s in STATUSES}
    return "  ".join(f"{s} {n}" for s, n in counts.items())


STATUSES = ("accepted", "rejected", "unavailable")


def summary(answers: list[tuple[str, Answer]]) -> str:
    """Counts per status, then every file that was not accepted with the reason."""
    counts = [(s, sum(a.status == s for _, a in answers)) for s in STATUSES]
    out = ["", table(("status", "files"), counts)]
    failed = [(f, a.status, a.message_id, a.detail) for f, a in answers if a.status != "accepted"]
    if failed:
        out += ["", table(("file", "status", "message id", "reason"), failed, max_width=100)]
    return "\n".join(out)
