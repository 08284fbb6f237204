"""The MLLP listener on a real socket: framing edge cases and every ACK code path.

``accept`` here is the pure pipeline's read step turned into a receipt (no broker): what the
listener does with a receipt is under test, not publishing (tests/e2e covers that).
"""

from __future__ import annotations

import asyncio

from gateway.adapters.hl7v2.listener import MllpListener
from gateway.adapters.hl7v2.mllp import FrameDecoder, frame
from gateway.adapters.hl7v2.parser import parse
from gateway.document import Document
from gateway.outcome import Receipt, ReceiptStatus
from gateway.pipeline import Checks, read
from tests.adapters.hl7v2.test_intake import lab


async def judge(submission) -> Receipt:
    result = read(submission, Checks())
    if isinstance(result, Document):
        return Receipt(ReceiptStatus.ACCEPTED, submission.trace_id, findings=result.warnings)
    return Receipt(
        ReceiptStatus.REJECTED,
        submission.trace_id,
        findings=result.report.findings,
        rejection=result.kind,
    )


async def broker_down(submission) -> Receipt:
    return Receipt(ReceiptStatus.UNAVAILABLE, submission.trace_id, reason="broker down")


def exchange(chunks: list[bytes], expected: int, accept=judge, max_frame=1 << 20, idle=5.0):
    """Send ``chunks`` (one write each) and read ``expected`` ACKs; also say if it closed."""

    async def run():
        listener = MllpListener(accept, max_frame, idle)
        host, port = await listener.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(host, port)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0)
        decoder, acks = FrameDecoder(), []
        while len(acks) < expected:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "connection closed before every ACK arrived"
            acks += [parse(f.payload)[0] for f in decoder.feed(data)]
        writer.close()
        await listener.close()
        return acks

    return asyncio.run(run())


def test_many_messages_split_across_reads_with_noise_between():
    wire = b"\r\n" + frame(lab(control="M1")) + b"noise" + frame(lab(control="M2"))
    chunks = [wire[i : i + 7] for i in range(0, len(wire), 7)]
    acks = exchange(chunks, 2)
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AA", "M1"), ("AA", "M2")]


def test_oversize_frame_gets_ar_and_the_connection_goes_on():
    big = lab(control="BIG") + b"NTE|1||" + b"x" * 5000 + b"\r"
    acks = exchange([frame(big) + frame(lab(control="OK"))], 2, max_frame=4000)
    assert (acks[0].value("MSA-1"), acks[0].value("MSA-2")) == ("AR", "BIG")
    assert acks[0].value("ERR-8").startswith("mllp.frame-size")
    assert (acks[1].value("MSA-1"), acks[1].value("MSA-2")) == ("AA", "OK")


def test_invalid_content_gets_ae_with_err_segments():
    bad = lab(control="E1").replace(b"VALI", b"PROV")
    [answer] = exchange([frame(bad)], 1)
    assert answer.value("MSA-1") == "AE"
    [err] = [e for e in answer.all("ERR") if answer.value("ERR-4", e) == "E"]
    assert answer.value("ERR-2", err) == "PID^1^32^1"
    assert answer.value("ERR-3.1", err) == "103"


def test_unsupported_type_and_unreadable_body_get_ar():
    adt = lab(control="T1").replace(b"ORU^R01^ORU_R01", b"ADT^A01^ADT_A01")
    body_broken = lab(control="U1").replace(b"MARTIN", b"MARTIN\xff\xfe")  # not UTF-8
    acks = exchange([frame(adt) + frame(body_broken)], 2)
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AR", "T1"), ("AR", "U1")]
    assert acks[0].value("ERR-3.1") == "200"


def test_broker_down_gets_ar_in_every_acknowledgement_mode():
    [answer] = exchange([frame(lab(control="B1"))], 1, accept=broker_down)
    assert answer.value("MSA-1") == "AR" and answer.value("MSA-3") == "broker down"
    enhanced = lab(control="B2").replace(b"|P|2.5\r", b"|P|2.5|||AL|NE\r")
    [answer] = exchange([frame(enhanced)], 1, accept=broker_down)
    assert answer.value("MSA-1") == "AR"
    [answer] = exchange([frame(enhanced)], 1)
    assert answer.value("MSA-1") == "CA"


