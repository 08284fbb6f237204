"""Walking the text of XPath expressions the rewrites did not write: where a string literal
ends, and how deep in brackets each character is. Pure.

visit (rule patterns: their alternatives and first steps) and documents (doc() calls: their
closing parenthesis and arguments) both look for characters at the top level of such text;
both walk it here, so a string literal or an EQName's ``Q{uri}`` is skipped the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

OPENING, CLOSING = "([{", ")]}"


def string_end(expr: str, start: int) -> int:
    """Index after the XPath string literal opening at ``start`` (doubled quotes escape)."""
    quote, i = expr[start], start + 1
    while i < len(expr):
        if expr[i] == quote:
            if i + 1 < len(expr) and expr[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(expr)


def scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, brackets open before it) for each character outside string literals."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = string_end(text, i)
            continue
        yield i, ch, depth
        if ch in OPENING:
            depth += 1
        elif ch in CLOSING:
            depth -= 1
        i += 1


def top_level(text: str, start: int = 0) -> Iterator[int]:
    """Indexes of the characters outside string literals and brackets (brackets excluded)."""
    return (i for i, ch, depth in scan(text, start) if depth == 0 and ch not in OPENING + CLOSING)
