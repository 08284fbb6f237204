"""The envelope seal, without I/O: what the record consumer refuses (an envelope edited after
sealing, a missing seal, another key, a body the gateway routed elsewhere, a routed list
edited) and what it files (an untouched envelope routed to the record, in every message
format); the seal key's file."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
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
from gateway.broker.names import Names
from gateway.config import Settings
from gateway.envelope import Code, Envelope
from gateway.errors import ConfigError, KeystoreError
from gateway.outcome import Accepted, Attachment
from gateway.pipeline import Tools
from gateway.records.worker import RecordWorker
from gateway.routing import loader
from gateway.service import IngestService
from gateway.signing import seal
from gateway.signing.keystore import init_envelope_key, read_envelope_key
from gateway.signing.setup import load_envelope_key
from tests.conftest import ROOT
from tests.records.builders import CONFIDENTIALITY, OTHER_INS, message

KEY = bytes(range(32))
ROUTED = ("patient-record", "patient-mailbox")  # where the gateway sent the messages below
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
    # _checked never reaches the store
    return RecordWorker(store=None, seal_key=key, files_for=("patient-record",))


def delivery(body: bytes, document_id: str = SEALED.envelope.document_id) -> Delivery:
    return Delivery(body, document_id, "t", {}, False, "patient-record")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_untouched_envelope_is_accepted_in_every_format(fmt):
    body = encode(WITH_ATTACHMENT, fmt, seal_key=KEY, routed=ROUTED)
    received = decode_sealed(body)
    assert received.message == WITH_ATTACHMENT == decode(body)
    # the consumer checks the very bytes the encoder sealed, which are in the body as they are
    envelope_json = json.dumps(
        WITH_ATTACHMENT.envelope.to_dict(), ensure_ascii=False, separators=(",", ":")
    ).encode()
    assert received.envelope_json() == envelope_json and envelope_json in body
    assert received.seal == seal.seal(KEY, ROUTED, envelope_json) and received.routed == ROUTED
    assert received.sealed_with(KEY) and not received.sealed_with(OTHER_KEY)
    message_, status = worker()._checked(delivery(body))
    assert message_ == WITH_ATTACHMENT and status == "unsigned"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_body_is_what_json_dumps_of_it_gives_with_the_seal_after_the_envelope(fmt):
    head = encode(SEALED, fmt, seal_key=KEY, routed=ROUTED).partition(b"\n")[0]
    data = json.loads(head)
    assert list(data)[:4] == ["format", "envelope", "seal", "routed"]
    assert data["routed"] == list(ROUTED)
    if fmt == FORMATS[0]:
        assert json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() == head
    unsealed = encode(SEALED, fmt, routed=ROUTED).partition(b"\n")[0]
    assert "seal" not in json.loads(unsealed) and "routed" not in json.loads(unsealed)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_an_envelope_edited_after_sealing_is_refused(fmt, edit):
    body = edited(encode(SEALED, fmt, seal_key=KEY, routed=ROUTED), edit)
    assert decode(body).envelope != SEALED.envelope  # the edit is there, and well formed
    assert not decode_sealed(body).sealed_with(KEY)
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(body))


def test_non_ascii_text_round_trips_to_the_sealed_bytes():
    env = dataclasses.replace(SEALED.envelope, title="Compte rendu d’hématologie — 😷\u2028")
    m = DocumentMessage(env, SEALED.payload)
    for fmt in FORMATS:
        assert decode_sealed(encode(m, fmt, seal_key=KEY, routed=ROUTED)).sealed_with(KEY)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_message_without_a_seal_is_refused_like_a_tampered_one(fmt):
    body = encode(SEALED, fmt)  # as published before envelope seals, or by anyone else
    with pytest.raises(Poison, match="envelope has no seal"):
        worker()._checked(delivery(body))
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(encode(SEALED, fmt, seal_key=OTHER_KEY, routed=ROUTED)))


def test_a_seal_that_is_not_a_string_is_malformed():
    data = json.loads(encode(SEALED, seal_key=KEY, routed=ROUTED))
    for wrong in (1, ["x"], {"seal": "x"}):
        data["seal"] = wrong
        with pytest.raises(MalformedMessage):
            decode_sealed(json.dumps(data).encode())
    data["seal"] = "é" * 64  # right length, not hex: refused, no exception
    assert not decode_sealed(json.dumps(data).encode()).sealed_with(KEY)


def test_the_seal_is_of_the_domain_the_routing_and_the_envelope():
    one = b'{"document_id":"a"}'
    to = ["patient-record"]
    assert (
        seal.seal(KEY, to, one) != seal.seal(KEY, to, one + b" ") != seal.seal(OTHER_KEY, to, one)
    )
    assert seal.sealed(KEY, to, one, seal.seal(KEY, to, one))
    assert not seal.sealed(KEY, to, one, None) and not seal.sealed(KEY, to, one, "")
    assert not seal.sealed(KEY, None, one, seal.seal(KEY, [], one))  # no list: no seal covers it
    assert seal.seal(KEY, to, one) != hashlib.sha256(one).hexdigest()
    # a seal of the first version (envelope alone) is no seal now
    first = hmac.digest(KEY, b"passerelle.envelope-seal/1\n" + one, "sha256").hex()
    assert not any(seal.sealed(KEY, r, one, first) for r in ([], to, ["patient-mailbox"]))


def test_the_routed_list_is_encoded_one_to_one():
    """Lists that a naive join would confuse each give other bytes, so another seal; where the
    list ends is never in doubt, whatever the names hold."""
    lists = [
        [], [""], ["", ""], ["a"], ["a", "b"], ["b", "a"], ["ab"], ["a,b"], ["a", ""],
        ["1:a,"], ["a\n"], ["a", "b\n{"], ["é"], ["e\u0301"],
    ]  # fmt: skip
    encoded = [seal.routed_bytes(r) for r in lists]
    assert len(set(encoded)) == len(lists)
    one = b'{"document_id":"a"}'
    # the list cannot swallow the envelope's start, nor the envelope the list's end
    assert seal.seal(KEY, ["a"], b"1:b," + one) != seal.seal(KEY, ["a", "b"], one)
    assert seal.routed_bytes(["patient-record"]) == b"1\n14:patient-record,\n"


def test_a_reformatted_but_equal_envelope_still_verifies():
    """Whatever the whitespace or escapes, the value filed is the value sealed."""
    data = json.loads(encode(SEALED, seal_key=KEY, routed=ROUTED))
    body = json.dumps(data, indent=2, ensure_ascii=True).encode()
    assert decode_sealed(body).sealed_with(KEY)
    assert Envelope.from_dict(data["envelope"]) == SEALED.envelope


def test_an_envelope_changed_in_the_consumer_s_own_terms_is_refused():
    """A forger re-encoding a changed Envelope (not editing JSON) has no key either: here a
    masked document unmasked."""
    masked = message(doc_id="1.2.3^7", codes=("MASQUE_PS",))
    genuine = decode_sealed(encode(masked, seal_key=KEY, routed=ROUTED))
    forged = dataclasses.replace(
        masked.envelope, confidentiality=(Code("N", "2.16.840.1.113883.5.25"),)
    )
    assert forged != masked.envelope
    data = json.loads(encode(DocumentMessage(forged, masked.payload)))
    data["seal"], data["routed"] = genuine.seal, list(genuine.routed)
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(json.dumps(data).encode()))


# -- where the gateway routed the document -----------------------------------------------


def published(m: DocumentMessage) -> dict[str, bytes]:
    """The bodies the gateway publishes for ``m`` under the project's routing.yaml, by
    destination: what each queue holds."""
    tools = Tools(signer=None, routing=loader.load(ROOT / "routing.yaml"), seal_key=KEY)
    routed = tools.routing.decide(m.envelope).destinations
    accepted = Accepted(m.envelope, m.payload, routed)
    service = IngestService(tools, publisher=None, names=Names("t"))
    return {o.routing_key: o.body for o in service._messages(accepted, tools)}


KEPT_OUT = {  # documents the gateway keeps out of the record, and the queue a copy is taken from
    "mailbox only (DESTDMP=N)": ({"DESTDMP": False, "DESTMSSANTEPAT": True}, "patient-mailbox"),
    "no delivery: parking": ({"DESTDMP": False}, "parking"),
}


@pytest.mark.parametrize(("flags", "queue"), KEPT_OUT.values(), ids=KEPT_OUT.keys())
def test_a_body_the_gateway_routed_elsewhere_is_parked_not_filed(store, flags, queue):
    """The reviewer's case: a genuine body taken from another queue and published to the
    patient-record queue."""
    m = message("kept-out^1", flags=flags)
    bodies = published(m)
    assert "patient-record" not in bodies and queue in bodies
    copied = Delivery(bodies[queue], "kept-out^1", "t", {}, False, "patient-record")
    record = RecordWorker(store, seal_key=KEY, files_for=("patient-record",))
    (outcome,) = record.file_batch([copied])
    assert isinstance(outcome, Poison) and "not routed to the record" in str(outcome)
    assert queue in str(outcome)  # the parked reason says where it was routed
    assert store.document("kept-out^1") is None


def test_every_body_of_a_document_routed_to_the_record_is_filed(store):
    """One body per format, shared by destinations: the mailbox's (/1) copy of a document also
    routed to the record is that same document, and is filed like the record's own (/3)."""
    m = message("both^1", flags={"DESTDMP": True, "DESTMSSANTEPAT": True})
    bodies = published(m)
    assert bodies["patient-record"] != bodies["patient-mailbox"]  # two formats
    record = RecordWorker(store, seal_key=KEY, files_for=("patient-record",))
    for queue in ("patient-record", "patient-mailbox"):
        assert decode_sealed(bodies[queue]).routed == tuple(bodies)  # the whole decision
        assert record.file_batch([Delivery(bodies[queue], "both^1", "t", {}, False, queue)]) == [
            None
        ]
    assert store.document("both^1") is not None


