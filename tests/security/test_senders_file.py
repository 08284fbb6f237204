"""The senders file: mistakes are ConfigErrors naming the sender; grants are exact."""

from __future__ import annotations

import pytest

from gateway.envelope import Code, Envelope, Party
from gateway.errors import ConfigError
from gateway.security.authorisation import authorise
from gateway.security.senders import hash_key, load

GOOD = f"""senders:
  - id: labo
    api_key_sha256: {hash_key("k1")}
    document_types: ["11502-2"]
    facilities: ["1750000001"]
"""


def write(tmp_path, text: str):
    path = tmp_path / "senders.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("senders: []", "non-empty 'senders' list"),
        ("senders: [{document_types: ['*'], facilities: ['*'], cert_cn: x}]", "needs an 'id'"),
        (
            "senders: [{id: a, document_types: ['*'], facilities: ['*']}]",
            "api_key_sha256 or cert_cn",
        ),
        (
            "senders: [{id: a, api_key_sha256: abc, document_types: ['*'], facilities: ['*']}]",
            "64 hex",
        ),
        ("senders: [{id: a, cert_cn: x, facilities: ['*']}]", "document_types must be"),
        (
            "senders: [{id: a, cert_cn: x, document_types: ['*'], facilities: ['*'], "
            "max_connections: 0}]",
            "max_connections",
        ),
        (
            "senders: [{id: a, cert_cn: x, document_types: ['*'], facilities: ['*']},"
            " {id: a, cert_cn: y, document_types: ['*'], facilities: ['*']}]",
            "unique",
        ),
    ],
)
def test_mistakes_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


def test_keys_match_only_their_sender(tmp_path):
    registry = load(write(tmp_path, GOOD))
    assert registry.by_api_key("k1").id == "labo"
    assert registry.by_api_key("k2") is None
    assert registry.by_cert_cn("labo") is None


def envelope(type_code: str, custodian: str) -> Envelope:
    return Envelope(
        document_id="1",
        source_kind="cda",
        content_type="x",
        sha256="",
        size=0,
        sender="labo",
        received_at="",
        trace_id="",
        type_code=Code(type_code),
        custodian=Party(id=custodian),
    )


def test_grants_are_checked_on_type_then_facility(tmp_path):
    labo = load(write(tmp_path, GOOD)).get("labo")
    assert authorise(labo, envelope("11502-2", "1750000001")) is None
    assert authorise(labo, envelope("60591-5", "1750000001")).rule == "auth.document-type"
    assert authorise(labo, envelope("11502-2", "1234")).rule == "auth.facility"


def test_a_signing_subject_is_read_as_a_certificate_subject(tmp_path):
    text = GOOD + '    signing_subject: "CN=Labo signature,O=Laboratoire des Tilleuls,C=FR"\n'
    labo = load(write(tmp_path, text)).get("labo")
    assert str(labo.signing_identity) == "CN=Labo signature,O=Laboratoire des Tilleuls,C=FR"
    bad = GOOD + '    signing_subject: "Labo Tilleuls"\n'
    with pytest.raises(ConfigError, match="sender #1: signing_subject: not an RFC 4514"):
        load(write(tmp_path, bad))


def test_a_sender_that_must_sign_needs_a_signing_subject(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"labo must sign .* no signing_subject"):
        load(path, must_sign=lambda sender: sender == "labo")
    assert load(path, must_sign=lambda sender: False).get("labo").signing_identity is None
    bound = GOOD + '    signing_subject: "CN=Labo signature,O=Laboratoire des Tilleuls,C=FR"\n'
    assert load(write(tmp_path, bound), must_sign=lambda sender: True).get("labo")
