"""Pack tier against ../shared/cisis: the national layers run, the pack's defects are handled,
and the built-in INS check still runs. The pack is compiled once per session (≈30 s)."""

from pathlib import Path

import pytest
from lxml import etree

from gateway.adapters.cda.parser import parse
from gateway.adapters.hl7v2 import crbio
from gateway.adapters.hl7v2 import parser as hl7v2_parser
from gateway.bootstrap import load_checks
from gateway.config import Settings
from gateway.conformance import documents, pack, schematron, shared_bodies, visit
from gateway.conformance.validator import PackValidator
from gateway.findings import Report
from gateway.validators.cda import BUILT_IN, CdaValidator
from tests.conftest import FIXTURES
from tests.validators.cda_mutations import CRBIO, mutate, set_attr, swap_with_next

pytestmark = pytest.mark.shared
CORPUS = "corpus/cda"


@pytest.fixture(scope="session")
def pack_validator(shared) -> CdaValidator:
    layer = PackValidator(pack.load(shared / "cisis"))
    assert layer.warm_up() == []
    return CdaValidator(layers=(*BUILT_IN, layer))


def judge(validator: CdaValidator, raw: bytes) -> Report:
    doc, findings = parse(raw)
    assert doc is not None, findings
    return Report.of(validator.validate(doc))


@pytest.mark.parametrize(
    "name",
    [
        "BIO-CR-BIO_2024.01_TSH_1.xml",  # CR-BIO without a version extension
        "BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.xml",  # wrapped in XSLT
        "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",  # level 1, replacement
        "LDL-SES_2022.01.xml",
    ],
)
def test_patient_documents_are_accepted_by_every_layer(pack_validator, shared, name):
    report = judge(pack_validator, (shared / CORPUS / name).read_bytes())
    assert report.valid, [f.to_dict() for f in report.errors]
    layers = {f.layer for f in report.findings}
    assert not any(
        f.rule in {"pack.layer-failed", "pack.layer-unavailable"} for f in report.findings
    ), layers


def test_model_rules_absent_from_the_pack_are_reported_not_judged(pack_validator, shared):
    report = judge(
        pack_validator, (shared / CORPUS / "BIO-CR-BIO_2023.01_Electrophorese.xml").read_bytes()
    )
    assert report.valid
    [note] = [f for f in report.findings if f.rule == "pack.model-unavailable"]
    assert note.layer == "pack:model:BIO-CR-BIO_2023.01" and "unavailable" in note.message


@pytest.mark.parametrize(
    "name", ["CANCER-FRCP_2022.01_Appareil.xml", "TLM-DA_2022.01_TCG_anamnèse-non-structurée.xml"]
)
def test_documents_the_national_tool_rejects_are_rejected_with_its_rule(
    pack_validator, shared, name
):
    raw = (shared / CORPUS / name).read_bytes()
    report = judge(pack_validator, raw)
    [err] = report.errors
    assert err.layer == "pack:ModelesDeContenusCDA" and err.rule == "JDV_assignedAuthorCode"
    assert err.location.endswith("/author/assignedAuthor/code") and err.line
    assert raw.decode().splitlines()[err.line - 1].strip().startswith("<code")


def test_the_built_in_ins_check_runs_in_pack_mode(pack_validator, shared):
    report = judge(pack_validator, (shared / CORPUS / "OBP-SNE_2024.01.xml").read_bytes())
    assert [f.rule for f in report.errors] == ["ins.nir-key"]


def test_elements_out_of_order_are_rejected_by_the_schema_with_a_line(pack_validator):
    raw = mutate(CRBIO, swap_with_next("h:title"))  # title after effectiveTime
    report = judge(pack_validator, raw)
    xsd = [f for f in report.errors if f.layer == "pack:xsd"]
    assert xsd and xsd[0].rule == "pack.xsd" and xsd[0].line
    assert "effectiveTime" in xsd[0].message or "title" in xsd[0].message


