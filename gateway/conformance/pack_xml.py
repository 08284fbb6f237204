"""How the pack's files, and the stylesheets made from them, are read as XML.

The pack comes from a configured folder, not from a sender, but it is still read without
entity expansion or network access: a pack unpacked from an archive or a mirror must not make
the gateway fetch anything or expand what it declares."""

from __future__ import annotations

from pathlib import Path

from lxml import etree


def parser(*, huge_tree: bool = False) -> etree.XMLParser:
    """A new parser (one per call: lxml parsers are not to be shared by threads while parsing).

    ``huge_tree`` lifts libxml2's limits on depth and text size, for stylesheets the gateway
    generated itself."""
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=huge_tree)


def parse(path: Path) -> etree._ElementTree:
    """The file at ``path``."""
    return etree.parse(str(path), parser())


def from_text(text: str, *, huge_tree: bool = False) -> etree._Element:
    """The root element of ``text`` (a stylesheet held as a string)."""
    return etree.fromstring(text.encode("utf-8"), parser(huge_tree=huge_tree))
