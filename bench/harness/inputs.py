"""The benchmark's inputs: corpus documents and generated HL7v2, each send made unique.

Every message sent gets its own identity (MSH-10, ClinicalDocument/id), so the record
consumer files a new document each time instead of recognising a resend: the bench measures
the path a new document takes. Making a variant must cost the client next to nothing (it
shares the cores with the gateway), so each input is split once into constant parts and
a small part that changes.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from bench.common import FIXTURES, SHARED

CDA_CORPUS = SHARED / "corpus" / "cda"
HL7V2_CORPUS = SHARED / "corpus" / "hl7v2"
# In order of preference; the first one the pipeline accepts today is used.
CRBIO_CANDIDATES = (
    "BIO-CR-BIO_2024.01_TSH_1.xml",
    "BIO-CR-BIO_2024.01_CRP_non_LOINC.xml",
    "BIO-CR-BIO_2024.01_Glycémie deux unités principales_mole_masse.xml",
)
ORU_CDA_GLOB = "**/ORU/**/*Base64*.er7"
RAW_ORU_OBX = 30
_SUFFIX_DIGITS = 8  # "." + 8 digits = 9 bytes: a multiple of 3, so base64 stays aligned


@dataclass(frozen=True)
class Input:
    """One kind of message: a name for the table, a sample, and a maker of unique variants."""

    name: str
    source: str  # where it came from (file name or "generated")
    sample: bytes
    variants: Callable[[], Iterator[bytes]]

    @property
    def size(self) -> int:
        return len(self.sample)

    @cached_property
    def stream(self) -> Iterator[bytes]:
        """The variants as one stream for the whole run: scenarios driving the same gateway one
        after another never send a document twice (a resent one is filed as a duplicate, which
        costs less than a new one)."""
        return self.variants()


def _counter() -> Iterator[str]:
    return (f"1{n:0{_SUFFIX_DIGITS - 1}d}" for n in itertools.count(1))


def _root_end(cda: bytes, start_tag: bytes) -> int | None:
    """Offset of the closing quote of the first ``start_tag`` element's @root in the header."""
    start = cda.find(start_tag, cda.index(b"<ClinicalDocument"))
    if start < 0:
        return None
    root = cda.index(b'root="', start) + len(b'root="')
    return cda.index(b'"', root)


def _arc_points(cda: bytes) -> list[int]:
    """Where a unique arc goes: ClinicalDocument/id/@root and setId/@root. Both change, so
    each variant is a new document of a new set; a new id in the same set and version would
    be refused by the record store as a conflicting version (and measure parking)."""
    points = (_root_end(cda, b"<id "), _root_end(cda, b"<setId "))
    return sorted(p for p in points if p is not None)


def unique_cda(cda: bytes) -> Callable[[], Iterator[bytes]]:
    """Variants of a CDA document whose id and setId roots get one more arc."""
    points = _arc_points(cda)
    parts = [cda[a:b] for a, b in zip([0, *points], [*points, len(cda)], strict=True)]

    def variants() -> Iterator[bytes]:
        for n in _counter():
            yield (b"." + n.encode()).join(parts)

    return variants


Base64Template = list[bytes | tuple[bytes, int]]


def _base64_template(cda: bytes) -> Base64Template:
    """The base64 of ``cda`` as constant pieces and, at each arc point, the 3-byte quantum
    holding it (and where in it the arc goes): the arc is 9 bytes, so inserting it keeps the
    text after it 3-byte aligned and its base64 unchanged; only those quanta are re-encoded."""
    pieces: Base64Template = []
    done = 0
    for at in _arc_points(cda):
        block = at - at % 3
        pieces += [base64.b64encode(cda[done:block]), (cda[block : block + 3], at - block)]
        done = block + 3
    pieces.append(base64.b64encode(cda[done:]))
    return pieces


def _filled(pieces: Base64Template, arc: bytes) -> bytes:
    return b"".join(
        p if isinstance(p, bytes) else base64.b64encode(p[0][: p[1]] + arc + p[0][p[1] :])
        for p in pieces
    )


def _msh10_split(message: bytes) -> tuple[bytes, bytes]:
    """(text before MSH-10, text after it): MSH-10 is replaced per message."""
    sep = message[3:4]  # MSH-1; split index n is then MSH-(n+1)
    parts = message.split(sep, 9)
    head = sep.join(parts[:9]) + sep
    rest = parts[9]
    end = min(i for i in (rest.find(c) for c in (sep, b"\r", b"\n")) if i >= 0)
    return head, rest[end:]


