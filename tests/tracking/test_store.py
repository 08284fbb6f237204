"""TrackingStore on SQLite and PostgreSQL (migration 0003_tracking): timelines and search."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import StoreUnavailable
from gateway.records.store import RecordStore
from gateway.tracking import events
from gateway.tracking.events import Event
from gateway.tracking.store import TrackingStore
from gateway.tracking.tracker import BufferedTracker

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def tracking(store):
    """A tracking store in an empty record store: SQLite, and PostgreSQL (tests/conftest)."""
    return TrackingStore(store.engine)


def _received(trace_id: str, sender: str, at: datetime, **summary) -> Event:
    base = {"transport": "http", "sender": sender, "size": 10, "received_at": at}
    return Event(trace_id, events.RECEIVED, at, {**base, **summary})


def _exercise(store: TrackingStore) -> None:
    store.write(
        [
            _received("a" * 32, "http:10.0.0.1", T0, kind="cda"),
            Event("a" * 32, events.VALIDATED, T0, {"type_code": "11502-2", "document_id": "d1"}),
            Event("a" * 32, events.FILED, T0 + timedelta(seconds=1), detail={"destination": "pr"}),
            # the broker's confirm recorded after the consumer filed: status stays "filed"
            Event("a" * 32, events.ACCEPTED, T0 + timedelta(seconds=2)),
            _received("b" * 32, "mllp:10.0.0.2", T0 + timedelta(days=1), control_id="C-1"),
            Event(
                "b" * 32,
                events.REJECTED,
                T0 + timedelta(days=1),
                {"rules": "ins.nir-key"},
                {"report": [{"rule": "ins.nir-key", "severity": "error"}]},
            ),
        ]
    )
    a = store.message("a" * 32)
    assert a["status"] == "filed" and a["type_code"] == "11502-2"
    assert [e["event"] for e in a["timeline"]] == ["received", "validated", "filed", "accepted"]
    assert a["timeline"][2]["destination"] == "pr"
    assert a["received_at"].startswith("2026-11-01T09:00:00")
    b = store.message("b" * 32)
    assert b["status"] == "rejected" and b["rules"] == ["ins.nir-key"]
    assert b["timeline"][1]["report"] == [{"rule": "ins.nir-key", "severity": "error"}]
    assert store.message("f" * 32) is None

    assert [m["trace_id"] for m in store.search()] == ["b" * 32, "a" * 32]  # newest first
    assert [m["trace_id"] for m in store.search(status="filed")] == ["a" * 32]
    assert [m["trace_id"] for m in store.search(sender="mllp:")] == ["b" * 32]
    assert [m["trace_id"] for m in store.search(sender="%")] == []  # LIKE wildcards are literal
    assert [m["trace_id"] for m in store.search(type_code="11502-2")] == ["a" * 32]
    assert [m["trace_id"] for m in store.search(control_id="C-1")] == ["b" * 32]
    day2 = T0 + timedelta(hours=20)
    assert [m["trace_id"] for m in store.search(since=day2)] == ["b" * 32]
    assert [m["trace_id"] for m in store.search(until=day2)] == ["a" * 32]
    assert store.counts() == {"filed": 1, "rejected": 1}

    # replayed at t+2 but recorded after the re-park at t+3: still parked, timeline in time order
    c = "c" * 32
    store.write(
        [
            _received(c, "cli", T0),
            Event(c, events.PARKED, T0 + timedelta(seconds=1)),
            Event(c, events.PARKED, T0 + timedelta(seconds=3)),
            Event(c, events.REPLAYED, T0 + timedelta(seconds=2)),
        ]
    )
    c_row = store.message(c)
    assert c_row["status"] == "parked"
    assert [e["event"] for e in c_row["timeline"]] == ["received", "parked", "replayed", "parked"]
    assert store.counts(since=day2) == {"rejected": 1}


def test_timelines_search_and_counts(tracking):
    _exercise(tracking)


def test_a_sender_finds_its_message_by_the_control_id_it_sent(tracking):
    """Tracking keeps MSH-10 masked where it is INS-shaped; the search masks the value it is
    given the same way, so the sender's own control id finds the message either way."""
    timestamp, nir_shaped = "20261101093500", "MSG184127505612355"
    tracking.write(
        [
            _received("a" * 32, "mllp:a", T0, control_id=events.masked_control_id(timestamp)),
            _received("b" * 32, "mllp:b", T0, control_id=events.masked_control_id(nir_shaped)),
        ]
    )
    assert [m["trace_id"] for m in tracking.search(control_id=timestamp)] == ["a" * 32]
    [found] = tracking.search(control_id=nir_shaped)
    assert found["trace_id"] == "b" * 32 and found["control_id"] == "MSG*************55"


