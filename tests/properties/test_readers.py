"""Parsers and validators never crash: any bytes become a Document or a Rejected report.

The whole read step (format detection, HL7v2 tokenizer and rules, embedded CDA, hardened XML
parser, CDA rules) and the ACK built from whatever MSH could be read are driven with random
and mutated inputs. Anything raised is a bug; so is a slow answer (hypothesis deadlines).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapters.cda import intake as cda_intake
from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import ack
from gateway.adapters.hl7v2.parser import parse, parse_header
from gateway.document import Document
from gateway.outcome import Receipt, ReceiptStatus, Rejected, RejectionKind
from gateway.pipeline import Checks, read
from gateway.submission import Submission
from gateway.validators.cda import CdaValidator
from tests.properties.strategies import CDA, ORU, mutated, noise

CHECKS = Checks(cda_limits=CdaLimits(max_bytes=1 << 20))
FAST = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def judged(raw: bytes) -> Document | Rejected:
    outcome = read(Submission(raw=raw, transport="test", sender="prop"), CHECKS)
    assert isinstance(outcome, Document | Rejected)
    if isinstance(outcome, Rejected):
        assert outcome.report.errors, "a rejection always says why"
    return outcome


@FAST
@given(st.one_of(noise, st.binary(max_size=300), noise.map(lambda b: b"MSH" + b)))
def test_any_bytes_are_judged_never_raised(raw):
    judged(raw)


@FAST
@given(mutated(ORU))
def test_mutated_hl7v2_messages_are_judged_and_answered(raw):
    judged(raw)
    msg, findings = parse(raw)
    assert msg is not None or findings
    receipt = Receipt(ReceiptStatus.REJECTED, "t", rejection=RejectionKind.UNREADABLE)
    header = parse_header(raw)
    reply = ack.build(header, receipt, datetime.now(UTC), "c1", list(findings))
    assert reply.startswith(b"MSH")


@FAST
@given(mutated(CDA, max_edits=6))
def test_mutated_cda_documents_are_judged(raw):
    judged(raw)


@FAST
@given(
    st.recursive(
        st.text(alphabet="abc<>&;\"'=/ \x00é", max_size=20),
        lambda inner: st.tuples(st.sampled_from(["a", "b", "ClinicalDocument"]), inner).map(
            lambda t: f"<{t[0]}>{t[1]}</{t[0]}>"
        ),
        max_leaves=20,
    )
)
def test_arbitrary_xml_shapes_are_judged(text):
    doc, findings = cda_intake.parser.parse(text.encode("utf-8", "surrogatepass"), CdaLimits())
    assert doc is not None or findings
    cda_intake.read(text.encode(), CdaLimits(), CdaValidator())
