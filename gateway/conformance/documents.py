"""Documents a pack stylesheet reads with doc() or document(), parsed once per process.

Saxon's document pool lives for one transformation, so every validation parsed again each value
set and terminology file its rules read: UCUM's 250 KB at every quantity of the terminologies
layer, fourteen value sets in structurationMinimale, the 1.6-3.4 MB terminologies (CIM-10 and
others) of a document coding with them: from milliseconds to ~170 ms a document.

rewrite() routes the one-argument calls of doc(), doc-available() and document() through
functions of the stylesheet that look the resolved path up in a map bound at compile time
(bind()) and call the real function on a miss: an argument of another kind (a node, a sequence,
an odd path) or a file not held behaves exactly as before. What to hold is read from the
stylesheet: string literals given to those calls, string-literal variables given to them, and
the folder named by a string-literal variable that starts a concat() argument (a terminology
folder, 15 MB in the ANS pack). Such a folder is also listed: doc-available() of a file it
lacks is false, as the disk would say, without asking the disk at each code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.conformance import pack_xml
from gateway.conformance.xpath_text import scan, string_end

XSL = "http://www.w3.org/1999/XSL/Transform"
NS = "urn:passerelle:conformance:documents"
VERSION = 3  # part of the stored stylesheets' key: raise it when the rewrite changes
MAX_BYTES = 64 * 1024 * 1024  # held per stylesheet; past it, files are read per run as before
_CALL = re.compile(r"(?<![\w.:$-])(?:fn:)?(doc-available|doc|document)\s*\(")
_ATTRIBUTES = ("select", "test", "use")
_SAFE = re.compile(r"[A-Za-z0-9._~/+-]+")
# ``//name[text() = string($v)]`` right after a held document: a scan of the whole document
# per lookup (a 3.4 MB terminology at each code), answered by an xsl:key instead.
_LOOKUP = re.compile(
    r"\s*//(?P<name>(?:[\w.-]+:)?[\w.-]+)"
    r"\[\s*text\(\)\s*=\s*(?P<value>string\(\s*\$[\w.-]+\s*\))\s*\]"
    r"(?!\s*\[)"  # a further predicate would count positions per parent, not in the key's result
)
# doc() and document(): the held document for a held path, else Saxon's own function.
_FETCH = """<xsl:function name="Q{{{ns}}}{name}">
  <xsl:param name="href"/>
  <xsl:variable name="path" select="Q{{{ns}}}path($href)"/>
  <xsl:sequence select="if (Q{{{ns}}}held($path)) then $passerelle-documents($path)
    else {name}($href)"/>
</xsl:function>
"""
_FUNCTIONS = f"""<xsl:stylesheet xmlns:xsl="{XSL}" version="3.0">
<xsl:param name="passerelle-documents" select="map{{}}"/>
<xsl:param name="passerelle-listed" select="map{{}}"/>
<xsl:param name="passerelle-present" select="map{{}}"/>
<xsl:param name="passerelle-base" select="''"/>
<xsl:function name="Q{{{NS}}}path">
  <xsl:param name="href"/>
  <xsl:try select="if (count($href) eq 1 and not($href instance of node())
      and $passerelle-base ne '')
    then replace(string(resolve-uri(string($href), $passerelle-base)), '^file:/+', '/') else ()">
    <xsl:catch select="()"/>
  </xsl:try>
