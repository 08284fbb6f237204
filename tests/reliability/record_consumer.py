"""A patient-record consumer alone in its own process, so a test can SIGKILL it.

python -m tests.reliability.record_consumer AMQP_URL QUEUE DATABASE_URL PREFETCH
"""

from __future__ import annotations

import sys
import threading

from gateway import logs
from gateway.broker.consumer import Consumer
from gateway.records.store import RecordStore
from gateway.records.worker import RecordWorker


def main(amqp_url: str, queue: str, database_url: str, prefetch: str) -> None:
    logs.setup("INFO", "json")
    store = RecordStore.open(database_url)
    consumer = Consumer(amqp_url, queue, RecordWorker(store), int(prefetch))
    consumer.start()
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(*sys.argv[1:])
