"""Over HTTP: a sender's signature in X-Document-Signature is checked against the trust store;
a sender that must sign is refused unsigned, with the rule id in the 422 report."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest

from gateway.signing import rules
from gateway.signing.xades import XadesSigner
from tests.signing.pki import issue

pytestmark = pytest.mark.broker


def post(url: str, body: bytes, signature: bytes | None = None) -> tuple[int, dict]:
    headers = {"X-Document-Signature": base64.b64encode(signature).decode()} if signature else {}
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def error_rules(body: dict) -> list[str]:
    return [f["rule"] for f in body["findings"] if f["severity"] == "error"]


def test_sender_signatures_over_http(start_gateway, sender_ca, tmp_path, cda):
    bundle = tmp_path / "senders-ca.pem"
    bundle.write_bytes(sender_ca.pem())
    gw = start_gateway(GATEWAY_TRUST_STORE=str(bundle), GATEWAY_SIGNED_SENDERS="http:127.0.0.1")
    url = gw.http_url + "/documents"

    status, body = post(url, cda)
    assert status == 422 and error_rules(body) == [rules.MISSING]

    rogue = XadesSigner(issue("rogue").signing_key()).sign(cda)[1].signature.encode()
    status, body = post(url, cda, rogue)
    assert status == 422 and error_rules(body) == [rules.UNTRUSTED]

    lab = XadesSigner(issue("Laboratoire", sender_ca).signing_key())
    signature = lab.sign(cda)[1].signature.encode()
    status, body = post(url, cda.replace(b"mmol", b"mmoL", 1), signature)
    assert status == 422 and error_rules(body) == [rules.DIGEST]

    status, body = post(url, cda, signature)
    assert status == 202, body