def _only_record(data: dict) -> None:
    data["routed"] = ["patient-record"]


def _record_added(data: dict) -> None:
    data["routed"].append("patient-record")


def _reordered(data: dict) -> None:
    data["routed"] = ["patient-mailbox", "patient-record"]


ROUTING_EDITS: dict[str, Callable[[dict], None]] = {
    "replaced": _only_record,
    "added to": _record_added,
}


def routing_edited(body: bytes, edit: Callable[[dict], None]) -> bytes:
    head, newline, parts = body.partition(b"\n")
    data = json.loads(head if newline else body)
    edit(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + newline + parts


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("edit", ROUTING_EDITS.values(), ids=ROUTING_EDITS.keys())
def test_a_routed_list_edited_after_sealing_is_refused(fmt, edit):
    body = routing_edited(encode(SEALED, fmt, seal_key=KEY, routed=["patient-mailbox"]), edit)
    assert "patient-record" in decode_sealed(body).routed  # the edit is there
    assert not decode_sealed(body).sealed_with(KEY)
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(body))


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_order_of_the_routed_list_is_sealed_and_its_absence_refused(fmt):
    body = encode(SEALED, fmt, seal_key=KEY, routed=ROUTED)
    with pytest.raises(Poison, match="envelope seal does not match"):
        worker()._checked(delivery(routing_edited(body, _reordered)))
    without = routing_edited(body, lambda data: data.pop("routed"))
    with pytest.raises(Poison, match="names no routing"):
        worker()._checked(delivery(without))
    for wrong in ("patient-record", [1], {"patient-record": True}):
        with pytest.raises(MalformedMessage, match="routed"):
            decode_sealed(routing_edited(body, lambda data, w=wrong: data.update(routed=w)))


