"""`gateway sign`, `gateway verify`, `gateway keys rotate`: files, keys and exit codes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from gateway.cli import main
from tests.signing.pki import issue


@pytest.fixture
def keys(tmp_path, monkeypatch):
    directory = tmp_path / "keys"
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(directory))
    for name in ("GATEWAY_SIGNING_P12", "GATEWAY_TRUST_STORE", "GATEWAY_VERIFY_CERTS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["keys", "init", "--algorithm", "ecdsa"]) == 0
    return directory


@pytest.fixture
def document(tmp_path, cda):
    path = tmp_path / "report.xml"
    path.write_bytes(cda)
    return path


def test_sign_then_verify_exits_0(keys, document, capsys):
    assert main(["sign", str(document)]) == 0
    assert (document.parent / "report.xml.xades.xml").is_file()
    assert main(["verify", str(document)]) == 0
    assert "valid (key " in capsys.readouterr().out


def test_one_byte_changed_after_signing_exits_1_naming_the_rule(keys, document, capsys):
    main(["sign", str(document)])
    data = bytearray(document.read_bytes())
    data[500] ^= 0x20
    document.write_bytes(bytes(data))
    assert main(["verify", str(document)]) == 1
    assert "INVALID signature.digest" in capsys.readouterr().out


def test_missing_files_and_keys_are_usage_errors(tmp_path, keys, document, monkeypatch):
    assert main(["verify", str(document)]) == 2  # no signature beside it
    assert main(["sign", str(tmp_path / "absent.xml")]) == 2
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "empty"))
    assert main(["sign", str(document)]) == 2


def test_rotation_old_signatures_still_verify_until_their_key_is_dropped(keys, document, tmp_path):
    old_sig, new_sig = tmp_path / "old.xml", tmp_path / "new.xml"
    main(["sign", str(document), "--out", str(old_sig)])
    assert main(["keys", "rotate"]) == 0
    main(["sign", str(document), "--out", str(new_sig)])
    assert old_sig.read_text() != new_sig.read_text()
    assert main(["verify", str(document), "--signature", str(old_sig)]) == 0
    assert main(["verify", str(document), "--signature", str(new_sig)]) == 0
    for retired in (keys / "previous").iterdir():
        retired.unlink()
    assert main(["verify", str(document), "--signature", str(old_sig)]) == 1


def test_pkcs12_keystore(tmp_path, document, monkeypatch):
    issued = issue("p12 gateway", algorithm="rsa")
    p12 = tmp_path / "gateway.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"gw", issued.key, issued.cert, None, BestAvailableEncryption(b"s3cret")
        )
    )
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "unused"))
    monkeypatch.setenv("GATEWAY_SIGNING_P12", str(p12))
    monkeypatch.setenv("GATEWAY_SIGNING_PASSWORD", "s3cret")
    assert main(["sign", str(document)]) == 0
    assert main(["verify", str(document)]) == 0
    monkeypatch.setenv("GATEWAY_SIGNING_PASSWORD", "wrong")
    assert main(["sign", str(document)]) == 2


def test_sender_signature_against_a_trust_store(tmp_path, document, sender_ca, monkeypatch):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(sender_ca.pem())
    leaf = issue("Laboratoire", sender_ca)
    for name, issued in (("trusted", leaf), ("rogue", issue("self-signed"))):
        (tmp_path / f"{name}.key").write_bytes(issued.key_pem())
        (tmp_path / f"{name}.pem").write_bytes(issued.pem())
        monkeypatch.setenv("GATEWAY_SIGNING_KEY", str(tmp_path / f"{name}.key"))
        monkeypatch.setenv("GATEWAY_SIGNING_CERT", str(tmp_path / f"{name}.pem"))
        main(["sign", str(document), "--out", str(tmp_path / f"{name}.sig")])
    check = ["verify", str(document), "--trust-store", str(bundle), "--signature"]
    assert main([*check, str(tmp_path / "trusted.sig")]) == 0
    assert main([*check, str(tmp_path / "rogue.sig")]) == 1


@pytest.mark.parametrize("command", [["sign"], ["verify"], ["keys", "rotate"]])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "examples:" in capsys.readouterr().out