def test_buffered_tracker_writes_in_the_background_and_counts_drops(tmp_path):
    records = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    dropped: list[int] = []
    tracker = BufferedTracker(TrackingStore(records.engine), on_drop=dropped.append)
    try:
        tracker.record(_received("d" * 32, "cli", T0))
        tracker.record([Event("d" * 32, events.ACCEPTED, T0)])
        assert tracker.flush(5)
        assert TrackingStore(records.engine).message("d" * 32)["status"] == "accepted"
        records.engine.dispose()
        with records.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE tracked_events")
        tracker.record(Event("d" * 32, events.FILED, T0))  # the write fails: dropped, counted
        assert tracker.flush(5) and dropped == [1]
    finally:
        tracker.close()
        records.close()


def test_steps_recorded_one_by_one_share_one_write(tmp_path):
    """The writer lingers after a first event: a message's steps, recorded one at a time as
    they happen, go to the database in one transaction, not one each."""
    records = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    store = TrackingStore(records.engine)
    writes: list[int] = []

    class Counting:
        def write(self, batch):
            store.write(batch)
            writes.append(len(batch))

    tracker = BufferedTracker(Counting(), linger_s=1.0)  # type: ignore[arg-type]
    try:
        tracker.record(_received("e" * 32, "cli", T0))
        time.sleep(0.2)  # the writer is awake and waiting for more
        for step in (events.VALIDATED, events.ROUTED, events.ACCEPTED):
            tracker.record(Event("e" * 32, step, T0))
        deadline = time.monotonic() + 10
        while not writes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writes == [4]
        assert store.message("e" * 32)["status"] == "accepted"
        tracker.record(Event("e" * 32, events.FILED, T0))
        assert tracker.flush(0.5) and writes == [4, 1]  # flush does not wait for the linger
    finally:
        tracker.close()
        records.close()


def _timelines() -> list[Event]:
    """Steps of three messages interleaved as threads record them, some out of order."""
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    s = timedelta(seconds=1)
    return [
        Event(c, events.ACCEPTED, T0),  # before its RECEIVED: matches no row yet
        _received(a, "http:10.0.0.1", T0, kind="cda"),
        _received(c, "mllp:10.0.0.2", T0, control_id="C-9"),
        Event(a, events.VALIDATED, T0, {"type_code": "11502-2", "document_id": "d1"}),
        Event(a, events.ROUTED, T0, {"destinations": "records"}),
        Event(c, events.REJECTED, T0 + s, {"rules": "ins.nir-key"}),
        Event(a, events.FILED, T0 + 2 * s),
        Event(a, events.ACCEPTED, T0 + s),  # the confirm recorded after filing
        _received(b, "cli", T0 + s),
        Event(b, events.PARKED, T0 + 3 * s),
        Event(b, events.REPLAYED, T0 + 2 * s),  # older than the park: status stays parked
        Event(c, events.PARKED, T0 + 2 * s),  # a rejected message is never parked
    ]


@pytest.mark.parametrize("batch", [1, 2, 5, 100])
def test_summary_rows_do_not_depend_on_how_events_are_batched(tmp_path, batch):
    """One multi-message batch (summary rows computed, then inserted once) files the same rows
    as one statement per step does."""
    stores = {}
    for name, size in (("one by one", 1), ("batched", batch)):
        records = RecordStore.open(f"sqlite:///{tmp_path / f'{name}.sqlite3'}")
        store = TrackingStore(records.engine)
        steps = _timelines()
        for i in range(0, len(steps), size):
            store.write(steps[i : i + size])
        stores[name] = (
            {t: store.message(t) for t in ("a" * 32, "b" * 32, "c" * 32)},
            records,
        )
    (expected, r1), (got, r2) = stores.values()
    try:
        assert got == expected
        assert expected["a" * 32]["status"] == "filed"
        assert expected["b" * 32]["status"] == "parked"
        assert expected["c" * 32]["status"] == "rejected"
    finally:
        r1.close()
        r2.close()


