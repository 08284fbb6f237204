"""Prometheus metrics: one registry per running gateway, served at ``/metrics``.

A registry per instance (not the library's global one) so that several gateways can run in
one process (tests) without colliding. Label values come from the outside world (sender,
document type, rule id): each label keeps at most ``MAX_LABEL_VALUES`` distinct values and
folds the rest into ``other``, so a hostile sender cannot blow up the series count.
Labels never carry patient data: sender labels, LOINC type codes, rule ids, queue names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.envelope import SignatureInfo
from gateway.outcome import Accepted, Receipt, ReceiptStatus, Rejected
from gateway.signing import Signer
from gateway.submission import Submission

MAX_LABEL_VALUES = 100
OTHER = "other"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)


class BoundedValues:
    """Admits the first ``limit`` distinct values of a label, then answers ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        value = (value or "unknown")[:64]
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class Metrics:
    """Every gateway metric. Thread-safe (prometheus_client metrics are)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._sources: list[Callable[[], Iterable[Metric]]] = []
        self._sender = BoundedValues()
        self._type = BoundedValues()
        self._rule = BoundedValues(300)
        labels = ("transport", "sender", "kind", "type_code")
        r = self.registry
        self.received = Counter(
            "passerelle_messages_received", "Inbound messages, by source and document type",
            labels, registry=r,
        )  # fmt: skip
        self.accepted = Counter(
            "passerelle_messages_accepted", "Messages accepted (broker confirmed)",
            labels, registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "passerelle_messages_rejected", "Messages rejected, with the kind of rejection",
            (*labels, "rejection"), registry=r,
        )  # fmt: skip
        self.unavailable = Counter(
            "passerelle_messages_unavailable", "Messages answered 'retry later' (not taken)",
            ("transport", "sender"), registry=r,
        )  # fmt: skip
        self.rule_hits = Counter(
            "passerelle_validation_rule_hits", "Validation findings, by rule and severity",
            ("rule", "severity"), registry=r,
        )  # fmt: skip
        self.publish_seconds = Histogram(
            "passerelle_publish_confirm_seconds",
            "From publish to RabbitMQ's confirm of every destination's copy",
            ("outcome",), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.signing_seconds = Histogram(
            "passerelle_signing_seconds", "Time to XAdES-sign one document",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ingest_seconds = Histogram(
            "passerelle_ingest_seconds", "From receipt to the answer given to the sender",
            ("status",), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.consumed = Counter(
            "passerelle_consumer_messages", "Deliveries handled by a consumer, by outcome",
            ("consumer", "outcome"), registry=r,
        )  # fmt: skip
        self.consumer_lag = Histogram(
            "passerelle_consumer_lag_seconds",
            "From the gateway receiving a document to a consumer having handled it",
            ("consumer",), buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.tracking_dropped = Counter(
            "passerelle_tracking_events_dropped",
            "Tracking events dropped because the tracking writer fell behind",
            registry=r,
        )
        self.up = Gauge("passerelle_broker_connected", "1 when the publisher is ready", registry=r)

    # -- observations ---------------------------------------------------------------------------

    def observe_ingest(
        self,
        submission: Submission,
        outcome: Accepted | Rejected | None,
        receipt: Receipt,
        seconds: float,
    ) -> None:
        """Count one answered submission (every transport calls IngestService, which calls this)."""
        kind, type_code = _kind_and_type(outcome)
        transport, sender = submission.transport, self._sender(submission.sender)
        base = (transport, sender, kind, self._type(type_code))
        self.received.labels(*base).inc()
        if receipt.status is ReceiptStatus.ACCEPTED:
            self.accepted.labels(*base).inc()
        elif receipt.status is ReceiptStatus.REJECTED:
            rejection = receipt.rejection.value if receipt.rejection else "invalid"
            self.rejected.labels(*base, rejection).inc()
        else:
            self.unavailable.labels(transport, sender).inc()
        for f in receipt.findings:
            self.rule_hits.labels(self._rule(f.rule), f.severity.value).inc()
        self.ingest_seconds.labels(receipt.status.value).observe(seconds)

    def observe_consumed(self, consumer: str, outcome: str, lag_s: float | None) -> None:
        self.consumed.labels(consumer, outcome).inc()
        if lag_s is not None and lag_s >= 0:
            self.consumer_lag.labels(consumer).observe(lag_s)

    def timed_signer(self, signer: Signer) -> Signer:
        return _TimedSigner(signer, self.signing_seconds)

    def watch(self, collector: Collector) -> None:
        """Add a collector evaluated at scrape time (queue depths)."""
        self.registry.register(collector)

    def gather(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Add another process's metrics (the filing child's), merged at scrape time."""
        self._sources.append(source)

    def collect(self) -> list[Metric]:
        """This registry's families and every gathered process's, merged by name."""
        families = list(self.registry.collect())
        for source in self._sources:
            families.extend(source())
        return merged(families)

    def exposition(self) -> bytes:
        return generate_latest(self)


