"""HTTP intake: 202 only when durable, 422 with the report, 413 too large, 503 broker down."""

import json
import urllib.request

import pytest

from tests.conftest import FIXTURES

pytestmark = pytest.mark.broker


def post(url: str, body: bytes) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_rejection_carries_a_machine_readable_report(start_gateway):
    gw = start_gateway()
    bad = (
        (FIXTURES / "cda/crbio_glycemia.xml")
        .read_bytes()
        .replace(b'<id root="1.2.250.1.999.1.1', b'<id nullFlavor="NI" extension="')
    )
    status, body, _ = post(gw.http_url + "/documents", bad)
    assert status == 422
    assert body["status"] == "rejected" and body["message_id"]
    [finding] = [f for f in body["findings"] if f["severity"] == "error"]
    assert finding["rule"] == "cda.header.id" and finding["location"] == "/ClinicalDocument/id"


def test_body_over_the_limit_is_413(start_gateway):
    gw = start_gateway(GATEWAY_MAX_DOCUMENT_BYTES="1000")
    status, _body, _ = post(gw.http_url + "/documents", b"<x/>" * 1000)
    assert status == 413


def test_broker_gone_answers_503_with_retry_after(start_gateway):
    gw = start_gateway()
    gw.services.publisher.stop()
    status, body, headers = post(
        gw.http_url + "/documents", (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    )
    assert status == 503 and body["status"] == "unavailable"
    assert headers.get("retry-after") or headers.get("Retry-After")


def test_health_and_ready(start_gateway):
    gw = start_gateway()
    with urllib.request.urlopen(gw.http_url + "/ready", timeout=10) as resp:
        assert json.loads(resp.read()) == {
            "ready": True,
            "checks": {"broker": True, "store": True, "topology": True},
        }