def test_a_message_received_twice_in_a_batch_fails_the_batch_as_before(tmp_path):
    records = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        store = TrackingStore(records.engine)
        twice = [_received("e" * 32, "cli", T0), _received("e" * 32, "cli", T0)]
        with pytest.raises(StoreUnavailable):
            store.write(twice)
        assert store.message("e" * 32) is None
    finally:
        records.close()


@pytest.mark.parametrize("batch", [2, 5, 100])
def test_steps_of_messages_received_earlier_give_the_same_rows_in_any_batching(tmp_path, batch):
    """Messages received in an earlier batch: their later steps (several messages, some twice
    in one batch, some out of order) go in as grouped statements and leave the rows one
    statement per step leaves."""
    a, s = "a" * 32, timedelta(seconds=1)
    steps = [
        *_timelines(),
        # one column set by steps of two shapes: the last one wins
        Event(a, events.ROUTED, T0 + 3 * s, {"destinations": "first"}),
        Event(a, events.VALIDATED, T0 + 3 * s, {"type_code": "X", "destinations": "second"}),
        Event(a, events.ROUTED, T0 + 3 * s, {"destinations": "third"}),
    ]
    received = [e for e in steps if e.name == events.RECEIVED]
    later = [e for e in steps if e.name != events.RECEIVED]
    stores = {}
    for name, size in (("one by one", 1), ("batched", batch)):
        records = RecordStore.open(f"sqlite:///{tmp_path / f'later-{name}.sqlite3'}")
        store = TrackingStore(records.engine)
        store.write(received)
        for i in range(0, len(later), size):
            store.write(later[i : i + size])
        stores[name] = ({t: store.message(t) for t in ("a" * 32, "b" * 32, "c" * 32)}, records)
    (expected, r1), (got, r2) = stores.values()
    try:
        assert got == expected
        assert expected["a" * 32]["status"] == "filed"
        assert expected["a" * 32]["type_code"] == "X"
        assert expected["a" * 32]["destinations"] == ["third"]
        assert expected["b" * 32]["status"] == "parked"
    finally:
        r1.close()
        r2.close()


def test_several_messages_change_status_in_one_write(tracking):
    """The steady state under load: messages received in one write, their answers (one status
    each) in the next. The status updates go as one executemany per status."""
    store = tracking
    traces = [f"{n:032x}" for n in range(3)]
    store.write([_received(t, "cli", T0) for t in traces])
    store.write([Event(t, events.ACCEPTED, T0 + timedelta(seconds=1)) for t in traces])
    store.write([Event(t, events.PARKED, T0 + timedelta(seconds=2)) for t in traces[:2]])
    assert [store.message(t)["status"] for t in traces] == ["parked", "parked", "accepted"]
    assert store.counts() == {"parked": 2, "accepted": 1}


@pytest.mark.postgres
def test_two_gateways_tracking_the_same_messages_do_not_deadlock(pg_url):
    """Two gateways share the tracking tables: one answers a message, the other's record
    consumer files it, so both update the same summary rows, each in its own order and
    statement by statement. Each write locks its rows in one order first: none is lost."""
    import random
    import threading

    records = [RecordStore.open(pg_url) for _ in range(2)]
    try:
        stores = [TrackingStore(r.engine) for r in records]
        traces = [f"{n:032x}" for n in range(40)]
        stores[0].write([_received(t, "cli", T0) for t in traces])
        failures: list[Exception] = []

        def gateway(n: int) -> None:
            rnd = random.Random(n)
            for i in range(60):
                picked = rnd.sample(traces, 20)
                at = T0 + timedelta(seconds=i + 1)
                steps = [
                    Event(t, events.VALIDATED, at, {"type_code": f"{n}-{i}"}) for t in picked[:10]
                ] + [Event(t, (events.ACCEPTED, events.FILED)[n], at) for t in picked[10:]]
                try:
                    stores[n].write(steps)
                except StoreUnavailable as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=gateway, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failures == []
    finally:
        for r in records:
            r.close()


