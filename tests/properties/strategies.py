"""Hypothesis strategies shared by the property tests: near-valid inputs, mutated."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.conftest import FIXTURES

ORU = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
CDA = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()

# Bytes that matter to the formats, so random data often hits the interesting paths.
SPECIAL = [
    b"\x0b",
    b"\x1c",
    b"\r",
    b"\n",
    b"\x00",
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"MSH",
    b"<",
    b">",
    b"/",
    b"=",
    b'"',
    b"\xff",
    b"\xc3",
    b"<!DOCTYPE",
    b"<!ENTITY",
    b"&x;",
    b"OBX|",
]


@st.composite
def mutated(draw, seed: bytes, max_edits: int = 8) -> bytes:
    """``seed`` with a few random cuts, insertions and overwrites."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, max_edits))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "insert", "special", "flip"]))
        if op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=32))
        elif op == "special":
            data[pos:pos] = draw(st.sampled_from(SPECIAL))
        elif data:
            i = min(pos, len(data) - 1)
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


noise = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SPECIAL)), max_size=30).map(
    b"".join
)
