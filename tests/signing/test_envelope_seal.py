"""The envelope seal, without I/O: what the record consumer refuses (an envelope edited after
sealing, a missing seal, another key) and what it files (an untouched envelope, in every
message format); the seal key's file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.broker.consumer import Delivery, Poison
from gateway.broker.message import (
    FORMATS,
    DocumentMessage,
    MalformedMessage,
    decode,
    decode_sealed,
    encode,
)
from gateway.config import Settings
from gateway.envelope import Code, Envelope
from gateway.errors import ConfigError, KeystoreError
from gateway.outcome import Attachment
from gateway.records.worker import RecordWorker
from gateway.signing import seal
from gateway.signing.keystore import init_envelope_key, read_envelope_key
from gateway.signing.setup import load_envelope_key
from tests.records.builders import CONFIDENTIALITY, OTHER_INS, message

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SEALED = message(doc_id="1.2.3^7", set_id="1.2.3.set", version=2, replaces="1.2.3^6")
WITH_ATTACHMENT = dataclasses.replace(
    SEALED, attachments=(Attachment("source-message", "application/hl7-v2+er7", b"MSH|^~\\&"),)
)


def _patient(env: dict) -> None:
    env["patient"]["ins"] = OTHER_INS


def _masked(env: dict) -> None:
    env["confidentiality"].append({"code": "MASQUE_PS", "system": CONFIDENTIALITY})


def _flag(env: dict) -> None:
    env["flags"] = {"MASQUE_PS": True}


def _replaces(env: dict) -> None:
    env["replaces"] = "1.2.3^1"


def _action(env: dict) -> None:
    env["action"] = "delete"


def _payload_hash(env: dict) -> None:
    env["sha256"] = hashlib.sha256(b"another document").hexdigest()


EDITS: dict[str, Callable[[dict], None]] = {
    "patient INS": _patient,
    "masking code": _masked,
    "masking flag": _flag,
    "replaces": _replaces,
    "action": _action,
    "payload hash": _payload_hash,
}


def edited(body: bytes, edit: Callable[[dict], None]) -> bytes:
    """``body`` with its envelope edited as someone without the key would: the seal kept."""
    head, newline, parts = body.partition(b"\n")
    data = json.loads(head if newline else body)
    edit(data["envelope"])
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return text + newline + parts


def worker(key: bytes | None = KEY) -> RecordWorker:
    return RecordWorker(store=None, seal_key=key)  # _checked never reaches the store


def delivery(body: bytes, document_id: str = SEALED.envelope.document_id) -> Delivery:
    return Delivery(body, document_id, "t", {}, False, "patient-record")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_untouched_envelope_is_accepted_in_every_format(fmt):
    body = encode(WITH_ATTACHMENT, fmt, seal_key=KEY)
    received = decode_sealed(body)
    assert received.message == WITH_ATTACHMENT == decode(body)
    # the consumer checks the very bytes the encoder sealed, which are in the body as they are
    envelope_json = json.dumps(
        WITH_ATTACHMENT.envelope.to_dict(), ensure_ascii=False, separators=(",", ":")
    ).encode()
    assert received.envelope_json() == envelope_json and envelope_json in body
    assert received.seal == seal.seal(KEY, envelope_json)
    assert received.sealed_with(KEY) and not received.sealed_with(OTHER_KEY)
    message_, status = worker()._checked(delivery(body))
    assert message_ == WITH_ATTACHMENT and status == "unsigned"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_body_is_what_json_dumps_of_it_gives_with_the_seal_after_the_envelope(fmt):
    head = encode(SEALED, fmt, seal_key=KEY).partition(b"\n")[0]
    data = json.loads(head)
    assert list(data)[:3] == ["format", "envelope", "seal"]
    if fmt == FORMATS[0]:
        assert json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() == head
    unsealed = encode(SEALED, fmt).partition(b"\n")[0]
    assert "seal" not in json.loads(unsealed)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_an_envelope_edited_after_sealing_is_refused(fmt, edit):
    body = edited(encode(SEALED, fmt, seal_key=KEY), edit)
    assert decode(body).envelope != SEALED.envelope  # the edit is there, and well formed
    assert not decode_sealed(body).sealed_with(KEY)
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(body))


def test_non_ascii_text_round_trips_to_the_sealed_bytes():
    env = dataclasses.replace(SEALED.envelope, title="Compte rendu d’hématologie — 😷\u2028")
    m = DocumentMessage(env, SEALED.payload)
    for fmt in FORMATS:
        assert decode_sealed(encode(m, fmt, seal_key=KEY)).sealed_with(KEY)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_message_without_a_seal_is_refused_like_a_tampered_one(fmt):
    body = encode(SEALED, fmt)  # as published before envelope seals, or by anyone else
    with pytest.raises(Poison, match="envelope has no seal"):
        worker()._checked(delivery(body))
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(encode(SEALED, fmt, seal_key=OTHER_KEY)))


def test_a_seal_that_is_not_a_string_is_malformed():
    data = json.loads(encode(SEALED, seal_key=KEY))
    for wrong in (1, ["x"], {"seal": "x"}):
        data["seal"] = wrong
        with pytest.raises(MalformedMessage):
            decode_sealed(json.dumps(data).encode())
    data["seal"] = "é" * 64  # right length, not hex: refused, no exception
    assert not decode_sealed(json.dumps(data).encode()).sealed_with(KEY)


def test_the_seal_is_of_the_domain_and_the_envelope():
    one = b'{"document_id":"a"}'
    assert seal.seal(KEY, one) != seal.seal(KEY, one + b" ") != seal.seal(OTHER_KEY, one)
    assert seal.sealed(KEY, one, seal.seal(KEY, one))
    assert not seal.sealed(KEY, one, None) and not seal.sealed(KEY, one, "")
    assert seal.seal(KEY, one) != hashlib.sha256(one).hexdigest()


def test_a_reformatted_but_equal_envelope_still_verifies():
    """Whatever the whitespace or escapes, the value filed is the value sealed."""
    data = json.loads(encode(SEALED, seal_key=KEY))
    body = json.dumps(data, indent=2, ensure_ascii=True).encode()
    assert decode_sealed(body).sealed_with(KEY)
    assert Envelope.from_dict(data["envelope"]) == SEALED.envelope


def test_an_envelope_changed_in_the_consumer_s_own_terms_is_refused():
    """A forger re-encoding a changed Envelope (not editing JSON) has no key either: here a
    masked document unmasked."""
    masked = message(doc_id="1.2.3^7", codes=("MASQUE_PS",))
    genuine = decode_sealed(encode(masked, seal_key=KEY))
    forged = dataclasses.replace(
        masked.envelope, confidentiality=(Code("N", "2.16.840.1.113883.5.25"),)
    )
    assert forged != masked.envelope
    data = json.loads(encode(DocumentMessage(forged, masked.payload)))
    data["seal"] = genuine.seal
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(json.dumps(data).encode()))


def test_without_a_seal_key_the_worker_does_not_look_for_seals():
    message_, _ = worker(None)._checked(delivery(encode(SEALED)))
    assert message_ == SEALED


# -- the key file ---------------------------------------------------------------------------


def test_the_key_is_created_once_with_mode_0600_and_then_read(tmp_path):
    settings = Settings.from_env({"GATEWAY_KEYS_DIR": "k"}, root=tmp_path)
    key = load_envelope_key(settings)
    path = tmp_path / "k" / "envelope.key"
    assert len(key) == 32 and path.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_envelope_key(settings) == key
    assert not init_envelope_key(path) and read_envelope_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["envelope.key"]  # no temporary left


def test_processes_racing_to_create_the_key_all_get_the_same_one(tmp_path):
    path = tmp_path / "keys" / "envelope.key"
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def create() -> None:
        start.wait()
        init_envelope_key(path)
        keys.append(read_envelope_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(os.listdir(path.parent)) == ["envelope.key"]


def test_a_configured_key_file_must_exist_and_is_never_created(tmp_path):
    settings = Settings.from_env({"GATEWAY_ENVELOPE_KEY_FILE": "shared/envelope.key"}, tmp_path)
    assert settings.envelope_key_file == tmp_path / "shared/envelope.key"
    with pytest.raises(KeystoreError, match="GATEWAY_ENVELOPE_KEY_FILE"):
        load_envelope_key(settings)
    assert not (tmp_path / "shared").exists()
    init_envelope_key(tmp_path / "shared/envelope.key")  # deployed there, as by an operator
    assert load_envelope_key(settings) == read_envelope_key(tmp_path / "shared/envelope.key")


@pytest.mark.parametrize(
    "content",
    [b"", b"short", b"zz" * 32, (b"ab" * 32) + b"00", b"\xff" * 64, b"ab" * 32 + b"\n" * 2000],
    ids=["empty", "short", "not-hex", "33-bytes", "not-ascii", "too-long"],
)
def test_a_file_that_is_not_a_key_is_refused_without_echoing_it(tmp_path, content):
    path = tmp_path / "envelope.key"
    path.write_bytes(content)
    with pytest.raises(KeystoreError) as caught:
        read_envelope_key(path)
    assert str(path) in str(caught.value) and "zz" not in str(caught.value)


def test_the_key_file_is_not_the_signing_key(tmp_path):
    with pytest.raises(ConfigError, match="GATEWAY_ENVELOPE_KEY_FILE"):
        Settings.from_env(
            {"GATEWAY_KEYS_DIR": "k", "GATEWAY_ENVELOPE_KEY_FILE": "k/signing.key"}, tmp_path
        )


def test_keys_init_creates_the_envelope_key_and_never_replaces_it(tmp_path, capsys):
    from gateway.cli import main

    keys = tmp_path / "keys"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    key = read_envelope_key(keys / "envelope.key")
    assert "envelope seal key" in capsys.readouterr().out
    assert main(["keys", "init", "--dir", str(keys), "--force"]) == 0
    assert read_envelope_key(keys / "envelope.key") == key  # a new signing key, the same seal
    (keys / "envelope.key").unlink()
    assert main(["keys", "init", "--dir", str(keys), "--if-missing"]) == 0  # an upgrade
    assert read_envelope_key(keys / "envelope.key") != key
    assert stat.S_IMODE((keys / "envelope.key").stat().st_mode) == 0o600


def test_tools_carry_the_key_without_showing_it(keys_dir: Path):
    from gateway import bootstrap

    settings = Settings.from_env({"GATEWAY_KEYS_DIR": str(keys_dir)})
    tools = bootstrap.load_tools(settings)
    assert tools.seal_key == read_envelope_key(keys_dir / "envelope.key")
    assert tools.seal_key.hex() not in repr(tools) and repr(tools.seal_key) not in repr(tools)
