"""Required segments and fields, from hl7apy's HL7 reference structures used as data.

hl7apy parses a message in tens of milliseconds; reading its reference tables once and
compiling them into plain tuples costs that once per (structure, version) and nothing per
message. The check then runs on the fast tokenizer's segments.

A segment is required when it is required (min ≥ 1) in its own group and every group around
it is required too; extra segments (PRT in 2.5, Z-segments) are allowed and kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from gateway.adapters.hl7v2.parser import Message
from gateway.findings import Finding, error

LAYER = "hl7v2"

# Structure used when MSH-9.3 is absent or unknown (HL7 v2.5 chapter 9: T04 and T10 use the
# MDM_T02 structure, which carries the OBX group).
STRUCTURES = {
    ("ORU", "R01"): "ORU_R01",
    ("MDM", "T02"): "MDM_T02",
    ("MDM", "T04"): "MDM_T02",
    ("MDM", "T10"): "MDM_T02",
}
REFERENCE_VERSIONS = {"2.5": "2.5", "2.5.1": "2.5.1", "2.6": "2.6"}


@dataclass(frozen=True, slots=True)
class Profile:
    required_segments: tuple[str, ...]
    required_fields: dict[str, tuple[int, ...]]  # segment → required field numbers


@cache
def profile(structure: str, version: str) -> Profile:
    """Compile hl7apy's reference for one message structure (once per process)."""
    from hl7apy import load_reference  # imported here: only this compile step needs it

    ref = load_reference(structure, "Message", version)
    segments: list[str] = []
    fields: dict[str, tuple[int, ...]] = {}
    _walk(ref[1], True, segments, fields)
    return Profile(tuple(dict.fromkeys(segments)), fields)


def _walk(children, required: bool, segments: list[str], fields: dict) -> None:
    for name, content, (minimum, _maximum), kind in children:
        if kind == "SEG":
            if required and minimum >= 1:
                segments.append(name)
            fields.setdefault(
                name,
                tuple(
                    int(f_name.rsplit("_", 1)[1])
                    for f_name, _ref, (f_min, _f_max), _k in content[1]
                    if f_min >= 1
                ),
            )
        elif kind == "GRP":
            _walk(content[1], required and minimum >= 1, segments, fields)


def structure_of(msg: Message) -> str:
    code, trigger, declared = msg.message_type
    return STRUCTURES.get((code, trigger), declared)


def validate(msg: Message) -> list[Finding]:
    version = REFERENCE_VERSIONS.get(msg.version)
    if version is None:
        return []
    prof = profile(structure_of(msg), version)
    present = {s.name for s in msg.segments}
    findings = [
        error(
            "hl7.segment.required",
            f"segment {name} is required in {structure_of(msg)} (HL7 v{version})",
            location=name,
            layer=LAYER,
            hl7_code=100,
        )
        for name in prof.required_segments
        if name not in present
    ]
    counts: dict[str, int] = {}
    for seg in msg.segments:
        counts[seg.name] = counts.get(seg.name, 0) + 1
        for n in prof.required_fields.get(seg.name, ()):
            if seg.name == "MSH" and n <= 2:
                continue
            if not seg.field(n).strip():
                occurrence = counts[seg.name]
                where = f"{seg.name}[{occurrence}]" if occurrence > 1 else seg.name
                findings.append(
                    error(
                        "hl7.field.required",
                        f"{seg.name}-{n} is required (HL7 v{version})",
                        location=f"{where}-{n}",
                        layer=LAYER,
                        hl7_code=101,
                    )
                )
    return findings
