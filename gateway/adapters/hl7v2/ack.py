"""HL7v2 acknowledgements built from the inbound MSH and the gateway's receipt.

One response policy (rule 5 of docs/style): the ACK code follows the receipt, which exists
only after the broker answered (accepted = validated and confirmed by the broker, durable).
The gateway answers once per message, on the same connection, with the application
acknowledgement, whatever the acknowledgement mode:

    receipt            answer
    accepted           AA   (CA only when the sender asked for accept acks but no application
                              ack on success: MSH-16 NE/ER; nothing when both say NE/ER)
    rejected/invalid   AE   always, in every mode (content errors, one ERR per finding)
    rejected/other     AR   always (unsupported type/version, unreadable body, bad frame)
    unavailable        AR   always (not stored: the gateway cannot take responsibility now)

Why: the gateway decides everything before it answers, so there is no separate accept step to
report. A refusal or a message not stored is never left unanswered, even under MSH-15/MSH-16
NE or ER: a sender that asked for silence would otherwise believe a refused result was filed.
Content errors are never reported as a commit code (CE): they are application errors (AE). A
positive answer (AA or CA) is only ever sent for a receipt the broker confirmed.

Each error finding becomes one ERR segment: ERR-2 location (ERL), ERR-3 HL7 table 0357 code,
ERR-4 severity (table 0516), ERR-7 what to do about it (the finding's fix), ERR-8 message. The
ACK reuses the inbound delimiters, version and character set, swaps sender and receiver, and
echoes MSH-10 in MSA-2.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.adapters.hl7v2.location import Location
from gateway.adapters.hl7v2.parser import CHARSETS, Delimiters, Message, Segment
from gateway.findings import Finding, Severity
from gateway.outcome import Receipt, ReceiptStatus, RejectionKind

_TABLE_0357 = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}
_SEVERITY = {Severity.ERROR: "E", Severity.WARNING: "W", Severity.INFO: "I"}
MAX_ERR_SEGMENTS = 100


def ack_code(receipt: Receipt, msg: Message | None = None) -> str | None:
    """The MSA-1 code for ``receipt``, or None when the sender asked for no answer on success.
    Anything but acceptance always gets its application code (AE/AR)."""
    if receipt.status is ReceiptStatus.REJECTED and receipt.rejection is RejectionKind.INVALID:
        return "AE"
    if receipt.status is not ReceiptStatus.ACCEPTED:
        return "AR"
    if not is_enhanced(msg):
        return "AA"
    if _asks_on_success(msg.msh.field(16)):
        return "AA"
    if _asks_on_success(msg.msh.field(15)):
        return "CA"
    return None


def is_enhanced(msg: Message | None) -> bool:
    """MSH-15 or MSH-16 valued (both empty: original acknowledgement mode)."""
    return msg is not None and bool(msg.msh.field(15) or msg.msh.field(16))


def _asks_on_success(condition: str) -> bool:
    """HL7 table 0155 (AL always, NE never, ER only on error, SU only on success); an empty or
    unknown condition counts as AL, the safe reading."""
    return condition not in ("NE", "ER")


def escape(text: str, d: Delimiters) -> str:
    """Escape delimiters so free text cannot break the segment structure."""
    out = text.replace(d.escape, f"{d.escape}E{d.escape}")
    for ch, seq in ((d.field, "F"), (d.component, "S"), (d.subcomponent, "T"), (d.repetition, "R")):
        out = out.replace(ch, f"{d.escape}{seq}{d.escape}")
    return " ".join(out.split())  # no CR/LF inside a field


def build(
    msg: Message | None,
    receipt: Receipt,
    now: datetime,
    control_id: str,
    findings: Sequence[Finding] = (),
) -> bytes | None:
    """The ACK bytes (not MLLP framed), or None when the message was accepted and MSH-15 and
    MSH-16 both ask for no answer on success."""
    code = ack_code(receipt, msg)
    if code is None:
        return None
    d = msg.delimiters if msg else Delimiters()
    msh = msg.msh if msg else Segment("MSH", ["MSH", "|", "^~\\&"])
    trigger = msg.message_type[1] if msg else ""
    charset_name = msh.field(18)
    fields = [
        "MSH",
        d.field,
        d.encoding_characters,
        msh.field(5),
        msh.field(6),
        msh.field(3),
        msh.field(4),
        now.strftime("%Y%m%d%H%M%S"),
        "",
        d.component.join(["ACK", trigger, "ACK"]),
        control_id,
        msh.field(11) or "P",
        msh.field(12) or "2.5",
        "",
        "",
        "",
        "",
        msh.field(17),
        charset_name,
    ]
    segments = [d.field.join([fields[0], *fields[2:]])]
    msa = ["MSA", code, msh.field(10)]
    if receipt.status is not ReceiptStatus.ACCEPTED and receipt.reason:
        msa.append(escape(receipt.reason, d)[:80])
    segments.append(d.field.join(msa))
    reported = [f for f in findings if f.severity is not Severity.INFO][:MAX_ERR_SEGMENTS]
    segments.extend(_err(f, d) for f in reported)
    codec = CHARSETS.get(charset_name.upper(), "utf-8")
    return "\r".join(segments).encode(codec, "replace") + b"\r"


def _err(f: Finding, d: Delimiters) -> str:
    location = ""
    if f.location:
        try:
            location = Location.parse(f.location).erl(d.component)
        except ValueError:
            location = ""
    code = f.hl7_code if f.hl7_code in _TABLE_0357 else 207
    err3 = d.component.join([str(code), _TABLE_0357[code], "HL70357"])
    text = escape(f"{f.rule}: {f.message}", d)
    fix = escape(f.fix, d) if f.fix else ""
    # ERR-1 (deprecated) empty, ERR-2 location, ERR-3 code, ERR-4 severity, ERR-7 diagnostic
    # information (what to do), ERR-8 user message
    return d.field.join(["ERR", "", location, err3, _SEVERITY[f.severity], "", "", fix, text])
