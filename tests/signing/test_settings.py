"""Signing settings from the environment."""

from pathlib import Path

from gateway.config import Settings


def test_signing_defaults_live_in_the_keys_directory(tmp_path):
    s = Settings.from_env({"GATEWAY_KEYS_DIR": "k"}, root=tmp_path)
    assert (s.signing_key, s.signing_cert) == (
        tmp_path / "k/signing.key",
        tmp_path / "k/signing.pem",
    )
    assert s.signing_p12 is None and s.trust_store is None
    assert s.verify_certs == () and s.signed_senders == frozenset()


def test_signing_variables(tmp_path):
    s = Settings.from_env(
        {
            "GATEWAY_SIGNING_P12": "gw.p12",
            "GATEWAY_SIGNING_PASSWORD": "pw",
            "GATEWAY_VERIFY_CERTS": "/etc/a.pem:old",
            "GATEWAY_TRUST_STORE": "ca.pem",
            "GATEWAY_SIGNED_SENDERS": "lab-1, http:10.0.0.5,",
        },
        root=tmp_path,
    )
    assert s.signing_p12 == tmp_path / "gw.p12" and s.signing_password == b"pw"
    assert s.verify_certs == (Path("/etc/a.pem"), tmp_path / "old")
    assert s.trust_store == tmp_path / "ca.pem"
    assert s.signed_senders == {"lab-1", "http:10.0.0.5"}
    assert "pw" not in repr(s)