def test_a_write_that_fails_once_is_tried_again_not_dropped(tmp_path):
    """A deadlock or a lost connection fails one transaction; the events are written by the
    next try, none is dropped."""
    records = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    store = TrackingStore(records.engine)
    failures = [StoreUnavailable("tracking store unavailable: OperationalError")]

    class FailingOnce:
        def write(self, batch):
            if failures:
                raise failures.pop()
            store.write(batch)

    dropped: list[int] = []
    tracker = BufferedTracker(FailingOnce(), on_drop=dropped.append)
    try:
        tracker.record([_received("e" * 32, "cli", T0), Event("e" * 32, events.ACCEPTED, T0)])
        assert tracker.flush(5)
        assert dropped == [] and failures == []
        assert store.message("e" * 32)["status"] == "accepted"
    finally:
        tracker.close()
        records.close()


def test_a_step_written_before_its_received_still_sets_the_status(tracking):
    """Two gateways: the one that filed a message may write ``filed`` before the answering
    one writes ``received`` (it lingers); the row takes that status when it is inserted."""
    store, s = tracking, timedelta(seconds=1)
    # the filing gateway writes first: its status UPDATE finds no row yet
    store.write([Event("f" * 32, events.FILED, T0 + 3 * s, detail={"destination": "pr"})])
    store.write([_received("f" * 32, "cli", T0), Event("f" * 32, events.ACCEPTED, T0 + 2 * s)])
    store.write([Event("g" * 32, events.FILED, T0 + 3 * s)])
    store.write([_received("g" * 32, "cli", T0), Event("g" * 32, events.ACCEPTED, T0 + 4 * s)])
    for trace in ("f" * 32, "g" * 32):
        row = store.message(trace)
        assert row["status"] == "filed", trace
        assert sorted(e["event"] for e in row["timeline"]) == ["accepted", "filed", "received"]


@pytest.mark.parametrize("moment", range(3))
def test_a_step_written_while_its_received_is_being_written_is_kept(store, moment):
    """Two gateways: the filing one writes ``filed`` at any moment of the answering one's
    write of ``received`` (before each of its statements, before its commit); whichever
    commits first, the message ends ``filed`` (the step may block until the other commits)."""
    import threading

    import sqlalchemy as sa

    answering = TrackingStore(store.engine)
    other = RecordStore.open(store.engine.url.render_as_string(hide_password=False))
    filing = TrackingStore(other.engine)
    trace, s = "h" * 32, timedelta(seconds=1)
    points: list[str] = []
    written = threading.Thread(
        target=filing.write, args=([Event(trace, events.FILED, T0 + 3 * s)],)
    )

    def point(*args) -> None:
        if len(args) > 2 and args[2].startswith("BEGIN"):  # SQLite's own, before any work
            return
        points.append("here")
        if len(points) == moment + 1:
            written.start()
            written.join(0.5)  # blocked on the answering write's row: it finishes after

    sa.event.listen(store.engine, "before_cursor_execute", point)
    sa.event.listen(store.engine, "commit", point)
    try:
        answering.write([_received(trace, "cli", T0), Event(trace, events.ACCEPTED, T0 + 2 * s)])
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", point)
        sa.event.remove(store.engine, "commit", point)
    written.join(10)
    try:
        assert written.ident is not None and not written.is_alive()  # it came, and finished
        row = answering.message(trace)
        assert (row["status"], row["sender"], row["transport"]) == ("filed", "cli", "http")
        assert [e["event"] for e in row["timeline"]] == ["received", "accepted", "filed"]
    finally:
        other.close()


@pytest.mark.postgres
def test_tracking_commits_do_not_wait_for_the_disk_and_filing_commits_do(records_pg_url):
    """On PostgreSQL a tracking write's transaction has synchronous_commit off (it returns
    before its WAL is flushed: tracking is not the durable path); the record store's
    transactions, on the same engine, keep the server's setting: a document is acknowledged
    to RabbitMQ only once it is on disk."""
    import sqlalchemy as sa

    from gateway.tracking.store import commit_without_waiting_for_the_disk
    from tests.records.builders import message

    store = RecordStore.open(records_pg_url)
    seen: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    try:
        sa.event.listen(store.engine, "before_cursor_execute", capture)
        TrackingStore(store.engine).write([_received("e" * 32, "cli", T0)])
        assert seen[0] == "SET LOCAL synchronous_commit TO OFF"
        seen.clear()
        store.file(message("sync^1"))
        assert seen and not [s for s in seen if "synchronous_commit" in s]
        sa.event.remove(store.engine, "before_cursor_execute", capture)

        with store.engine.begin() as conn:
            commit_without_waiting_for_the_disk(conn)
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        with store.engine.begin() as conn:  # SET LOCAL ended with its transaction
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        store.close()
