"""`gateway sign DIR` and `gateway verify DIR`: the documents of a directory, not the
signatures written beside them."""

from __future__ import annotations

import pytest

from gateway.cli import main
from gateway.cli._common import expand
from tests.conftest import FIXTURES


@pytest.fixture
def keys(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    for name in ("GATEWAY_SIGNING_P12", "GATEWAY_TRUST_STORE", "GATEWAY_VERIFY_CERTS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["keys", "init", "--algorithm", "ecdsa"]) == 0


@pytest.fixture
def outbox(tmp_path):
    directory = tmp_path / "outbox"
    (directory / "sub").mkdir(parents=True)
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    (directory / "a.xml").write_bytes(cda)
    (directory / "sub" / "b.xml").write_bytes(cda)
    return directory


def test_signing_a_directory_twice_signs_its_documents_not_their_signatures(keys, outbox):
    assert main(["sign", str(outbox)]) == 0
    assert main(["sign", str(outbox)]) == 0  # again: the same two signatures, rewritten
    names = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())
    assert names == ["a.xml", "a.xml.xades.xml", "sub/b.xml", "sub/b.xml.xades.xml"]


def test_verifying_a_directory_of_signed_documents_checks_each_document(keys, outbox, capsys):
    assert main(["sign", str(outbox)]) == 0
    capsys.readouterr()
    assert main(["verify", str(outbox)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in out] == [
        str(outbox / "a.xml"),
        str(outbox / "sub" / "b.xml"),
    ]
    assert all(": valid (key " in line for line in out)


def test_only_directories_leave_signatures_out(outbox):
    signature = outbox / "a.xml.xades.xml"
    signature.write_text("<sig/>")
    assert [p for _, p in expand([str(outbox)], skip_suffix=".xades.xml")] == [
        outbox / "a.xml",
        outbox / "sub" / "b.xml",
    ]
    assert [p for _, p in expand([str(signature)], skip_suffix=".xades.xml")] == [signature]
    assert signature in [p for _, p in expand([str(outbox)])]  # validate, send: every file
