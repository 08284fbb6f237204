"""Message tracking and metrics: what they add to each ingest.

- events per message: building the tracking events of one accepted ORU (pure, no I/O);
- metrics per message: one observe_ingest call;
- tracking writes: batches of 500 events (one message's 6 steps × 83) into SQLite, the
  writer thread's work; ops/s × 500 = events/s it sustains.
"""

from __future__ import annotations

from bench.common import FIXTURES, Context, measure


def rows(context: Context) -> dict[str, dict]:
    from gateway.metrics import Metrics
    from gateway.outcome import Receipt, ReceiptStatus
    from gateway.records.store import RecordStore
    from gateway.submission import Submission
    from gateway.tracking import events
    from gateway.tracking.store import TrackingStore

    raw = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    sub = Submission(raw=raw, transport="mllp", sender="mllp:10.0.0.1")
    receipt = Receipt(ReceiptStatus.ACCEPTED, sub.trace_id, destinations=("patient-record",))
    metrics = Metrics()

    def one_message() -> list:
        return [events.received(sub), events.answered(sub, receipt)]

    store = TrackingStore(RecordStore.open(f"sqlite:///{context.workdir / 'track.sqlite3'}").engine)
    counter = iter(range(10**9))

    def batch() -> None:
        out = []
        for _ in range(83):
            s = Submission(raw=raw, transport="mllp", sender="mllp:10", trace_id=f"{next(counter)}")
            out += [events.received(s)] + [events.answered(s, receipt)] * 5
        store.write(out[:500])

    return {
        "tracking: events of one message": measure(one_message, 0.5),
        "metrics: observe one message": measure(
            lambda: metrics.observe_ingest(sub, None, receipt, 0.01), 0.5
        ),
        "tracking: write 500 events (SQLite)": measure(batch, 2.0),
    }