</xsl:function>
<xsl:function name="Q{{{NS}}}held">
  <xsl:param name="path"/>
  <xsl:sequence select="exists($path)
    and Q{{http://www.w3.org/2005/xpath-functions/map}}contains($passerelle-documents, $path)"/>
</xsl:function>
{_FETCH.format(name="doc", ns=NS)}
{_FETCH.format(name="document", ns=NS)}
<xsl:function name="Q{{{NS}}}doc-available">
  <xsl:param name="href"/>
  <xsl:variable name="path" select="Q{{{NS}}}path($href)"/>
  <xsl:sequence select="if (Q{{{NS}}}held($path)) then true()
    else if (exists($path) and matches($path, '^[A-Za-z0-9._~/+-]+$')
      and Q{{http://www.w3.org/2005/xpath-functions/map}}contains(
        $passerelle-listed, replace($path, '/[^/]*$', ''))
      and not(Q{{http://www.w3.org/2005/xpath-functions/map}}contains(
        $passerelle-present, $path))) then false()
    else doc-available($href)"/>
</xsl:function>
</xsl:stylesheet>"""


@dataclass
class Wanted:
    """What a stylesheet reads: files and whole folders, as written (relative to its base)."""

    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)


def rewrite(xslt: str, base: Path) -> str:
    """The stylesheet with its one-argument document calls going through the held documents,
    and the list of what to hold kept inside it for bind(); unchanged when it reads none.

    ``base`` is the folder its relative paths resolve against. A call naming a file that is not
    there keeps calling Saxon's own function: what Saxon makes of a missing document (an error,
    or nothing when its optimiser proves the call's value without it, as in ``exists(doc(x))``)
    stays what it was. Calls into a folder are routed whatever file they compute, so one of
    that shape would now read a missing file and fail; the pack's folder calls all read the
    document's content (or are guarded by doc-available()), where Saxon reads it too."""
    root = pack_xml.from_text(xslt, huge_tree=True)
    state = _Rewriting(_string_variables(root), os.path.abspath(base))
    wanted, rewritten = state.wanted, False
    for el in root.iter(f"{{{XSL}}}*"):
        for name in _ATTRIBUTES:
            expr = el.get(name)
            if expr is None or not _CALL.search(expr):
                continue
            new = _route(expr, el, state)
            if new != expr:
                el.set(name, new)
                rewritten = True
    if not rewritten:
        return xslt
    held = etree.Element(f"{{{NS}}}preload", nsmap={"pd": NS})
    for href in sorted(wanted.files):
        etree.SubElement(held, f"{{{NS}}}file", href=href)
    for href in sorted(wanted.folders):
        etree.SubElement(held, f"{{{NS}}}folder", href=href)
    after_imports = sum(1 for el in root if el.tag == f"{{{XSL}}}import")
    keys = [
        etree.Element(f"{{{XSL}}}key", name=key, match=match, use="text()")
        for match, key in state.keys.items()
    ]
    declarations = [held, *etree.fromstring(_FUNCTIONS.encode()), *keys]
    for position, declaration in enumerate(declarations):
        if declaration.tag != held.tag:
            declaration.set("version", "3.0")
        root.insert(after_imports + position, declaration)
    return etree.tostring(root, encoding="unicode")


def wanted_in(xslt: str) -> Wanted:
    """What rewrite() recorded in the stylesheet (nothing when it did not rewrite it)."""
    found = re.search(r"<pd:preload\b[^>]*?(?:/>|>.*?</pd:preload>)", xslt, re.DOTALL)
    if found is None:
        return Wanted()
    snippet = found[0]
    if "xmlns:pd=" not in snippet.split(">", 1)[0]:
        snippet = snippet.replace("<pd:preload", f'<pd:preload xmlns:pd="{NS}"', 1)
    el = etree.fromstring(snippet)
    return Wanted(
        files={f.get("href") for f in el.iterchildren(f"{{{NS}}}file")},
        folders={f.get("href") for f in el.iterchildren(f"{{{NS}}}folder")},
    )


def bind(executable: object, xslt: str, base: Path, processor: object) -> int:
    """Parse what the stylesheet reads (relative to ``base``, the folder its doc() calls
    resolve against) and hand it to the compiled stylesheet. Returns the bytes held."""
    wanted = wanted_in(xslt)
    if not wanted.files and not wanted.folders:
        return 0
    base_dir = os.path.abspath(base)
    documents, listed, present, budget = {}, [], [], MAX_BYTES
    for href in sorted(wanted.files):
        path = _local(base_dir, href)
        if path is not None and path not in documents and os.path.isfile(path):
            budget = _hold(path, documents, budget, processor)
    for href in sorted(wanted.folders):
        folder = _local(base_dir, href)
        try:
            names = sorted(os.listdir(folder)) if folder is not None else None
        except OSError:  # not a folder, or unreadable: its files are read per run
            names = None
        if names is None:
            continue
        if not all(_SAFE.fullmatch(n) for n in names):
            continue  # a name the stylesheet's path function might spell differently
        listed.append(folder)
        for name in names:
            path = f"{folder}/{name}"
            if path not in documents and os.path.isfile(path):
                budget = _hold(path, documents, budget, processor)
                if path not in documents and _may_be_xml(path):
                    present.append(path)  # not held: doc-available() asks the disk
    make = processor.make_string_value
    executable.set_parameter(
        "passerelle-documents",
        processor.make_map({make(k): node for k, (node, _) in documents.items()}),
    )
    executable.set_parameter(
        "passerelle-listed",
        processor.make_map({make(k): processor.make_boolean_value(True) for k in listed}),
    )
    executable.set_parameter(
        "passerelle-present",
        processor.make_map({make(k): processor.make_boolean_value(True) for k in present}),
    )
    executable.set_parameter("passerelle-base", make(Path(base_dir).as_uri() + "/"))
    return sum(size for _, size in documents.values())


def _hold(path: str, documents: dict, budget: int, processor: object) -> int:
    """Parse ``path`` into ``documents`` if the budget allows. A file that does not parse is
    left out, which is what doc-available() says of it. Returns the budget left."""
    try:
        size = os.path.getsize(path)
        if size > budget or not _may_be_xml(path):
            return budget
        documents[path] = (processor.parse_xml(xml_file_name=path), size)
    except Exception:  # unreadable, or not XML: left to Saxon's own functions at each run
        return budget
    return budget - size


def _may_be_xml(path: str) -> bool:
    """False for a file that cannot be well-formed XML (its first character, after a UTF-8
    byte-order mark and blanks, is not "<"): spares Saxon's parse error on stderr. True for a
    file it cannot read (Saxon's own functions will say what it is)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError:
        return True
    return not head or head.startswith(b"<") or head[:2] in (b"\xff\xfe", b"\xfe\xff")


def _local(base_dir: str, href: str) -> str | None:
    """The file path ``href`` names, as the stylesheet's path function spells it, or None for
    anything not a plain local path (those are read per run, as before)."""
    if href.startswith("file:"):
        path = "/" + re.sub(r"^file:/+", "", href)
    elif ":" in href.split("/")[0]:
        return None
    else:
        path = os.path.join(base_dir, href)
    path = os.path.normpath(path)
    return path if _SAFE.fullmatch(path) else None


def _string_variables(root: etree._Element) -> dict[str, set[str]]:
    """Variables and params bound to one string literal, by name (every binding seen)."""
    out: dict[str, set[str]] = {}
    for el in root.iter(f"{{{XSL}}}variable", f"{{{XSL}}}param"):
        literal = _literal((el.get("select") or "").strip())
        if el.get("name") and literal is not None:
            out.setdefault(el.get("name"), set()).add(literal)
    return out


def _literal(expr: str) -> str | None:
    if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "'\"":
        body = expr[1:-1]
        if expr[0] not in body:
            return body
    return None


@dataclass
class _Rewriting:
    literals: dict[str, set[str]]  # string-literal variables, by name
    base_dir: str
    wanted: Wanted = field(default_factory=Wanted)
    keys: dict[str, str] = field(default_factory=dict)  # element name (EQName) -> key name


def _route(expr: str, el: etree._Element, state: _Rewriting) -> str:
    """``expr`` with each one-argument document call outside string literals renamed, when
    what its argument names is there to hold; a text lookup right after it becomes key()."""
    out, i = [], 0
    while i < len(expr):
        if expr[i] in "'\"":
            end = string_end(expr, i)
            out.append(expr[i:end])
            i = end
            continue
        m = _CALL.match(expr, i) if expr[i] in "fd" else None
        if m is None:
            out.append(expr[i])
            i += 1
            continue
        close = _closing(expr, m.end())
        argument = expr[m.end() : close].strip() if close is not None else ""
        named = _named(argument, state.literals) if close is not None else None
        if named is None or not _there(named, state.base_dir):
            out.append(expr[i : m.end()])
            i = m.end()
            continue
        state.wanted.files.update(named.files)
        state.wanted.folders.update(named.folders)
        lookup = _LOOKUP.match(expr, close + 1) if m[1] != "doc-available" else None
        key = _key(lookup["name"], el, state) if lookup else None
        if key is None:
            out.append(f"Q{{{NS}}}{m[1]}(")
            i = m.end()
            continue
        out.append(f"key('{key}', {lookup['value']}, Q{{{NS}}}{m[1]}({argument}))")
        i = lookup.end()
    return "".join(out)


def _key(name: str, el: etree._Element, state: _Rewriting) -> str | None:
    """The name of the key indexing elements ``name`` (as the expression at ``el`` means it)
    by their text, declared once per stylesheet; None when the name's namespace is unclear."""
    prefix, _, local = name.rpartition(":")
    if prefix:
        uri = el.nsmap.get(prefix)
        if uri is None:
            return None
    elif (
        any(
            a.get("xpath-default-namespace") is not None
            or a.get(f"{{{XSL}}}xpath-default-namespace") is not None
            for a in el.iterancestors()
        )
        or el.get("xpath-default-namespace") is not None
    ):
        return None
    else:
        uri = ""
    match = f"Q{{{uri}}}{local}"
    return state.keys.setdefault(match, f"passerelle-text-{len(state.keys) + 1}")


def _there(named: Wanted, base_dir: str) -> bool:
    """Every file named exists, every folder named exists, as plain local paths."""
    paths = [(_local(base_dir, h), os.path.isfile) for h in named.files] + [
        (_local(base_dir, h), os.path.isdir) for h in named.folders
    ]
    return all(path is not None and exists(path) for path, exists in paths)


def _closing(expr: str, start: int) -> int | None:
    """Index of the parenthesis closing the call whose arguments start at ``start``."""
    for i, ch, depth in scan(expr, start):
        if ch in ")]}" and depth == 0:
            return i if ch == ")" else None
    return None


def _has_top_level_comma(argument: str) -> bool:
    return any(ch == "," and depth == 0 for _, ch, depth in scan(argument))


def _named(argument: str, literals: dict[str, set[str]]) -> Wanted | None:
    """What a call's single argument names: a literal, a literal variable or a folder that a
    concat() starts with; None for any other argument (or several)."""
    if not argument or _has_top_level_comma(argument):
        return None
    literal = _literal(argument)
    if literal is not None:
        return Wanted(files={literal})
    variable = re.fullmatch(r"\$([\w.-]+)", argument)
    if variable and literals.get(variable[1]):
        return Wanted(files=set(literals[variable[1]]))
    prefix = re.match(r"concat\s*\(\s*\$([\w.-]+)\s*,", argument)
    if prefix and literals.get(prefix[1]):
        return Wanted(folders=set(literals[prefix[1]]))
    return None
