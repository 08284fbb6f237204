"""The configured laboratory (GATEWAY_LAB_STRUCTURE_ID, GATEWAY_LAB_DIRECTOR) reaches the CR-BIO
conversion: the director becomes legal authenticator when the message names no biologist."""

import pytest
from lxml import etree

from gateway import pipeline
from gateway.bootstrap import load_checks
from gateway.config import Settings
from gateway.document import Document
from gateway.errors import ConfigError
from gateway.submission import Submission
from tests.conftest import FIXTURES

ORU = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
NS = {"h": "urn:hl7-org:v3"}
DIRECTOR = "10000000001^MARTIN^Louise^G15_10/SM03^Médecin - Biologie médicale (SM)"


def legal_authenticator(env: dict[str, str]) -> etree._Element:
    checks = load_checks(Settings.from_env(env))
    doc = pipeline.read(Submission(raw=ORU, transport="cli", sender="lab"), checks)
    assert isinstance(doc, Document), doc
    return etree.fromstring(doc.payload).find("h:legalAuthenticator/h:assignedEntity", NS)


def test_configured_director_and_structure_id_fill_what_the_message_lacks():
    entity = legal_authenticator(
        {"GATEWAY_LAB_DIRECTOR": DIRECTOR, "GATEWAY_LAB_STRUCTURE_ID": "10000000000"}
    )
    assert entity.find("h:id", NS).get("extension") == "10000000001"
    assert entity.find("h:code", NS).get("code") == "G15_10/SM03"
    org = entity.find("h:representedOrganization/h:id", NS)
    assert (org.get("root"), org.get("extension")) == ("1.2.250.1.71.4.2.2", "10000000000")


def test_without_configuration_the_laboratory_is_the_legal_authenticator():
    entity = legal_authenticator({})
    assert entity.find("h:assignedPerson", NS) is None
    assert entity.find("h:representedOrganization/h:name", NS).text == "LABO-TILLEULS"


@pytest.mark.parametrize("value", ["10000000001", "10000000001^MARTIN^Louise"])
def test_a_director_without_name_or_profession_is_a_configuration_error(value):
    with pytest.raises(ConfigError, match="GATEWAY_LAB_DIRECTOR"):
        Settings.from_env({"GATEWAY_LAB_DIRECTOR": value})
