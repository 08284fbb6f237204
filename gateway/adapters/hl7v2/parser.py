"""HL7v2 ER7 tokenizer: the fast path. One pass over the text, nothing built that is not read.

Delimiters come from MSH-1/MSH-2, the character set from MSH-18. Components and
subcomponents are split on demand. Real-world oddities with an unambiguous meaning (LF or
CRLF between segments, non-ASCII encoding characters) are accepted with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.adapters.hl7v2.location import Location
from gateway.findings import Finding, error, warning

# MSH-18 value → Python codec. Unknown names fall back with a warning.
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "WINDOWS-1252": "cp1252",
}


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


class Segment:
    """One segment. ``fields[n]`` is field n as raw text; for MSH, fields[1] is MSH-1."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: list[str]) -> None:
        self.name = name
        self.fields = fields

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"

    def field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


@dataclass(slots=True)
class Message:
    segments: list[Segment]
    delimiters: Delimiters
    charset: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    @property
    def message_type(self) -> tuple[str, str, str]:
        """MSH-9 as (code, trigger event, structure), e.g. ('ORU', 'R01', 'ORU_R01')."""
        parts = self.components(self.msh.field(9))
        parts += [""] * (3 - len(parts))
        return parts[0], parts[1], parts[2]

    @property
    def control_id(self) -> str:
        return self.msh.field(10)

    @property
    def version(self) -> str:
        return self.components(self.msh.field(12))[0] if self.msh.field(12) else ""

    def components(self, text: str) -> list[str]:
        return text.split(self.delimiters.component)

    def repetitions(self, text: str) -> list[str]:
        return text.split(self.delimiters.repetition)

    def raw(self, loc: Location | str, segment: Segment | None = None) -> str:
        """The raw (still escaped) text at a location; empty when absent."""
        if isinstance(loc, str):
            loc = Location.parse(loc)
        if segment is None:
            same = self.all(loc.segment)
            if loc.occurrence > len(same):
                return ""
            segment = same[loc.occurrence - 1]
        if loc.field is None:
            return self.delimiters.field.join(segment.fields)
        text = segment.field(loc.field)
        if loc.segment == "MSH" and loc.field <= 2:
            return text
        reps = self.repetitions(text)
        if loc.repetition > len(reps):
            return ""
        text = reps[loc.repetition - 1]
        if loc.component is None:
            return text
        comps = self.components(text)
        if loc.component > len(comps):
            return ""
        text = comps[loc.component - 1]
        if loc.subcomponent is None:
            return text
        subs = text.split(self.delimiters.subcomponent)
        return subs[loc.subcomponent - 1] if loc.subcomponent <= len(subs) else ""

    def value(self, loc: Location | str, segment: Segment | None = None) -> str:
        """The text at a location with HL7 escape sequences resolved."""
        return unescape(self.raw(loc, segment), self.delimiters, self.charset)

    def field_value(self, segment: Segment, n: int) -> str:
        """``value`` of field n's first repetition (e.g. OBX-7), the field split once."""
        text = segment.field(n).split(self.delimiters.repetition, 1)[0]
        return unescape(text, self.delimiters, self.charset)

    def field_values(self, segment: Segment, n: int) -> list[str]:
        """``value`` of every repetition of field n: a TX/FT OBX-5 or an NTE-3 holds one line
        per repetition, and each one is part of the result."""
        reps = segment.field(n).split(self.delimiters.repetition)
        return [unescape(text, self.delimiters, self.charset) for text in reps]

    def component_values(self, segment: Segment, n: int, count: int) -> list[str]:
        """``value`` of the first ``count`` components of field n's first repetition (e.g.
        OBX-3.1 to OBX-3.3), the field split once rather than once per component: converters
        read a dozen per OBX."""
        text = segment.field(n).split(self.delimiters.repetition, 1)[0]
        parts = text.split(self.delimiters.component)[:count]
        parts += [""] * (count - len(parts))
        return [unescape(p, self.delimiters, self.charset) for p in parts]


_BOM = b"\xef\xbb\xbf"


def unescape(text: str, d: Delimiters, charset: str = "utf-8") -> str:
    """``text`` with HL7 escape sequences resolved; hex escapes (\\Xhh\\) are bytes in the
    message's character set (MSH-18: UTF-8 in the CI-SIS profile), not Latin-1."""
    if d.escape not in text:
        return text
    out: list[str] = []
    parts = text.split(d.escape)
    out.append(parts[0])
    i = 1
    while i < len(parts):
        if i + 1 >= len(parts):  # unmatched escape character: keep it literally
            out.append(d.escape + parts[i])
            break
        seq = parts[i]
        known = _ESCAPES.get(seq)
        out.append(known(d) if known else _hex_or_literal(seq, d, charset))
        out.append(parts[i + 1])
        i += 2
    return "".join(out)


def _hex_or_literal(seq: str, d: Delimiters, charset: str) -> str:
    """A hex escape decoded in the message's character set; one that is not valid there stays
    as written (visible, never silently replaced by another character)."""
    if seq.startswith("X") and len(seq) > 1:
        try:
            return bytes.fromhex(seq[1:]).decode(charset)
        except ValueError:  # includes UnicodeDecodeError
            pass
    if seq == ".br":
        return "\n"
    return d.escape + seq + d.escape


