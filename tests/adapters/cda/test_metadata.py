from gateway.adapters.cda.metadata import extract
from gateway.adapters.cda.parser import parse
from tests.conftest import FIXTURES


def test_header_fields_of_the_crbio_fixture():
    doc, _ = parse((FIXTURES / "cda/crbio_glycemia.xml").read_bytes())
    f = extract(doc)
    assert f["document_id"] == "1.2.250.1.999.1.1.20261101.4711"
    assert f["set_id"] == "1.2.250.1.999.1.1.20261101.4711.set"
    assert f["version"] == 1 and f["action"] == "create" and f["replaces"] is None
    assert f["patient"].ins == "184127505612355"
    assert f["patient"].ins_system == "1.2.250.1.213.1.4.8"
    assert f["patient"].birth_date == "19841205"
    assert f["type_code"].code == "11502-2"
    assert [c.code for c in f["confidentiality"]] == ["N"]
    assert f["authors"][0].id == "810001234567"
    assert f["authors"][0].organisation.id == "1750000001"
    assert f["custodian"].id == "1750000001"
    assert f["service_start"] == "20261101071500+0100"
    assert f["facility_type_code"].code == "SA29"
    assert f["metadata"]["level"] == "3"
