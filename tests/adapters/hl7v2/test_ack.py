from datetime import UTC, datetime

from gateway.adapters.hl7v2 import ack
from gateway.adapters.hl7v2.parser import parse
from gateway.findings import error
from gateway.outcome import Receipt, ReceiptStatus, RejectionKind

NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
MSG = (
    b"MSH|^~\\&|LAB|LABO|GW|DMP|20261101||ORU^R01^ORU_R01|C42|P|2.5|||||FRA|UNICODE UTF-8\r"
    b"PID|||1\r"
)


def build(receipt, findings=(), raw=MSG):
    msg, _ = parse(raw)
    out = ack.build(msg, receipt, NOW, "ACK1", findings)
    return out if out is None else parse(out)[0]


def test_accepted_gives_aa_with_sender_and_receiver_swapped():
    a = build(Receipt(ReceiptStatus.ACCEPTED, "t"))
    assert a.value("MSA-1") == "AA" and a.value("MSA-2") == "C42"
    assert (a.value("MSH-3"), a.value("MSH-4"), a.value("MSH-5"), a.value("MSH-6")) == (
        "GW",
        "DMP",
        "LAB",
        "LABO",
    )
    assert a.value("MSH-9") == "ACK^R01^ACK" and a.value("MSH-12") == "2.5"
    assert a.value("MSH-18") == "UNICODE UTF-8" and a.value("MSH-10") == "ACK1"


def test_invalid_gives_ae_with_one_err_per_finding():
    findings = (
        error("ins.nir-key", "bad key", location="PID-3[1].1", hl7_code=102),
        error("hl7.pid", "x|y^z", location="PID", hl7_code=100),
    )
    a = build(
        Receipt(ReceiptStatus.REJECTED, "t", findings=findings, rejection=RejectionKind.INVALID),
        findings,
    )
    assert a.value("MSA-1") == "AE"
    errs = a.all("ERR")
    assert len(errs) == 2
    assert a.value("ERR-2", errs[0]) == "PID^1^3^1^1"
    assert a.value("ERR-3", errs[0]) == "102^Data type error^HL70357"
    assert a.value("ERR-4", errs[0]) == "E"
    assert a.value("ERR-8", errs[1]) == "hl7.pid: x|y^z"  # delimiters escaped, then read back


def test_unsupported_and_unavailable_give_ar():
    assert (
        build(Receipt(ReceiptStatus.REJECTED, "t", rejection=RejectionKind.UNSUPPORTED)).value(
            "MSA-1"
        )
        == "AR"
    )
    a = build(Receipt(ReceiptStatus.UNAVAILABLE, "t", reason="broker down"))
    assert a.value("MSA-1") == "AR" and a.value("MSA-3") == "broker down"


def enhanced(msh15: str, msh16: str) -> bytes:
    return MSG.replace(b"|P|2.5|||||FRA", f"|P|2.5|||{msh15}|{msh16}|FRA".encode())


INVALID = Receipt(
    ReceiptStatus.REJECTED,
    "t",
    findings=(error("hl7.pid.ins", "no INS", location="PID-3", hl7_code=101),),
    rejection=RejectionKind.INVALID,
)


def test_enhanced_mode_refusals_always_get_the_application_ack():
    """Whatever MSH-15/MSH-16 ask, a refused or unstored message is answered AE/AR: a sender
    that asked for silence must not believe a refused result was filed."""
    for msh15, msh16 in (("NE", "NE"), ("NE", "AL"), ("ER", "AL"), ("AL", "NE"), ("AL", "AL")):
        raw = enhanced(msh15, msh16)
        refused = build(INVALID, INVALID.findings, raw=raw)
        assert refused.value("MSA-1") == "AE", (msh15, msh16)
        assert refused.value("ERR-2") == "PID^1^3^1"
        unavailable = build(Receipt(ReceiptStatus.UNAVAILABLE, "t", reason="broker"), raw=raw)
        assert unavailable.value("MSA-1") == "AR", (msh15, msh16)


def test_enhanced_mode_success_follows_what_the_sender_asked():
    accepted = Receipt(ReceiptStatus.ACCEPTED, "t")
    assert build(accepted, raw=enhanced("NE", "AL")).value("MSA-1") == "AA"
    assert build(accepted, raw=enhanced("AL", "SU")).value("MSA-1") == "AA"
    assert build(accepted, raw=enhanced("AL", "NE")).value("MSA-1") == "CA"  # broker confirmed
    assert build(accepted, raw=enhanced("ER", "ER")) is None  # nothing asked on success
    assert build(accepted, raw=enhanced("NE", "NE")) is None


def test_err_7_says_what_to_do():
    finding = error("r", "m", location="OBX[2]-11", hl7_code=103, fix="send OBX-11 C")
    receipt = Receipt(
        ReceiptStatus.REJECTED, "t", findings=(finding,), rejection=RejectionKind.INVALID
    )
    a = build(receipt, (finding,))
    assert a.value("ERR-2") == "OBX^2^11^1" and a.value("ERR-7") == "send OBX-11 C"
