"""INS (Identifiant National de Santé): OIDs and the NIR key check, shared by CDA and HL7v2.

The INS is a NIR (or a temporary NIA): 13 characters and a 2-digit key, key = 97 − (NIR mod 97),
with the Corsican departments 2A and 2B read as 19 and 18. The national conformance pack does
not check the key; this module always does, because a mistyped INS with a valid shape files a
document into another patient's record.

The value is judged exactly as it is written, and the envelope carries that same string: it is
the patient key the document is filed under. Nothing is normalised, so nothing is accepted that
is not already canonical — 15 characters, Corsica's departments in capitals (2A, 2B, as the NIR
and the INSi service write them), no space or line break around them. A spelling that differs
(``2a``, a trailing ``&#10;``) would file the document under a key no other document of the
patient has.
"""

from __future__ import annotations

import re

from gateway.findings import Finding, error

INS_NIR = "1.2.250.1.213.1.4.8"
INS_NIA = "1.2.250.1.213.1.4.9"
INS_NIR_TEST = "1.2.250.1.213.1.4.10"
INS_NIA_TEST = "1.2.250.1.213.1.4.11"

INS_OIDS: dict[str, str] = {
    INS_NIR: "INS-NIR",
    INS_NIA: "INS-NIA",
    INS_NIR_TEST: "INS-NIR (test)",
    INS_NIA_TEST: "INS-NIA (test)",
}

_SHAPE = re.compile(r"[1-478][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}")  # with fullmatch
_FORMAT_FIX = "send the INS exactly as the INSi service returns it: 15 characters, nothing else"


def nir_key(nir13: str) -> int:
    """The 2-digit key of a 13-character NIR (Corsica's 2A/2B, in capitals, handled)."""
    digits = nir13.replace("2A", "19", 1).replace("2B", "18", 1)
    return 97 - int(digits) % 97


def nir_key_is_valid(ins: str) -> bool:
    """True when ``ins`` is exactly 15 characters of NIR shape whose last two are its key."""
    if _SHAPE.fullmatch(ins) is None:
        return False
    return nir_key(ins[:13]) == int(ins[13:])


def _format_problem(value: str) -> str:
    """What is wrong with an INS of the wrong shape, without quoting it (patient data)."""
    if "".join(value.split()) != value:
        return (
            "INS contains spaces, tabs or line breaks: it must be its 15 characters alone, "
            "or the document would be filed under another patient key"
        )
    if _SHAPE.fullmatch(value.upper()) is not None:
        return (
            "INS writes the Corsican department in lower case: it is 2A or 2B, in capitals, "
            "as in the NIR (any other spelling files the document under another patient key)"
        )
    return (
        "INS must be 15 characters: sex digit, year, month, department (2A/2B allowed), "
        "commune, order number and a 2-digit key"
    )


def check_ins(value: str | None, oid: str | None, location: str, layer: str) -> list[Finding]:
    """Findings about one INS identifier; empty when it is a well-formed INS with a valid key."""
    if oid not in INS_OIDS:
        return [
            error(
                "ins.oid",
                f"patient identifier authority {oid!r} is not an INS OID",
                location=location,
                layer=layer,
                fix=f"use one of {', '.join(INS_OIDS)}",
                hl7_code=103,
            )
        ]
    if not value:
        return [
            error(
                "ins.missing",
                "INS identifier has no value",
                location=location,
                layer=layer,
                fix="identify the patient with the INS from the INSi service",
                hl7_code=101,
            )
        ]
    if _SHAPE.fullmatch(value) is None:
        return [
            error(
                "ins.format",
                _format_problem(value),
                location=location,
                layer=layer,
                fix=_FORMAT_FIX,
                hl7_code=102,
            )
        ]
    if not nir_key_is_valid(value):
        return [
            error(
                "ins.nir-key",
                "INS key does not match its NIR (key = 97 − NIR mod 97): the identifier is "
                "mistyped and would designate another person",
                location=location,
                layer=layer,
                fix="check the INS against the patient's INSi record",
                hl7_code=102,
            )
        ]
    return []


TEST_OIDS = frozenset({INS_NIR_TEST, INS_NIA_TEST})


def test_ins_refused(ins_system: str | None, location: str, layer: str) -> list[Finding]:
    """A finding when ``ins_system`` is a test INS OID, for a gateway that files real records
    (GATEWAY_TEST_INS=refuse): its digits may be a real patient's, whose record would take it."""
    if ins_system not in TEST_OIDS:
        return []
    return [
        error(
            "ins.test-oid",
            f"the patient is identified by a test INS ({INS_OIDS[ins_system]}), which this "
            "gateway does not accept",
            location=location,
            layer=layer,
            hl7_code=103,
            fix="send the patient's real INS (OID 1.2.250.1.213.1.4.8, or .9 for an NIA), "
            "or send test documents to a test gateway",
        )
    ]