def merged(families: Iterable[Metric]) -> list[Metric]:
    """One family per name, its samples with the same name and labels added up: the
    processes of one gateway count into the same series (``_created`` keeps the earliest)."""
    by_name: dict[str, Metric] = {}
    values: dict[str, dict[tuple, Sample]] = {}
    for family in families:
        if family.name not in by_name:
            by_name[family.name] = Metric(
                family.name, family.documentation, family.type, family.unit
            )
            values[family.name] = {}
        samples = values[family.name]
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            seen = samples.get(key)
            if seen is None:
                samples[key] = sample
            elif sample.name.endswith("_created"):
                samples[key] = seen._replace(value=min(seen.value, sample.value))
            else:
                samples[key] = seen._replace(value=seen.value + sample.value)
    for name, family in by_name.items():
        family.samples = list(values[name].values())
    return list(by_name.values())


def _kind_and_type(outcome: Accepted | Rejected | None) -> tuple[str, str | None]:
    if isinstance(outcome, Accepted):
        env = outcome.envelope
        return env.source_kind, env.type_code.code if env.type_code else None
    if isinstance(outcome, Rejected):
        return outcome.source_kind or "unknown", None
    return "unknown", None


class _TimedSigner:
    """A Signer that reports how long each signature took."""

    def __init__(self, signer: Signer, histogram: Histogram) -> None:
        self._signer = signer
        self._histogram = histogram

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]:
        started = time.perf_counter()
        try:
            return self._signer.sign(payload)
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def __getattr__(self, name: str):  # key id, certificate … of the wrapped signer
        return getattr(self._signer, name)


class QueueDepthCollector(Collector):
    """Queue depth and consumer count per queue, read at scrape time from a probe.

    ``probe`` returns {queue: (messages_ready, consumers)} and caches its answer, so a
    scrape every second costs the broker at most one passive declare per queue per TTL.
    """

    def __init__(self, probe: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self._probe = probe

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # evaluated lazily: no broker call at registration

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "passerelle_queue_messages",
            "Messages ready in the queue (consumer lag)",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            "passerelle_queue_consumers", "Consumers attached to the queue", labels=["queue"]
        )
        for queue, (ready, count) in sorted(self._probe().items()):
            depth.add_metric([queue], ready)
            consumers.add_metric([queue], count)
        return [depth, consumers]


class UnroutableCollector(Collector):
    """Documents the broker returned as unroutable (a destination queue missing: deleted, or
    not declared yet) and the publisher kept in parking, read at scrape time: they are
    durable, but reach no one until replayed, so an operator must be told."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def describe(self) -> Iterable[CounterMetricFamily]:
        return []

    def collect(self) -> Iterable[CounterMetricFamily]:
        return [
            CounterMetricFamily(
                "passerelle_unroutable_parked",
                "Documents returned unroutable by the broker and kept in parking",
                value=self._count(),
            )
        ]