def test_the_schemas_findings_withhold_the_value_they_refuse(pack_validator):
    """libxml2 quotes the refused value: a birth date must not travel in the finding."""
    raw = CRBIO.read_bytes().replace(
        b'<birthTime value="19841205"/>', b'<birthTime value="1984-12-05"/>'
    )
    report = judge(pack_validator, raw)
    xsd = [f for f in report.errors if f.layer == "pack:xsd"]
    assert xsd and all("1984" not in f.message for f in xsd)


def test_a_broken_pack_never_rejects_nor_crashes(tmp_path, shared):
    """A profile schematron including a missing file and reading a missing value set."""
    root = tmp_path / "pack"
    (root / "schematrons/profils").mkdir(parents=True)
    (root / "schematrons/moteur").symlink_to(shared / "cisis/schematrons/moteur")
    (root / "schematrons/profils/IHE.sch").write_text(
        """<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">
  <ns prefix="cda" uri="urn:hl7-org:v3"/>
  <include href="../include/absent.sch"/>
  <pattern id="reads-a-missing-file">
    <rule context="cda:ClinicalDocument">
      <assert id="needs-doc" test="doc('../jeuxDeValeurs/absent.xml')">never reached</assert>
    </rule>
  </pattern>
</schema>"""
    )
    loaded = pack.load(root)
    [ihe] = loaded.profiles
    assert sorted(r.href for r in ihe.missing) == [
        "../include/absent.sch",
        "../jeuxDeValeurs/absent.xml",
    ]
    validator = CdaValidator(layers=(*BUILT_IN, PackValidator(loaded)))
    report = judge(validator, CRBIO.read_bytes())
    assert report.valid
    rules = {f.rule for f in report.findings}
    ihe = {f.rule for f in report.findings if f.layer == "pack:IHE"}
    assert ihe == {"pack.rules-unavailable"}  # ran without the missing files, said so
    assert "pack.layer-unavailable" in {f.rule for f in report.findings if f.layer == "pack:xsd"}
    assert "pack.model-unknown" in rules


def test_missing_value_set_is_supplied_from_its_svs_form(shared):
    loaded = pack.load(shared / "cisis")
    [strucmin] = [s for s in loaded.profiles if s.layer == "structurationMinimale"]
    [ref] = [r for r in strucmin.references if r.href.endswith("5.471-DYNAMIC.xml")]
    assert ref.resolved is None and ref.substitute.name == "JDV_J07_XdsTypeCode_CISIS.xml"
    assert not ref.missing


def test_two_validations_give_the_same_findings_with_the_same_compiled_layers(
    pack_validator, shared
):
    layer = pack_validator.layers[-1]
    raw = (shared / CORPUS / "CANCER-FRCP_2022.01_Appareil.xml").read_bytes()
    units = [schematron.compiled(layer.pack, s) for s in layer.pack.profiles]
    first, second = judge(pack_validator, raw), judge(pack_validator, raw)
    assert first.findings == second.findings and first.errors
    assert [schematron.compiled(layer.pack, s) for s in layer.pack.profiles] == units
    again = [schematron.compiled(layer.pack, s) for s in layer.pack.profiles]
    assert all(a.executable is b.executable for a, b in zip(units, again, strict=True))


@pytest.mark.parametrize("layer_name", ["IHE", "ModelesDeContenusCDA", "Modeles_ANS"])
def test_visiting_only_matched_nodes_gives_the_skeletons_findings(
    pack_validator, shared, layer_name
):
    """The rewritten stylesheet against the ISO skeleton's own walk, on accepted and rejected
    documents and on a mutation."""
    loaded = pack_validator.layers[-1].pack
    [sch] = [s for s in loaded.profiles if s.layer == layer_name]
    walk = schematron.Compiled(
        sch, schematron._compile_text(schematron._stylesheet(loaded, sch, None), sch)
    )
    fast = schematron.compiled(loaded, sch)
    skeleton = schematron._stylesheet(loaded, sch, None)
    walks = skeleton.count('select="/" mode="M')
    assert walks > 10 and visit.rewrite(skeleton).count('select="/" mode="M') <= walks // 10
    raws = [
        (shared / CORPUS / name).read_bytes()
        for name in ["CANCER-FRCP_2022.01_Appareil.xml", "LDL-SES_2022.01.xml"]
    ] + [CRBIO.read_bytes(), mutate(CRBIO, swap_with_next("h:title"))]
    for raw in raws:
        doc, _ = parse(raw)
        node = schematron.source(etree.tostring(doc.root, encoding="unicode"))
        assert schematron.run(fast, node, doc.root) == schematron.run(walk, node, doc.root)


