"""Routing rule evaluation: any rule set the loader accepts decides any envelope, without raising.

Whatever the loader accepts must evaluate; a rule it cannot evaluate must be refused at load
time with a ConfigError, never found out while a sender waits.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.envelope import Code, Envelope, Party, Patient
from gateway.errors import ConfigError
from gateway.routing.loader import from_dict
from gateway.routing.table import OPERATORS

FIELDS = [
    "patient.ins",
    "type_code.code",
    "confidentiality",
    "sender",
    "source_kind",
    "facility.id",
    "authors.organisation.id",
    "metadata.message_type",
    "flags.DESTDMP",
    "nothing.here",
]
DESTS = ["a", "b", "c"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=6),
    st.sampled_from(["[", "(a", "*", "1.2.250", "11502-2", "a+b", ".*"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
rules = st.lists(
    st.fixed_dictionaries(
        {
            "to": st.lists(st.sampled_from(DESTS), min_size=1, max_size=2),
            "match": st.dictionaries(
                st.sampled_from(FIELDS),
                st.one_of(
                    scalars,
                    st.dictionaries(st.sampled_from(OPERATORS), values, min_size=1, max_size=1),
                ),
                max_size=3,
            ),
        },
        optional={
            "stop": st.booleans(),
            "name": st.text(max_size=5),
        },
    ),
    min_size=1,
    max_size=4,
)
texts = st.text(max_size=12)
envelopes = st.builds(
    Envelope,
    document_id=texts,
    source_kind=st.sampled_from(["cda", "hl7v2"]),
    content_type=texts,
    sha256=texts,
    size=st.integers(0, 10),
    sender=texts,
    received_at=texts,
    trace_id=texts,
    patient=st.builds(Patient, ins=texts),
    type_code=st.one_of(st.none(), st.builds(Code, code=texts)),
    confidentiality=st.lists(st.builds(Code, code=texts), max_size=2).map(tuple),
    facility=st.one_of(st.none(), st.builds(Party, id=st.one_of(st.none(), texts))),
    authors=st.lists(st.builds(Party, organisation=st.builds(Party, id=texts)), max_size=2).map(
        tuple
    ),
    flags=st.dictionaries(st.sampled_from(["DESTDMP", "MASQUE_PS"]), st.booleans()),
    metadata=st.dictionaries(st.sampled_from(["message_type"]), texts),
)


@settings(max_examples=500, deadline=1000)
@given(rules, st.lists(st.sampled_from(DESTS), max_size=2), envelopes)
def test_accepted_rules_decide_every_envelope(rule_specs, default, envelope):
    spec = {"destinations": {d: {} for d in DESTS}, "rules": rule_specs, "default": {"to": default}}
    try:
        table = from_dict(spec)
    except ConfigError:
        return
    decision = table.decide(envelope)
    assert set(decision.destinations) <= set(DESTS)
    assert decision == table.decide(envelope), "deterministic"
    if not decision.matched:
        assert decision.destinations == tuple(default)
