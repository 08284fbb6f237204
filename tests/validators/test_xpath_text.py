"""The XPath text walk the conformance rewrites share (gateway.conformance.xpath_text)."""

from __future__ import annotations

from gateway.conformance.xpath_text import scan, string_end, top_level


def slashes(text: str) -> list[int]:
    return [i for i in top_level(text) if text[i] == "/"]


def test_string_literals_end_after_their_closing_quote_doubled_quotes_inside():
    assert string_end("'it''s'/x", 0) == 7
    assert string_end('"a"', 0) == 3
    assert string_end("'unterminated", 0) == len("'unterminated")


def test_top_level_skips_strings_predicates_and_eqname_uris():
    assert slashes("a[b/c]/d") == [6]
    assert slashes("a['/']/d") == [6]
    assert slashes("Q{urn:x/y}a/b") == [11]  # the "/" inside the URI is not a step
    assert list(top_level("(a)|b")) == [3, 4]


def test_scan_gives_the_depth_before_each_character():
    assert [(ch, depth) for _, ch, depth in scan("f(a,'x')")] == [
        ("f", 0),
        ("(", 0),
        ("a", 1),
        (",", 1),
        (")", 1),
    ]