CIM_10 = "2.16.840.1.113883.6.3"  # a 1.6 MB terminology of the pack's folder


@pytest.mark.parametrize(
    ("layer_name", "broken"),
    [
        (
            "structurationMinimale",
            [
                (CRBIO, set_attr("/h:ClinicalDocument/h:confidentialityCode", "code", "Z")),
                # the ST checks of an address part: one body that 336 rules share
                (CRBIO, set_attr("//h:patientRole/h:addr/h:streetAddressLine", "compression", "B")),
            ],
        ),
        (
            "terminologies",
            [
                (CRBIO, set_attr("(//h:value[@unit])[1]", "unit", "furlong")),
                (
                    CORPUS + "/AVC-EUNV_2022.01.xml",
                    set_attr(f"(//*[@codeSystem='{CIM_10}'])[1]", "code", "ZZZ.99"),
                ),
            ],
        ),
    ],
)
def test_held_documents_and_shared_first_steps_give_the_skeletons_findings(
    pack_validator, shared, layer_name, broken
):
    """The layers whose rules read value sets and terminologies: documents held in memory,
    text lookups in them by xsl:key, ``//A[p]`` first steps evaluated once and rule bodies
    written once, against the skeleton reading from disk each run. Each mutation is found by
    the layer."""
    loaded = pack_validator.layers[-1].pack
    [sch] = [s for s in loaded.profiles if s.layer == layer_name]
    skeleton = schematron._stylesheet(loaded, sch, None)
    walk = schematron.Compiled(sch, schematron._compile_text(skeleton, sch))
    fast = schematron.compiled(loaded, sch)
    rewritten = documents.rewrite(visit.rewrite(skeleton), sch.path.parent)
    assert documents.wanted_in(rewritten) != documents.Wanted()
    if layer_name == "structurationMinimale":  # 448 rule templates call 23 bodies
        assert shared_bodies.rewrite(rewritten).count(f'name="{shared_bodies.NAME}') > 400
    assert "<svrl:fired-rule" in skeleton and "<svrl:fired-rule" not in rewritten
    if layer_name == "terminologies":  # code and unit lookups in the held terminologies
        assert rewritten.count("key('passerelle-text-") > 10

    def findings(raw: bytes) -> list:
        doc, _ = parse(raw)
        node = schematron.source(etree.tostring(doc.root, encoding="unicode"))
        found = schematron.run(fast, node, doc.root)
        assert found == schematron.run(walk, node, doc.root)
        return found

    for name in ["BIO-CR-BIO_2024.01_TSH_1.xml", "LDL-SES_2022.01.xml", "AVC-EUNV_2022.01.xml"]:
        findings((shared / CORPUS / name).read_bytes())
    findings(CRBIO.read_bytes())
    for source, mutation in broken:
        path = source if isinstance(source, Path) else shared / source
        assert findings(mutate(path, mutation))


