"""Loading an ANS CI-SIS conformance pack and checking what it references.

The pack (layout of ``infrastructure/``, ``schematrons/``, ``jeuxDeValeurs/``) is published with
defects: includes written for a case-insensitive file system, includes of files that do not
exist, and value sets read from files it does not ship. Loading finds every reference, resolves
letter case, supplies a missing ``voc-<oid>-DYNAMIC.xml`` from the SVS file of the same value
set, and lists what stays missing, so the layers that can run do and the rest is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lxml import etree

from gateway.conformance import pack_xml, svs
from gateway.errors import ConfigError

SCH = "http://purl.oclc.org/dsdl/schematron"
XSD = Path("infrastructure/cda/CDA_extended.xsd")
SCHEMATRONS = Path("schematrons")
VALUE_SETS = Path("jeuxDeValeurs")
ENGINE = SCHEMATRONS / "moteur"
# The profile layers every document goes through, in the national tool's order.
PROFILES: tuple[tuple[str, Path], ...] = (
    ("structurationMinimale", Path("profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch")),
    ("IHE", Path("profils/IHE.sch")),
    ("ModelesDeContenusCDA", Path("profils/CI-SIS_ModelesDeContenusCDA.sch")),
    ("Modeles_ANS", Path("profils/CI-SIS_Modeles_ANS.sch")),
    ("terminologies", Path("profils/terminologies/schematron/terminologie.sch")),
)
_MODEL_FILE = re.compile(r"^CI-SIS_(?P<model>.+)_(?P<version>\d{4}\.\d{2})\.sch$")
_LITERAL_FILE = re.compile(r"'([^' ()$]+\.xml)'")
_MODEL_ROOT = re.compile(
    r"templateId\[@root\s*=\s*[\"'](1\.2\.250\.1\.213\.1\.1\.1\.[0-9.]*[0-9])[\"']"
)
_MODEL_ROOT_LOOSE = re.compile(
    r"templateId[^\"'\n]{0,12}[\"'](1\.2\.250\.1\.213\.1\.1\.1\.[0-9.]*[0-9])[\"']"
)
_GENERIC_ROOTS = {"1.2.250.1.213.1.1.1.1"}  # the CI-SIS header template, in every model


@dataclass(frozen=True, slots=True)
class Reference:
    """A file named by a schematron: an ``include`` or a value set read with doc()."""

    kind: str  # "include" or "value-set"
    href: str  # as written
    source: Path  # the file that names it
    resolved: Path | None  # the file it means, None when absent
    case_fixed: bool = False  # found only by ignoring letter case
    substitute: Path | None = None  # SVS file supplying a missing value set

    @property
    def missing(self) -> bool:
        return self.resolved is None and self.substitute is None


@dataclass(frozen=True)
class Schematron:
    """One schematron layer: a profile, or a document model (name, version, templateIds)."""

    layer: str
    path: Path
    pack_root: Path
    model_roots: frozenset[str] = frozenset()
    version: str | None = None

    @cached_property
    def references(self) -> tuple[Reference, ...]:
        return tuple(_references(self.path, self.pack_root))

    @cached_property
    def missing(self) -> tuple[Reference, ...]:
        """Asked at every validation (each layer's notes, each model version): kept."""
        return tuple(r for r in self.references if r.missing)


@dataclass(frozen=True)
class Pack:
    root: Path
    xsd: Path | None
    profiles: tuple[Schematron, ...]
    models: tuple[Schematron, ...]
    fingerprint: str = field(compare=False)

    @property
    def schematrons(self) -> tuple[Schematron, ...]:
        return self.profiles + self.models

    def model_for(self, template_ids: list[tuple[str, str | None]]) -> Schematron | None:
        """The model schematron for a document's templateIds (root, extension).

        The most specific model whose templateIds the document declares; among its versions,
        the one the document names in the templateId extension, else the oldest (documents
        without a version extension predate versioned models).
        """
        roots = {r for r, _ in template_ids}
        candidates = [m for m in self.models if m.model_roots and m.model_roots <= roots]
        if not candidates:
            return None
        best = max(len(m.model_roots) for m in candidates)
        candidates = [m for m in candidates if len(m.model_roots) == best]
        named = {ext for root, ext in template_ids if ext and root in candidates[0].model_roots}
        exact = [m for m in candidates if m.version in named]
        return (exact or sorted(candidates, key=lambda m: m.version or ""))[0]


def load(root: Path) -> Pack:
    """Read a pack's layout; ConfigError when ``root`` is not a pack at all."""
    root = Path(root).resolve()
    if not (root / SCHEMATRONS).is_dir() or not (root / ENGINE).is_dir():
        raise ConfigError(
            f"{root} is not a CI-SIS conformance pack (no schematrons/ and schematrons/moteur/)"
        )
    xsd = root / XSD if (root / XSD).is_file() else None
    profiles = tuple(
        Schematron(name, root / SCHEMATRONS / rel, root)
        for name, rel in PROFILES
        if (root / SCHEMATRONS / rel).is_file()
    )
    models = []
    for path in sorted((root / SCHEMATRONS).glob("CI-SIS_*.sch")):
        m = _MODEL_FILE.match(path.name)
        if m:
            models.append(
                Schematron(
                    f"model:{m['model']}_{m['version']}",
                    path,
                    root,
                    model_roots=_model_roots(path),
                    version=m["version"],
                )
            )
    return Pack(root, xsd, profiles, _inherit_roots(models), fingerprint(root))


def _inherit_roots(models: list[Schematron]) -> tuple[Schematron, ...]:
    """A version whose header file is absent takes its templateIds from the model's others."""
    by_model: dict[str, frozenset[str]] = {}
    for m in models:
        by_model[m.layer.rsplit("_", 1)[0]] = (
            by_model.get(m.layer.rsplit("_", 1)[0], frozenset()) | m.model_roots
        )
    return tuple(
        m
        if m.model_roots
        else dataclasses.replace(m, model_roots=by_model[m.layer.rsplit("_", 1)[0]])
        for m in models
    )


def fingerprint(root: Path) -> str:
    """Changes when any file of the pack changes (name, size or time): the cache key."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def resolve(base: Path, href: str) -> tuple[Path | None, bool]:
    """``href`` relative to ``base``: (file, found only by ignoring case) or (None, False)."""
    exact = (base / href).resolve()
    if exact.is_file():
        return exact, False
    current = base.resolve()
    for part in Path(href).parts:
        if part in (".", ""):
            continue
        if part == "..":
            current = current.parent
            continue
        if not current.is_dir():
            return None, False
        match = next((c for c in current.iterdir() if c.name.lower() == part.lower()), None)
        if match is None:
            return None, False
        current = match
    return (current, True) if current.is_file() else (None, False)


def _parse(path: Path) -> etree._ElementTree | None:
    try:
        return pack_xml.parse(path)
    except (OSError, etree.XMLSyntaxError):
        return None


def _references(main: Path, pack_root: Path) -> list[Reference]:
    """Every include (recursively) and value-set file the schematron ``main`` names."""
    out: list[Reference] = []
    seen_files: set[Path] = set()
    seen_literals: set[str] = set()
    value_sets = _value_set_index(pack_root)

    def visit(path: Path) -> None:
        if path in seen_files:
            return
        seen_files.add(path)
        tree = _parse(path)
        if tree is None:
            return
        for inc in tree.iter(f"{{{SCH}}}include"):
            href = inc.get("href", "")
            target, case_fixed = resolve(path.parent, href)
            out.append(Reference("include", href, path, target, case_fixed))
            if target is not None:
                visit(target)
        for literal in _LITERAL_FILE.findall(path.read_text(encoding="utf-8", errors="replace")):
            if literal in seen_literals:
                continue
            seen_literals.add(literal)
            # doc() resolves against the compiled stylesheet, which sits beside ``main``.
            target, case_fixed = resolve(main.parent, literal)
            substitute = None
            if target is None and (m := svs.VOC_REFERENCE.search(literal)):
                substitute = value_sets.get(m["oid"])
            out.append(Reference("value-set", literal, path, target, case_fixed, substitute))

    visit(main)
    return out


_VALUE_SET_INDEXES: dict[Path, dict[str, Path]] = {}


def _value_set_index(pack_root: Path) -> dict[str, Path]:
    """OID → SVS file, for the pack's jeuxDeValeurs/ (read once per pack directory)."""
    key = pack_root.resolve()
    if key not in _VALUE_SET_INDEXES:
        index: dict[str, Path] = {}
        for path in sorted((pack_root / VALUE_SETS).glob("*.xml")):
            oid = svs.value_set_id(path)
            if oid:
                index.setdefault(oid, path)
        _VALUE_SET_INDEXES[key] = index
    return _VALUE_SET_INDEXES[key]


def _model_roots(path: Path) -> frozenset[str]:
    """The model templateIds a model schematron checks, from it and its header (Entete) files."""
    texts = [path.read_text(encoding="utf-8", errors="replace")]
    tree = _parse(path)
    if tree is not None:
        for inc in tree.iter(f"{{{SCH}}}include"):
            href = inc.get("href", "")
            if "entete" in href.lower():
                target, _ = resolve(path.parent, href)
                if target is not None:
                    texts.append(target.read_text(encoding="utf-8", errors="replace"))
    roots = {r for text in texts for r in _MODEL_ROOT.findall(text)} - _GENERIC_ROOTS
    if not roots:
        roots = {r for text in texts for r in _MODEL_ROOT_LOOSE.findall(text)} - _GENERIC_ROOTS
    # A model names its parent template too (CSE-CS8 → 1.2.250.1.213.1.1.1.5 and .5.1): keep both.
    return frozenset(roots)