_ESCAPES = {
    "F": lambda d: d.field,
    "S": lambda d: d.component,
    "T": lambda d: d.subcomponent,
    "R": lambda d: d.repetition,
    "E": lambda d: d.escape,
}


def sniff_charset(raw: bytes) -> str:
    """MSH-18 read straight from the bytes (it must be known before decoding)."""
    if len(raw) < 8 or not raw.startswith(b"MSH"):
        return ""
    sep = raw[3:4]
    line_end = min((i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0), default=len(raw))
    fields = raw[:line_end].split(sep)
    # fields[0] = "MSH", fields[1] = MSH-2, so MSH-n is fields[n - 1]
    return fields[17].decode("ascii", "replace").strip() if len(fields) > 17 else ""


def parse(raw: bytes) -> tuple[Message | None, list[Finding]]:
    """Tokenize one ER7 message; None with an error finding when no MSH can be read."""
    findings: list[Finding] = []
    start = raw.find(b"MSH")
    # before MSH only framing and blanks, and a UTF-8 byte order mark some editors write
    if start < 0 or raw[:start].strip(b"\x0b\x1c\r\n\t ").removeprefix(_BOM):
        return None, [
            error(
                "hl7.msh",
                "message does not start with an MSH segment",
                location="MSH",
                layer="hl7v2",
                hl7_code=100,
            )
        ]
    raw = raw[start:].rstrip(b"\x1c\r\n\x00 ")
    declared = sniff_charset(raw)
    codec = CHARSETS.get(declared.upper())
    if codec is None:
        codec = "utf-8"
        findings.append(
            warning(
                "hl7.charset.unknown",
                f"MSH-18 character set {declared!r} is not known; reading as UTF-8",
                location="MSH-18",
                layer="hl7v2",
                hl7_code=103,
            )
        )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        return None, [
            error(
                "hl7.charset",
                f"bytes at offset {exc.start} are not valid {codec} "
                f"(MSH-18 declares {declared or 'nothing, UTF-8 assumed'})",
                location="MSH-18",
                layer="hl7v2",
                hl7_code=102,
                fix="declare the character set actually used in MSH-18",
            )
        ]
    if len(text) < 8:
        return None, [
            error("hl7.msh", "MSH segment too short", location="MSH", layer="hl7v2", hl7_code=100)
        ]
    control = _CONTROL.search(text)
    if control is not None:
        return None, [
            error(
                "hl7.control-character",
                f"control character U+{ord(control.group()):04X} at offset {control.start()}; "
                "ER7 text carries none (binary data travels base64-encoded or escaped)",
                layer="hl7v2",
                hl7_code=102,
                fix="remove the control character or escape it (\\Xhh\\)",
            )
        ]
    field_sep = text[3]
    enc_end = text.find(field_sep, 4)
    encoding = text[4:enc_end] if enc_end > 0 else ""
    if field_sep.isalnum() or len(encoding) < 4 or len(set(field_sep + encoding[:4])) < 5:
        return None, [
            error(
                "hl7.delimiters",
                f"MSH-1/MSH-2 do not declare five distinct delimiters "
                f"(got {field_sep + encoding!r})",
                location="MSH-2",
                layer="hl7v2",
                hl7_code=102,
                fix="start the message with MSH|^~\\&|",
            )
        ]
    if not (field_sep + encoding[:4]).isascii():
        findings.append(
            warning(
                "hl7.delimiters.non-ascii",
                "MSH-2 uses non-ASCII encoding characters; they are honoured as declared",
                location="MSH-2",
                layer="hl7v2",
                hl7_code=102,
                fix="use MSH|^~\\&|",
            )
        )
    d = Delimiters(field_sep, encoding[0], encoding[1], encoding[2], encoding[3])

    if "\r" in text:
        lines = text.split("\r")
        if "\n" in text:
            lines = [part for line in lines for part in line.split("\n")]
            findings.append(_separator_warning("CRLF or mixed line ends"))
    else:
        lines = text.split("\n")
        if len(lines) > 1:
            findings.append(_separator_warning("LF"))
    segments: list[Segment] = []
    for line in lines:
        if not line.strip():
            continue
        fields = line.split(field_sep)
        name = fields[0]
        if name == "MSH":
            fields = ["MSH", field_sep, *fields[1:]]
        segments.append(Segment(name, fields))
    return Message(segments, d, codec, findings), findings


# C0 controls other than TAB, LF and CR (segment ends) have no place in ER7 text; NUL in
# particular truncates the message in C-based receivers downstream.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _separator_warning(what: str) -> Finding:
    return warning(
        "hl7.segment-separator",
        f"segments are separated by {what}; HL7v2 requires "
        "CR (0x0D). Accepted because the meaning is unambiguous",
        layer="hl7v2",
        hl7_code=100,
        fix="end each segment with a carriage return",
    )


def parse_header(raw: bytes) -> Message | None:
    """Only the MSH (enough to address an ACK), even when the rest cannot be read."""
    start = raw.find(b"MSH")
    if start < 0:
        return None
    ends = [i for i in (raw.find(b"\r", start), raw.find(b"\n", start)) if i >= 0]
    msg, _ = parse(raw[start : min(ends) if ends else len(raw)])
    if msg is None:  # undecodable bytes in the MSH itself: read it as Latin-1, never fails
        head = raw[start : min(ends) if ends else len(raw)].decode("latin-1")
        msg, _ = parse(head.encode("utf-8"))
    return msg
