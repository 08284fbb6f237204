"""A plain-text PDF rendering of a report, for the CI-SIS "FR-Document-PDF-copie" section.

CR-BIO 2024.01 requires a PDF copy of the report inside the CDA. A converted report has no
PDF from the laboratory, so one is written here: a single-font, text-only PDF 1.4 with no
creation date or random id, so that the same lines always give the same bytes (a resent
message must yield an identical document). Written by hand rather than with a PDF library:
the layout is a list of lines and this costs a fraction of a millisecond.
"""

from __future__ import annotations

_FONT_SIZE = 9
_LEADING = 12
_TOP = 800
_LEFT = 40
_LINES_PER_PAGE = 62
_MAX_CHARS = 110


def _literal(text: str) -> bytes:
    """A PDF string literal in WinAnsi (Latin-1 for French text); other characters become '?'."""
    raw = text[:_MAX_CHARS].encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _page_stream(lines: list[str]) -> bytes:
    ops = [b"BT /F1 %d Tf %d TL %d %d Td" % (_FONT_SIZE, _LEADING, _LEFT, _TOP)]
    ops += [_literal(line) + b" Tj T*" for line in lines]
    ops.append(b"ET")
    return b"\n".join(ops)


def render(lines: list[str]) -> bytes:
    """The PDF bytes showing ``lines`` top to bottom, paginated."""
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    pages = pages or [[]]
    first_page = 4  # 1 catalog, 2 page tree, 3 font; then (page, contents) pairs
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, page in enumerate(pages):
        stream = _page_stream(page)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (first_page + 2 * i + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
