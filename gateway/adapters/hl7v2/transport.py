"""The ANS volet "Transmission de document(s) CDA en HL7v2": what a message says beside its CDA.

Pure reading of the message, no judging of the CDA itself:
- document OBX: value type ED, ``^TEXT^XML^Base64^<data>`` in OBX-5; OBX-11 F initial,
  C replacement, D deletion;
- MetaDMPMSS OBX: Y/N flags for masking and destinations (DESTDMP, DESTMSSANTEPS …);
- other ED OBX (the mail body CORPSMAIL_PS, LPS mail text): base64 text that travels along;
- PRT: participants; recipients (RCT) and reply-to (REPLY) feed the secure-mail route.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from gateway.adapters.hl7v2.parser import Message, Segment
from gateway.envelope import Code
from gateway.findings import Finding, error, warning

LAYER = "hl7v2"
META_SYSTEM = "MetaDMPMSS"
CONFIDENTIALITY_SYSTEM = "1.2.250.1.213.1.1.4.13"

# Y/N flags of the volet; older (V1.x) spellings mapped to the current names.
FLAGS = frozenset(
    {
        "MASQUE_PS",
        "INVISIBLE_PATIENT",
        "INVISIBLE_REP_LEGAUX",
        "CONNEXION_SECRETE",
        "MODIF_CONF_CODE",
        "DESTDMP",
        "DESTMSSANTEPS",
        "DESTMSSANTEPAT",
        "ACK_RECEPTION",
        "ACK_LECTURE_MSS",
    }
)
ALIASES = {
    "INVISIBLE_REPRESENTANTS_LEGAUX": "INVISIBLE_REP_LEGAUX",
    "MODIF_CONFIDENTIALITYCODE": "MODIF_CONF_CODE",
    "ACK_LECTURE": "ACK_LECTURE_MSS",
}
# Other MetaDMPMSS codes that are not Y/N flags.
OTHER_META = frozenset({"CORPSMAIL_PS", "COMP_LOT"})
# A Y flag that becomes an XDS confidentiality code (JDV_J08, system 1.2.250.1.213.1.1.4.13).
CONFIDENTIALITY_FLAGS = {
    "MASQUE_PS": "MASQUE_PS",
    "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX": "INVISIBLE_REPRESENTANTS_LEGAUX",
}
ACTIONS = {"F": "create", "C": "replace", "D": "delete"}
# The OBX-11 each MDM trigger event asks for (ORU^R01 has one trigger: OBX-11 alone decides).
MDM_STATUS = {"T02": "F", "T10": "C", "T04": "D"}


@dataclass(frozen=True, slots=True)
class DocumentObx:
    """One OBX that carries (or claims to carry) a CDA document."""

    index: int  # 1-based occurrence among the OBX segments
    status: str  # OBX-11
    data: bytes | None  # decoded OBX-5.5, None when it is not base64

    @property
    def location(self) -> str:
        return f"OBX[{self.index}]-5.5"

    @property
    def action(self) -> str:
        return ACTIONS.get(self.status, "create")


@dataclass(frozen=True, slots=True)
class Transport:
    """Everything the volet adds around the documents of one message."""

    documents: tuple[DocumentObx, ...]
    flags: dict[str, bool] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def confidentiality(self) -> tuple[Code, ...]:
        return tuple(
            Code(code, CONFIDENTIALITY_SYSTEM)
            for flag, code in CONFIDENTIALITY_FLAGS.items()
            if self.flags.get(flag)
        )


def read(msg: Message) -> tuple[Transport, list[Finding]]:
    findings: list[Finding] = []
    documents: list[DocumentObx] = []
    flags: dict[str, bool] = {}
    first: dict[str, int] = {}  # flag → the OBX that first set it
    for i, obx in enumerate(msg.all("OBX"), start=1):
        code, system = msg.value("OBX-3.1", obx), msg.value("OBX-3.3", obx)
        if obx.field(2) == "ED":
            subtype = msg.value("OBX-5.3", obx).upper()
            data = _b64(msg.raw("OBX-5.5", obx))
            if subtype == "XML":
                documents.append(DocumentObx(i, obx.field(11), data))
                if data is None:
                    findings.append(_not_base64(i, error))
            elif data is None:
                findings.append(_not_base64(i, warning))
            continue
        name = ALIASES.get(code, code)
        if name in FLAGS:
            value = msg.value("OBX-5.1", obx)
            if value not in ("Y", "N"):
                findings.append(
                    error(
                        "hl7.metadmpmss.value",
                        f"MetaDMPMSS {name} must be Y or N, not {value!r}",
                        location=f"OBX[{i}]-5.1",
                        layer=LAYER,
                        hl7_code=103,
                    )
                )
            elif name in flags and flags[name] != (value == "Y"):
                findings.append(_conflicting_flag(name, first[name], i))
            else:
                flags[name] = value == "Y"
                first.setdefault(name, i)
        elif system == META_SYSTEM and name not in OTHER_META:
            findings.append(
                warning(
                    "hl7.metadmpmss.unknown",
                    f"MetaDMPMSS code {code!r} is not known to the volet; ignored",
                    location=f"OBX[{i}]-3.1",
                    layer=LAYER,
                    hl7_code=103,
                )
            )
    return Transport(tuple(documents), flags, participants(msg)), findings


def _conflicting_flag(name: str, first: int, index: int) -> Finding:
    """A flag sent twice with two values: refused, never "the last one wins".

    The volet gives each flag once and says nothing of repeats; with MASQUE_PS Y then N the
    last value used to win, and a document its author asked to mask was filed visible. Keeping
    the more restrictive value would guess for the sender, so the message is refused; the
    same value repeated says one thing and is accepted."""
    return error(
        "hl7.metadmpmss.repeated",
        f"MetaDMPMSS {name} is sent again with the other value (first in OBX[{first}]): "
        "the message says both Y and N",
        location=f"OBX[{index}]-5.1",
        layer=LAYER,
        hl7_code=103,
        fix=f"send {name} once, with the value meant",
    )


def participants(msg: Message) -> dict[str, str]:
    """PRT recipients and reply-to mail addresses (PRT-15.4), as envelope metadata."""
    by_role: dict[str, list[str]] = {}
    for prt in msg.all("PRT"):
        role = msg.value("PRT-4.1", prt)
        mail = _mail(msg, prt)
        if role and mail:
            by_role.setdefault(role, []).append(mail)
    out: dict[str, str] = {}
    if by_role.get("RCT"):
        out["mss_recipients"] = " ".join(by_role["RCT"])
    if by_role.get("REPLY"):
        out["mss_reply_to"] = " ".join(by_role["REPLY"])
    if by_role.get("SB"):
        out["mss_sender"] = " ".join(by_role["SB"])
    return out


def _mail(msg: Message, prt: Segment) -> str:
    for rep in msg.repetitions(prt.field(15)):
        comps = msg.components(rep)
        if len(comps) > 3 and comps[3] and "@" in comps[3]:
            return comps[3]
    return ""


def _b64(text: str) -> bytes | None:
    """Base64 decoded, tolerating missing padding (the meaning is unambiguous)."""
    text = "".join(text.split())
    if not text:
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _not_base64(index: int, severity) -> Finding:
    damaged = severity is warning
    return severity(
        "hl7.obx.base64" if not damaged else "hl7.obx.base64-damaged",
        "OBX-5.5 is not valid base64"
        + (": this attached text (e.g. the mail body) is damaged, not read" if damaged else ""),
        location=f"OBX[{index}]-5.5",
        layer=LAYER,
        hl7_code=102,
    )
