"""HL7v2 acknowledgements built from the inbound MSH and the gateway's receipt.

One response policy (rule 5 of docs/style): the ACK code follows the receipt, which exists
only after the broker answered.

    receipt            original mode   enhanced mode (MSH-15 valued)
    accepted           AA              CA
    rejected/invalid   AE              CE
    rejected/other     AR              CR   (unsupported type/version, unreadable body)
    unavailable        AR              CR   (the gateway cannot take responsibility now)

Each error finding becomes one ERR segment: ERR-2 location (ERL), ERR-3 HL7 table 0357 code,
ERR-4 severity (table 0516), ERR-8 message. The ACK reuses the inbound delimiters, version and
character set, swaps sender and receiver, and echoes MSH-10 in MSA-2.
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


def ack_code(receipt: Receipt, enhanced: bool) -> str:
    if receipt.status is ReceiptStatus.ACCEPTED:
        code = "A"
    elif receipt.status is ReceiptStatus.REJECTED and receipt.rejection is RejectionKind.INVALID:
        code = "E"
    else:
        code = "R"
    return ("C" if enhanced else "A") + code


def is_enhanced(msg: Message | None) -> bool:
    return msg is not None and bool(msg.msh.field(15) or msg.msh.field(16))


def wants_accept_ack(msg: Message | None, code: str) -> bool:
    """MSH-15 accept acknowledgement condition: AL (default), NE, ER, SU."""
    if not is_enhanced(msg):
        return True
    condition = msg.msh.field(15) or "AL"
    return {
        "NE": False,
        "ER": code != "CA",
        "SU": code == "CA",
    }.get(condition, True)


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
    """The ACK bytes (not MLLP framed), or None when MSH-15 says not to answer."""
    enhanced = is_enhanced(msg)
    code = ack_code(receipt, enhanced)
    if not wants_accept_ack(msg, code):
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
    # ERR-1 (deprecated) empty, ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user message
    return d.field.join(["ERR", "", location, err3, _SEVERITY[f.severity], "", "", "", text])
