"""HL7v2 message rules: accepted type/version/profile, required structure, patient identity.

Structure (required segments and fields) comes from hl7apy's reference tables, compiled once
(gateway.validators.hl7v2_profile). Identity: PID-3 must carry an INS with a valid key, and
PID-32 must say the identity is qualified (VALI): only a qualified identity may carry the INS.
"""

from __future__ import annotations

from gateway.adapters.hl7v2.parser import Message
from gateway.findings import Finding, error, warning
from gateway.validators import hl7v2_profile
from gateway.validators.ins import check_ins

LAYER = "hl7v2"

# Accepted messages, as data: (type, trigger) → supported versions.
ACCEPTED: dict[tuple[str, str], frozenset[str]] = {
    ("ORU", "R01"): frozenset({"2.5", "2.5.1", "2.6"}),
    ("MDM", "T02"): frozenset({"2.5", "2.5.1", "2.6"}),
    ("MDM", "T04"): frozenset({"2.5", "2.5.1", "2.6"}),
    ("MDM", "T10"): frozenset({"2.5", "2.5.1", "2.6"}),
}


def acceptance(msg: Message) -> list[Finding]:
    """Findings that make the message unsupported (ACK AR), empty when it is accepted."""
    code, trigger, _ = msg.message_type
    if (code, trigger) not in ACCEPTED:
        known = {c for c, _t in ACCEPTED}
        return [
            error(
                "hl7.message-type" if code not in known else "hl7.trigger-event",
                f"message type {code}^{trigger} is not accepted "
                f"(accepted: {', '.join(f'{c}^{t}' for c, t in sorted(ACCEPTED))})",
                location="MSH-9",
                layer=LAYER,
                hl7_code=200 if code not in known else 201,
            )
        ]
    if msg.version not in ACCEPTED[(code, trigger)]:
        return [
            error(
                "hl7.version",
                f"HL7 version {msg.version or '(empty)'} is not accepted for {code}^{trigger}",
                location="MSH-12",
                layer=LAYER,
                hl7_code=203,
            )
        ]
    return []


# MSH-21 profiles of the ANS volet (published examples: 1.2^CISIS_CDA_HL7_V1,
# 2.0^CISIS_CDA_HL7_V2, 1.0^CISIS_CDA_HL7_LPS). Raw IHE LAB-3 messages may name none.
KNOWN_PROFILES = frozenset({"CISIS_CDA_HL7_V1", "CISIS_CDA_HL7_V2", "CISIS_CDA_HL7_LPS"})
QUALIFIED_IDENTITY = "VALI"


def profile_findings(msg: Message) -> list[Finding]:
    findings = []
    for i, rep in enumerate(msg.repetitions(msg.msh.field(21)), start=1):
        comps = msg.components(rep)
        name = comps[1] if len(comps) > 1 else ""
        if name.startswith("CISIS_") and name not in KNOWN_PROFILES:
            findings.append(
                warning(
                    "hl7.profile",
                    f"message profile {name!r} is not one this gateway knows "
                    f"({', '.join(sorted(KNOWN_PROFILES))}); read as the current volet",
                    location=f"MSH-21[{i}].2",
                    layer=LAYER,
                    hl7_code=103,
                )
            )
    return findings


def patient_ins(msg: Message) -> tuple[str | None, str | None, str]:
    """(INS, INS OID, location) from the first PID-3 repetition typed INS."""
    pid = msg.first("PID")
    if pid is None:
        return None, None, "PID-3"
    for i, rep in enumerate(msg.repetitions(pid.field(3)), start=1):
        comps = msg.components(rep)
        id_type = comps[4] if len(comps) > 4 else ""
        authority = comps[3] if len(comps) > 3 else ""
        subs = authority.split(msg.delimiters.subcomponent)
        oid = subs[1] if len(subs) > 1 else ""
        if id_type == "INS" or oid.startswith("1.2.250.1.213.1.4."):
            return comps[0], oid, f"PID-3[{i}].1"
    return None, None, "PID-3"


def validate(msg: Message) -> list[Finding]:
    findings = profile_findings(msg) + hl7v2_profile.validate(msg)
    if msg.first("PID") is None:
        findings.append(
            error("hl7.pid", "PID segment is required", location="PID", layer=LAYER, hl7_code=100)
        )
        return findings
    ins, oid, location = patient_ins(msg)
    if ins is None:
        findings.append(
            error(
                "hl7.pid.ins",
                "PID-3 carries no INS (identifier type INS)",
                location="PID-3",
                layer=LAYER,
                hl7_code=101,
                fix="send the INS in PID-3 with assigning authority "
                "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO and type INS",
            )
        )
    else:
        findings += check_ins(ins, oid, location, LAYER)
        findings += identity_reliability(msg)
    return findings


def identity_reliability(msg: Message) -> list[Finding]:
    """PID-32 must include VALI when PID-3 carries the INS."""
    pid = msg.first("PID")
    raw = pid.field(32) if pid is not None else ""
    codes = [msg.components(r)[0] for r in msg.repetitions(raw)]
    if QUALIFIED_IDENTITY in codes:
        return []
    return [
        error(
            "hl7.pid.identity-reliability",
            f"PID-32 is {'/'.join(c for c in codes if c) or 'empty'}: the INS may only be "
            "sent for a qualified identity (VALI)",
            location="PID-32",
            layer=LAYER,
            hl7_code=103 if any(codes) else 101,
            fix="qualify the identity with the INSi service, or send no INS",
        )
    ]