def test_enhanced_mode_asking_for_no_ack_still_learns_of_a_refusal():
    """MSH-15/MSH-16 NE: an accepted message gets no answer, a refused one still gets AE."""
    silent = b"|P|2.5|||NE|NE\r"
    bad = lab(control="N1").replace(b"VALI", b"PROV").replace(b"|P|2.5\r", silent)
    good = lab(control="N2").replace(b"|P|2.5\r", silent)
    marker = lab(control="N3")  # original mode: answered, so the exchange can end
    acks = exchange([frame(bad) + frame(good) + frame(marker)], 2)
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AE", "N1"), ("AA", "N3")]


def test_latin1_message_is_read_and_answered_in_latin1():
    text = lab(control="L1").decode().replace("|P|2.5\r", "|P|2.5||||||8859/1\r")
    text = text.replace("MARTIN^Louis", "LEFÈVRE^Hélène")
    raw = text.encode("iso-8859-1")
    assert read_document(raw).fields["patient"].family_name == "LEFÈVRE"

    async def run():
        captured = []

        async def accept(sub):
            captured.append(sub.raw)
            return await judge(sub)

        return captured, accept

    captured, accept = asyncio.run(run())
    [answer] = exchange([frame(raw)], 1, accept=accept)
    assert answer.value("MSA-1") == "AA" and answer.value("MSH-18") == "8859/1"
    assert captured == [raw]


def read_document(raw: bytes) -> Document:
    from gateway.submission import Submission

    doc = read(Submission(raw=raw, transport="test"), Checks())
    assert isinstance(doc, Document), doc
    return doc


def test_idle_connection_is_closed():
    async def run():
        listener = MllpListener(judge, 1 << 20, 0.2)
        host, port = await listener.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(host, port)
        data = await asyncio.wait_for(reader.read(10), 5)
        writer.close()
        await listener.close()
        return data

    assert asyncio.run(run()) == b""


def test_a_stray_fs_inside_a_frame_gets_ar_and_nothing_is_processed():
    seen = []

    async def accept(sub):
        seen.append(sub.raw)
        return await judge(sub)

    stray = lab(control="FS1") + b"NTE|1||voir\x1c commentaire\r"
    stray += b"OBX|3|NM|2823-3^Potassium^LN||7.2|mmol/L^mmol/L^UCUM|3.5-5.0|HH|||F\r"
    acks = exchange([frame(stray) + frame(lab(control="OK"))], 2, accept=accept)
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AR", "FS1"), ("AA", "OK")]
    assert acks[0].value("ERR-8").startswith("mllp.frame-end")
    assert seen == [lab(control="OK")]  # the bad frame never reached the pipeline


def test_a_frame_trickled_byte_by_byte_is_cut_off_at_the_request_timeout():
    """The request timeout is a deadline for the whole frame from its first byte, not a
    timeout per read."""

    async def run():
        listener = MllpListener(judge, 1 << 20, idle_timeout_s=5.0, request_timeout_s=0.5)
        host, port = await listener.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(host, port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"\x0bMSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\r")
        closed_after = None
        for _ in range(40):  # 40 x 0.1 s, each read well within 0.5 s
            await asyncio.sleep(0.1)
            try:
                writer.write(b"x")
                await writer.drain()
            except ConnectionError:
                pass
            if reader.at_eof() or await _closed(reader):
                closed_after = loop.time() - started
                break
        writer.close()
        await listener.close()
        return closed_after

    closed_after = asyncio.run(run())
    assert closed_after is not None and closed_after < 2.0


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.01) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_a_peer_that_never_takes_its_acks_is_closed():
    """writer.drain() is bounded by the request timeout too."""

    class StuckWriter:
        closed = False

        def get_extra_info(self, name):
            return ("127.0.0.1", 1) if name == "peername" else None

        def write(self, data):
            pass

        async def drain(self):
            await asyncio.sleep(3600)  # the peer's window never opens

        def close(self):
            self.closed = True

        async def wait_closed(self):
            pass

    async def run():
        listener = MllpListener(judge, 1 << 20, idle_timeout_s=5.0, request_timeout_s=0.3)
        reader = asyncio.StreamReader()
        reader.feed_data(frame(lab(control="D1")) + frame(lab(control="D2")))
        writer = StuckWriter()
        await asyncio.wait_for(listener._serve(reader, writer), 5)
        return writer.closed, listener.connections

    assert asyncio.run(run()) == (True, 0)