def test_generated_stylesheets_are_kept_for_the_next_process(shared, tmp_path, monkeypatch):
    loaded = pack.load(shared / "cisis")
    [sch] = [s for s in loaded.profiles if s.layer == "terminologies"]
    monkeypatch.delitem(schematron._CACHE, (sch.path, loaded.fingerprint), raising=False)
    schematron.compiled(loaded, sch, tmp_path)
    [kept] = (tmp_path / loaded.fingerprint).glob("*.xsl")
    # A new process: nothing in memory, and the pack's skeleton is not run again.
    monkeypatch.delitem(schematron._CACHE, (sch.path, loaded.fingerprint))
    monkeypatch.setattr(schematron, "_stylesheet", lambda *a: pytest.fail("regenerated"))
    unit = schematron.compiled(loaded, sch, tmp_path)
    doc, _ = parse(CRBIO.read_bytes())
    node = schematron.source(etree.tostring(doc.root, encoding="unicode"))
    assert schematron.run(unit, node, doc.root) == []
    assert 'select="/" mode="M' not in kept.read_text()


def test_a_torn_stored_stylesheet_is_made_again_not_trusted(shared, tmp_path, monkeypatch):
    """A stored text that does not compile (a torn write, a bad copy) switched the layer off
    for good, and documents the pack rejects were accepted: it is made again from the pack."""
    loaded = pack.load(shared / "cisis")
    [sch] = [s for s in loaded.profiles if s.layer == "terminologies"]
    monkeypatch.delitem(schematron._CACHE, (sch.path, loaded.fingerprint), raising=False)
    schematron.compiled(loaded, sch, tmp_path)
    [kept] = (tmp_path / loaded.fingerprint).glob("*.xsl")
    whole = kept.read_text()
    kept.write_text(whole[: len(whole) // 2])  # torn
    monkeypatch.delitem(schematron._CACHE, (sch.path, loaded.fingerprint))
    unit = schematron.compiled(loaded, sch, tmp_path)  # a new process: no CompileError
    doc, _ = parse(CRBIO.read_bytes())
    node = schematron.source(etree.tostring(doc.root, encoding="unicode"))
    assert schematron.run(unit, node, doc.root) == []
    assert kept.read_text() == whole  # stored again, whole


def test_the_pack_is_compiled_when_the_gateway_loads_its_checks(shared, tmp_path, monkeypatch):
    """At start (each pipeline worker runs load_checks too), into GATEWAY_DATA_DIR."""
    compiled, asked = schematron.compiled, []
    monkeypatch.setattr(
        schematron, "compiled", lambda p, s, d=None: asked.append((s.layer, d)) or compiled(p, s, d)
    )
    settings = Settings.from_env(
        {"GATEWAY_CONFORMANCE_PACK": str(shared / "cisis"), "GATEWAY_DATA_DIR": str(tmp_path)}
    )
    checks = load_checks(settings)
    profiles = checks.cda_validator.layers[-1].pack.profiles
    assert asked == [(s.layer, tmp_path / "conformance") for s in profiles]


# --- CR-BIO converted from raw HL7v2 lab results (gateway.adapters.hl7v2.crbio) ------------

ORU = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
LAB = crbio.Laboratory(
    structure_id="10000000000",
    director=crbio.Person("10000000001", "MARTIN", "Louise", "G15_10/SM03", "Médecin biologiste"),
)
# pack files the rules refer to but that the pack does not ship: reported, not judged
PACK_GAPS = {"pack.rules-unavailable"}


def converted(raw: bytes, lab: crbio.Laboratory | None = LAB) -> bytes:
    msg, findings = hl7v2_parser.parse(raw)
    assert msg is not None, findings
    xml, conversion = crbio.convert(msg, "lab-sender", "1.2.250.1.999.7.1", lab)
    assert Report.of(conversion).valid, conversion
    return xml


def thirty_results(raw: bytes = ORU, count: int = 30) -> bytes:
    segments = [s for s in raw.split(b"\r") if s]
    results = [s for s in segments if s.startswith(b"OBX|")]
    obx = [
        b"OBX|%d|" % i + results[(i - 1) % len(results)].split(b"|", 2)[2]
        for i in range(1, count + 1)
    ]
    return b"\r".join([s for s in segments if not s.startswith(b"OBX|")] + obx) + b"\r"


@pytest.mark.parametrize("raw", [ORU, thirty_results()], ids=["fixture", "30-obx"])
def test_converted_crbio_passes_every_pack_layer(pack_validator, raw):
    report = judge(pack_validator, converted(raw))
    assert not report.errors, [f.to_dict() for f in report.errors]
    assert {f.rule for f in report.findings} <= PACK_GAPS, [f.to_dict() for f in report.findings]


def test_preliminary_then_final_versions_both_pass_the_pack(pack_validator):
    prelim = ORU.replace(b"|||F", b"|||P").replace(b"20261101093000", b"20261101080000")
    prelim = prelim.replace(b"LAB-000001", b"LAB-000000")
    docs = [converted(prelim), converted(ORU)]
    for xml in docs:
        assert not judge(pack_validator, xml).errors
    ns = {"h": "urn:hl7-org:v3"}
    roots = [etree.fromstring(xml) for xml in docs]
    assert len({r.xpath("string(h:setId/@root)", namespaces=ns) for r in roots}) == 1
    prelim_v, final_v = (
        int(r.xpath("string(h:versionNumber/@value)", namespaces=ns)) for r in roots
    )
    assert 1 <= prelim_v < final_v
    assert roots[0].xpath("string(//h:entry/h:act/h:statusCode/@code)", namespaces=ns) == "active"


def test_a_result_interpreter_in_obr_32_is_the_legal_authenticator(pack_validator):
    """OBR-32 names the biologist, MSH-4.2 the laboratory's national id. HL7v2 carries no
    profession code: the biologist's code is unknown (nullFlavor, accepted for legalAuthenticator
    and responsibleParty) and the author is the laboratory system, as an author person needs one."""
    raw = ORU.replace(b"LABO-TILLEULS|PASSERELLE", b"LABO-TILLEULS^10000000000|PASSERELLE")
    fields = raw.split(b"\rOBR|", 1)[1].split(b"\r", 1)[0].split(b"|")
    fields += [b""] * (32 - len(fields))
    fields[31] = b"10000000002&PETIT&Jean"  # OBR-32
    raw = raw.replace(b"\rOBR|" + raw.split(b"\rOBR|", 1)[1].split(b"\r", 1)[0],
                      b"\rOBR|" + b"|".join(fields))  # fmt: skip
    xml = converted(raw, lab=None)
    assert not judge(pack_validator, xml).errors
    root = etree.fromstring(xml)
    ns = {"h": "urn:hl7-org:v3"}
    assert root.xpath("string(h:legalAuthenticator/h:assignedEntity/h:id/@extension)",
                      namespaces=ns) == "10000000002"  # fmt: skip
    assert root.find("h:author/h:assignedAuthor/h:assignedAuthoringDevice", ns) is not None


def test_without_a_biologist_nor_a_structure_id_the_pack_names_what_hl7v2_lacks(pack_validator):
    """The fixture names no interpreter (OBR-32, OBX-16) and MSH-4 has no national id: with no
    laboratory configured the laboratory itself is legal authenticator, and the national rules
    that need a person and a FINESS/SIRET-based id are the only ones that fail."""
    xml = converted(ORU, lab=None)
    root = etree.fromstring(xml)
    assert root.find("{urn:hl7-org:v3}legalAuthenticator") is not None
    failed = {(f.layer, f.rule, f.location) for f in judge(pack_validator, xml).errors}
    custodian = "/ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization/id"
    header = "template-1.2.250.1.213.1.1.1.1-2017-12-13T103531"  # StructurationMinimale header
    assert failed == {
        ("pack:structurationMinimale", header, custodian),
        ("pack:structurationMinimale", header,
         "/ClinicalDocument/componentOf/encompassingEncounter/responsibleParty"),
        ("pack:model:BIO-CR-BIO_2024.01", "Entete_CR-BIO",
         "/ClinicalDocument/documentationOf/serviceEvent/performer"),
        ("pack:model:BIO-CR-BIO_2024.01", "Entete_CR-BIO",
         "/ClinicalDocument/componentOf/encompassingEncounter"),
    }  # fmt: skip