def unique_lab_results(message: bytes) -> Callable[[], Iterator[bytes]]:
    """Variants of a raw lab-results ORU^R01 with a fresh MSH-10 and filler order number.

    The converted CR-BIO's setId comes from the filler order number (OBR-3) and its version
    from the report times: with MSH-10 alone every variant would be the same report again,
    which the record store refuses as a conflicting version instead of filing it."""
    fields = next(s for s in message.split(b"\r") if s.startswith(b"OBR|")).split(b"|")
    order = fields[3].split(b"^")[0]
    head, tail = _msh10_split(message)

    def variants() -> Iterator[bytes]:
        for n in _counter():
            fresh = order + b"-" + n.encode()
            yield (head + b"BENCH" + n.encode() + tail).replace(
                b"|" + order + b"^", b"|" + fresh + b"^"
            )

    return variants


def unique_er7_with_cda(message: bytes) -> Callable[[], Iterator[bytes]]:
    """Variants of an HL7v2 message carrying base64 CDA documents: fresh MSH-10, and in every
    document fresh id and setId roots (see ``_base64_template``)."""
    marker = b"^TEXT^XML^Base64^"
    chunks: list[bytes | Base64Template] = []
    done = 0
    while (found := message.find(marker, done)) >= 0:
        value_at = found + len(marker)
        value_end = min(i for i in (message.find(c, value_at) for c in b"|^~\r\n") if i >= 0)
        chunks += [
            message[done:value_at],
            _base64_template(base64.b64decode(message[value_at:value_end])),
        ]
        done = value_end
    chunks.append(message[done:])
    head, first = _msh10_split(chunks[0])
    chunks[0] = first

    def variants() -> Iterator[bytes]:
        for n in _counter():
            arc = b"." + n.encode()
            body = (c if isinstance(c, bytes) else _filled(c, arc) for c in chunks)
            yield head + b"BENCH" + n.encode() + b"".join(body)

    return variants


def raw_oru(obx_count: int = RAW_ORU_OBX) -> bytes:
    """An ORU^R01 of lab results with ``obx_count`` numeric OBX, from the repository's fixture.

    The fixture's header segments are kept; its OBX are repeated and renumbered. Segments are
    separated by CR, as the standard says.
    """
    text = (FIXTURES / "hl7v2" / "oru_r01_lab_results.hl7").read_bytes()
    segments = [s for s in text.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r") if s]
    header = [s for s in segments if not s.startswith(b"OBX")]
    results = [s for s in segments if s.startswith(b"OBX") and s.split(b"|")[2] == b"NM"]
    obx = []
    for i, seg in zip(range(1, obx_count + 1), itertools.cycle(results), strict=False):
        fields = seg.split(b"|")
        fields[1] = str(i).encode()
        obx.append(b"|".join(fields))
    return b"\r".join(header + obx) + b"\r"


def crbio_cda(accepts: Callable[[bytes], bool]) -> Input:
    for name in CRBIO_CANDIDATES:
        path = CDA_CORPUS / name
        if path.exists() and accepts(next(unique_cda(path.read_bytes())())):
            data = path.read_bytes()
            return Input("CDA CR-BIO", name, data, unique_cda(data))
    raise RuntimeError(f"none of {CRBIO_CANDIDATES} is accepted by the pipeline today")


def oru_with_cda(accepts: Callable[[bytes], bool]) -> Input:
    for path in sorted(HL7V2_CORPUS.glob(ORU_CDA_GLOB)):
        data = path.read_bytes()
        if accepts(next(unique_er7_with_cda(data)())):
            return Input("ORU^R01+CDA", path.name, data, unique_er7_with_cda(data))
    raise RuntimeError(f"no {ORU_CDA_GLOB} in {HL7V2_CORPUS} is accepted by the pipeline today")


def oru_raw() -> Input:
    data = raw_oru()
    return Input(f"ORU^R01 {RAW_ORU_OBX} OBX", "generated", data, unique_lab_results(data))


def corpus_present() -> bool:
    return CDA_CORPUS.is_dir() and HL7V2_CORPUS.is_dir()