def test_a_worker_files_for_the_destinations_it_is_told():
    """What a record consumer takes is whatever its queues are (bootstrap); a body routed to
    another destination, e.g. replayed there with --to, is refused."""
    body = encode(SEALED, seal_key=KEY, routed=["patient-record"])
    other = RecordWorker(store=None, seal_key=KEY, files_for=("other-record",))
    with pytest.raises(Poison, match=r"not routed to the record: .* patient-record"):
        other._checked(delivery(body))
    both = RecordWorker(store=None, seal_key=KEY, files_for=("other-record", "patient-record"))
    assert both._checked(delivery(body))[0] == SEALED
    nowhere = encode(SEALED, seal_key=KEY)  # sealed, routed to nothing
    with pytest.raises(Poison, match="routed it to nowhere"):
        worker()._checked(delivery(nowhere))


def test_the_record_worker_files_for_the_record_consumers_destinations():
    from gateway.bootstrap import record_destinations

    table = loader.parse(
        "version: 1\n"
        "destinations:\n"
        "  dmp: {type: quorum, consumer: patient-record}\n"
        "  dmp-urgent: {type: quorum, consumer: patient-record}\n"
        "  patient-mailbox: {type: quorum}\n"
        "  parking: {type: quorum}\n"
        "default: {to: [parking]}\n"
        "parking: parking\n"
    )
    assert record_destinations(table) == ("dmp", "dmp-urgent")
    assert record_destinations(loader.load(ROOT / "routing.yaml")) == ("patient-record",)


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
