"""Compiling the pack's ISO Schematrons to XSLT 2 with saxonche, and running them.

Compilation: includes are resolved here (letter case ignored, missing files dropped and
reported), then the pack's own ``iso_abstract_expand.xsl`` and ``iso_svrl_for_xslt2.xsl`` make
the validating stylesheet. Value-set files the pack lacks are written, from their SVS form, to
a per-process directory and the stylesheet is pointed at them. Each compiled stylesheet is
cached per (file, pack fingerprint): compiled once per process, recompiled after a pack change.
Running one gives SVRL; each failed assert or successful report becomes a Finding.

Making the stylesheet text (includes, the two ISO skeleton steps, visit.rewrite,
documents.rewrite and shared_bodies.rewrite) is done once per pack: with a cache directory
(GATEWAY_DATA_DIR/conformance) the text is written there, keyed by the pack fingerprint, and
every later process only compiles it and parses the documents it reads. Saxon-HE cannot
export compiled stylesheets (SEF export needs Saxon-EE), so that last compilation stays per
process.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

from gateway.conformance import documents, pack_xml, shared_bodies, svs, visit
from gateway.conformance.pack import ENGINE, SCH, Pack, Schematron, resolve
from gateway.findings import Finding, Severity
from gateway.logs import log

SVRL = "http://purl.oclc.org/dsdl/svrl"
# Part of the stored stylesheets' key with the rewrites' VERSIONs and Saxon's: raise it when
# what makes the skeleton's text changes (includes inlined, phases, value-set substitution).
GENERATOR = 1
_SAXON = importlib.metadata.version("saxonche")
_LOCK = threading.RLock()  # Saxon executables are not thread-safe; one run at a time
_PROCESSOR: PySaxonProcessor | None = None
_CACHE: dict[tuple[Path, str], Compiled] = {}
_SUBSTITUTES_DIR = Path(tempfile.mkdtemp(prefix="passerelle-pack-"))
_STEP = re.compile(r"\*:([\w.-]+)\[namespace-uri\(\)='([^']*)'\]")


class CompileError(Exception):
    """The schematron could not be turned into a runnable stylesheet."""


@dataclass
class Compiled:
    schematron: Schematron
    executable: object  # saxonche PyXsltExecutable


def processor() -> PySaxonProcessor:
    global _PROCESSOR
    if _PROCESSOR is None:
        _PROCESSOR = PySaxonProcessor(license=False)
    return _PROCESSOR


def compiled(pack: Pack, sch: Schematron, cache_dir: Path | None = None) -> Compiled:
    """The compiled stylesheet for ``sch``, from the cache when the pack has not changed."""
    key = (sch.path, pack.fingerprint)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = Compiled(sch, _compile(pack, sch, cache_dir))
        return _CACHE[key]


def _inline_includes(path: Path) -> etree._Element:
    """The schematron with every include replaced by the included element (ISO 19757-3 §5.4.4);
    includes whose file is missing are dropped (Schematron.missing lists them)."""
    tree = pack_xml.parse(path)
    root = tree.getroot()
    for inc in list(root.iter(f"{{{SCH}}}include")):
        target, _ = resolve(path.parent, inc.get("href", ""))
        parent = inc.getparent()
        if target is None:
            parent.remove(inc)
            continue
        parent.replace(inc, _inline_includes(target))
    return root


def _drop_dangling_actives(schema: etree._Element) -> None:
    """Phases may activate patterns that lived in a missing include: drop those references."""
    patterns = {p.get("id") for p in schema.iter(f"{{{SCH}}}pattern") if p.get("id")}
    for active in list(schema.iter(f"{{{SCH}}}active")):
        if active.get("pattern") not in patterns:
            active.getparent().remove(active)


def _transform(xsl: Path, text: str) -> str:
    proc = processor()
    executable = proc.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(xsl))
    return executable.transform_to_string(xdm_node=proc.parse_xml(xml_text=text))


def _compile(pack: Pack, sch: Schematron, cache_dir: Path | None) -> object:
    try:
        stored = _stored(pack, sch, cache_dir)
        if stored is not None and stored.is_file():
            try:
                return _compile_text(stored.read_text(encoding="utf-8"), sch)
            except (PySaxonApiError, etree.XMLSyntaxError, UnicodeDecodeError) as exc:
                # torn or altered on disk: never trusted over the pack, made again from it
                # (a stored text that fails would otherwise switch the layer off for good)
                log("pack.stored-stylesheet-remade", level=30, component="conformance-pack",
                    layer=sch.layer, error=type(exc).__name__)  # fmt: skip
                stored.unlink(missing_ok=True)
        executable, text = _first_compiling(_stylesheet(pack, sch, cache_dir), sch)
        if stored is not None:
            _store(stored, text)
        return executable
    except (PySaxonApiError, etree.XMLSyntaxError, OSError) as exc:
        raise CompileError(f"{sch.layer}: {_first_line(exc)}") from exc


def _first_compiling(xslt: str, sch: Schematron) -> tuple[object, str]:
    """The stylesheet after every rewrite, or, if a rewrite fails or its result does not
    compile, after the ones before it (the skeleton's own walk last): a rewrite must never
    cost a layer."""
    texts = [xslt]
    for rewrite in (
        visit.rewrite,
        lambda text: documents.rewrite(text, sch.path.parent),
        shared_bodies.rewrite,
    ):
        try:
            texts.append(rewrite(texts[-1]))
        except Exception:  # whatever a rewrite meets, the layer falls back to the one before
            break
    *rewritten, skeleton = reversed(dict.fromkeys(texts))
    for text in rewritten:
        try:
            return _compile_text(text, sch), text
        except (PySaxonApiError, etree.XMLSyntaxError):
            continue
    return _compile_text(skeleton, sch), skeleton


def _stored(pack: Pack, sch: Schematron, cache_dir: Path | None) -> Path | None:
    """Where the stylesheet text of ``sch`` is kept for this pack version, if anywhere."""
    if cache_dir is None:
        return None
    versions = f"{GENERATOR}.{visit.VERSION}.{documents.VERSION}.{shared_bodies.VERSION}.{_SAXON}"
    name = hashlib.sha256(f"{sch.path}|{versions}".encode()).hexdigest()[:16]
    return cache_dir / pack.fingerprint / f"{name}.xsl"


def _store(path: Path, text: str) -> None:
    """Written whole or not at all: worker processes may read it at the same time, and a
    crash must not leave a torn file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with open(partial, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


def _stylesheet(pack: Pack, sch: Schematron, cache_dir: Path | None) -> str:
    """The skeleton's validating stylesheet for ``sch``, value-set paths made absolute."""
    schema = _inline_includes(sch.path)
    _drop_dangling_actives(schema)
    expanded = _transform(pack.root / ENGINE / "iso_abstract_expand.xsl", _text(schema))
    xslt = _transform(pack.root / ENGINE / "iso_svrl_for_xslt2.xsl", expanded)
    for ref in sch.references:
        if ref.kind != "value-set":
            continue
        if ref.resolved is not None and ref.case_fixed:
            xslt = xslt.replace(f"'{ref.href}'", f"'{ref.resolved.as_uri()}'")
        elif ref.resolved is None and ref.substitute is not None:
            supplied = _substitute(ref.substitute, _substitutes_dir(pack, cache_dir))
            xslt = xslt.replace(f"'{ref.href}'", f"'{supplied.as_uri()}'")
    return xslt


def _compile_text(xslt: str, sch: Schematron) -> object:
    xslt_proc = processor().new_xslt30_processor()
    # Relative doc() paths in the rules resolve against the schematron's own folder.
    xslt_proc.set_cwd(str(sch.path.parent))
    executable = xslt_proc.compile_stylesheet(stylesheet_text=xslt)
    documents.bind(executable, xslt, sch.path.parent, processor())
    return executable


def _substitutes_dir(pack: Pack, cache_dir: Path | None) -> Path:
    """Beside the stored stylesheets when kept (they name these files), else per process."""
    return _SUBSTITUTES_DIR if cache_dir is None else cache_dir / pack.fingerprint / "value-sets"


def _substitute(svs_file: Path, directory: Path) -> Path:
    out = directory / f"{svs_file.stem}.voc.xml"
    if not out.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(svs.to_voc(svs_file))
        os.replace(partial, out)
    return out


def _text(el: etree._Element) -> str:
    return etree.tostring(el, encoding="unicode")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def source(document: str) -> object:
    """The ClinicalDocument (its text) parsed once for Saxon, for every layer to read."""
    with _LOCK:
        return processor().parse_xml(xml_text=document)


def run(unit: Compiled, node: object, cda_root: etree._Element) -> list[Finding]:
    """Findings of one compiled schematron on one ClinicalDocument (``node``: from source())."""
    with _LOCK:
        report = unit.executable.transform_to_string(xdm_node=node)
    svrl = etree.fromstring(report.encode("utf-8"))
    findings = []
    layer = f"pack:{unit.schematron.layer}"
    for el in svrl.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        role = (el.get("role") or el.get("flag") or "error").lower()
        severity = (
            Severity.ERROR
            if role in ("error", "fatal")
            else Severity.INFO
            if role in ("info", "information", "note")
            else Severity.WARNING
        )
        location = el.get("location", "")
        text = " ".join("".join(el.findtext(f"{{{SVRL}}}text") or "").split())
        findings.append(
            Finding(
                rule=el.get("id") or _pattern_of(el) or "pack.assert",
                severity=severity,
                message=text or el.get("test", ""),
                location=readable(location),
                layer=layer,
                line=line_of(cda_root, location),
                hl7_code=102,
            )
        )
    return findings


def _pattern_of(el: etree._Element) -> str | None:
    """The id of the SVRL active-pattern this assert fired under (its nearest preceding one)."""
    for prev in el.itersiblings(preceding=True):
        if prev.tag == f"{{{SVRL}}}active-pattern":
            return prev.get("id") or prev.get("name")
    return None


def readable(location: str) -> str:
    """Locations without namespace tests: ``/*:code[namespace-uri()='…'][1]`` → ``/code[1]``."""
    return _STEP.sub(r"\1", location)


_PLAIN_STEP = re.compile(r"^([\w.-]+)(.*)$")


def _lxml_step(step: str) -> str:
    if _STEP.match(step):
        return _STEP.sub(r"*[local-name()='\1' and namespace-uri()='\2']", step)
    m = _PLAIN_STEP.match(step)
    return f"*[local-name()='{m[1]}']{m[2]}" if m else step


def line_of(cda_root: etree._Element, location: str) -> int | None:
    """The source line of the node an SVRL location names, evaluated on the parsed document."""
    if not location.startswith("/"):
        return None
    steps = location.split("/")[2:]  # drop "" and the ClinicalDocument step
    expr = "/".join(_lxml_step(s) for s in steps)
    try:
        found = cda_root.xpath(expr) if expr else [cda_root]
    except etree.XPathError:
        return None
    node = found[0] if found else None
    if isinstance(node, etree._Element):
        return node.sourceline
    parent = getattr(node, "getparent", lambda: None)()
    return parent.sourceline if parent is not None else None
