"""A failure's text carries no patient data, and a refusal of the data itself is parked at once.

Against the real PostgreSQL and RabbitMQ: a document id longer than its VARCHAR(256) column
(SQLite would store it; PostgreSQL refuses it with a DataError whose text quotes the statement's
parameters, the patient's INS among them)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.broker import names as h
from gateway.broker.consumer import Consumer, RetryPolicy
from gateway.broker.failure import describe, permanent
from tests.broker.helpers import declared, depth, get_one, publish, work_routing

INS = "184127505612355"
TOO_LONG_ID = "1.2.250.1.999.1.1^" + "X" * 282  # 300 characters


@pytest.fixture
def data_error(pg_url):
    """The DataError PostgreSQL gives for a too-long value, its parameters naming an INS."""
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id VARCHAR(256), ins VARCHAR(15))"))
        with pytest.raises(sa.exc.DataError) as caught, engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO t VALUES (:id, :ins)"), {"id": TOO_LONG_ID, "ins": INS}
            )
    finally:
        engine.dispose()
    assert INS in str(caught.value)  # what made the header leak
    return caught.value


@pytest.mark.postgres
def test_a_database_error_is_described_by_its_classes_only(data_error):
    text = describe(data_error)
    assert text == "DataError (StringDataRightTruncation, SQLSTATE 22001)"
    assert permanent(data_error)


def test_other_errors_keep_their_first_line_with_ins_masked():
    text = describe(RuntimeError(f"patient {INS} unknown\nstatement: SELECT {INS}"))
    assert text == "RuntimeError: patient *************55 unknown"
    assert not permanent(RuntimeError("boom")) and not permanent(
        sa.exc.OperationalError("", {}, Exception())
    )


class Filing:
    """A handler that files (the body's id, INS) in PostgreSQL as the record store does: a value
    too long for its column is refused with SQLAlchemy's DataError, parameters in its text.
    (The id travels in the body: an AMQP message_id holds 255 bytes at most.)"""

    def __init__(self, pg_url: str) -> None:
        self.engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with self.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE documents (id VARCHAR(256), ins VARCHAR(15))"))
        self.calls = 0

    def __call__(self, delivery) -> None:
        self.calls += 1
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO documents VALUES (:id, :ins)"),
                {"id": delivery.body.decode(), "ins": INS},
            )


@pytest.mark.broker
@pytest.mark.postgres
def test_a_document_postgresql_refuses_is_parked_at_once_without_the_ins(broker_ns, pg_url):
    table = declared(broker_ns, work_routing((100, 300)))
    filing = Filing(pg_url)
    consumer = Consumer(
        broker_ns.url,
        broker_ns.names.queue("work"),
        filing,
        prefetch=4,
        policy=RetryPolicy.for_destination(table.destinations["work"], broker_ns.names),
    )
    consumer.start()
    try:
        assert consumer.consuming.wait(10)
        publish(broker_ns.url, broker_ns.names.exchange, "work", TOO_LONG_ID.encode())
        props, _ = get_one(broker_ns.url, broker_ns.names.queue("parking"))
    finally:
        consumer.stop()
        filing.engine.dispose()
    assert filing.calls == 1 and props.headers[h.ATTEMPT] == 1  # no retry: it can never fit
    assert props.headers[h.FAILURE] == "DataError (StringDataRightTruncation, SQLSTATE 22001)"
    assert INS not in repr(props.headers)
    for delay in (100, 300):
        assert depth(broker_ns.url, broker_ns.names.retry_queue("work", delay)) == 0
